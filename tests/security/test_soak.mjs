// A soak: many sessions, one after another and a few at a time, against one
// running gateway (`pqmcp serve` with the in-process demo and a sandboxed
// stdio upstream started per session, reached through `pqmcp connect` by the
// official SDK). Every session must work, and the gateway must give back
// what the sessions took: RSS is sampled as it goes, and after the last
// session it must be within a stated bound of what it was once warmed up.
//
// make test runs the short version (60 s, 100 sessions); make bench runs
// PQMCP_SOAK_SECONDS=600 PQMCP_SOAK_SESSIONS=1000 (bench/soak.sh) and records
// the figures in docs/benchmarks.md. PQMCP_SOAK_REPORT=FILE writes them as JSON.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';

import { Client, PQMCP, connectTransport, startGateway, text } from '../interop/lib.mjs';

const SANITIZED = process.env.PQMCP_SANITIZED === '1';
const SECONDS = Number(process.env.PQMCP_SOAK_SECONDS ?? (SANITIZED ? 30 : 60));
// A session starts its own stdio upstream: under ASan each such child costs
// about 1 s of CPU to start (its shadow memory), so the sanitized run opens one
// every 1.5 s on this 2-core machine, not every 0.6 s, or children queue for CPU.
const SESSIONS = Number(process.env.PQMCP_SOAK_SESSIONS ?? Math.round((SECONDS * 1000) / (SANITIZED ? 1500 : 600)));
const SAMPLE_SECONDS = Number(process.env.PQMCP_SOAK_SAMPLE_SECONDS ?? (SECONDS >= 300 ? 10 : 5));
// What the gateway may keep after every session ended, over what it held
// once the first tenth of them had run (allocator caches, SQLite's page
// cache, TLS session tickets). Under ASan freed memory sits in quarantine,
// so RSS says nothing there and only errors count.
const GROWTH_BOUND_MIB = 24;

function rssMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) / 1024;
}

// Least squares slope of (seconds, MiB), in MiB per hour.
function slopePerHour(samples) {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((s, p) => s + p.t, 0) / n;
  const my = samples.reduce((s, p) => s + p.mib, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of samples) {
    num += (p.t - mx) * (p.mib - my);
    den += (p.t - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600;
}

async function oneSession(gateway, i) {
  const client = new Client({ name: `soak-${i}`, version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  try {
    const { tools } = await client.listTools();
    assert.ok(tools.some((tool) => tool.name === 'kid__add'), 'the stdio upstream lists its tools');
    assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: `s${i}` } })), `s${i}`);
    assert.equal(text(await client.callTool({ name: 'kid__add', arguments: { a: i, b: 1 } })), String(i + 1));
  } finally {
    await client.close();
  }
}

async function metric(url, name) {
  const body = await (await fetch(url)).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : NaN;
}

test(`soak: ${SESSIONS} sessions over ${SECONDS} s, no error, RSS given back`, { timeout: (SECONDS + 300) * 1000 }, async (t) => {
  const gateway = await startGateway(t, ['--demo', '--upstream', `kid=stdio:${PQMCP} demo-server`,
    '--metrics', '127.0.0.1:0', '--log-level', 'warn']);
  const pid = gateway.child.pid;
  const started = Date.now();
  const samples = [];
  const sample = () => samples.push({ t: (Date.now() - started) / 1000, mib: rssMiB(pid) });
  sample();
  const sampler = setInterval(sample, SAMPLE_SECONDS * 1000);
  t.after(() => clearInterval(sampler));

  const errors = [];
  const running = new Set();
  let warm = null;
  const gap = (SECONDS * 1000) / SESSIONS;
  for (let i = 0; i < SESSIONS; i += 1) {
    const due = started + i * gap;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const run = oneSession(gateway, i).catch((e) => errors.push(`session ${i}: ${e.message}`));
    running.add(run);
    run.finally(() => running.delete(run));
    if (i === Math.floor(SESSIONS / 10)) {
      await Promise.all(running);
      warm = { t: (Date.now() - started) / 1000, mib: rssMiB(pid) };
    }
  }
  await Promise.all(running);
  // Sessions end with DELETE; children are reaped: wait until the gateway says so.
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline
      && ((await metric(gateway.metricsUrl, 'pqmcp_sessions_open')) !== 0
          || (await metric(gateway.metricsUrl, 'pqmcp_upstream_children')) !== 0)) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const sessionsOpen = await metric(gateway.metricsUrl, 'pqmcp_sessions_open');
  const children = await metric(gateway.metricsUrl, 'pqmcp_upstream_children');
  sample();
  clearInterval(sampler);
  const end = samples[samples.length - 1];
  const afterWarm = samples.filter((s) => s.t >= warm.t);
  const report = {
    sessions: SESSIONS,
    seconds: Math.round((Date.now() - started) / 1000),
    errors: errors.length,
    rss_start_mib: Number(samples[0].mib.toFixed(1)),
    rss_warm_mib: Number(warm.mib.toFixed(1)),
    rss_end_mib: Number(end.mib.toFixed(1)),
    rss_max_mib: Number(Math.max(...samples.map((s) => s.mib)).toFixed(1)),
    growth_after_warm_mib: Number((end.mib - warm.mib).toFixed(1)),
    slope_mib_per_hour: Number(slopePerHour(afterWarm).toFixed(1)),
    samples: samples.map((s) => [Math.round(s.t), Number(s.mib.toFixed(1))]),
    sanitized: SANITIZED,
  };
  console.log(`soak: ${JSON.stringify(report)}`);
  if (process.env.PQMCP_SOAK_REPORT) writeFileSync(process.env.PQMCP_SOAK_REPORT, `${JSON.stringify(report)}\n`);

  assert.deepEqual(errors, []);
  assert.equal(sessionsOpen, 0, 'every session ended');
  assert.equal(children, 0, 'every per-session child was reaped');
  if (!SANITIZED) {
    assert.ok(end.mib - warm.mib <= GROWTH_BOUND_MIB,
      `RSS grew ${(end.mib - warm.mib).toFixed(1)} MiB after warm-up (bound ${GROWTH_BOUND_MIB} MiB)`);
  }
});
