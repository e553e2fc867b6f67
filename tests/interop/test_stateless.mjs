// MCP 2026-07-28 (the stateless revision) on the gateway's /mcp, beside the
// session revisions: the official SDK's v2 client pinned to 2026-07-28
// straight to `pqmcp serve` on Node 24 (server/discover, lists with their
// cache hints, calls, a policy denial, the audit trail), and the revision's
// rules checked by hand: Mcp-Method and Mcp-Name against the body, the _meta
// envelope, an unsupported version, GET and DELETE, no session header.
// Run with Node 24 (CMake does).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from '@modelcontextprotocol/client';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { fetch as undiciFetch } from 'undici';

import { PQMCP, auditedRequests, connectArgs, startGateway, tempDir, text } from './lib.mjs';
import { peerIdOf, pinnedAgent } from './lib24.mjs';

const V = '2026-07-28';

// A new ML-DSA client identity in `dir/name`.
function newIdentity(dir, name = 'client-id') {
  const ids = path.join(dir, name);
  assert.equal(spawnSync(PQMCP, ['keygen', '--out', ids]).status, 0);
  const cert = readFileSync(path.join(ids, 'identity.crt'), 'utf8');
  return { cert, key: readFileSync(path.join(ids, 'identity.key'), 'utf8'), peer: peerIdOf(cert) };
}

// fetch() over an undici agent that pins `gateway` (whose identity is in
// dir/gateway) and presents `identity`.
function fetchFor(t, dir, gateway, identity) {
  const agent = pinnedAgent(readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8'), gateway.peer,
    { key: identity.key, cert: identity.cert });
  t.after(() => agent.close());
  return (url, init) => undiciFetch(url, { ...init, dispatcher: agent });
}

// A gateway in front of the demo server with a policy, and an ML-DSA client
// identity it knows by name; an undici agent that pins the gateway.
async function setup(t) {
  assert.match(process.versions.openssl, /^3\.[5-9]/, 'run with Node 24');
  const dir = tempDir(t);
  const me = newIdentity(dir);
  const { peer } = me;
  const known = path.join(dir, 'known_peers');
  assert.equal(spawnSync(PQMCP, ['peers', 'add', '--file', known, peer, 'stateless-agent']).status, 0);
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, [
    'default: allow',
    'rules:',
    '  - id: no-big-refunds',
    '    match: { tool: demo__process_refund }',
    '    when:',
    '      - { arg: /amount, min: 500.01 }',
    '    effect: deny',
    '    reason: refunds over 500 need a person',
    '',
  ].join('\n'));
  const gateway = await startGateway(t, ['--demo', '--known-peers', known, '--policy', policy], { dir });
  return { dir, gateway, peer, fetchVia: fetchFor(t, dir, gateway, me) };
}

// One hand-made POST of the revision: headers as a client sends them unless
// `headers` overrides them (a value of null leaves that header out).
async function post(ctx, body, headers = {}) {
  const base = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': V,
  };
  if (body.method && body.id !== undefined) {
    base['mcp-method'] = body.method;
  }
  const all = { ...base, ...headers };
  for (const [k, v] of Object.entries(all)) {
    if (v === null) delete all[k];
  }
  const res = await ctx.fetchVia(ctx.gateway.url, { method: 'POST', headers: all, body: JSON.stringify(body) });
  const raw = await res.text();
  return { status: res.status, headers: res.headers, raw, json: raw && res.headers.get('content-type')?.includes('json') ? JSON.parse(raw) : null };
}

const envelope = (extra = {}) => ({
  'io.modelcontextprotocol/protocolVersion': V,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'by-hand', version: '0' },
  ...extra,
});

