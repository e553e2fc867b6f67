// The official MCP conformance suite (@modelcontextprotocol/conformance, from
// the lockfile) against its own reference server (../shared/conformance-server,
// the suite's examples/servers/typescript at v0.1.16), directly and through
// `pqmcp serve` over PQ TLS (X25519MLKEM768, the gateway pinned by its peer
// id, the suite's client presenting an ML-DSA identity): every check that
// passes directly passes through the gateway. Runs on Node 24 (the suite needs
// Node >= 22). Without ../shared/conformance-server the test is skipped.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { PQMCP, freePort, startGateway, tempDir, waitForPort } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// PQMCP_CONFORMANCE_SERVER, else shared/conformance-server beside the
// checkout or beside one of its parent directories (a CI clone may sit
// deeper than the working tree), else the team machine's /work/shared.
function findShared() {
  if (process.env.PQMCP_CONFORMANCE_SERVER) {
    return process.env.PQMCP_CONFORMANCE_SERVER;
  }
  let dir = path.resolve(here, '..', '..');
  for (;;) {
    const parent = path.dirname(dir);
    const candidate = path.join(parent, 'shared', 'conformance-server');
    if (existsSync(path.join(candidate, 'package-lock.json'))) {
      return candidate;
    }
    if (parent === dir) {
      // A clone elsewhere on the team's machine: its shared fixtures' place.
      return '/work/shared/conformance-server';
    }
    dir = parent;
  }
}
const SHARED = findShared();
const SUITE = path.join(here, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
const UNDICI = path.join(here, 'node_modules', 'undici', 'index.js');
// Where the gateway answers differently from the reference server in a way
// the specification allows, and the suite reports it as INFO rather than
// SUCCESS (docs/clients.md, Conformance).
const ALLOWED_INFO = new Map([
  // "the server MUST either return Content-Type: text/event-stream ... or
  // Content-Type: application/json": the gateway answers a quick tools/list
  // as JSON and streams only what takes longer (timeouts.http.keepalive), so
  // the suite has no SSE stream to test and says so as INFO.
  ['server-sse-streams-functional', 'JSON answers, which the specification allows'],
]);

const CACHE = path.join(process.env.PQMCP_ARTIFACTS ?? os.tmpdir(), 'conformance-server');

// The reference server, installed once per lockfile (npm ci from the configured registry).
function prepareServer() {
  const lock = readFileSync(path.join(SHARED, 'package-lock.json'), 'utf8');
  const stamp = path.join(CACHE, '.installed-lock');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === lock) {
    return CACHE;
  }
  mkdirSync(CACHE, { recursive: true });
  for (const f of readdirSync(SHARED)) {
    cpSync(path.join(SHARED, f), path.join(CACHE, f), { recursive: true });
  }
  const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: CACHE, encoding: 'utf8', timeout: 300000 });
  assert.equal(ci.status, 0, `npm ci of the conformance server: ${ci.stderr}`);
  writeFileSync(stamp, lock);
  return CACHE;
}

