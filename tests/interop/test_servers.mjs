// The reference filesystem and memory servers behind the gateway, and two
// upstreams federated behind one gateway.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';

import {
  FILESYSTEM, MEMORY, NODE, connectTransport, startEverythingHttp, startGateway, tempDir, text,
} from './lib.mjs';

async function session(gateway) {
  const client = new Client({ name: 'interop', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  return client;
}

test('server-filesystem: read a file in a temporary root', async (t) => {
  const root = tempDir(t);
  const file = path.join(root, 'hello.txt');
  writeFileSync(file, 'quantum-safe hello\nline 2\n');
  const gateway = await startGateway(t, ['--upstream', `fs=stdio:${NODE} ${FILESYSTEM} ${root}`]);
  const client = await session(gateway);
  try {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    assert.ok(names.includes('fs__read_text_file'), names.join(','));
    const result = await client.callTool({ name: 'fs__read_text_file', arguments: { path: file } });
    assert.equal(text(result), 'quantum-safe hello\nline 2\n');
    assert.equal(result.structuredContent.content, 'quantum-safe hello\nline 2\n');
    const denied = await client.callTool({ name: 'fs__read_text_file', arguments: { path: '/etc/hostname' } });
    assert.equal(denied.isError, true);
    assert.match(text(denied), /Access denied/);
  } finally {
    await client.close();
  }
});

// The npx preset: the sandbox grants the Node installation and ~/.npm; the
// package comes from this project's own install (--offline, and the project
// directory granted for reading), so nothing is fetched and the network stays
// off. What npx tries beyond that (the user's ~/.npmrc, which may hold
// registry tokens) is refused and reported with the grant that would allow it.
test('server-filesystem started by npx, sandboxed with the npx preset and no network', async (t) => {
  const root = tempDir(t);
  const file = path.join(root, 'hello.txt');
  writeFileSync(file, 'via npx\n');
  const here = path.dirname(fileURLToPath(import.meta.url));
  const gateway = await startGateway(t, ['--upstream',
    `fs=stdio:npx --offline @modelcontextprotocol/server-filesystem ${root}`, '--sandbox-read', `fs=${here}`]);
  const client = await session(gateway);
  try {
    const result = await client.callTool({ name: 'fs__read_text_file', arguments: { path: file } });
    assert.equal(text(result), 'via npx\n');
  } finally {
    await client.close();
  }
  assert.ok(gateway.stderr.some((l) => /upstream fs: sandboxed \(.*network none\)/.test(l)), gateway.stderr.join('\n'));
});

test('server-memory: entities written and read back', async (t) => {
  const dir = tempDir(t);
  // Its file's location is passed on by name, and its directory granted to its sandbox.
  const gateway = await startGateway(t, ['--upstream', `memory=stdio:${NODE} ${MEMORY}`,
    '--pass-env', 'memory=MEMORY_FILE_PATH', '--sandbox-write', `memory=${dir}`], {
    env: { MEMORY_FILE_PATH: path.join(dir, 'memory.jsonl') },
  });
  const client = await session(gateway);
  try {
    await client.callTool({
      name: 'memory__create_entities',
      arguments: { entities: [{ name: 'pqmcp', entityType: 'gateway', observations: ['speaks ML-KEM'] }] },
    });
    const graph = await client.callTool({ name: 'memory__read_graph', arguments: {} });
    const entities = graph.structuredContent.entities;
    assert.equal(entities.length, 1);
    assert.equal(entities[0].name, 'pqmcp');
    assert.deepEqual(entities[0].observations, ['speaks ML-KEM']);
  } finally {
    await client.close();
  }
});

test('two upstreams federated: tools merged under prefixes, calls routed', async (t) => {
  const root = tempDir(t);
  writeFileSync(path.join(root, 'a.txt'), 'from the filesystem');
  const url = await startEverythingHttp(t);
  const gateway = await startGateway(t, [
    '--upstream', `everything=${url}`,
    '--upstream', `fs=stdio:${NODE} ${FILESYSTEM} ${root}`,
    '--demo',
  ]);
  const client = await session(gateway);
  try {
    const names = (await client.listTools()).tools.map((tool) => tool.name);
    for (const name of ['everything__echo', 'fs__read_text_file', 'demo__process_refund']) {
      assert.ok(names.includes(name), `${name} missing from ${names.join(',')}`);
    }
    assert.equal(new Set(names).size, names.length, 'no duplicate names');
    assert.equal(text(await client.callTool({ name: 'everything__echo', arguments: { message: 'x' } })), 'Echo: x');
    assert.equal(text(await client.callTool({ name: 'fs__read_text_file', arguments: { path: path.join(root, 'a.txt') } })),
      'from the filesystem');
    assert.equal(text(await client.callTool({ name: 'demo__add', arguments: { a: 1, b: 2 } })), '3');
    // Prompts and resources of server-everything come through too.
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.some((p) => p.startsWith('everything__')), prompts.join(','));
    const resources = (await client.listResources()).resources;
    assert.ok(resources.length > 0);
    const read = await client.readResource({ uri: resources[0].uri });
    assert.equal(read.contents[0].uri, resources[0].uri);
    // An instruction names the prefixes for the model.
    assert.match(client.getInstructions(), /__/);
  } finally {
    await client.close();
  }
});