test('the v2 SDK client pinned to 2026-07-28 straight to serve', { timeout: 120000 }, async (t) => {
  const ctx = await setup(t);
  const client = new ClientV2({ name: 'stateless-v2', version: '1.0.0' }, {
    versionNegotiation: { mode: { pin: V } },
  });
  await client.connect(new TransportV2(new URL(ctx.gateway.url), { fetch: ctx.fetchVia }));
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === 'demo__echo'), JSON.stringify(tools.map((x) => x.name)));
  const echo = await client.callTool({ name: 'demo__echo', arguments: { message: 'stateless' } });
  assert.equal(text(echo), 'stateless');
  // The policy decides for a stateless caller as for any other.
  await assert.rejects(
    client.callTool({ name: 'demo__process_refund', arguments: { amount: 900, currency: 'USD', order_id: 'A1', reason: 'broken on arrival' } }),
    (e) => e.code === -32010 && /refunds over 500/.test(e.message),
  );
  const refund = await client.callTool({ name: 'demo__process_refund', arguments: { amount: 5, currency: 'USD', order_id: 'A2', reason: 'late delivery' } });
  assert.ok(!refund.isError, JSON.stringify(refund));
  await assert.rejects(client.callTool({ name: 'demo__nope', arguments: {} }), (e) => e.code === -32602);
  // Many requests, one kept session behind them (the client never sees it).
  for (let i = 0; i < 5; i += 1) {
    assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: `n${i}` } })), `n${i}`);
  }
  await client.close();

  await ctx.gateway.stop();
  const db = path.join(ctx.dir, 'gateway', 'audit.db');
  const calls = auditedRequests(db).filter((r) => r.method === 'tools/call');
  assert.ok(calls.length >= 8, `${calls.length} calls audited`);
  for (const c of calls) {
    assert.equal(c.identity, ctx.peer);
    assert.equal(c.identity_name, 'stateless-agent');
  }
  const denied = calls.find((r) => r.target === 'demo__process_refund' && r.decision === 'deny');
  assert.ok(denied, JSON.stringify(calls.map((r) => [r.target, r.decision])));
  assert.equal(new Set(calls.map((r) => r.session)).size, 1, 'one kept session for one caller');
});

test('the 2026-07-28 rules, by hand', { timeout: 120000 }, async (t) => {
  const ctx = await setup(t);
  // server/discover: the versions, the gateway's capabilities, cache hints.
  const discover = await post(ctx, { jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: envelope() } });
  assert.equal(discover.status, 200, discover.raw);
  assert.equal(discover.headers.get('mcp-session-id'), null);
  const d = discover.json.result;
  assert.deepEqual(d.supportedVersions, [V, '2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05']);
  assert.ok(d.capabilities.tools, JSON.stringify(d));
  assert.equal(d.resultType, 'complete');
  assert.equal(d.cacheScope, 'private');
  assert.equal(d.ttlMs, 0);
  assert.equal(d._meta['io.modelcontextprotocol/serverInfo'].name, 'pqmcp');

  const list = await post(ctx, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: envelope() } });
  assert.equal(list.status, 200, list.raw);
  assert.equal(list.json.id, 2);
  assert.equal(list.json.result.resultType, 'complete');
  assert.equal(list.json.result.cacheScope, 'private');
  assert.equal(list.json.result.ttlMs, 0);

  const call = (headers, params = { name: 'demo__echo', arguments: { message: 'x' }, _meta: envelope() }) =>
    post(ctx, { jsonrpc: '2.0', id: 3, method: 'tools/call', params }, { 'mcp-name': 'demo__echo', ...headers });
  const ok = await call({});
  assert.equal(ok.status, 200, ok.raw);
  assert.equal(ok.json.result.content[0].text, 'x');
  assert.equal(ok.json.result.resultType, 'complete');

  const expectError = (r, status, code, pattern) => {
    assert.equal(r.status, status, r.raw);
    assert.equal(r.json.error.code, code, r.raw);
    assert.match(r.json.error.message, pattern, r.raw);
  };
  expectError(await call({ 'mcp-method': null }), 400, -32020, /Mcp-Method header is absent/);
  expectError(await call({ 'mcp-method': 'tools/list' }), 400, -32020, /Mcp-Method header names tools\/list/);
  expectError(await call({ 'mcp-name': null }), 400, -32020, /Mcp-Name header is absent/);
  expectError(await call({ 'mcp-name': 'demo__other' }), 400, -32020, /Mcp-Name header names demo__other/);
  const noCaps = await call({}, { name: 'demo__echo', arguments: { message: 'x' }, _meta: { 'io.modelcontextprotocol/protocolVersion': V } });
  expectError(noCaps, 400, -32602, /clientCapabilities/);
  assert.deepEqual(noCaps.json.error.data.envelope.missing, ['io.modelcontextprotocol/clientCapabilities']);
  assert.equal(noCaps.json.id, 3, 'the refusal names the request');
  expectError(await call({}, { name: 'demo__echo', arguments: {} }), 400, -32602, /must carry _meta/);
  // The header and the body disagree on the version.
  const otherVersion = await call({}, { name: 'demo__echo', arguments: {}, _meta: envelope({ 'io.modelcontextprotocol/protocolVersion': '2025-11-25' }) });
  expectError(otherVersion, 400, -32020, /names protocol version 2025-11-25/);
  // A version nobody speaks: the supported ones, to pick from.
  const unsupported = await call({ 'mcp-protocol-version': '2099-01-01' });
  expectError(unsupported, 400, -32022, /Unsupported protocol version 2099-01-01/);
  assert.ok(unsupported.json.error.data.supported.includes(V));
  // A 2026-07-28 body without its version header.
  expectError(await call({ 'mcp-protocol-version': null }), 400, -32020, /must carry the MCP-Protocol-Version header/);
  // No sessions in this revision.
  expectError(await call({ 'mcp-session-id': 'a'.repeat(32) }), 400, -32600, /has no sessions/);
  // No initialize either.
  const init = await post(ctx, { jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: V, capabilities: {}, clientInfo: { name: 'x', version: '0' }, _meta: envelope() } });
  expectError(init, 400, -32600, /no initialize; use server\/discover/);
  // Notifications need no Mcp-Method, and get 202.
  const note = await post(ctx, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99, _meta: envelope() } });
  assert.equal(note.status, 202, note.raw);
  // A method nobody implements: "404 Not Found and a JSON-RPC error with code -32601".
  const unknown = await post(ctx, { jsonrpc: '2.0', id: 5, method: 'nope/nothing', params: { _meta: envelope() } });
  expectError(unknown, 404, -32601, /not found/i);
  // GET and DELETE: 405, POST allowed.
  for (const method of ['GET', 'DELETE']) {
    const r = await ctx.fetchVia(ctx.gateway.url, { method, headers: { accept: 'text/event-stream', 'mcp-protocol-version': V } });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.get('allow'), 'POST');
    await r.text();
  }
});

