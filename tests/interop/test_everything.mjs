// The official TypeScript SDK Client -> pqmcp connect -> PQ TLS -> pqmcp serve
// -> @modelcontextprotocol/server-everything, over stdio and over Streamable
// HTTP, compared with a direct connection to the same server.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  CreateMessageRequestSchema, LoggingMessageNotificationSchema, ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';

import {
  EVERYTHING, NODE, connectTransport, startEverythingHttp, startGateway, tempDir, text, until,
} from './lib.mjs';

async function directTools() {
  const client = new Client({ name: 'direct', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: NODE, args: [EVERYTHING], stderr: 'ignore' }));
  try {
    return (await client.listTools()).tools;
  } finally {
    await client.close();
  }
}

// What every path through the gateway must do, whatever the upstream transport.
async function exercise(gateway, prefix, { expectListChanged }) {
  const client = new Client({ name: 'interop', version: '1.0.0' });
  let listChanged = 0;
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { listChanged += 1; });
  const transport = connectTransport(gateway);
  await client.connect(transport);
  // Everything that arrives, as it arrives (the SDK hands notifications to
  // handlers a tick later than responses).
  const wire = [];
  const deliver = transport.onmessage;
  transport.onmessage = (message, extra) => {
    wire.push(message);
    deliver(message, extra);
  };
  try {
    assert.equal(client.getServerVersion().name, 'pqmcp');

    // listTools: the same tools as a direct connection, under the prefix.
    const direct = await directTools();
    const via = (await client.listTools()).tools;
    assert.deepEqual(
      via.map((t) => ({ ...t, name: t.name.replace(prefix, '') })),
      direct,
    );
    assert.ok(via.every((t) => t.name.startsWith(prefix)));

    assert.equal(text(await client.callTool({ name: `${prefix}echo`, arguments: { message: 'hello pq' } })),
      'Echo: hello pq');
    assert.equal(text(await client.callTool({ name: `${prefix}get-sum`, arguments: { a: 2, b: 3 } })),
      'The sum of 2 and 3 is 5.');

    // Progress notifications of the long-running operation arrive, in order,
    // before the result. (The SDK itself may drop the last one when it comes
    // in the same read as the result: it runs notification handlers a
    // microtask later and removes the progress handler with the response.)
    const progress = [];
    const first = wire.length;
    const done = await client.callTool(
      { name: `${prefix}trigger-long-running-operation`, arguments: { duration: 1, steps: 3 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.match(text(done), /Long running operation completed/);
    const seen = wire.slice(first).filter((m) => m.method === 'notifications/progress' || m.result);
    assert.deepEqual(seen.map((m) => m.params?.progress ?? 'result'), [1, 2, 3, 'result']);
    assert.ok(progress.length >= 2, `onprogress saw ${progress}`);

    // server-everything announces tools/list_changed after initialization.
    if (expectListChanged) {
      await until(() => listChanged > 0, 10000, 'notifications/tools/list_changed');
    }
  } finally {
    await client.close();
  }
}

test('SDK client over stdio upstream: same tools, echo, get-sum, progress, list_changed', async (t) => {
  const gateway = await startGateway(t, ['--upstream', `everything=stdio:${NODE} ${EVERYTHING}`]);
  await exercise(gateway, 'everything__', { expectListChanged: true });
});

test('sampling and logging through the bridge: the SDK answers the upstream, logs arrive', async (t) => {
  const gateway = await startGateway(t, ['--upstream', `everything=stdio:${NODE} ${EVERYTHING}`]);
  const client = new Client({ name: 'interop', version: '1.0.0' }, { capabilities: { sampling: {} } });
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
    role: 'assistant',
    model: 'interop-model',
    content: { type: 'text', text: `sampled: ${request.params.messages[0].content.text}` },
  }));
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  await client.connect(connectTransport(gateway));
  try {
    // server-everything registers this tool because the client can sample.
    const result = await client.callTool({
      name: 'everything__trigger-sampling-request', arguments: { prompt: 'quantum', maxTokens: 10 },
    });
    assert.match(JSON.stringify(result.content), /sampled: [^"]*quantum/);
    await client.setLoggingLevel('debug');
    await client.callTool({ name: 'everything__toggle-simulated-logging', arguments: {} });
    await until(() => logs.length > 0, 15000, 'notifications/message');
  } finally {
    await client.close();
  }
});

test('without namespacing, a single upstream is exactly the direct server', async (t) => {
  const gateway = await startGateway(t, ['--no-namespace', '--upstream', `everything=stdio:${NODE} ${EVERYTHING}`]);
  const client = new Client({ name: 'interop', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  try {
    assert.deepEqual((await client.listTools()).tools, await directTools());
  } finally {
    await client.close();
  }
});

test('SDK client with server-everything as a Streamable HTTP upstream', async (t) => {
  const url = await startEverythingHttp(t);
  const gateway = await startGateway(t, ['--upstream', `everything=${url}`]);
  await exercise(gateway, 'everything__', { expectListChanged: true });
});

test('protocol: auto in front of a server of 2025-11-25 only falls back to a session', async (t) => {
  const url = await startEverythingHttp(t);
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, ['upstreams:', '  - name: everything', `    url: ${url}`, '    protocol: auto', ''].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  await exercise(gateway, 'everything__', { expectListChanged: true });
});
