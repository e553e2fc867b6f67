// Secure defaults as an operator meets them: a listener that is not loopback
// accepts only known clients unless told otherwise, and the dashboard's
// token need not be on the command line, where ps shows it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { Client, PQMCP, connectTransport, startGateway, tempDir, text, until } from '../interop/lib.mjs';

const run = promisify(execFile);

function startOn(t, listen, args, options = {}) {
  return startGateway(t, args, { ...options, listen });
}

test('a listener that is not loopback refuses to start without known clients, unless --allow-any-client', async (t) => {
  const refused = await startOn(t, '0.0.0.0:0', ['--demo']).then(() => null, (e) => e);
  assert.ok(refused, 'it started');
  assert.match(refused.message, /listen 0\.0\.0\.0:0 is not loopback: clients must be known there \(give known_peers or ca, --known-peers or --ca\), or say allow_any_client \(--allow-any-client\)/);
  const open = await startOn(t, '0.0.0.0:0', ['--demo', '--allow-any-client']);
  assert.ok(open.stderr.some((l) => /listening on 0\.0\.0\.0:0 with --allow-any-client: any client/.test(l)));
  // Loopback (make run) needs neither.
  const local = await startGateway(t, ['--demo']);
  const client = new Client({ name: 'local', version: '1.0.0' });
  await client.connect(connectTransport(local));
  t.after(() => client.close());
  assert.equal(text(await client.callTool({ name: 'demo__add', arguments: { a: 1, b: 2 } })), '3');
});

test('on 0.0.0.0 with known_peers: a known client is served, an unknown one refused', async (t) => {
  const dir = tempDir(t);
  const { stdout } = await run(PQMCP, ['keygen', '--out', path.join(dir, 'client')]);
  const known = path.join(dir, 'known_peers');
  await run(PQMCP, ['peers', 'add', '--file', known, stdout.trim(), 'alice']);
  const gateway = await startOn(t, '0.0.0.0:0', ['--demo', '--known-peers', known], { dir });
  const alice = new Client({ name: 'alice', version: '1.0.0' });
  await alice.connect(connectTransport(gateway));
  t.after(() => alice.close());
  assert.equal(text(await alice.callTool({ name: 'demo__add', arguments: { a: 2, b: 2 } })), '4');
  const stranger = new Client({ name: 'stranger', version: '1.0.0' });
  await assert.rejects(stranger.connect(connectTransport(gateway, [], 'stranger')));
  await stranger.close().catch(() => {});
});

test('the dashboard token from a file or the environment, never on the command line', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'token');
  const token = 'tok-from-a-file-0123456789abcdef';
  writeFileSync(file, `${token}\n`);
  chmodSync(file, 0o644);
  const loose = await startGateway(t, ['--demo', '--dashboard-token-file', file], { dir }).then(() => null, (e) => e);
  assert.ok(loose);
  assert.match(loose.message, /dashboard\.token_file .*token: readable by others \(chmod 600 it\)/);
  chmodSync(file, 0o600);
  const fromFile = await startGateway(t, ['--demo', '--dashboard-token-file', file]);
  await until(() => fromFile.stdout.includes('dashboard'), 5000, 'the dashboard line');
  assert.match(fromFile.stdout, new RegExp(`dashboard https://\\S+/dashboard\\?token=${token}`));
  assert.ok(!readFileSync(`/proc/${fromFile.child.pid}/cmdline`, 'utf8').includes(token), 'the token is not in ps');
  const envToken = 'tok-from-the-environment-0123456789';
  const fromEnv = await startGateway(t, ['--demo'], { env: { PQMCP_DASHBOARD_TOKEN: envToken } });
  await until(() => fromEnv.stdout.includes('dashboard'), 5000, 'the dashboard line');
  assert.match(fromEnv.stdout, new RegExp(`dashboard https://\\S+/dashboard\\?token=${envToken}`));
  const bad = await startGateway(t, ['--demo'], { env: { PQMCP_DASHBOARD_TOKEN: 'short' } }).then(() => null, (e) => e);
  assert.match(bad.message, /PQMCP_DASHBOARD_TOKEN: at least 16 characters/);
});