test('2025-11-25 clients are unchanged beside stateless ones', { timeout: 120000 }, async (t) => {
  const ctx = await setup(t);
  // A v1 client (sessions) and a v2 client in auto mode at the same time.
  const v1 = new Client({ name: 'sessions', version: '1.0.0' });
  await v1.connect(new StreamableHTTPClientTransport(new URL(ctx.gateway.url), { fetch: ctx.fetchVia }));
  const v2 = new ClientV2({ name: 'auto', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  await v2.connect(new TransportV2(new URL(ctx.gateway.url), { fetch: ctx.fetchVia }));
  assert.equal(text(await v1.callTool({ name: 'demo__echo', arguments: { message: 'one' } })), 'one');
  assert.equal(text(await v2.callTool({ name: 'demo__echo', arguments: { message: 'two' } })), 'two');
  // The v2 client in auto mode found 2026-07-28 through server/discover.
  assert.equal(typeof v2.getProtocolEra, 'function');
  assert.equal(v2.getProtocolEra(), 'modern');
  await v1.close();
  await v2.close();
  await ctx.gateway.stop();
  const calls = auditedRequests(path.join(ctx.dir, 'gateway', 'audit.db')).filter((r) => r.method === 'tools/call');
  assert.equal(calls.length, 2);
  assert.notEqual(calls[0].session, calls[1].session, 'a session of its own for each');
});

test('subscriptions/listen: acknowledged first, then only what was asked for', { timeout: 120000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, 'run with Node 24');
  const dir = tempDir(t);
  // The scripted fixture: its `changed` tool sends notifications/tools/list_changed.
  const gateway = await startGateway(t, ['--upstream', `fx=stdio:${process.env.PQMCP_FIXTURE_BIN}`], { dir });
  const fetchVia = fetchFor(t, dir, gateway, newIdentity(dir));

  const client = new ClientV2({ name: 'listener', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V } } });
  await client.connect(new TransportV2(new URL(gateway.url), { fetch: fetchVia }));
  const changed = [];
  client.setNotificationHandler('notifications/tools/list_changed', (n) => { changed.push(n); });
  const sub = await client.listen({ toolsListChanged: true, promptsListChanged: true });
  // Acknowledged: tools (the fixture's tools have listChanged), not prompts (it has none).
  assert.deepEqual(sub.honoredFilter, { toolsListChanged: true });
  const r = await client.callTool({ name: 'fx__changed', arguments: {} });
  assert.equal(text(r), 'ok');
  const deadline = Date.now() + 10000;
  while (changed.length === 0 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 50));
  }
  assert.equal(changed.length, 1, 'the list_changed notification reached the listen stream');
  assert.match(changed[0].params._meta['io.modelcontextprotocol/subscriptionId'], /^listen:/);
  await sub.close();
  await client.close();

  // By hand: the acknowledgement is the first event of an SSE stream that stays open.
  const res = await fetchVia(gateway.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-protocol-version': V, 'mcp-method': 'subscriptions/listen',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 'L1', method: 'subscriptions/listen', params: {
      notifications: { toolsListChanged: true, resourcesListChanged: true },
      _meta: envelope() } }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /text\/event-stream/);
  const reader = res.body.getReader();
  let seen = '';
  while (!seen.includes('acknowledged')) {
    const { value, done } = await reader.read();
    assert.ok(!done, 'the stream stays open');
    seen += Buffer.from(value).toString('utf8');
  }
  const ack = JSON.parse(seen.split('\n').find((l) => l.startsWith('data: {')).slice(6));
  assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
  assert.deepEqual(ack.params.notifications, { toolsListChanged: true });
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], 'L1');
  // Cancelled: the stream ends.
  const cancel = await fetchVia(gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': V },
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'L1', _meta: envelope() } }),
  });
  assert.equal(cancel.status, 202);
  for (;;) {
    const { done } = await reader.read();
    if (done) break;
  }
});

