// OpenAPI upstreams against real software: Prism (@stoplight/prism-cli, a
// mock server) serving published descriptions (@readme/oas-examples: 3.0,
// 3.1 and Swagger 2.0 Petstores), the official SDK's client through
// `pqmcp connect` -> `serve` -> the openapi upstream -> Prism. Then TLS
// towards an API (openssl s_server with a CA-issued classical certificate):
// the hybrid group when the server has it, X25519 when it does not, a
// certificate for another name refused; and `openapi policy`'s output read
// by `policy lint`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
  Client, OPENSSL, PQMCP, auditedRequests, connectTransport, freePort, startGateway, tempDir, text, until,
  waitForPort,
} from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const EXAMPLES = path.join(here, 'node_modules', '@readme', 'oas-examples');
const PRISM = path.join(here, 'node_modules', '@stoplight', 'prism-cli', 'dist', 'index.js');
const KEY = 'pets-secret-key-0123456789';

async function startPrism(t, spec) {
  const port = await freePort();
  const child = spawn(process.execPath, [PRISM, 'mock', spec, '-p', String(port), '-h', '127.0.0.1'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => log.push(...d.split('\n')));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => log.push(...d.split('\n')));
  t.after(() => child.kill('SIGKILL'));
  await waitForPort(port, 60000);
  return { url: `http://127.0.0.1:${port}`, log };
}

async function client(t, gateway, name = 'client') {
  const c = new Client({ name: 'openapi-test', version: '1.0.0' });
  await c.connect(connectTransport(gateway, [], name));
  t.after(() => c.close().catch(() => {}));
  return c;
}

