// pqmcp serve and pqmcp connect as a user runs them: the ready line and the
// exact command it prints, --print-config, identities created once and kept,
// graceful shutdown on SIGTERM and SIGINT with every upstream process gone.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

import {
  EVERYTHING, NODE, PQMCP, connectArgs, connectTransport, startGateway, tempDir, text,
} from './lib.mjs';

const run = promisify(execFile);

test('the ready line names the URL, the peer id and a connect command that works as printed', async (t) => {
  const home = tempDir(t);
  const gateway = await startGateway(t, ['--demo'], { dir: home, env: { XDG_CONFIG_HOME: home } });
  const line = gateway.readyLine;
  assert.match(line, /^pqmcp serve: ready on https:\/\/127\.0\.0\.1:\d+\/mcp peer pq1[a-z2-7]{52} profile pq-hybrid upstreams demo; connect with: \S+ connect https:\/\/\S+ --identity \S+ --pin pq1[a-z2-7]{52}$/);
  assert.ok(gateway.stderr.some((l) => /created a new gateway identity pq1/.test(l)));

  // Run exactly what was printed.
  const [command, ...args] = line.split('connect with: ')[1].split(' ');
  assert.equal(command, PQMCP);
  assert.equal(args[args.indexOf('--identity') + 1], path.join(home, 'pqmcp', 'client'));
  const client = new Client({ name: 'cli-test', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command, args, stderr: 'pipe' }));
  assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'as printed' } })),
    'as printed');
  await client.close();
  // The client identity was created where the command said.
  assert.ok(existsSync(path.join(home, 'pqmcp', 'client', 'identity.key')));
});

test('serve --set reaches a key that has no flag of its own, and a bad one names the flag', async (t) => {
  const home = tempDir(t);
  // max_sessions_per_identity has no flag: one session for this client, then 429.
  const gateway = await startGateway(t, ['--demo', '--set', 'limits.max_sessions_per_identity=1',
    '--set', 'dashboard.access=off'], { dir: home });
  assert.ok(!gateway.stdout.includes('dashboard'), gateway.stdout);
  const first = new Client({ name: 'set-1', version: '1.0.0' });
  await first.connect(connectTransport(gateway));
  assert.equal(text(await first.callTool({ name: 'demo__echo', arguments: { message: 'one' } })), 'one');
  const second = new Client({ name: 'set-2', version: '1.0.0' });
  await assert.rejects(second.connect(connectTransport(gateway)),
    /max_sessions_per_identity/);
  await first.close();

  await assert.rejects(run(PQMCP, ['serve', '--demo', '--identity', path.join(home, 'other'),
    '--set', 'limits.max_sessions=many']), (err) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /--set limits\.max_sessions: expected a positive whole number, not "many"/);
    return true;
  });
});

test('connect --print-config prints the JSON a desktop client needs', async (t) => {
  const home = tempDir(t);
  const { stdout } = await run(PQMCP, ['connect', 'https://gw.example:8443/mcp', '--identity',
    path.join(home, 'id'), '--pin', 'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '--print-config', 'secure-tools']);
  const config = JSON.parse(stdout);
  const server = config.mcpServers['secure-tools'];
  assert.equal(server.command, PQMCP);
  assert.deepEqual(server.args, ['connect', 'https://gw.example:8443/mcp', '--identity', path.join(home, 'id'),
    '--pin', 'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']);
});

test('connect --print-config refuses a malformed --pin', async (t) => {
  const home = tempDir(t);
  await assert.rejects(run(PQMCP, ['connect', 'https://gw.example:8443/mcp', '--identity',
    path.join(home, 'id'), '--pin', 'pq1bogus', '--print-config', 'x']), (err) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /--pin pq1bogus: 'pq1bogus' is not a peer id/);
    assert.equal(err.stdout, '', 'no configuration printed');
    return true;
  });
});

// A client that writes its requests and closes its input at once (printf |
// pqmcp connect), and one that does not wait for the initialize result: every
// request is answered before connect exits, none gets "Mcp-Session-Id header is required".
test('connect answers what was asked before input ended, and holds requests until the session exists', async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const lines = [
    { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'printf', version: '1' } } },
    { jsonrpc: '2.0', id: 2, method: 'tools/list' },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'demo__echo', arguments: { message: 'before the session' } } },
  ].map((m) => JSON.stringify(m)).join('\n') + '\n';
  const child = execFile(PQMCP, connectArgs(gateway), { timeout: 30000 });
  child.stdin.end(lines);
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const code = await new Promise((resolve) => child.on('exit', resolve));
  assert.equal(code, 0);
  const answers = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.deepEqual(answers.map((a) => a.id).sort(), [1, 2, 3], stdout);
  assert.ok(answers.every((a) => a.result), stdout);
  assert.equal(answers.find((a) => a.id === 3).result.content[0].text, 'before the session');
});

