// A hostile upstream server against the running gateway (`pqmcp serve`,
// reached through `pqmcp connect` by the official SDK): what it inherits,
// what its sandbox lets it do, and what an HTTP upstream that never answers
// can hold. Each test asserts the specific refusal, that the gateway logged
// and audited it, and that another upstream kept working meanwhile.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';

import {
  Client, PQMCP, auditRecords, connectTransport, rawClient, startGateway, tempDir, text, until,
} from '../interop/lib.mjs';

const FIXTURE = process.env.PQMCP_FIXTURE_BIN;
const SECRET = 'pqmcp-secret-do-not-leak-7d1f';

async function session(t, gateway) {
  const client = new Client({ name: 'security', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  t.after(() => client.close());
  return client;
}

async function attack(client, what, target = '') {
  const result = await client.callTool({ name: 'fx__attack', arguments: { what, target } });
  return text(result);
}

function hostile(t, extra = [], env = {}) {
  return startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`, '--upstream-env', 'fx=FIXTURE_MODE=hostile',
    '--demo', ...extra], { env: { PQMCP_TEST_SECRET: SECRET, ...env } });
}

test('a stdio server gets descriptors 0, 1 and 2 only, and every descriptor of the gateway is close-on-exec', async (t) => {
  const gateway = await hostile(t);
  const client = await session(t, gateway);
  const other = await session(t, gateway);  // more connections, more descriptors in the gateway
  assert.equal(await attack(client, 'fds'), '0 1 2');
  assert.equal(text(await other.callTool({ name: 'demo__add', arguments: { a: 2, b: 3 } })), '5');
  // The gateway's own descriptors (sockets of Asio included) carry O_CLOEXEC.
  // /proc/PID/fdinfo of a non-dumpable process is for root only.
  if (process.getuid() !== 0) {
    t.diagnostic('not root: the gateway\'s /proc/PID/fdinfo is out of reach; skipped that half');
    return;
  }
  const dir = `/proc/${gateway.child.pid}/fdinfo`;
  const open = readdirSync(dir).map(Number).filter((fd) => fd > 2);
  assert.ok(open.length >= 5, `the gateway holds descriptors (${open.join(',')})`);
  for (const fd of open) {
    let flags;
    try {
      flags = /flags:\s+([0-7]+)/.exec(readFileSync(path.join(dir, String(fd)), 'utf8'))[1];
    } catch {
      continue;  // closed meanwhile
    }
    // O_CLOEXEC is 02000000 (octal).
    assert.ok((parseInt(flags, 8) & 0o2000000) !== 0, `fd ${fd} is not close-on-exec (flags ${flags})`);
  }
});

test('a stdio server gets PATH, HOME, LANG, its TMPDIR and what its upstream names; no secret of the gateway', async (t) => {
  const gateway = await hostile(t, ['--pass-env', 'fx=PQMCP_TEST_PASSED'], { PQMCP_TEST_PASSED: 'named' });
  const client = await session(t, gateway);
  const env = await attack(client, 'env');
  const names = env.split('\n').map((l) => l.split('=')[0]).sort();
  assert.ok(!env.includes(SECRET), `the secret leaked:\n${env}`);
  assert.deepEqual(names, ['FIXTURE_MODE', 'HOME', 'LANG', 'PATH', 'PQMCP_TEST_PASSED', 'TMPDIR']);
  assert.match(env, /^PQMCP_TEST_PASSED=named$/m);
});

test('the sandbox refuses the gateway\'s key, its databases, the network, inherited sockets and signals; each is logged and audited', async (t) => {
  const gateway = await hostile(t);
  const client = await session(t, gateway);
  const other = await session(t, gateway);
  const identity = path.join(gateway.home, 'gateway');
  assert.equal(await attack(client, 'read', path.join(identity, 'identity.key')), 'refused: Permission denied');
  assert.equal(await attack(client, 'write', path.join(identity, 'state.db')), 'refused: Permission denied');
  assert.equal(await attack(client, 'write', path.join(identity, 'audit.db')), 'refused: Permission denied');
  assert.equal(await attack(client, 'connect', `127.0.0.1:${gateway.port}`), 'refused: Permission denied');
  assert.equal(await attack(client, 'accept', '3'), 'refused: Bad file descriptor');
  assert.equal(await attack(client, 'kill', String(gateway.child.pid)), 'refused: Operation not permitted');
  assert.match(await attack(client, 'environ', String(gateway.child.pid)), /^refused: /);
  assert.equal(await attack(client, 'ptrace', String(gateway.child.pid)), 'refused: Operation not permitted');
  // Its own TMPDIR is writable.
  const env = await attack(client, 'env');
  const tmp = /^TMPDIR=(.*)$/m.exec(env)[1];
  assert.equal(await attack(client, 'write', path.join(tmp, 'scratch')), 'ok');
  // The other upstream worked throughout.
  assert.equal(text(await other.callTool({ name: 'demo__add', arguments: { a: 20, b: 22 } })), '42');

  // Logged...
  await until(() => gateway.stderr.some((l) => l.includes('identity.key') && l.includes('the sandbox refused')),
    5000, 'the log line for identity.key');
  assert.ok(gateway.stderr.some((l) => /sandbox refused network AF_INET \(socket\)/.test(l)), gateway.stderr.join('\n'));
  assert.ok(gateway.stderr.some((l) => /sandbox refused accept fd 3/.test(l)));
  // ...and audited, after a clean stop.
  await gateway.stop();
  const records = auditRecords(path.join(identity, 'audit.db'), 'sandbox');
  const key = records.find((r) => r.target === path.join(identity, 'identity.key'));
  assert.ok(key, JSON.stringify(records));
  assert.equal(key.protected, true);
  assert.equal(key.access, 'read');
  assert.equal(key.upstream, 'fx');
  assert.ok(records.some((r) => r.target.endsWith('state.db') && r.protected === true));
  assert.ok(records.some((r) => r.access === 'network' && r.target === 'AF_INET'));
  assert.ok(records.some((r) => r.access === 'accept' && r.target === 'fd 3'));
});

test('a grant that reaches the gateway\'s own files stops the start, naming both', async (t) => {
  const dir = tempDir(t);
  const result = await startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`, '--sandbox-read', `fx=${dir}`], { dir })
    .then(() => null, (e) => e);
  assert.ok(result, 'the gateway started');
  assert.match(result.message, new RegExp(`upstream fx: sandbox: sandbox read grant ${dir} reaches ${dir}/gateway`));
});