for (const version of ['3.0', '3.1', '2.0']) {
  test(`Petstore ${version} through the gateway to Prism`, { timeout: 180000 }, async (t) => {
    const dir = tempDir(t);
    const spec = path.join(EXAMPLES, version, 'json', 'petstore.json');
    const prism = await startPrism(t, spec);
    const config = path.join(dir, 'gw.yaml');
    writeFileSync(config, [
      'upstreams:',
      '  - name: pets',
      '    openapi:',
      `      spec: ${spec}`,
      `      base_url: ${prism.url}`,
      '      auth:',
      '        - { type: api_key, in: header, name: api_key, value_env: PETS_KEY }',
      '        - { type: bearer, value_env: PETS_KEY }',
      '  - name: nokey',
      '    openapi:',
      `      spec: ${spec}`,
      `      base_url: ${prism.url}`,
      '      include: { operations: [getPetById] }',
      '',
    ].join('\n'));
    const gateway = await startGateway(t, ['--config', config], { dir, env: { PETS_KEY: KEY } });
    assert.ok(gateway.stderr.some((l) => /upstream pets: 19 tools from .*petstore\.json/.test(l)),
      gateway.stderr.join('\n'));
    const c = await client(t, gateway);

    const { tools } = await c.listTools();
    const names = tools.map((x) => x.name);
    assert.ok(names.includes('pets__getPetById'), names.join(' '));
    assert.deepEqual(names.filter((n) => n.startsWith('nokey__')), ['nokey__getPetById']);
    const get = tools.find((x) => x.name === 'pets__getPetById');
    assert.deepEqual(get.inputSchema.required, ['petId']);
    assert.equal(get.annotations.readOnlyHint, true);
    assert.equal(get.outputSchema.type, 'object');
    const del = tools.find((x) => x.name === 'pets__deletePet');
    assert.equal(del.annotations.destructiveHint, true);
    assert.ok(!JSON.stringify(tools).includes(KEY), 'the key is in no schema');

    // A path parameter and the key the mock requires (getPetById needs api_key).
    const pet = await c.callTool({ name: 'pets__getPetById', arguments: { petId: 7 } });
    assert.ok(!pet.isError, text(pet));
    assert.equal(typeof pet.structuredContent.name, 'string', JSON.stringify(pet));
    assert.ok(Array.isArray(pet.structuredContent.photoUrls));
    // Without the key the mock refuses: an error result with the status.
    const refused = await c.callTool({ name: 'nokey__getPetById', arguments: { petId: 7 } });
    assert.equal(refused.isError, true);
    assert.match(text(refused), /HTTP 401/);
    // A query parameter (an array, exploded), and an array answer wrapped.
    const found = await c.callTool({ name: 'pets__findPetsByStatus', arguments: { status: ['available', 'sold'] } });
    assert.ok(!found.isError, text(found));
    assert.ok(Array.isArray(found.structuredContent.result), JSON.stringify(found.structuredContent));
    // A JSON body the mock checks against the spec and answers.
    const ordered = await c.callTool({
      name: 'pets__placeOrder',
      arguments: { body: { petId: 7, quantity: 2, status: 'placed', complete: false } },
    });
    if (version === '2.0') {
      // This 2.0 document declares no `consumes`, and Prism then refuses any
      // body ("No supported content types"): the refusal comes back as such.
      assert.equal(ordered.isError, true);
      assert.match(text(ordered), /^POST \/store\/order: HTTP 400/);
    } else {
      assert.ok(!ordered.isError, text(ordered));
      assert.equal(typeof ordered.structuredContent.id, 'number', JSON.stringify(ordered));
    }
    // The spec gives addPet only a 405 answer: an error result with the status.
    const added = await c.callTool({
      name: 'pets__addPet',
      arguments: { body: { name: 'rex', photoUrls: ['https://example.com/rex.png'], status: 'available' } },
    });
    assert.equal(added.isError, true);
    assert.match(text(added), /^POST \/pet: HTTP 405/);
    // A header parameter; the spec gives deletePet no 2xx answer, so the mock's is a 400.
    const deleted = await c.callTool({ name: 'pets__deletePet', arguments: { petId: 7, api_key: 'h' } });
    assert.equal(deleted.isError, true);
    assert.match(text(deleted), /^DELETE \/pet\/\{petId\}: HTTP 400/);
    // Arguments the schema refuses never reach the API.
    await assert.rejects(c.callTool({ name: 'pets__getPetById', arguments: { petId: 'seven' } }),
      (e) => e.code === -32602 && /Invalid arguments for getPetById/.test(e.message));
    // A path parameter cannot climb out of its segment.
    await assert.rejects(c.callTool({ name: 'pets__getUserByName', arguments: { username: '../../admin' } }),
      (e) => e.code === -32602 && /contains '\/': it would change the path/.test(e.message));
    // The key was sent: Prism saw requests that passed its security check,
    // and nothing the client received contains it.
    assert.ok(!JSON.stringify([pet, found, ordered, added, deleted, refused]).includes(KEY));
    assert.ok(prism.log.some((l) => /HTTP SERVER\] get \/pet\/7 /.test(l)), prism.log.slice(-20).join('\n'));

    // The audit has each call with the API's status; never the key.
    await gateway.stop();
    const records = auditedRequests(path.join(gateway.home, 'gateway', 'audit.db'));
    const calls = records.filter((r) => r.method === 'tools/call');
    const getRecord = calls.find((r) => r.target === 'pets__getPetById' && r.outcome === 'ok');
    assert.equal(getRecord.upstream_http.status, 200);
    assert.ok(!JSON.stringify(records).includes(KEY));
  });
}

