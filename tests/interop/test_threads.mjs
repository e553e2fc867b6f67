// serve --threads: sessions of several official SDK clients (through
// `pqmcp connect`, each with calls in flight at once, so over several
// connections and both threads) see one gateway: a quota of 50 holds
// exactly across them, every answer is the one asked for, every call is in
// one audit chain that verifies, and the gateway ends cleanly.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client, PQMCP, auditedRequests, connectTransport, startGateway, tempDir, text } from './lib.mjs';

const policy = `version: 1
default: allow
rules:
  - id: fifty-in-all
    match: { tool: demo__echo }
    quota: { per: global, limit: 50, window: 1h }
    effect: allow
`;

test('four clients at once on two threads: one quota, one audit chain', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, policy);
  const gateway = await startGateway(t, ['--demo', '--threads', '2', '--policy', file, '--metrics', '127.0.0.1:0'], { dir });
  assert.ok(gateway.stderr.some((l) => /2 threads serving connections and sessions/.test(l)),
    gateway.stderr.join('\n'));

  const clients = [];
  for (let c = 0; c < 4; c += 1) {
    const client = new Client({ name: `threads-${c}`, version: '1.0.0' });
    await client.connect(connectTransport(gateway, [], `client-${c}`));
    clients.push(client);
  }
  t.after(() => Promise.all(clients.map((c) => c.close().catch(() => {}))));
  const outcomes = await Promise.all(clients.flatMap((client, c) =>
    Array.from({ length: 30 }, (_, i) =>
      client.callTool({ name: 'demo__echo', arguments: { message: `c${c} m${i}` } }).then(
        (r) => ({ ok: true, c, i, text: text(r) }),
        (err) => ({ ok: false, rule: err.data?.rule, message: err.message })))));
  const ok = outcomes.filter((o) => o.ok);
  const refused = outcomes.filter((o) => !o.ok);
  assert.equal(ok.length, 50, 'exactly the quota is served across both threads');
  assert.equal(refused.length, 70);
  for (const r of refused) {
    assert.equal(r.rule, 'fifty-in-all', `${r.message}\ngateway (exit ${gateway.child.exitCode ?? gateway.child.signalCode}):\n${gateway.stderr.slice(-20).join('\n')}`);
  }
  // Each answer is its own call's, whatever thread carried it.
  for (const o of ok) {
    assert.match(o.text, new RegExp(`c${o.c} m${o.i}\\b`));
  }
  // Each `pqmcp connect` sent 30 calls at once over several connections,
  // dealt to both threads: those accepted on the thread that is not their
  // session's moved there, each once.
  const metrics = await (await fetch(gateway.metricsUrl)).text();
  const moved = Number(/^pqmcp_connections_moved_total (\d+)/m.exec(metrics)?.[1]);
  assert.ok(moved >= 1, metrics.split('\n').filter((l) => l.startsWith('pqmcp_connections')).join('\n'));
  // Lists and other requests keep working for every session.
  for (const client of clients) {
    assert.ok((await client.listTools()).tools.length > 0);
    await client.close();
  }
  const exit = await gateway.stop();
  assert.equal(exit.code, 0, gateway.stderr.slice(-20).join('\n'));

  const db = path.join(gateway.home, 'gateway', 'audit.db');
  const verify = spawnSync(PQMCP, ['audit', 'verify', db], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  const calls = auditedRequests(db).filter((r) => r.target === 'demo__echo');
  assert.equal(calls.filter((r) => r.outcome === 'ok').length, 50);
  assert.equal(calls.length, 120);
  // Call numbers are unique across threads.
  assert.equal(new Set(calls.map((r) => r.call)).size, calls.length);
});