function scenarios() {
  const out = spawnSync(process.execPath, [SUITE, 'list', '--server'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  return [...out.stdout.matchAll(/^\s+- (\S+) /gm)].map((m) => m[1]);
}

// One scenario's checks: id -> status (SUCCESS, FAILURE, WARNING, INFO).
// Asynchronous: the gateway's and the server's output pipes must keep being
// read while the suite runs (a full pipe would stall the process writing it).
async function run(scenario, url, dir, extra = []) {
  const outDir = path.join(dir, `${scenario}-${Math.random().toString(36).slice(2)}`);
  let r;
  try {
    r = await promisify(execFile)(process.execPath,
      [...extra, SUITE, 'server', '--url', url, '--scenario', scenario, '-o', outDir],
      { encoding: 'utf8', timeout: 120000, maxBuffer: 16 << 20 });
  } catch (e) {
    r = { stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''} ${e.message}`, status: e.code };
  }
  const checks = new Map();
  if (existsSync(outDir)) {
    for (const sub of readdirSync(outDir)) {
      const file = path.join(outDir, sub, 'checks.json');
      if (existsSync(file)) {
        for (const c of JSON.parse(readFileSync(file, 'utf8'))) {
          // (Several INFO entries share an id, such as each request sent; a
          // check's own verdict wins over them.)
          if (c.status !== 'INFO' || !checks.has(c.id)) {
            checks.set(c.id, c.status === 'FAILURE' ? `FAILURE: ${c.errorMessage ?? ''}` : c.status);
          }
        }
      }
    }
  }
  if (checks.size === 0) {
    checks.set('(run)', `FAILURE: no checks (exit ${r.status}): ${r.stdout.slice(-500)}${r.stderr.slice(-500)}`);
  }
  return checks;
}

test('the conformance suite passes through the gateway wherever it passes directly', { timeout: 900000 }, async (t) => {
  if (!existsSync(SHARED)) {
    t.skip(`no reference server at ${SHARED} (the suite's server is a fixture beside the project, not in it)`);
    return;
  }
  assert.match(process.versions.openssl, /^3\.[5-9]/, 'run with Node 24');
  const serverDir = prepareServer();
  const port = await freePort();
  // tsx as a loader in this very process (its command line would start a
  // second process, which a kill of the first leaves behind).
  const server = spawn(process.execPath, ['--import', 'tsx', 'everything-server.ts'],
    { cwd: serverDir, env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] });
  server.stderr.resume();
  t.after(() => server.kill('SIGKILL'));
  await waitForPort(port, 60000);
  const direct = `http://127.0.0.1:${port}/mcp`;

  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  // Names unchanged (one upstream), as the suite calls them; the server's own
  // elicitations and sampling requests pass through to the suite's client.
  writeFileSync(config, ['namespacing: { enabled: false }', 'upstreams:', '  - name: conformance',
    `    url: ${direct}`, ''].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  const client = path.join(dir, 'client');
  assert.equal(spawnSync(PQMCP, ['keygen', '--out', client]).status, 0);
  const hook = path.join(dir, 'pq-tls.mjs');
  writeFileSync(hook, [
    "import { readFileSync } from 'node:fs';",
    `import { Agent, setGlobalDispatcher } from ${JSON.stringify(UNDICI)};`,
    'setGlobalDispatcher(new Agent({ connect: {',
    `  ca: readFileSync(${JSON.stringify(path.join(dir, 'gateway', 'identity.crt'))}),`,
    `  key: readFileSync(${JSON.stringify(path.join(client, 'identity.key'))}),`,
    `  cert: readFileSync(${JSON.stringify(path.join(client, 'identity.crt'))}),`,
    "  ecdhCurve: 'X25519MLKEM768', minVersion: 'TLSv1.3',",
    // The gateway is identified by its key (its certificate is its own CA), not a host name.
    '  checkServerIdentity: () => undefined,',
    '} }));', ''].join('\n'));

  const report = [];
  const regressions = [];
  let passedDirect = 0;
  for (const scenario of scenarios()) {
    const before = await run(scenario, direct, dir);
    const through = await run(scenario, gateway.url, dir, ['--import', hook]);
    for (const [id, status] of before) {
      if (status === 'INFO') {
        continue;
      }
      if (status !== 'SUCCESS') {
        report.push(`${scenario}/${id}: ${status} directly (not required through the gateway)`);
        continue;
      }
      passedDirect += 1;
      const got = through.get(id);
      if (got === 'INFO' && ALLOWED_INFO.has(id)) {
        report.push(`${scenario}/${id}: INFO through the gateway (${ALLOWED_INFO.get(id)})`);
      } else if (got !== 'SUCCESS') {
        regressions.push(`${scenario}/${id}: ${got ?? 'missing'} through the gateway`);
      }
    }
  }
  t.diagnostic(`${passedDirect} checks pass directly; ${regressions.length} of them fail through the gateway`);
  for (const line of report) {
    t.diagnostic(line);
  }
  assert.ok(passedDirect >= 30, `the reference server passes most checks directly (${passedDirect})`);
  assert.deepEqual(regressions, []);
});
