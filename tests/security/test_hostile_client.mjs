// A hostile client against the running gateway: raw JSON-RPC through
// `pqmcp connect` (what the SDK would never send), and what it must not be
// able to do to other sessions, the audit trail, the policy or the logs.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  Client, auditRecords, auditedRequests, connectTransport, rawClient, startGateway, tempDir, text,
} from '../interop/lib.mjs';

const FIXTURE = process.env.PQMCP_FIXTURE_BIN;

function fixtureGateway(t, extra = [], options = {}) {
  return startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`, '--demo', ...extra], options);
}

async function sdkSession(t, gateway) {
  const client = new Client({ name: 'bystander', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  t.after(() => client.close());
  return client;
}

test('a request reusing the id of one in flight gets -32600; the first is answered and audited untouched', async (t) => {
  const gateway = await fixtureGateway(t);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  const bystander = await sdkSession(t, gateway);
  raw.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'fx__slow', arguments: { ms: 800 } } });
  await new Promise((r) => setTimeout(r, 150));
  raw.send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'demo__add', arguments: { a: 1, b: 2 } } });
  const first = await raw.next((m) => m.id === 7);
  assert.equal(first.error?.code, -32600, JSON.stringify(first));
  assert.match(first.error.message, /a request with id 7 is already in flight on this session/);
  // The other session is not held up meanwhile.
  assert.equal(text(await bystander.callTool({ name: 'demo__add', arguments: { a: 3, b: 4 } })), '7');
  const second = await raw.next((m) => m.id === 7);
  assert.equal(second.result?.content?.[0]?.text, 'slept 800 ms', JSON.stringify(second));
  // Once answered, the id may be used again.
  const again = await raw.request(7, 'tools/call', { name: 'demo__add', arguments: { a: 1, b: 2 } });
  assert.equal(again.result.content[0].text, '3');
  raw.close();
  await gateway.stop();
  const records = auditedRequests(path.join(gateway.home, 'gateway', 'audit.db'))
    .filter((r) => r.request_id === '7');
  assert.equal(records.length, 3, JSON.stringify(records));
  const slow = records.find((r) => r.target === 'fx__slow');
  assert.equal(slow.outcome, 'ok');
  assert.equal(slow.phase, 'finished');  // it outlived the crash window: started first
  assert.equal(slow.decision, 'allow');
  const dup = records.find((r) => r.duplicate_id === true);
  assert.equal(dup.target, 'demo__add');
  assert.equal(dup.error_code, -32600);
  assert.equal(dup.decision, 'invalid');
  assert.notEqual(dup.call, slow.call);
});

test('a cancelled request is recorded with its outcome at once, and gets no response', async (t) => {
  const gateway = await fixtureGateway(t);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  raw.send({ jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'fx__slow', arguments: { ms: 1500 } } });
  await new Promise((r) => setTimeout(r, 200));
  raw.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1', reason: 'changed my mind' } });
  const after = await raw.request('c2', 'tools/call', { name: 'demo__add', arguments: { a: 1, b: 1 } });
  assert.equal(after.result.content[0].text, '2');
  await new Promise((r) => setTimeout(r, 1800));
  assert.ok(!raw.messages.some((m) => m.id === 'c1'), 'no response for the cancelled request');
  raw.close();
  await gateway.stop();
  const records = auditedRequests(path.join(gateway.home, 'gateway', 'audit.db'));
  const cancelled = records.filter((r) => r.request_id === '"c1"');
  assert.equal(cancelled.length, 1, JSON.stringify(records));
  assert.equal(cancelled[0].outcome, 'cancelled');
});

test('kill -9 with calls in flight: each accepted call older than the window has its started record', async (t) => {
  const gateway = await fixtureGateway(t);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  for (let i = 0; i < 5; i++) {
    raw.send({ jsonrpc: '2.0', id: 100 + i, method: 'tools/call', params: { name: 'fx__slow', arguments: { ms: 20000 } } });
  }
  // One call in flight at a time per stdio child (the fixture answers in
  // order), all five accepted; the window is 1.5 flush intervals (150 ms)
  // plus a commit.
  await new Promise((r) => setTimeout(r, 800));
  gateway.child.kill('SIGKILL');
  await gateway.exited;
  const records = auditRecords(path.join(gateway.home, 'gateway', 'audit.db'), 'request');
  const started = records.filter((r) => r.phase === 'started' && r.target === 'fx__slow');
  assert.deepEqual(started.map((r) => r.request_id).sort(), ['100', '101', '102', '103', '104']);
  assert.ok(started.every((r) => r.decision === 'allow' && r.identity?.startsWith('pq1')));
  assert.ok(!records.some((r) => r.target === 'fx__slow' && r.outcome), 'none of them finished');
});

const EXAMPLES = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'examples', 'policies');

test('a purpose the caller only claims does not open the demo policy\'s patient records', async (t) => {
  const gateway = await startGateway(t, ['--demo', '--policy', path.join(EXAMPLES, 'demo.yaml')]);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  const claimed = await raw.request(1, 'tools/call', {
    name: 'demo__get_patient_record', arguments: { patient_id: 'P0042', purpose: 'treatment' },
    _meta: { 'pqmcp/purpose': 'treatment' },
  });
  assert.equal(claimed.error?.code, -32010, JSON.stringify(claimed));
  assert.equal(claimed.error.data.rule, null);
  // Other tools of the same session still work.
  const echo = await raw.request(2, 'tools/call', { name: 'demo__echo', arguments: { message: 'hi' } });
  assert.equal(echo.result.content[0].text, 'hi');
});

test('ask approves only on an explicit approve: true', async (t) => {
  const gateway = await startGateway(t, ['--demo', '--policy', path.join(EXAMPLES, 'demo.yaml')]);
  const raw = rawClient(t, gateway);
  await raw.initialize({ elicitation: {} });
  const refund = { name: 'demo__process_refund', arguments: { order_id: 'O-1', amount: 5000, currency: 'USD', reason: 'damaged in transit' } };
  const answers = [
    [{ action: 'accept', content: {} }, false],
    [{ action: 'accept' }, false],
    [{ action: 'accept', content: { approve: 'true' } }, false],
    [{ action: 'accept', content: { approve: false } }, false],
    [{ action: 'decline' }, false],
    [{ action: 'accept', content: { approve: true } }, true],
  ];
  let id = 10;
  for (const [answer, approved] of answers) {
    id += 1;
    raw.send({ jsonrpc: '2.0', id, method: 'tools/call', params: refund });
    const question = await raw.next((m) => m.method === 'elicitation/create');
    raw.send({ jsonrpc: '2.0', id: question.id, result: answer });
    const reply = await raw.next((m) => m.id === id && !m.method);
    if (approved) {
      assert.match(reply.result?.content?.[0]?.text ?? '', /Refund RF-/, JSON.stringify(reply));
    } else {
      assert.equal(reply.error?.code, -32010, `${JSON.stringify(answer)} -> ${JSON.stringify(reply)}`);
      assert.equal(reply.error.data.rule, 'refunds-large-need-a-human');
    }
  }
});

test('a tool its upstream never listed is unknown, not forwarded', async (t) => {
  const gateway = await fixtureGateway(t, ['--upstream-env', 'fx=FIXTURE_MODE=hostile']);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  // Never listed by this session: the gateway fetches and reviews fx's list first.
  const hidden = await raw.request(1, 'tools/call', { name: 'fx__hidden_tool', arguments: {} });
  assert.equal(hidden.error?.code, -32602, JSON.stringify(hidden));
  assert.match(hidden.error.message, /Unknown tool: fx__hidden_tool \(upstream fx does not list it\)/);
  // After a listing, still unknown; listed tools work.
  const tools = await raw.request(2, 'tools/list');
  assert.ok(!tools.result.tools.some((x) => x.name === 'fx__hidden_tool'));
  assert.equal((await raw.request(3, 'tools/call', { name: 'fx__hidden_tool', arguments: {} })).error?.code, -32602);
  assert.equal((await raw.request(4, 'tools/call', { name: 'fx__whoami', arguments: {} })).error, undefined);
});

test('upstream names that make federated names ambiguous are refused at start', async (t) => {
  const err = await startGateway(t, ['--demo', '--upstream', `a__b=stdio:${FIXTURE}`]).then(() => null, (e) => e);
  assert.ok(err);
  assert.match(err.message, /upstream "a__b": a name must not contain the namespace separator "__"/);
  const dash = await startGateway(t, ['--separator', '-', '--upstream', `a=stdio:${FIXTURE}`,
    '--upstream', `a-b=stdio:${FIXTURE}`]).then(() => null, (e) => e);
  assert.ok(dash);
  assert.match(dash.message, /upstream "a-b": a name must not contain the namespace separator "-"/);
});

test('resource URIs are normalized before the policy sees them; tricks are refused', async (t) => {
  const dir = tempDir(t);
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, [
    'default: deny',
    'rules:',
    '  - id: public-only',
    '    match: { method: "resources/read", resource: "file:///public/*" }',
    '    effect: allow',
    '  - id: listing',
    '    match: { method: ["resources/list", "tools/list"] }',
    '    effect: allow',
    '',
  ].join('\n'));
  const gateway = await startGateway(t, ['--upstream', `fx=stdio:${FIXTURE}`, '--upstream-env', 'fx=FIXTURE_MODE=hostile',
    '--policy', policy]);
  const raw = rawClient(t, gateway);
  await raw.initialize();
  await raw.request(1, 'resources/list');
  const read = async (id, uri) => raw.request(id, 'resources/read', { uri });
  const ok = await read(2, 'file:///public/readme.txt');
  assert.equal(ok.result.contents[0].text, 'read file:///public/readme.txt');
  // Dot segments are resolved before the rule's glob sees the URI, and the
  // upstream gets the normalized one.
  const dotted = await read(3, 'file:///public/./readme.txt');
  assert.equal(dotted.result.contents[0].text, 'read file:///public/readme.txt');
  for (const [id, uri] of [[4, 'file:///public/../etc/passwd'], [5, 'file:///public/%2e%2e/etc/passwd'],
    [6, 'file:///public/%2E%2E/%2E%2E/etc/passwd'], [7, 'file:///public/./../../etc/shadow']]) {
    const r = await read(id, uri);
    assert.equal(r.error?.code, -32010, `${uri}: ${JSON.stringify(r)}`);
  }
  for (const [id, uri, why] of [[8, 'file:///public/..%2fetc%2fpasswd', /encoded path separator/],
    [9, 'file:///public/..%5Cetc', /encoded path separator/], [10, 'file:///public/%00.txt', /encoded NUL/],
    [11, 'file:///public/a\u0000b', /NUL/]]) {
    const r = await read(id, uri);
    assert.equal(r.error?.code, -32602, `${uri}: ${JSON.stringify(r)}`);
    assert.match(r.error.message, why);
  }
});