// A gateway whose policy asks a person before a refund over 500; two client
// identities; for hand-made requests, the envelope with the elicitation capability.
async function askingGateway(t) {
  assert.match(process.versions.openssl, /^3\.[5-9]/, 'run with Node 24');
  const dir = tempDir(t);
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, [
    'default: allow',
    'rules:',
    '  - id: large-refunds-ask',
    '    match: { tool: demo__process_refund }',
    '    when:',
    '      - { arg: /amount, min: 500.01 }',
    '    effect: ask',
    '',
  ].join('\n'));
  const gateway = await startGateway(t, ['--demo', '--policy', policy], { dir });
  const identity = (name) => ({ gateway, fetchVia: fetchFor(t, dir, gateway, newIdentity(dir, name)) });
  return { dir, gateway, alice: identity('alice'), mallory: identity('mallory') };
}

const refundArgs = (amount, order = 'R1') => ({ order_id: order, amount, currency: 'USD', reason: 'damaged in transit' });
const withElicitation = () => envelope({ 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } } });
const refundCall = (id, amount, extra = {}) => ({
  jsonrpc: '2.0', id, method: 'tools/call',
  params: { name: 'demo__process_refund', arguments: refundArgs(amount), _meta: withElicitation(), ...extra },
});

test("input_required: the policy's ask answered by the v2 SDK's elicitation handler", { timeout: 120000 }, async (t) => {
  const { gateway, alice } = await askingGateway(t);
  const client = new ClientV2({ name: 'approver', version: '1.0.0' }, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: V } },
  });
  const asked = [];
  client.setRequestHandler('elicitation/create', (request) => {
    asked.push(request.params);
    return { action: 'accept', content: { approve: true } };
  });
  await client.connect(new TransportV2(new URL(gateway.url), { fetch: alice.fetchVia }));
  const result = await client.callTool({ name: 'demo__process_refund', arguments: refundArgs(900) });
  assert.ok(!result.isError, JSON.stringify(result));
  assert.match(text(result), /refund/i);
  assert.equal(asked.length, 1, 'one question, answered once');
  assert.match(asked[0].message, /large-refunds-ask|process_refund/);
  // Declined: refused by the policy, with its code.
  client.setRequestHandler('elicitation/create', () => ({ action: 'decline' }));
  await assert.rejects(client.callTool({ name: 'demo__process_refund', arguments: refundArgs(950, 'R2') }),
    (e) => e.code === -32010);
  await client.close();
});

