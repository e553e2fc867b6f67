// Who the gateway refuses, and how clearly: clients that offer no ML-KEM
// (Node's own https told to offer classical groups only, openssl s_client
// offering only X25519), a wrong pin on the client
// side, an unknown client identity on the server side.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';

import net from 'node:net';
import { spawn } from 'node:child_process';

import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

import {
  OPENSSL, PQMCP, connectTransport, freePort, startGateway, tempDir, until, waitForPort,
} from './lib.mjs';

const run = promisify(execFile);

test("Node's own https offering classical groups only is refused by serve with a clear error", async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const error = await new Promise((resolve) => {
    const req = https.request({
      host: '127.0.0.1', port: gateway.port, path: '/mcp', method: 'POST',
      // Classical by configuration, whatever the Node's OpenSSL could offer
      // (Node 24's can do X25519MLKEM768).
      ecdhCurve: 'X25519:P-256', minVersion: 'TLSv1.3',
      rejectUnauthorized: false, timeout: 10000,
    }, (res) => resolve(new Error(`unexpected HTTP ${res.statusCode}`)));
    req.on('error', resolve);
    req.end('{}');
  });
  // Node's OpenSSL sees the gateway's handshake_failure alert (number 40).
  assert.match(`${error.code} ${error.message}`, /alert handshake failure|alert number 40/i, String(error));
  assert.doesNotMatch(error.message, /unexpected HTTP/);
  await until(() => gateway.stderr.some((l) => /TLS handshake from 127\.0\.0\.1:\d+ failed/.test(l)),
    5000, 'the gateway to log the refused handshake');
  const line = gateway.stderr.find((l) => /TLS handshake from .* failed/.test(l));
  // OpenSSL's reason, not a stack trace: the client offered no hybrid group.
  assert.match(line, /no suitable key share|no shared group|handshake failure|unsupported/i, line);
});

test('openssl s_client offering only X25519 gets a handshake_failure alert', async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const result = spawnSync(OPENSSL, ['s_client', '-connect', `127.0.0.1:${gateway.port}`,
    '-groups', 'X25519', '-tls1_3', '-brief'], { input: '', encoding: 'utf8', timeout: 20000 });
  const output = result.stdout + result.stderr;
  assert.notEqual(result.status, 0, output);
  assert.match(output, /handshake failure|alert number 40/i, output);
  // The same client with the hybrid group gets through the handshake.
  const ok = spawnSync(OPENSSL, ['s_client', '-connect', `127.0.0.1:${gateway.port}`,
    '-groups', 'X25519MLKEM768', '-tls1_3', '-brief'], { input: '', encoding: 'utf8', timeout: 20000 });
  assert.match(ok.stdout + ok.stderr, /Negotiated TLS1\.3 group: X25519MLKEM768/, ok.stdout + ok.stderr);
});

test('a wrong pin: pqmcp connect refuses the gateway with a clear JSON-RPC error', async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const other = await startGateway(t, ['--demo']);  // another identity
  const wrong = { ...gateway, peer: other.peer };
  const client = new Client({ name: 'interop', version: '1.0.0' });
  const transport = connectTransport(wrong);
  await assert.rejects(client.connect(transport), (err) => {
    assert.match(err.message, /is not pinned/);
    assert.match(err.message, new RegExp(gateway.peer));
    return true;
  });
  assert.ok(transport.stderrLines.some((l) => /is not pinned/.test(l)), transport.stderrLines.join('\n'));
});

test('an unknown client identity is refused by a gateway that requires one', async (t) => {
  const gateway0 = await startGateway(t, ['--demo']);
  // A known_peers file naming some other client only.
  const known = path.join(gateway0.home, 'known_peers');
  await run(PQMCP, ['keygen', '--out', path.join(gateway0.home, 'friend')]);
  const { stdout: friend } = await run(PQMCP, ['id', path.join(gateway0.home, 'friend')]);
  writeFileSync(known, `${friend.trim()} friend 2026-11-24\n`);
  await gateway0.stop();
  const gateway = await startGateway(t, ['--demo', '--require-client-identity', '--known-peers', known],
    { dir: gateway0.home });

  // The stranger: refused by the server, with a clear message on the client side.
  const stranger = new Client({ name: 'stranger', version: '1.0.0' });
  await assert.rejects(stranger.connect(connectTransport(gateway, [], 'stranger')), (err) => {
    assert.match(err.message, /refused|does not accept this client's identity/, err.message);
    return true;
  });
  await until(() => gateway.stderr.some((l) => /is not pinned \(and not in known_peers\)/.test(l)),
    5000, 'the gateway to name the refused peer');

  // The friend gets in.
  const client = new Client({ name: 'friend', version: '1.0.0' });
  await client.connect(connectTransport(gateway, [], 'friend'));
  assert.equal((await client.listTools()).tools.length, 5);
  await client.close();
});

test('a classical-only server: pqmcp connect refuses it and says why', async (t) => {
  const dir = tempDir(t);
  // An ML-DSA identity the client pins, served by openssl s_server offering X25519 only.
  await run(PQMCP, ['keygen', '--out', path.join(dir, 'server')]);
  const { stdout: id } = await run(PQMCP, ['id', path.join(dir, 'server')]);
  const port = await freePort();
  const server = spawn(OPENSSL, ['s_server', '-accept', String(port), '-naccept', '5',
    '-cert', path.join(dir, 'server', 'identity.crt'), '-key', path.join(dir, 'server', 'identity.key'),
    '-groups', 'X25519', '-tls1_3', '-quiet'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.after(() => server.kill());
  await waitForPort(port);
  const client = new Client({ name: 'interop', version: '1.0.0' });
  const transport = new StdioClientTransport({
    command: PQMCP,
    args: ['connect', `https://127.0.0.1:${port}/mcp`, '--identity', path.join(dir, 'client'), '--pin', id.trim()],
    stderr: 'pipe',
  });
  await assert.rejects(client.connect(transport), (err) => {
    assert.match(err.message, /classical-only server is refused/, err.message);
    return true;
  });
});

test('a server that never answers: a timeout error, not a hang', async (t) => {
  const dir = tempDir(t);
  const silent = net.createServer(() => {});  // accepts, then says nothing
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => silent.close());
  const port = silent.address().port;
  const client = new Client({ name: 'interop', version: '1.0.0' });
  const started = Date.now();
  await assert.rejects(client.connect(new StdioClientTransport({
    command: PQMCP,
    args: ['connect', `https://127.0.0.1:${port}/mcp`, '--identity', path.join(dir, 'client'), '--pin',
      'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '--timeout', '2s'],
    stderr: 'pipe',
  })), /no TLS handshake within 2000 ms/);
  assert.ok(Date.now() - started < 8000);
});
