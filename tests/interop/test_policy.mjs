// The policy end to end, as a real client meets it: the official SDK Client
// -> pqmcp connect -> pqmcp serve --demo --policy examples/policies/... , with
// a person answering elicitation requests; and the policy commands.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ElicitRequestSchema, McpError } from '@modelcontextprotocol/sdk/types.js';

import { PQMCP, connectTransport, startGateway, tempDir, text, until } from './lib.mjs';

const run = promisify(execFile);
const examples = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'policies');
const DENIED = -32010;

function refund(amount, currency, reason = 'the parcel arrived damaged') {
  return { name: 'demo__process_refund', arguments: { order_id: 'ORD-1001', amount, currency, reason } };
}

function record(id, purpose) {
  const params = { name: 'demo__get_patient_record', arguments: { patient_id: id, purpose: 'care' } };
  if (purpose) params._meta = { 'pqmcp/purpose': purpose };
  return params;
}

async function denied(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof McpError, String(err));
    assert.equal(err.code, DENIED, err.message);
    return err;
  }
  assert.fail('the call was not denied');
}

test('the example policy through pqmcp connect, with a person answering', async (t) => {
  // This client is the demo policy's "clinician" (known_peers name).
  const dir = tempDir(t);
  const { stdout: id } = await run(PQMCP, ['keygen', '--out', path.join(dir, 'client')]);
  const known = path.join(dir, 'known_peers');
  await run(PQMCP, ['peers', 'add', '--file', known, id.trim().split(/\s+/).find((w) => w.startsWith('pq1')), 'clinician']);
  const gateway = await startGateway(t, ['--demo', '--policy', path.join(examples, 'demo.yaml'),
    '--known-peers', known], { dir });
  const client = new Client({ name: 'interop', version: '1.0.0' }, { capabilities: { elicitation: {} } });
  let answer = 'accept';
  const questions = [];
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    questions.push(request.params.message);
    return answer === 'accept' ? { action: 'accept', content: { approve: true } } : { action: answer };
  });
  await client.connect(connectTransport(gateway));
  try {
    // tools/list hides the tool no rule allows.
    const names = (await client.listTools()).tools.map((tool) => tool.name).sort();
    assert.deepEqual(names, ['demo__add', 'demo__echo', 'demo__get_patient_record', 'demo__process_refund']);

    // 100 USD with a good reason succeeds.
    assert.match(text(await client.callTool(refund(100, 'USD'))), /Refund RF-\d+ of 100.00 USD/);

    // 5,000 USD is asked for: accepted -> it runs; declined -> denied.
    assert.match(text(await client.callTool(refund(5000, 'USD'))), /of 5000.00 USD/);
    assert.equal(questions.length, 1);
    assert.match(questions[0], /refunds-large-need-a-human/);
    answer = 'decline';
    const declined = await denied(client.callTool(refund(5000, 'USD')));
    assert.equal(declined.data.rule, 'refunds-large-need-a-human');
    assert.match(declined.message, /not approved \(decline\)/);

    // 50,000 USD: denied by the default.
    const big = await denied(client.callTool(refund(50000, 'USD')));
    assert.equal(big.data.rule, null);
    assert.equal(big.data.decision, 'deny');

    // XYZ: denied with the rule id.
    const xyz = await denied(client.callTool(refund(10, 'XYZ')));
    assert.equal(xyz.data.rule, 'refunds-known-currencies-only');
    assert.match(xyz.data.policy, /^[0-9a-f]{12}$/);

    // Patient records: a clinician's, whatever it claims; the 21st in an hour denied.
    for (let i = 0; i < 20; i += 1) {
      const r = await client.callTool(record('P0200', i % 2 ? 'billing' : undefined));
      assert.equal(r.isError, undefined, JSON.stringify(r));
    }
    const twentyFirst = await denied(client.callTool(record('P0200')));
    assert.equal(twentyFirst.data.rule, 'patient-records-for-treatment');
    assert.match(twentyFirst.message, /rate limit .* 20 per 1h/);

    // A burst of calls is flagged (the gateway logs the finding).
    await Promise.all(Array.from({ length: 15 }, (_, i) =>
      client.callTool({ name: 'demo__echo', arguments: { message: `burst ${i}` } })));
    await until(() => gateway.stderr.some((l) => /behaviour: burst/.test(l)), 5000, 'a burst finding');
  } finally {
    await client.close();
  }
});