test('input_required by hand: requestState sealed, bound, single-use', { timeout: 120000 }, async (t) => {
  const { alice, mallory } = await askingGateway(t);
  const first = await post(alice, refundCall(1, 900), { 'mcp-name': 'demo__process_refund' });
  assert.equal(first.status, 200, first.raw);
  const r = first.json.result;
  assert.equal(r.resultType, 'input_required', first.raw);
  const [key] = Object.keys(r.inputRequests);
  assert.equal(r.inputRequests[key].method, 'elicitation/create');
  assert.equal(typeof r.requestState, 'string');
  const answer = { [key]: { action: 'accept', content: { approve: true } } };
  const retry = (who, id, state, amount = 900, responses = answer) =>
    post(who, refundCall(id, amount, { inputResponses: responses, requestState: state }), { 'mcp-name': 'demo__process_refund' });
  const refused = (res, pattern) => {
    assert.equal(res.status, 400, res.raw);
    assert.equal(res.json.error.code, -32602, res.raw);
    assert.match(res.json.error.message, pattern, res.raw);
  };
  // Tampered: one character changed.
  const tampered = r.requestState.slice(0, 20) + (r.requestState[20] === 'a' ? 'b' : 'a') + r.requestState.slice(21);
  refused(await retry(alice, 2, tampered), /requestState does not verify/);
  // Another identity with the genuine state.
  refused(await retry(mallory, 3, r.requestState), /requestState does not verify/);
  // Another request (the amount changed) with the genuine state.
  refused(await retry(alice, 4, r.requestState, 9000), /requestState does not verify/);
  // The genuine retry: the first request's answer, under the retry's id.
  const done = await retry(alice, 5, r.requestState);
  assert.equal(done.status, 200, done.raw);
  assert.equal(done.json.id, 5);
  assert.equal(done.json.result.resultType, 'complete', done.raw);
  assert.ok(!done.json.result.isError, done.raw);
  // Replayed: used once already.
  refused(await retry(alice, 6, r.requestState), /was used already/);
  // Not a string, not a token.
  refused(await retry(alice, 7, 42), /must be a string/);
  refused(await retry(alice, 8, 'not-a-token'), /does not verify/);
});

test("input_required: an upstream's sampling request answered by the v2 SDK's handler", { timeout: 120000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, 'run with Node 24');
  const dir = tempDir(t);
  const gateway = await startGateway(t, ['--upstream', `fx=stdio:${process.env.PQMCP_FIXTURE_BIN}`], { dir });
  const fetchVia = fetchFor(t, dir, gateway, newIdentity(dir));
  const client = new ClientV2({ name: 'sampler', version: '1.0.0' }, {
    capabilities: { sampling: {} },
    versionNegotiation: { mode: { pin: V } },
  });
  let sampled = 0;
  client.setRequestHandler('sampling/createMessage', () => {
    sampled += 1;
    return { role: 'assistant', content: { type: 'text', text: 'sampled by the client' }, model: 'test-model' };
  });
  await client.connect(new TransportV2(new URL(gateway.url), { fetch: fetchVia }));
  const r = await client.callTool({ name: 'fx__ask_client', arguments: { method: 'sampling/createMessage' } });
  assert.equal(sampled, 1);
  assert.match(text(r), /sampled by the client/, JSON.stringify(r));
  await client.close();
});

// A server of the v2 SDK (createMcpHandler: 2026-07-28, and a session-less
// fallback for initialize), on plain HTTP on loopback: echo, and `ask`, which
// asks its client's name with an input_required result.
async function v2Server(t) {
  const { McpServer, createMcpHandler, inputRequired, acceptedContent } = await import('@modelcontextprotocol/server');
  const { toNodeHandler } = await import('@modelcontextprotocol/node');
  const z = await import('zod');
  const seen = [];
  const state = { late: false, note: undefined };
  const factory = () => {
    const s = new McpServer({ name: 'v2-upstream', version: '1.0.0' },
      { capabilities: { resources: { subscribe: true, listChanged: true } } });
    s.registerResource('note', 'mem://note', { description: 'a note' },
      async (uri) => ({ contents: [{ uri: uri.href, text: state.note ?? 'first' }] }));
    if (state.late) {
      s.registerTool('late', { description: 'added while running' }, async () => ({ content: [{ type: 'text', text: 'late' }] }));
    }
    s.registerTool('echo', { description: 'echo', inputSchema: z.object({ message: z.string() }) },
      async ({ message }) => ({ content: [{ type: 'text', text: message }] }));
    // A property routed in a header (x-mcp-header): a 2026-07-28 server
    // refuses a call without Mcp-Param-Region matching it.
    s.registerTool('region', { description: 'x-mcp-header', inputSchema: z.object({ region: z.string().meta({ 'x-mcp-header': 'Region' }), q: z.string() }) },
      async ({ region, q }) => ({ content: [{ type: 'text', text: `${region}:${q}` }] }));
    s.registerTool('ask', { description: 'asks the caller its name' }, async (ctx) => {
      const answer = acceptedContent(ctx.mcpReq.inputResponses, 'name');
      if (!answer) {
        return inputRequired({
          inputRequests: { name: inputRequired.elicit({ message: 'Your name?',
            requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } }) },
          requestState: 'round-1',
        });
      }
      return { content: [{ type: 'text', text: `hello ${answer.name} (${ctx.mcpReq.requestState()})` }] };
    });
    return s;
  };
  const mcp = createMcpHandler(factory);
  const handler = toNodeHandler(mcp);
  const http = await import('node:http');
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, version: req.headers['mcp-protocol-version'], mcpMethod: req.headers['mcp-method'], session: req.headers['mcp-session-id'], region: req.headers['mcp-param-region'], tenant: req.headers['mcp-param-tenant'] });
    void handler(req, res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  // A tool added while running, announced on the open subscriptions/listen streams.
  const addTool = () => {
    state.late = true;
    mcp.notify.toolsChanged();
  };
  const editNote = (text) => {
    state.note = text;
    mcp.notify.resourceUpdated('mem://note');
  };
  return { url: `http://127.0.0.1:${server.address().port}/mcp`, seen, addTool, editNote };
}

