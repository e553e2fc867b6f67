// A tier of two replicas behind HAProxy (TCP mode: TLS stays end to end),
// with their shared state on redis-server and PostgreSQL, all started here
// on loopback and stopped at the end. It shows what docs/scale.md promises:
// a quota held exactly across replicas, an approval made once applying on
// both, a replica killed with -9 under load while its clients carry on
// through the other with every answered call in the central audit, a
// session ticket of one replica resumed on the other, and the fallback
// when Redis goes away.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  Client, OPENSSL, PQMCP, StdioClientTransport, freePort, startGateway, tempDir, text, until, waitForPort,
} from '../interop/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ENGINES = path.join(here, 'engines.sh');
const FIXTURE = process.env.PQMCP_FIXTURE_BIN;

function engines(command, dir) {
  const out = spawnSync(ENGINES, [command, dir], { encoding: 'utf8', timeout: 60000 });
  assert.equal(out.status, 0, `engines.sh ${command}: ${out.stdout}${out.stderr}`);
  return Object.fromEntries(out.stdout.split('\n').filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function pqmcp(args) {
  return spawnSync(PQMCP, args, { encoding: 'utf8', timeout: 60000 });
}

// The tier: engines, two replicas sharing one identity (one peer id behind
// one address) and one ticket secret, HAProxy in front.
async function startTier(t, dir) {
  const urls = engines('start', dir);
  t.after(() => engines('stop', dir));
  const keys = path.join(dir, 'ticket.key');
  writeFileSync(keys, randomBytes(64));
  chmodSync(keys, 0o600);
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, [
    'version: 1',
    'default: allow',
    'rules:',
    '  - id: fifty-in-all',
    '    match: { tool: demo__echo }',
    '    quota: { per: global, limit: 50, window: 1h }',
    '    effect: allow',
    '  - id: no-browsing',
    '    match: { tool: demo__get_patient_record }',
    '    when:',
    '      - { anomaly: [enumeration] }',
    '    effect: deny',
    '',
  ].join('\n'));
  const config = path.join(dir, 'tier.yaml');
  writeFileSync(config, [
    'threads: 1',
    `policy: ${policy}`,
    'upstreams:',
    '  - name: fx',
    `    command: ${FIXTURE}`,
    '    isolation: shared',
    '    env: { FIXTURE_MODE: rugpull }',
    'cluster:',
    `  redis: "${urls.PQMCP_TEST_REDIS}"`,
    // Generous: the test is about exact counts, also under the sanitizers;
    // a count that times out is refused (fail: closed) and may still have
    // been counted by Redis.
    '  redis_timeout: 2s',
    `  postgres: "${urls.PQMCP_TEST_POSTGRES}"`,
    `  ticket_keys: ${keys}`,
    'audit:',
    '  acknowledge: committed',
    '  arguments: redacted',
    '',
  ].join('\n'));
  const ports = { a: await freePort(), b: await freePort(), front: await freePort() };
  const replica = async (name) => startGateway(t, ['--config', config, '--demo', '--replica', name],
    { dir, listen: `127.0.0.1:${ports[name]}` });
  const a = await replica('a');
  const b = await replica('b');
  assert.equal(a.peer, b.peer, 'one identity behind one address');
  for (const g of [a, b]) {
    const log = g.stderr.join('\n');
    assert.match(log, /rates and quotas: counted in redis unix:/);
    assert.match(log, /behaviour baselines: shared in redis unix:/);
    assert.match(log, /audit trail: shipped to PostgreSQL as replica [ab]/);
    assert.match(log, /session tickets: keys derived from /);
  }
  const haproxyConfig = path.join(dir, 'haproxy.cfg');
  writeFileSync(haproxyConfig, [
    'global',
    '  maxconn 2000',
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    '  timeout client 60s',
    '  timeout server 60s',
    '  retries 3',
    '  option redispatch',
    'frontend mcp',
    `  bind 127.0.0.1:${ports.front}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance source',
    '  hash-type consistent',
    `  server a 127.0.0.1:${ports.a} check inter 100ms fall 1 rise 2`,
    `  server b 127.0.0.1:${ports.b} check inter 100ms fall 1 rise 2`,
    '',
  ].join('\n'));
  const haproxy = spawn('haproxy', ['-f', haproxyConfig, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const haproxyLog = [];
  haproxy.stderr.on('data', (d) => haproxyLog.push(String(d)));
  t.after(() => haproxy.kill('SIGKILL'));
  await waitForPort(ports.front);
  return { dir, urls, config, a, b, ports, haproxy, haproxyLog, replica };
}

function psql(url, sql) {
  const out = spawnSync('psql', [url, '-Atc', sql], { encoding: 'utf8', timeout: 30000 });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.split('\n').filter(Boolean);
}

function connectTo(tier, port, name) {
  const transport = new StdioClientTransport({
    command: PQMCP,
    args: ['connect', `https://127.0.0.1:${port}/mcp`, '--identity', path.join(tier.dir, name),
      '--pin', tier.a.peer],
    stderr: 'pipe',
  });
  transport.stderrLines = [];
  transport.stderr?.setEncoding('utf8');
  transport.stderr?.on('data', (d) => transport.stderrLines.push(...d.split('\n').filter(Boolean)));
  return transport;
}