// What `connect` reads and writes as each kind of client wires it: a socket
// pair (Node, as the SDK spawns it), pipes (a shell, Python), files. Each
// gets 300 calls, small answers and answers larger than a pipe's atomic
// write mixed, and reads nothing for the first 1.5 s: every answer arrives
// whole, once.
for (const wiring of ['socket', 'pipe', 'file']) {
  test(`connect with ${wiring}s for stdin and stdout and a client slow to read: every answer whole`, async (t) => {
    const gateway = await startGateway(t, ['--demo']);
    const dir = tempDir(t);
    const calls = 300;
    const message = (i) => `${i}:`.padEnd(i % 3 === 0 ? 9000 : 100, 'x');
    const lines = [
      { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: wiring, version: '1' } } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      ...Array.from({ length: calls }, (_, i) => ({
        jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: 'demo__echo', arguments: { message: message(i + 1) } },
      })),
    ].map((m) => JSON.stringify(m)).join('\n') + '\n';
    let stdout = '';
    if (wiring === 'socket') {
      const child = spawn(PQMCP, connectArgs(gateway), { stdio: ['pipe', 'pipe', 'ignore'] });
      child.stdout.pause();
      child.stdin.end(lines);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => { stdout += d; });
      child.stdout.resume();
      const code = await new Promise((resolve) => child.on('exit', resolve));
      assert.equal(code, 0);
    } else {
      const input = path.join(dir, 'in.jsonl');
      const output = path.join(dir, 'out.jsonl');
      writeFileSync(input, lines);
      const connect = connectArgs(gateway).map((a) => `'${a}'`).join(' ');
      const script = wiring === 'pipe'
        ? `cat '${input}' | '${PQMCP}' ${connect} | (sleep 1.5; cat) > '${output}'`
        : `'${PQMCP}' ${connect} < '${input}' > '${output}'`;
      await run('bash', ['-o', 'pipefail', '-c', script], { timeout: 60000 });
      stdout = readFileSync(output, 'utf8');
    }
    const answers = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.equal(answers.length, calls + 1);
    assert.deepEqual(answers.map((a) => a.id).sort((x, y) => x - y), Array.from({ length: calls + 1 }, (_, i) => i));
    for (const a of answers.filter((x) => x.id > 0)) {
      assert.equal(a.result?.content?.[0]?.text, message(a.id), `answer ${a.id}`);
    }
  });
}

test('connect refuses to run without a way to trust the gateway, and refuses http://', async () => {
  await assert.rejects(run(PQMCP, ['connect', 'https://127.0.0.1:1/mcp']), (err) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /--pin PEER_ID, --known-peers FILE or --ca FILE/);
    return true;
  });
  await assert.rejects(run(PQMCP, ['connect', 'http://127.0.0.1:1/mcp', '--pin', 'x']), (err) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /must be https/);
    return true;
  });
});

test('an unreachable gateway is a JSON-RPC error at once, not a hang', async (t) => {
  const home = tempDir(t);
  const client = new Client({ name: 'cli-test', version: '1.0.0' });
  const started = Date.now();
  await assert.rejects(client.connect(new StdioClientTransport({
    command: PQMCP,
    args: ['connect', 'https://127.0.0.1:9/mcp', '--identity', path.join(home, 'c'), '--pin',
      'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
    stderr: 'pipe',
  })), /Connection refused/);
  assert.ok(Date.now() - started < 10000);
});

test('identity kept across restarts; SIGTERM and SIGINT shut down cleanly, upstreams gone', async (t) => {
  const home = tempDir(t);
  for (const signal of ['SIGTERM', 'SIGINT']) {
    const gateway = await startGateway(t, ['--upstream', `everything=stdio:${NODE} ${EVERYTHING}`], { dir: home });
    const client = new Client({ name: 'cli-test', version: '1.0.0' });
    const { connectTransport } = await import('./lib.mjs');
    await client.connect(connectTransport(gateway));
    const env = await client.callTool({ name: 'everything__get-env', arguments: {} });
    assert.ok(env.content.length > 0);
    // The upstream child runs now; find it.
    const { stdout: ps } = await run('ps', ['-eo', 'pid,ppid,args']);
    const children = ps.split('\n').map((l) => l.trim().split(/\s+/))
      .filter(([, ppid, ...args]) => Number(ppid) === gateway.child.pid && args.join(' ').includes(EVERYTHING))
      .map(([pid]) => Number(pid));
    assert.ok(children.length >= 1);
    gateway.child.kill(signal);
    const { code } = await gateway.exited;
    assert.equal(code, 0, gateway.stderr.join('\n'));
    assert.ok(gateway.stderr.some((l) => /stopped/.test(l)));
    for (const pid of children) {
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} still exists: ${ps.split("\n").filter((l) => l.includes(String(pid))).join(" | ")}`);
    }
    await client.close().catch(() => {});
    if (signal === 'SIGTERM') {
      t.diagnostic(`first run: ${gateway.peer}`);
      t.firstPeer = gateway.peer;
    } else {
      assert.equal(gateway.peer, t.firstPeer, 'the identity survives a restart');
      assert.ok(!gateway.stderr.some((l) => /created a new gateway identity/.test(l)));
    }
  }
});

test('raw public keys between pqmcp ends by default; --no-raw-public-keys on either end keeps X.509', async (t) => {
  const { auditRecords } = await import('./lib.mjs');
  const types = async (serveArgs, connectExtra) => {
    const dir = tempDir(t);
    const gateway = await startGateway(t, ['--demo', ...serveArgs], { dir });
    const client = new Client({ name: 'rpk-test', version: '1.0.0' });
    await client.connect(connectTransport(gateway, connectExtra));
    assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'k' } })), 'k');
    await client.close();
    await gateway.stop();
    const ok = auditRecords(path.join(dir, 'gateway', 'audit.db'), 'connection').filter((r) => r.result === 'ok');
    assert.ok(ok.length > 0);
    return [...new Set(ok.map((r) => r.certificate_type))];
  };
  assert.deepEqual(await types([], []), ['raw_public_key']);
  assert.deepEqual(await types(['--no-raw-public-keys'], []), ['x509']);
  assert.deepEqual(await types([], ['--no-raw-public-keys']), ['x509']);
});