test('a burst escalated to a person by the behaviour policy', async (t) => {
  const gateway = await startGateway(t, ['--demo', '--policy', path.join(examples, 'behaviour.yaml')]);
  const client = new Client({ name: 'interop', version: '1.0.0' }, { capabilities: { elicitation: {} } });
  let asked = 0;
  client.setRequestHandler(ElicitRequestSchema, async () => {
    asked += 1;
    return { action: 'decline' };
  });
  await client.connect(connectTransport(gateway));
  try {
    const outcomes = [];
    for (let i = 0; i < 30; i += 1) {
      outcomes.push(await client.callTool({ name: 'demo__echo', arguments: { message: `m${i}` } })
        .then(() => 'ok', (err) => err.data?.rule ?? err.message));
    }
    assert.ok(asked > 0, 'the person was asked about the burst');
    assert.ok(outcomes.includes('bursts-need-a-human'), outcomes.join(','));
    // Enumerating patient ids is refused outright.
    const ids = [];
    for (let i = 1; i <= 5; i += 1) {
      ids.push(await client.callTool(record(`P000${i}`))
        .then(() => 'ok', (err) => err.data?.rule ?? err.message));
    }
    assert.equal(ids.at(-1), 'stop-record-enumeration');
  } finally {
    await client.close();
  }
});

test('SIGHUP reloads the policy; an invalid one is refused and the old one stays', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'policy.yaml');
  copyFileSync(path.join(examples, 'demo.yaml'), file);
  const gateway = await startGateway(t, ['--demo', '--policy', file]);
  const client = new Client({ name: 'interop', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  try {
    assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'a' } })), 'a');
    writeFileSync(file, 'default: deny\nrules:\n  - id: broken\n    effect: sometimes\n');
    gateway.child.kill('SIGHUP');
    await until(() => gateway.stderr.some((l) => /policy not reloaded: .*policy.yaml:4: rule broken.effect/.test(l)),
      5000, 'the refusal of the broken policy');
    assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'b' } })), 'b');
    writeFileSync(file, 'default: deny\nrules:\n  - id: no-echo\n    match: { tool: demo__echo }\n    effect: deny\n');
    gateway.child.kill('SIGHUP');
    await until(() => gateway.stderr.some((l) => /policy reloaded: .*1 rules/.test(l)), 5000, 'the reload');
    const err = await denied(client.callTool({ name: 'demo__echo', arguments: { message: 'c' } }));
    assert.equal(err.data.rule, 'no-echo');
  } finally {
    await client.close();
  }
});

test('pqmcp policy lint and pqmcp policy check', async (t) => {
  const { stdout } = await run(PQMCP, ['policy', 'lint', path.join(examples, 'demo.yaml')]);
  assert.match(stdout, /demo.yaml: ok \(5 rules, default deny, fingerprint [0-9a-f]{12}\)/);
  const dir = tempDir(t);
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'default: deny\nrules:\n  - id: x\n    match: { tool: t }\n    when:\n      - { arg: /a, regex: "(" }\n    effect: allow\n');
  await assert.rejects(run(PQMCP, ['policy', 'lint', bad]), (err) => {
    assert.equal(err.code, 1);
    assert.match(err.stderr, /bad.yaml:6: rule x.when\[0\].regex: not a valid RE2 expression/);
    return true;
  });
  const check = async (request, ...extra) => JSON.parse((await run(PQMCP, ['policy', 'check', '--policy',
    path.join(examples, 'demo.yaml'), '--request', JSON.stringify(request), ...extra])).stdout);
  const xyz = await check({ method: 'tools/call', params: refund(10, 'XYZ') });
  assert.deepEqual(Object.keys(xyz).slice(0, 4), ['decision', 'rule', 'reason', 'mode']);
  assert.equal(xyz.decision, 'deny');
  assert.equal(xyz.rule, 'refunds-known-currencies-only');
  assert.equal(xyz.mode, 'enforce');
  assert.equal((await check({ method: 'tools/call', params: refund(5000, 'EUR') })).decision, 'ask');
  // A claimed purpose does not open patient records; being a clinician does.
  assert.equal((await check({ method: 'tools/call', params: record('P1') }, '--purpose', 'treatment')).decision, 'deny');
  assert.equal((await check({ method: 'tools/call', params: record('P1') }, '--identity', 'clinician')).decision, 'allow');
  assert.equal((await check({ method: 'tools/call', params: record('P1') }, '--identity', 'pq1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')).decision, 'deny');
});