// A v2 SDK server, and a gateway in front of it speaking `protocol` to it;
// fetch() for a new client identity pinned to the gateway.
async function gatewayBeforeV2(t, protocol = V) {
  const upstream = await v2Server(t);
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, ['upstreams:', '  - name: v2', `    url: ${upstream.url}`, `    protocol: ${protocol}`, ''].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  return { upstream, gateway, fetchVia: fetchFor(t, dir, gateway, newIdentity(dir)) };
}

for (const protocol of ['2026-07-28', 'auto']) {
  test(`a 2025-11-25 client in front of a 2026-07-28 upstream (protocol: ${protocol})`, { timeout: 120000 }, async (t) => {
    const { upstream, gateway, fetchVia } = await gatewayBeforeV2(t, protocol);
    const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');
    const client = new Client({ name: 'v1-sessions', version: '1.0.0' }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, () => ({ action: 'accept', content: { name: 'Alice' } }));
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), {
      fetch: fetchVia,
    }));
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((x) => x.name).sort(), ['v2__ask', 'v2__echo', 'v2__region']);
    // Mcp-Param-Region sent by the gateway from the tool's schema, Base64 for the accent.
    assert.equal(text(await client.callTool({ name: 'v2__region', arguments: { region: 'eu-west é', q: 'x' } })), 'eu-west é:x');
    assert.equal(text(await client.callTool({ name: 'v2__echo', arguments: { message: 'across revisions' } })), 'across revisions');
    // The upstream's input_required became an elicitation of this client, and its answer the retry.
    assert.equal(text(await client.callTool({ name: 'v2__ask', arguments: {} })), 'hello Alice (round-1)');
    await client.close();
    // What the upstream saw: 2026-07-28 requests with their headers, no session, no GET.
    const posts = upstream.seen.filter((r) => r.method === 'POST');
    assert.ok(posts.length >= 4, JSON.stringify(upstream.seen));
    assert.ok(posts.every((r) => r.version === V && r.session === undefined), JSON.stringify(posts));
    assert.equal(posts[0].mcpMethod, 'server/discover');
    assert.ok(!upstream.seen.some((r) => r.method === 'GET'), JSON.stringify(upstream.seen));
    assert.ok(upstream.seen.some((r) => r.region === '=?base64?ZXUtd2VzdCDDqQ==?='), JSON.stringify(upstream.seen));
  });
}