async function client(t, tier, port, name) {
  const c = new Client({ name, version: '1.0.0' });
  const transport = connectTo(tier, port, name);
  await c.connect(transport);
  t.after(() => c.close().catch(() => {}));
  return { client: c, transport };
}

const outcome = (p) => p.then((r) => ({ ok: true, text: text(r) }),
  (err) => ({ ok: false, rule: err.data?.rule, code: err.code, message: err.message }));

test('two replicas behind HAProxy on Redis and PostgreSQL', { timeout: 240000 }, async (t) => {
  const dir = tempDir(t);
  const tier = await startTier(t, dir);

  await t.test('a quota of 50 holds exactly with the load split over both replicas', async () => {
    const clients = [];
    for (const [i, port] of [tier.ports.a, tier.ports.b, tier.ports.a, tier.ports.b].entries()) {
      clients.push((await client(t, tier, port, `quota-${i}`)).client);
    }
    const results = await Promise.all(clients.flatMap((c, i) => Array.from({ length: 30 },
      (_, j) => outcome(c.callTool({ name: 'demo__echo', arguments: { message: `c${i} m${j}` } })))));
    const ok = results.filter((r) => r.ok);
    assert.equal(ok.length, 50, 'exactly the quota is served across the replicas');
    for (const r of results.filter((x) => !x.ok)) {
      assert.equal(r.rule, 'fifty-in-all', r.message);
    }
  });

  await t.test('one behaviour baseline per caller for the whole tier', async () => {
    // One identity (one directory), a session on each replica; the records
    // it asks for go up by one, half on each: only the tier sees the run.
    const onA = (await client(t, tier, tier.ports.a, 'browser')).client;
    const onB = (await client(t, tier, tier.ports.b, 'browser')).client;
    const get = (c, n) => outcome(c.callTool({
      name: 'demo__get_patient_record', arguments: { patient_id: `P000${n}`, purpose: 'care' },
    }));
    for (const [n, c] of [[1, onA], [2, onB], [3, onA]]) {
      const r = await get(c, n);
      assert.ok(r.ok, `P000${n}: ${r.message}`);
    }
    const fourth = await get(onB, 4);
    assert.equal(fourth.ok, false, 'the fourth in a row is refused, on the replica that saw two');
    assert.equal(fourth.rule, 'no-browsing');
    assert.ok(tier.b.stderr.some((l) => /behaviour: enumeration \(4 calls of demo__get_patient_record with patient_id one apart\)/.test(l)),
      tier.b.stderr.slice(-10).join('\n'));
  });

  await t.test('an approval made once applies on both replicas within a second', async () => {
    const onA = (await client(t, tier, tier.ports.a, 'approve-a')).client;
    const onB = (await client(t, tier, tier.ports.b, 'approve-b')).client;
    const has = async (c) => (await c.listTools()).tools.some((x) => x.name === 'fx__whoami');
    assert.ok(await has(onA), 'pinned on first sight (on A)');
    assert.ok(await has(onB), 'the same pin holds on B');
    // Each replica's fixture changes whoami's description from its second
    // listing on: a rug pull, blocked on both.
    assert.ok(!(await has(onA)), 'the changed definition is blocked on A');
    const state = tier.urls.PQMCP_TEST_POSTGRES;
    const listed = pqmcp(['tools', 'list', '--state', state]);
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, /fx {2}tool {2}whoami .* CHANGED/);
    const approved = pqmcp(['tools', 'approve', '--state', state, '--upstream', 'fx', '--tool', 'whoami']);
    assert.equal(approved.status, 0, approved.stderr);
    const at = Date.now();
    assert.ok(await has(onB), 'the approved definition is served on B');
    assert.ok(await has(onA), 'and on A');
    assert.ok(Date.now() - at < 1000, `applied within a second (${Date.now() - at} ms)`);
  });

  await t.test('a session ticket of one replica resumes on the other', () => {
    const session = path.join(dir, 'tls.session');
    const request = 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const first = spawnSync(OPENSSL, ['s_client', '-connect', `127.0.0.1:${tier.ports.a}`,
      '-groups', 'X25519MLKEM768', '-sess_out', session, '-ign_eof'],
    { input: request, encoding: 'utf8', timeout: 20000 });
    assert.match(first.stdout, /^New, TLSv1\.3/m, first.stdout + first.stderr);
    const second = spawnSync(OPENSSL, ['s_client', '-connect', `127.0.0.1:${tier.ports.b}`,
      '-groups', 'X25519MLKEM768', '-sess_in', session, '-ign_eof'],
    { input: request, encoding: 'utf8', timeout: 20000 });
    assert.match(second.stdout, /^Reused, TLSv1\.3/m, second.stdout + second.stderr);
    assert.match(second.stdout, /Negotiated TLS1\.3 group: X25519MLKEM768/);
  });

  await t.test('a replica killed with -9 under load: its clients carry on, every answer is audited', async () => {
    const clients = [];
    for (let c = 0; c < 3; c += 1) {
      clients.push(await client(t, tier, tier.ports.front, `kill-${c}`));
    }
    // HAProxy keeps one client address on one replica: find which.
    await Promise.all(clients.map(({ client: c }) => c.callTool({ name: 'demo__add', arguments: { a: 0, b: 0 } })));
    const seen = (g) => g.stderr.some((l) => /initialized: .*"name":"kill-0"/.test(l));
    await until(() => seen(tier.a) || seen(tier.b), 5000, 'the session of kill-0 in a log');
    const onA = seen(tier.a);
    const onB = seen(tier.b);
    assert.ok(onA !== onB, `the front sent the clients to one replica:\n${[...tier.a.stderr, ...tier.b.stderr].filter((l) => /initialized/.test(l)).join('\n')}`);
    const victim = onA ? 'a' : 'b';
    const survivor = onA ? tier.b : tier.a;
    const acknowledged = [];
    let failed = 0;
    let killed = false;
    const perClient = 40;
    await Promise.all(clients.map(async ({ client: c }, ci) => {
      for (let i = 1; i <= perClient; i += 1) {
        if (ci === 0 && i === 10 && !killed) {
          killed = true;
          tier[victim].child.kill('SIGKILL');
        }
        const r = await outcome(c.callTool({ name: 'demo__add', arguments: { a: 1000 * (ci + 1), b: i } }));
        if (r.ok) {
          assert.equal(r.text, String(1000 * (ci + 1) + i));
          acknowledged.push({ a: 1000 * (ci + 1), b: i });
        } else {
          failed += 1;
        }
      }
    }));
    assert.ok(killed);
    t.diagnostic(`kill -9 of replica ${victim}: ${acknowledged.length} calls answered, ${failed} failed`);
    assert.ok(acknowledged.length >= 3 * perClient - 15,
      `clients carried on through the other replica (${acknowledged.length} answered, ${failed} failed)`);
    await until(() => survivor.stderr.some((l) => /initialized: .*"name":"kill-/.test(l)), 5000,
      'the survivor took the sessions');
    // The killed replica comes back (as a supervisor would start it) and
    // ships what its local trail committed; then both stop cleanly.
    const again = await tier.replica(victim);
    for (const g of [again, survivor]) {
      const exit = await g.stop();
      assert.equal(exit.code, 0, `signal ${exit.signal}:\n${g.stderr.slice(-20).join('\n')}`);
    }
    const verify = pqmcp(['audit', 'verify', tier.urls.PQMCP_TEST_POSTGRES]);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /^replica a: OK: /m);
    assert.match(verify.stdout, /^replica b: OK: /m);
    const audited = new Set(psql(tier.urls.PQMCP_TEST_POSTGRES,
      "SELECT body FROM pqmcp_audit_records WHERE kind = 'request'")
      .map((b) => JSON.parse(b))
      .filter((r) => r.target === 'demo__add' && r.outcome === 'ok' && r.phase !== 'started')
      .map((r) => `${r.args?.a}+${r.args?.b}`));
    const missing = acknowledged.filter(({ a, b }) => !audited.has(`${a}+${b}`));
    assert.deepEqual(missing, [], 'every answered call is in the central audit');
    // The tier serves again for what comes next.
    tier.a = await tier.replica('a');
    tier.b = await tier.replica('b');
  });

  await t.test('Redis stopped: rated calls take the fallback (closed), and count again once it is back', async () => {
    const { client: c } = await client(t, tier, tier.ports.a, 'fallback');
    engines('redis-stop', dir);
    const refused = await outcome(c.callTool({ name: 'demo__echo', arguments: { message: 'x' } }));
    assert.equal(refused.ok, false);
    assert.equal(refused.rule, 'fifty-in-all');
    assert.match(refused.message, /cannot be counted \(redis unix:.* did not answer; the fallback is closed\)/);
    // Unrated calls do not need Redis.
    assert.equal(text(await c.callTool({ name: 'demo__add', arguments: { a: 1, b: 2 } })), '3');
    assert.ok(tier.a.stderr.some((l) => /redis unix:.* does not answer/.test(l)));
    engines('redis-start', dir);
    // A new Redis has no counts: the quota starts again.
    await until(() => true);
    let answered;
    for (let i = 0; i < 40 && !answered?.ok; i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      answered = await outcome(c.callTool({ name: 'demo__echo', arguments: { message: 'back' } }));
    }
    assert.ok(answered.ok, answered.message);
    assert.ok(tier.a.stderr.some((l) => /redis unix:.* answers again/.test(l)));
  });
});