// An API over TLS: s_server (OpenSSL 3.5) with an ECDSA certificate from a
// test CA, answering GET /status.json from its directory (-WWW).
function makeCa(dir) {
  const run = (args) => {
    const r = spawnSync(OPENSSL, args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=pqmcp test CA', '-days', '2']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'api.key',
    '-out', 'api.csr', '-subj', '/CN=localhost']);
  writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=DNS:localhost\n');
  run(['x509', '-req', '-in', 'api.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'api.crt', '-days', '2', '-extfile', 'san.cnf']);
}

async function sServer(t, dir, groups) {
  const port = await freePort();
  const child = spawn(OPENSSL, ['s_server', '-accept', String(port), '-cert', 'api.crt', '-key', 'api.key',
    '-WWW', '-groups', groups, '-naccept', '50'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  await waitForPort(port);
  return port;
}

test('an API over TLS: hybrid when it can, X25519 when not, its name verified', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const www = path.join(dir, 'www');
  mkdirSync(www);
  makeCa(www);
  writeFileSync(path.join(www, 'status.json'), '{"ok":true,"service":"status"}');
  const spec = path.join(dir, 'status.yaml');
  writeFileSync(spec, [
    'openapi: 3.1.0',
    'info: { title: Status, version: "1" }',
    'paths:',
    '  /status.json:',
    '    get:',
    '      operationId: status',
    '      responses:',
    '        "200":',
    '          description: ok',
    '          content: { application/json: { schema: { type: object, properties: { ok: { type: boolean } } } } }',
    '',
  ].join('\n'));
  const hybrid = await sServer(t, www, 'X25519MLKEM768:X25519');
  const classical = await sServer(t, www, 'X25519');
  const config = path.join(dir, 'gw.yaml');
  const upstream = (name, url) => [`  - name: ${name}`, '    openapi:', `      spec: ${spec}`,
    `      base_url: ${url}`, `      ca: ${path.join(www, 'ca.crt')}`];
  writeFileSync(config, ['upstreams:',
    ...upstream('pq', `https://localhost:${hybrid}`),
    ...upstream('old', `https://localhost:${classical}`),
    ...upstream('wrong', `https://127.0.0.1:${hybrid}`),
    // The description itself served over HTTPS (read at start, as a file would be).
    '  - name: fetched', '    openapi:', `      spec: https://localhost:${hybrid}/status.yaml`,
    `      base_url: https://localhost:${hybrid}`, `      ca: ${path.join(www, 'ca.crt')}`, ''].join('\n'));
  writeFileSync(path.join(www, 'status.yaml'), readFileSync(spec));
  const gateway = await startGateway(t, ['--config', config], { dir });
  const c = await client(t, gateway);
  const pq = await c.callTool({ name: 'pq__status', arguments: {} });
  assert.ok(!pq.isError, text(pq));
  assert.deepEqual(pq.structuredContent, { ok: true, service: 'status' });
  assert.equal(pq._meta['pqmcp/upstream_http'].tls.group, 'X25519MLKEM768');
  const old = await c.callTool({ name: 'old__status', arguments: {} });
  assert.ok(!old.isError, text(old));
  assert.equal(old._meta['pqmcp/upstream_http'].tls.group.toLowerCase(), 'x25519');
  assert.equal(old._meta['pqmcp/upstream_http'].tls.quantum_safe_group, false);
  // The certificate is for localhost, not for 127.0.0.1.
  const fetched = await c.callTool({ name: 'fetched__status', arguments: {} });
  assert.ok(!fetched.isError, text(fetched));
  assert.equal(fetched.structuredContent.ok, true);
  const wrong = await c.callTool({ name: 'wrong__status', arguments: {} });
  assert.equal(wrong.isError, true);
  assert.match(text(wrong), /the server's certificate is refused/);
  await gateway.stop();
  const records = auditedRequests(path.join(gateway.home, 'gateway', 'audit.db'))
    .filter((r) => r.method === 'tools/call' && r.outcome === 'ok' && r.upstream_http);
  assert.deepEqual(records.map((r) => [r.target, r.upstream_http.tls.group.toLowerCase()]).sort(),
    [['fetched__status', 'x25519mlkem768'], ['old__status', 'x25519'], ['pq__status', 'x25519mlkem768']]);
  // A description that is not there stops the start, with its address (s_server
  // answers a missing file with a 200 and an error page: not a description).
  const missing = path.join(dir, 'missing.yaml');
  writeFileSync(missing, ['upstreams:', '  - name: gone', '    openapi:',
    `      spec: https://localhost:${hybrid}/nothing.yaml`, `      base_url: https://localhost:${hybrid}`,
    `      ca: ${path.join(www, 'ca.crt')}`, ''].join('\n'));
  const refused = spawnSync(PQMCP, ['serve', '--config', missing, '--listen', '127.0.0.1:0', '--identity',
    path.join(dir, 'gw2')], { encoding: 'utf8', timeout: 30000 });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /upstream gone: openapi\.spec: .*https:\/\/localhost:\d+\/nothing\.yaml/);
});

test('openapi inspect and policy, as an operator runs them', { timeout: 60000 }, (t) => {
  const dir = tempDir(t);
  const spec = path.join(EXAMPLES, '3.0', 'json', 'petstore.json');
  const inspect = spawnSync(PQMCP, ['openapi', 'inspect', spec, '--upstream', 'pets', '--json'], { encoding: 'utf8' });
  assert.equal(inspect.status, 0, inspect.stderr);
  const out = JSON.parse(inspect.stdout);
  assert.equal(out.counts.tools, 19);
  assert.equal(out.counts.skipped, 1);
  assert.match(out.warnings[0].message, /multipart\/form-data/);
  const bad = spawnSync(PQMCP, ['openapi', 'inspect', path.join(dir, 'missing.yaml')], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /no such file/);
  const policy = spawnSync(PQMCP, ['openapi', 'policy', spec, '--upstream', 'pets'], { encoding: 'utf8' });
  assert.equal(policy.status, 0, policy.stderr);
  const file = path.join(dir, 'pets-policy.yaml');
  writeFileSync(file, policy.stdout);
  const lint = spawnSync(PQMCP, ['policy', 'lint', file], { encoding: 'utf8' });
  assert.equal(lint.status, 0, lint.stderr + policy.stdout);
  const check = (tool, args) => {
    const r = spawnSync(PQMCP, ['policy', 'check', '--policy', file, '--request',
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } })],
    { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout).decision;
  };
  assert.equal(check('pets__getPetById', { petId: 1 }), 'allow');
  assert.equal(check('pets__addPet', { body: { name: 'rex', photoUrls: [] } }), 'ask');
  assert.equal(check('pets__deletePet', { petId: 1 }), 'deny');
  assert.equal(check('pets__findPetsByStatus', { status: ['lost'] }), 'allow');
});

test('SIGHUP reads the description again, and arguments are checked against the new one', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const spec = path.join(dir, 'item.json');
  const write = (type) => writeFileSync(spec, JSON.stringify({
    openapi: '3.0.3',
    info: { title: 'item', version: '1' },
    paths: {
      '/item/{id}': {
        get: {
          operationId: 'getItem',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type } }],
          responses: { 200: { description: 'the item' } },
        },
      },
    },
  }));
  write('integer');
  // Nothing listens there: a call the schema lets through fails to connect,
  // one it refuses never leaves the gateway.
  const config = path.join(dir, 'gw.yaml');
  writeFileSync(config, ['upstreams:', '  - name: api', '    openapi:', `      spec: ${spec}`,
    `      base_url: http://127.0.0.1:${await freePort()}`, '      timeout: 2s', ''].join('\n'));
  const gateway = await startGateway(t, ['--config', config], { dir });
  const c = await client(t, gateway);
  const verdict = async () => {
    try {
      await c.callTool({ name: 'api__getItem', arguments: { id: 'abc' } });
      return 'let through';
    } catch (err) {
      if (/Invalid arguments for (api__)?getItem/.test(err.message)) return 'refused';
      throw err;
    }
  };
  assert.equal(await verdict(), 'refused');
  // Several reloads, the schema changing each time: a cache that kept the
  // schemas of an earlier description (one whose memory a later one reuses)
  // would answer for the wrong one.
  for (const [round, type] of ['string', 'integer', 'string', 'integer', 'string', 'integer'].entries()) {
    write(type);
    const seen = gateway.stderr.length;
    gateway.child.kill('SIGHUP');
    await until(() => gateway.stderr.slice(seen).some((l) => /SIGHUP: reading upstream api's OpenAPI description again/.test(l)),
      10000, 'the reload');
    const expected = type === 'integer' ? 'refused' : 'let through';
    let got = await verdict();
    // The reload runs right after its log line, on the gateway's first thread.
    for (let i = 0; i < 50 && got !== expected; i++) {
      await new Promise((r) => setTimeout(r, 20));
      got = await verdict();
    }
    assert.equal(got, expected, `round ${round}: id "abc" against a schema of type ${type}`);
  }
});