test('a kernel without Landlock: the gateway says so and refuses, unless the upstream says sandbox off', async (t) => {
  const env = { PQMCP_SANDBOX_LANDLOCK_MAX: '0' };
  const refused = await startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`], { env }).then(() => null, (e) => e);
  assert.ok(refused, 'the gateway started');
  assert.match(refused.message, /upstream fx: sandbox: Landlock is not available .*sandbox: off for it \(--sandbox fx=off\)/);
  const gateway = await startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`, '--upstream-env', 'fx=FIXTURE_MODE=hostile',
    '--sandbox', 'fx=off'], { env });
  assert.ok(gateway.stderr.some((l) => l.includes('upstream fx runs without a sandbox')));
  const client = await session(t, gateway);
  // Unsandboxed, it still inherits nothing.
  assert.equal(await attack(client, 'fds'), '0 1 2');
});

// A Streamable HTTP server that answers initialize and lists, and keeps a
// tools/call of `hang` open forever with SSE comments only.
async function stallingServer(t) {
  const sockets = new Set();
  const state = { hanging: 0 };
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const m = JSON.parse(body);
      if (m.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const reply = (result) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Mcp-Session-Id': 'stall-1' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      };
      if (m.method === 'initialize') {
        reply({ protocolVersion: m.params.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: 'stall', version: '1' } });
      } else if (m.method === 'tools/list') {
        reply({ tools: [
          { name: 'hang', description: 'Never answers.', inputSchema: { type: 'object' } },
          { name: 'quick', description: 'Answers at once.', inputSchema: { type: 'object' } }] });
      } else if (m.method === 'tools/call' && m.params.name === 'hang') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        state.hanging += 1;
        const timer = setInterval(() => res.write(': still thinking\n\n'), 100);
        res.on('close', () => { clearInterval(timer); state.hanging -= 1; });
      } else if (m.method === 'tools/call') {
        reply({ content: [{ type: 'text', text: 'quick' }] });
      } else {
        reply({});
      }
    });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => { for (const s of sockets) s.destroy(); server.close(); });
  return { url: `http://127.0.0.1:${server.address().port}/mcp`, sockets, state };
}

