// The audit trail as an operator meets it: `pqmcp audit verify / tail /
// export` on a running gateway's database, and a crash test: kill -9 the
// gateway under load, then the chain still verifies on restart and no
// acknowledged request is missing beyond the documented window (the flush
// interval plus one commit).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';

import { PQMCP, connectTransport, startGateway, tempDir } from './lib.mjs';

const FLUSH_MS = 100;
// A commit of a batch takes a few milliseconds; allow generously for a loaded CI machine.
const COMMIT_SLACK_MS = 150;

function audit(...args) {
  return spawnSync(PQMCP, ['audit', ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
}

function requests(db) {
  const out = audit('export', db, '--kind', 'request', '--json');
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('kill -9 under load: the chain verifies and acknowledged records survive', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, `audit:\n  arguments: redacted\n  flush_interval: ${FLUSH_MS}ms\n  checkpoint_records: 200\n`);
  const db = path.join(dir, 'gateway', 'audit.db');
  const gateway = await startGateway(t, ['--demo', '--config', config], { dir });

  const client = new Client({ name: 'crash-test', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  const acked = [];  // [n, time acknowledged]
  let stop = false;
  const load = (async () => {
    for (let n = 0; !stop; n++) {
      try {
        await client.callTool({ name: 'demo__echo', arguments: { message: `crash-${n}` } });
        acked.push([n, Date.now()]);
      } catch {
        return;  // the gateway is gone
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 2500));
  const killedAt = Date.now();
  gateway.child.kill('SIGKILL');
  stop = true;
  await gateway.exited;
  await load;
  await client.close().catch(() => {});
  assert.ok(acked.length > 50, `load ran (${acked.length} calls acknowledged)`);

  // The chain verifies as the crash left it (the unsigned tail is reported, not an error).
  const verified = audit('verify', db);
  assert.equal(verified.status, 0, verified.stdout + verified.stderr);
  assert.match(verified.stdout, /^OK/m);

  const stored = new Set(requests(db).filter((r) => r.method === 'tools/call')
    .map((r) => r.args?.message));
  const deadline = killedAt - FLUSH_MS - COMMIT_SLACK_MS;
  const lost = acked.filter(([n, at]) => at < deadline && !stored.has(`crash-${n}`));
  assert.deepEqual(lost, [], 'acknowledged more than the window before the kill, yet not in the audit');
  const lostInWindow = acked.filter(([n]) => !stored.has(`crash-${n}`)).length;
  t.diagnostic(`${acked.length} acknowledged, ${stored.size} stored, ${lostInWindow} lost within the window`);

  // Restart on the same database: the chain continues and still verifies.
  const again = await startGateway(t, ['--demo', '--config', config], { dir });
  const client2 = new Client({ name: 'after-crash', version: '1.0.0' });
  await client2.connect(connectTransport(again));
  await client2.callTool({ name: 'demo__echo', arguments: { message: 'after the crash' } });
  await client2.close();
  const exit = await again.stop();
  assert.equal(exit.code, 0);
  const after = audit('verify', db);
  assert.equal(after.status, 0, after.stdout + after.stderr);
  assert.ok(requests(db).some((r) => r.args?.message === 'after the crash'),
    'the clean shutdown committed the last decision');

  // tail and export as an operator runs them.
  const tail = audit('tail', db, '-n', '5');
  assert.equal(tail.status, 0, tail.stderr);
  assert.equal(tail.stdout.trim().split('\n').length, 5);
  assert.match(tail.stdout, /audit/);  // the closing lifecycle record is last
  const json = audit('tail', db, '-n', '3', '--json');
  for (const line of json.stdout.trim().split('\n')) {
    const r = JSON.parse(line);
    assert.ok(r.seq > 0 && typeof r.hash === 'string' && r.kind);
  }
  const since = audit('export', db, '--since', '1h', '--json');
  assert.equal(since.status, 0, since.stderr);
  const all = audit('export', db, '--json');
  assert.equal(since.stdout.split('\n').filter(Boolean).length,
    all.stdout.split('\n').filter(Boolean).length, 'everything happened within the last hour');
  const future = audit('export', db, '--since', '2200-01-01', '--json');
  assert.equal(future.stdout.trim(), '');
  const bad = audit('export', db, '--since', 'yesterday-ish');
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /since/i);
  const missing = audit('verify', path.join(dir, 'nope.db'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /no such file/);
});
