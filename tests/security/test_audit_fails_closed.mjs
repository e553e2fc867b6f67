// The audit trail fails closed: with its database on a full disk (a small
// tmpfs in a mount namespace of the test's own), tools/call is refused with
// -32013 and the failure is logged and counted (the tmpfs is larger than the
// write-ahead log grows before SQLite's automatic checkpoint, 1,000 pages, so
// that it is the filler that fills it); when space comes back, the
// records that waited are committed, calls go on, and the chain verifies.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client, PQMCP, StdioClientTransport, tempDir, until } from '../interop/lib.mjs';

const canUnshare = spawnSync('unshare', ['--mount', '--map-root-user', 'true']).status === 0;

async function call(client, n) {
  try {
    await client.callTool({ name: 'demo__echo', arguments: { message: `call ${n}` } });
    return 'ok';
  } catch (err) {
    return err.code;
  }
}

test('a full disk under the audit database refuses tools/call until it has room again', { skip: !canUnshare && 'no mount namespaces here (unshare --mount --map-root-user)' }, async (t) => {
  const dir = tempDir(t);
  const disk = path.join(dir, 'disk');
  const ctl = path.join(dir, 'ctl');
  mkdirSync(disk);
  mkdirSync(ctl);
  const identity = path.join(dir, 'gateway');
  // The gateway runs inside the namespace; a loop there fills and empties the
  // disk when the test asks (files in ctl/, outside the tmpfs).
  const script = `
set -e
mount -t tmpfs -o size=16m tmpfs '${disk}'
'${PQMCP}' serve --listen 127.0.0.1:0 --identity '${identity}' --demo --audit '${disk}/audit.db' \\
  --metrics 127.0.0.1:0 &
gw=$!
trap 'kill -TERM $gw 2>/dev/null' TERM
while kill -0 $gw 2>/dev/null; do
  if [ -e '${ctl}/fill' ]; then rm '${ctl}/fill'; dd if=/dev/zero of='${disk}/filler' bs=4k 2>/dev/null || true; touch '${ctl}/filled'; fi
  if [ -e '${ctl}/unfill' ]; then rm '${ctl}/unfill'; rm -f '${disk}/filler'; touch '${ctl}/unfilled'; fi
  sleep 0.05 &
  wait $! || true
done
wait $gw || true
# The tmpfs goes with the namespace: what it holds is checked here.
'${PQMCP}' audit verify '${disk}/audit.db' > '${ctl}/verify.txt' 2>&1; echo $? > '${ctl}/verify.rc'
'${PQMCP}' audit export '${disk}/audit.db' --json --kind request > '${ctl}/export.jsonl'`;
  const child = spawn('unshare', ['--mount', '--map-root-user', '--propagation', 'private', 'sh', '-c', script],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => stderr.push(...d.split('\n').filter(Boolean)));
  const exited = new Promise((r) => child.on('exit', r));
  t.after(async () => { child.kill('SIGTERM'); await exited; });
  let stdout = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => { stdout += d; });
  await until(() => /^pqmcp serve: metrics http:\S+$/m.test(stdout), 30000, `the ready and metrics lines; stderr:\n${stderr.join('\n')}`);
  const [, url, peer] = /ready on (https:\S+) peer (pq1\S+) /.exec(stdout);
  const [, metricsUrl] = /^pqmcp serve: metrics (http:\S+)$/m.exec(stdout);

  const transport = new StdioClientTransport({
    command: PQMCP, args: ['connect', url, '--identity', path.join(dir, 'client'), '--pin', peer], stderr: 'ignore',
  });
  const client = new Client({ name: 'audit-full', version: '1.0.0' });
  await client.connect(transport);
  t.after(() => client.close());
  const ok = [];
  for (let n = 0; n < 20; n++) {
    assert.equal(await call(client, n), 'ok');
    ok.push(n);
  }

  writeFileSync(path.join(ctl, 'fill'), '');
  await until(() => existsSync(path.join(ctl, 'filled')), 10000, 'the disk to fill');
  let refused = 0;
  for (let n = 100; n < 2000 && refused === 0; n++) {
    const r = await call(client, n);
    if (r === 'ok') ok.push(n);
    else if (r === -32013) refused += 1;
    else assert.fail(`unexpected outcome ${r}`);
  }
  assert.equal(refused, 1, 'a call was refused once the records could not be committed');
  const refusedWhileFull = refused;
  // The gateway logs before it answers, but the log comes on another pipe
  // than the answer, and Node may read that pipe later: wait for it.
  await until(() => stderr.some((l) => / error audit trail: records cannot be committed .*tools\/call is refused/.test(l)),
    5000, `the refusal in the log; stderr:\n${stderr.join('\n')}`);
  const metrics = await (await fetch(metricsUrl)).text();
  assert.match(metrics, /^pqmcp_audit_healthy 0$/m);
  assert.match(metrics, /^pqmcp_audit_refused_calls_total [1-9]/m);
  // Listing still works while the trail is down: only actions are refused.
  assert.ok((await client.listTools()).tools.length > 0);

  writeFileSync(path.join(ctl, 'unfill'), '');
  await until(() => existsSync(path.join(ctl, 'unfilled')), 10000, 'the disk to empty');
  let back = false;
  for (let n = 5000; n < 5200 && !back; n++) {
    const r = await call(client, n);
    if (r === 'ok') {
      ok.push(n);
      back = true;
    } else {
      assert.equal(r, -32013);
      refused += 1;
      await new Promise((res) => setTimeout(res, 200));
    }
  }
  assert.ok(back, `calls were accepted again; stderr:\n${stderr.slice(-30).join('\n')}`);
  assert.ok(refused >= refusedWhileFull);
  await until(() => stderr.some((l) => /audit trail: commits again/.test(l)), 5000, 'the recovery in the log');
  await client.close();
  child.kill('SIGTERM');
  await exited;
  // The chain verifies, and every acknowledged call has its record: those
  // answered while the disk was full waited in the queue.
  assert.equal(readFileSync(path.join(ctl, 'verify.rc'), 'utf8').trim(), '0',
    readFileSync(path.join(ctl, 'verify.txt'), 'utf8'));
  const records = readFileSync(path.join(ctl, 'export.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l)).filter((r) => r.target === 'demo__echo' && r.phase !== 'started');
  assert.equal(records.filter((r) => r.outcome === 'ok').length, ok.length);
  assert.equal(records.filter((r) => r.error_code === -32013).length, refused);
});