test("a 2026-07-28 upstream's list changes reach a session client (subscriptions/listen upstream)", { timeout: 120000 }, async (t) => {
  const { upstream, gateway, fetchVia } = await gatewayBeforeV2(t);
  const client = new Client({ name: 'v1-listens', version: '1.0.0' });
  let changed = 0;
  const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { changed += 1; });
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { fetch: fetchVia }));
  assert.ok(!(await client.listTools()).tools.some((x) => x.name === 'v2__late'));
  // The gateway listens upstream: one POST of subscriptions/listen, no GET.
  const deadline = Date.now() + 30000;
  while (!upstream.seen.some((r) => r.mcpMethod === 'subscriptions/listen') && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(upstream.seen.some((r) => r.method === 'POST' && r.mcpMethod === 'subscriptions/listen'), JSON.stringify(upstream.seen));
  assert.ok(!upstream.seen.some((r) => r.method === 'GET'), JSON.stringify(upstream.seen));
  while (changed === 0 && Date.now() < deadline) {
    upstream.addTool();
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(changed >= 1, 'notifications/tools/list_changed reached the client');
  assert.ok((await client.listTools()).tools.some((x) => x.name === 'v2__late'));
  assert.equal(text(await client.callTool({ name: 'v2__late', arguments: {} })), 'late');
  // resources/subscribe becomes a resourceSubscriptions of the upstream's listen stream.
  const { ResourceUpdatedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  const updated = [];
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updated.push(n.params.uri); });
  assert.ok((await client.listResources()).resources.some((r) => r.uri === 'mem://note'));
  await client.subscribeResource({ uri: 'mem://note' });
  const listens = () => upstream.seen.filter((r) => r.mcpMethod === 'subscriptions/listen').length;
  while (listens() < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(!upstream.seen.some((r) => r.mcpMethod === 'resources/subscribe'), JSON.stringify(upstream.seen));
  // (The listen request is seen before the upstream registers its stream: announce until heard.)
  while (updated.length === 0 && Date.now() < deadline) {
    upstream.editNote('second');
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(updated[0], 'mem://note');
  assert.equal((await client.readResource({ uri: 'mem://note' })).contents[0].text, 'second');
  await client.close();
});

test('an upstream that answers input_required for ever: the gateway gives up after 32 rounds', { timeout: 120000 }, async (t) => {
  const http = await import('node:http');
  let calls = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      const m = JSON.parse(body);
      const reply = (result) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, result }));
      };
      if (m.method === 'server/discover') {
        return reply({ supportedVersions: [V], capabilities: { tools: {} }, resultType: 'complete',
          _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'looping', version: '1' } } });
      }
      if (m.method === 'tools/list') {
        return reply({ tools: [{ name: 'loop', inputSchema: { type: 'object' } }], resultType: 'complete' });
      }
      if (m.method === 'tools/call') {
        calls += 1;
        return reply({ resultType: 'input_required', requestState: `round-${calls}` });
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } }));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, ['upstreams:', '  - name: up', `    url: http://127.0.0.1:${server.address().port}/mcp`, `    protocol: ${V}`, ''].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  const client = new Client({ name: 'v1-loop', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), { fetch: fetchFor(t, dir, gateway, newIdentity(dir)) }));
  const r = await client.callTool({ name: 'up__loop', arguments: {} }).then((x) => x, (e) => e);
  assert.match(String(r.message ?? JSON.stringify(r)), /asked for input more than 32 times/);
  assert.equal(calls, 33, 'the first call and 32 retries');
  await client.close();
});

test('Mcp-Param headers: checked against the arguments, unknown ones passed on', { timeout: 120000 }, async (t) => {
  const { upstream, gateway, fetchVia } = await gatewayBeforeV2(t);
  const ctx = { gateway, fetchVia };
  // The mark reaches the client in the gateway's list.
  const list = await post(ctx, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: envelope() } });
  const region = list.json.result.tools.find((x) => x.name === 'v2__region');
  assert.equal(region.inputSchema.properties.region['x-mcp-header'], 'Region', JSON.stringify(region));
  const call = (args, headers) => post(ctx, { jsonrpc: '2.0', id: 2, method: 'tools/call',
    params: { name: 'v2__region', arguments: args, _meta: envelope() } }, { 'mcp-name': 'v2__region', ...headers });
  const refused = (r, pattern) => {
    assert.equal(r.status, 400, r.raw);
    assert.equal(r.json.error.code, -32020, r.raw);
    assert.equal(r.json.id, 2, r.raw);
    assert.match(r.json.error.message, pattern, r.raw);
  };
  const calls = () => upstream.seen.filter((r) => r.mcpMethod === 'tools/call').length;
  const before = calls();
  refused(await call({ region: 'eu', q: 'x' }, {}), /Mcp-Param-Region header is absent/);
  refused(await call({ region: 'eu', q: 'x' }, { 'mcp-param-region': 'us' }), /Mcp-Param-Region header does not match/);
  refused(await call({ q: 'x' }, { 'mcp-param-region': 'eu' }), /no value for it/);
  refused(await call({ region: 'eu', q: 'x' }, { 'mcp-param-region': '=?base64?***?=' }), /Base64 value does not decode/);
  refused(await call({ region: 'é', q: 'x' }, { 'mcp-param-region': '=?base64?ZQ==?=' }), /does not match/);
  assert.equal(calls(), before, 'no call reached the upstream');
  // Matching (names ignore case, Base64 decoded first), with a header the
  // tool does not declare: served, and the unknown header passed on as it came.
  const ok = await call({ region: 'eu-west é', q: 'x' }, { 'MCP-PARAM-REGION': '=?base64?ZXUtd2VzdCDDqQ==?=', 'mcp-param-tenant': 'acme' });
  assert.equal(ok.status, 200, ok.raw);
  assert.equal(ok.json.result.content[0].text, 'eu-west é:x');
  const last = upstream.seen.filter((r) => r.mcpMethod === 'tools/call').at(-1);
  assert.equal(last.tenant, 'acme', JSON.stringify(last));
  assert.equal(last.region, '=?base64?ZXUtd2VzdCDDqQ==?=', JSON.stringify(last));
  // The v2 SDK client mirrors the mark itself and is served.
  const client = new ClientV2({ name: 'param-headers', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V } } });
  await client.connect(new TransportV2(new URL(gateway.url), { fetch: ctx.fetchVia }));
  assert.equal(text(await client.callTool({ name: 'v2__region', arguments: { region: 'ap', q: 'sdk' } })), 'ap:sdk');
  await client.close();
});

