// Helpers for the interop tests: start `pqmcp serve`, make `pqmcp connect`
// transports for the official MCP TypeScript SDK, and find the reference
// servers installed from tests/interop/package-lock.json.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, 'node_modules', '@modelcontextprotocol');

export const PQMCP = process.env.PQMCP_BIN;
export const OPENSSL = process.env.PQMCP_OPENSSL_BIN;
if (!PQMCP) {
  throw new Error('PQMCP_BIN must point at build/pqmcp');
}
export const NODE = process.execPath;
export const EVERYTHING = path.join(modules, 'server-everything', 'dist', 'index.js');
export const FILESYSTEM = path.join(modules, 'server-filesystem', 'dist', 'index.js');
export const MEMORY = path.join(modules, 'server-memory', 'dist', 'index.js');
export const INSPECTOR = path.join(modules, 'inspector', 'cli', 'build', 'cli.js');
export const SUPERGATEWAY = path.join(here, 'node_modules', 'supergateway', 'dist', 'index.js');

export function tempDir(t) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pqmcp-interop-'));
  t?.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// A port for a server that cannot report the one it bound (port 0). It is
// chosen below the kernel's ephemeral range: a port from that range can be
// taken, between this check and the server's bind, by any outgoing
// connection of a test running beside this one.
function listenOnce(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.on('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort() {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    // not Linux: the usual range
  }
  const first = 10000;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = first + Math.floor(Math.random() * Math.max(1, low - first));
    if (await listenOnce(port)) return port;
  }
  throw new Error(`no free port in ${first}..${low - 1} after 200 tries`);
}

export async function waitForPort(port, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

export function until(predicate, timeoutMs = 10000, what = 'condition') {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const tick = () => {
      if (predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

// server-everything in its Streamable HTTP mode on a free port; resolves with
// its URL once it listens.
export async function startEverythingHttp(t) {
  const port = await freePort();
  const server = spawn(NODE, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  t.after(() => server.kill('SIGTERM'));
  await waitForPort(port);
  return `http://127.0.0.1:${port}/mcp`;
}

// Starts `pqmcp serve` on an ephemeral port; resolves with its URL and peer id
// once it printed its ready line. `stderr` collects its log lines.
export async function startGateway(t, args, { env = {}, dir, listen = '127.0.0.1:0' } = {}) {
  const home = dir ?? tempDir(t);
  const child = spawn(PQMCP, ['serve', '--listen', listen, '--identity',
    path.join(home, 'gateway'), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const gateway = { child, home, stderr: [], stdout: '' };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => gateway.stderr.push(...d.split('\n').filter(Boolean)));
  let stopping = false;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    // A gateway that ends on its own says how, whatever the test then reports.
    if (!stopping) {
      console.error(`pqmcp serve ended before the test stopped it (code ${code}, signal ${signal}); its last log lines:\n${gateway.stderr.slice(-30).join('\n')}`);
    }
    resolve({ code, signal });
  }));
  gateway.exited = exited;
  gateway.stop = async () => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
    }
    return exited;
  };
  t?.after(gateway.stop);
  const wantsMetrics = args.includes('--metrics');
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line; stderr:\n${gateway.stderr.join('\n')}`)), 30000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      gateway.stdout += d;
      const m = gateway.stdout.match(/ready on (https:\/\/\S+) peer (pq1[a-z2-7]+) /);
      // With --metrics, its bound address follows the ready line (port 0
      // works there too, so no test races others for a free port).
      if (m && wantsMetrics) {
        const metrics = gateway.stdout.match(/^pqmcp serve: metrics (http:\/\/\S+)$/m);
        if (!metrics) return;
        gateway.metricsUrl = metrics[1];
      }
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`pqmcp serve exited (${code}) before it was ready:\n${gateway.stderr.join('\n')}`));
    });
  });
  gateway.url = ready[1];
  gateway.peer = ready[2];
  gateway.port = Number(new URL(gateway.url).port);
  gateway.readyLine = gateway.stdout.split('\n')[0];
  return gateway;
}

// The arguments of `pqmcp connect` for this gateway, with a client identity
// in the gateway's temporary directory.
export function connectArgs(gateway, extra = [], identity = 'client') {
  return ['connect', gateway.url, '--identity', path.join(gateway.home, identity),
    '--pin', gateway.peer, ...extra];
}

// An SDK stdio transport that launches `pqmcp connect`.
export function connectTransport(gateway, extra = [], identity = 'client') {
  const transport = new StdioClientTransport({
    command: PQMCP,
    args: connectArgs(gateway, extra, identity),
    stderr: 'pipe',
  });
  transport.stderrLines = [];
  transport.stderr?.setEncoding('utf8');
  transport.stderr?.on('data', (d) => transport.stderrLines.push(...d.split('\n').filter(Boolean)));
  return transport;
}

export function text(result) {
  return result.content?.[0]?.text;
}

// For the tests outside this folder (tests/security), which have no
// node_modules of their own.
export { Client } from '@modelcontextprotocol/sdk/client/index.js';
export { StdioClientTransport };

// `pqmcp audit export DB --json [--kind K]`: the records, parsed.
export function auditRecords(db, kind) {
  const args = ['audit', 'export', db, '--json', ...(kind ? ['--kind', kind] : [])];
  const out = spawnSync(PQMCP, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (out.status !== 0) {
    throw new Error(`pqmcp audit export failed: ${out.stderr}`);
  }
  return out.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

// One record per request: a request in flight for longer than half the audit
// flush interval also has a write-ahead record (phase "started"), which a
// slow run (a sanitizer build, a busy machine) writes and a fast one does not.
export function auditedRequests(db) {
  return auditRecords(db, 'request').filter((r) => r.phase !== 'started');
}

// `pqmcp connect` driven with raw JSON-RPC lines, for what the SDK will not
// send (duplicate ids, made-up methods, batches): send() a message, next()
// the first message matching a predicate.
export function rawClient(t, gateway, extra = [], identity = 'client') {
  const child = spawn(PQMCP, connectArgs(gateway, extra, identity), { stdio: ['pipe', 'pipe', 'pipe'] });
  const messages = [];
  const waiters = [];
  let buffer = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buffer += d;
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      const m = JSON.parse(line);
      messages.push(m);
      for (const w of [...waiters]) {
        if (w.match(m)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  });
  child.stderr.resume();
  const raw = {
    child,
    messages,
    send(m) { child.stdin.write(`${JSON.stringify(m)}\n`); },
    next(match, timeoutMs = 15000) {
      const seen = messages.find(match);
      if (seen) {
        messages.splice(messages.indexOf(seen), 1);
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const w = { match, resolve: (m) => { clearTimeout(timer); messages.splice(messages.indexOf(m), 1); resolve(m); } };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(messages)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async request(id, method, params = {}) {
      raw.send({ jsonrpc: '2.0', id, method, params });
      return raw.next((m) => m.id === id && !m.method);
    },
    async initialize(capabilities = {}) {
      const init = await raw.request(0, 'initialize', {
        protocolVersion: '2025-11-25', capabilities, clientInfo: { name: 'raw', version: '1' },
      });
      raw.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
      return init;
    },
    close() { child.stdin.end(); },
  };
  t?.after(() => { child.stdin.end(); setTimeout(() => child.kill('SIGKILL'), 3000).unref(); });
  return raw;
}