test('an HTTP upstream that keeps a call alive with SSE comments: the call ends at its deadline and frees its connection', async (t) => {
  const stall = await stallingServer(t);
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, 'timeouts:\n  upstream_request: 1500ms\n  upstream_pool_wait: 1s\n');
  const gateway = await startGateway(t, ['--config', config, '--upstream', `stall=${stall.url}`, '--demo'], { dir });
  const client = await session(t, gateway);
  const other = await session(t, gateway);
  const started = Date.now();
  const hung = client.callTool({ name: 'stall__hang', arguments: {} }).then(() => null, (e) => e);
  // Meanwhile, the rest answers.
  assert.equal(text(await other.callTool({ name: 'demo__add', arguments: { a: 1, b: 1 } })), '2');
  assert.equal(text(await other.callTool({ name: 'stall__quick', arguments: {} })), 'quick');
  const err = await hung;
  assert.ok(err, 'the call was answered');
  assert.equal(err.code, -32001);
  assert.match(err.message, /did not answer within 1500 ms/);
  assert.ok(Date.now() - started < 10000);
  // The exchange was aborted: the server sees its connection close, and a
  // new call gets a connection.
  await until(() => stall.state.hanging === 0, 5000, 'the stalled exchange to close');
  assert.equal(text(await client.callTool({ name: 'stall__quick', arguments: {} })), 'quick');
});

test('waiting for a pooled upstream connection has a deadline', async (t) => {
  const stall = await stallingServer(t);
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, 'timeouts:\n  upstream_request: 4s\n  upstream_pool_wait: 500ms\nlimits:\n  upstream_connections: 2\n');
  const gateway = await startGateway(t, ['--config', config, '--upstream', `stall=${stall.url}`], { dir });
  const client = await session(t, gateway);
  const hung = [1, 2].map(() => client.callTool({ name: 'stall__hang', arguments: {} }).then(() => null, (e) => e));
  await until(() => stall.state.hanging === 2, 5000, 'two stalled calls');
  const started = Date.now();
  const waited = await client.callTool({ name: 'stall__quick', arguments: {} }).then(() => null, (e) => e);
  assert.ok(waited, 'the third call was refused');
  assert.match(waited.message, /no connection to 127\.0\.0\.1:\d+ became free within 500 ms \(2 requests in flight, the limit\)/);
  assert.ok(Date.now() - started < 3000);
  for (const e of await Promise.all(hung)) {
    assert.equal(e.code, -32001);
  }
  assert.equal(text(await client.callTool({ name: 'stall__quick', arguments: {} })), 'quick');
});

test('what a server writes to stderr cannot forge log lines or drive the terminal', async (t) => {
  const gateway = await hostile(t);
  const client = await session(t, gateway);
  const forged = 'benign\n2026-12-02T00:00:00.000 error session deadbeef: FORGED\x1b[2Jcleared\u2028more';
  assert.equal(text(await client.callTool({ name: 'fx__log', arguments: { text: forged } })), 'logged');
  await until(() => gateway.stderr.some((l) => l.includes('FORGED')), 5000, 'the logged lines');
  // Each line the server wrote is one of the gateway's, attributed to it...
  const line = gateway.stderr.find((l) => l.includes('FORGED'));
  assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+ info \[fx \d+\] 2026-12-02T00:00:00\.000 error session deadbeef: FORGED/);
  // ...with the escape sequence and the Unicode line separator made visible.
  assert.ok(line.includes('FORGED\\x1b[2Jcleared\\u2028more'), line);
  assert.ok(!gateway.stderr.some((l) => l.startsWith('2026-12-02T00:00:00.000')), 'no forged line');
  assert.ok(!gateway.stderr.join('\n').includes('\x1b[2J'), 'no escape sequence reached the log');
});

test('a name a client sends cannot split a log line', async (t) => {
  const gateway = await hostile(t);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  const name = 'fx__nothing\n2026-12-02T00:00:00.000 error FORGED\x1b[31m';
  const r = await raw.request(1, 'tools/call', { name, arguments: {} });
  assert.equal(r.error?.code, -32602);
  await until(() => gateway.stderr.some((l) => l.includes('FORGED')), 5000, 'the refusal in the log');
  const line = gateway.stderr.find((l) => l.includes('FORGED'));
  assert.match(line, /session [0-9a-f]{8}: tool fx__nothing\\n2026-12-02T00:00:00\.000 error FORGED\\x1b\[31m refused/);
});