test('the v2 SDK client pinned to 2026-07-28 through pqmcp connect', { timeout: 120000 }, async (t) => {
  const { StdioClientTransport: StdioV2 } = await import('@modelcontextprotocol/client/stdio');
  const { gateway, dir } = await askingGateway(t);
  const transport = (extra) => new StdioV2({ command: PQMCP, args: connectArgs(gateway, extra), stderr: 'pipe' });
  const client = new ClientV2({ name: 'stdio-2026', version: '1.0.0' }, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: V } },
  });
  client.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { approve: true } }));
  await client.connect(transport([]));
  assert.equal(client.getProtocolEra(), 'modern');
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === 'demo__echo'));
  assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'via connect' } })), 'via connect');
  // The policy's ask, answered by the SDK (input_required relayed by connect as it is).
  const refund = await client.callTool({ name: 'demo__process_refund', arguments: refundArgs(900) });
  assert.ok(!refund.isError, JSON.stringify(refund));
  await client.close();

  // --protocol 2025-11-25: a pinned 2026-07-28 client is told which versions there are.
  const pinned = new ClientV2({ name: 'stdio-pinned', version: '1.0.0' }, { versionNegotiation: { mode: { pin: V } } });
  await assert.rejects(pinned.connect(transport(['--protocol', '2025-11-25'])), /2026-07-28|-32022|not offer|unsupported/i);
  // ... and one in auto mode falls back to a session there.
  const auto = new ClientV2({ name: 'stdio-auto', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } });
  await auto.connect(transport(['--protocol', '2025-11-25']));
  assert.equal(auto.getProtocolEra(), 'legacy');
  assert.equal(text(await auto.callTool({ name: 'demo__echo', arguments: { message: 'session' } })), 'session');
  await auto.close();

  await gateway.stop();
  const calls = auditedRequests(path.join(dir, 'gateway', 'audit.db')).filter((r) => r.method === 'tools/call');
  assert.equal(calls.length, 3, JSON.stringify(calls.map((r) => r.target)));
});

test('2026-07-28 end to end: the v2 client pinned, serve in front of server-everything and a v2 server', { timeout: 120000 }, async (t) => {
  const { EVERYTHING, NODE } = await import('./lib.mjs');
  const upstream = await v2Server(t);
  const dir = tempDir(t);
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, [
    'upstreams:',
    '  - name: everything',
    `    command: ${NODE}`,
    `    args: [${JSON.stringify(EVERYTHING)}]`,
    '  - name: v2',
    `    url: ${upstream.url}`,
    '    protocol: 2026-07-28',
    '',
  ].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  const fetchVia = fetchFor(t, dir, gateway, newIdentity(dir));
  const client = new ClientV2({ name: 'end-to-end', version: '1.0.0' }, {
    capabilities: { elicitation: { form: {} } },
    versionNegotiation: { mode: { pin: V } },
  });
  client.setRequestHandler('elicitation/create', () => ({ action: 'accept', content: { name: 'Bob' } }));
  await client.connect(new TransportV2(new URL(gateway.url), { fetch: fetchVia }));
  const names = (await client.listTools()).tools.map((x) => x.name);
  assert.ok(names.includes('everything__echo') && names.includes('v2__echo') && names.includes('v2__ask'), JSON.stringify(names));
  assert.match(text(await client.callTool({ name: 'everything__echo', arguments: { message: 'old' } })), /old/);
  assert.equal(text(await client.callTool({ name: 'v2__echo', arguments: { message: 'new' } })), 'new');
  // The v2 server's input_required, through the gateway's session to this
  // stateless client as input_required again, answered, and back.
  assert.equal(text(await client.callTool({ name: 'v2__ask', arguments: {} })), 'hello Bob (round-1)');
  await client.close();
});
