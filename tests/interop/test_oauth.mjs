// The gateway as an OAuth 2.1 resource server (issue 17, items 1-3), against
// a real authorization server (oidc-provider, oauth_server.mjs) issuing JWT
// access tokens, and the official SDK's own OAuth support (its
// client_credentials provider) over X25519MLKEM768 on Node 24. Every refusal
// is checked for its status, its WWW-Authenticate challenge and its reason.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { fetch as undiciFetch } from 'undici';
import { createRemoteJWKSet, jwtVerify } from 'jose';

import { PQMCP, auditedRequests, connectTransport, startGateway, tempDir, text, until } from './lib.mjs';
import { peerIdOf, pinnedAgent } from './lib24.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);

// oidc-provider on 127.0.0.1; `port` to come back on the same issuer.
async function startAuthorizationServer(t, keys, port = 0) {
  const child = spawn(process.execPath, [path.join(here, 'oauth_server.mjs')], {
    env: { ...process.env, PORT: String(port), KEYS: keys },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
    }
    await exited;
  };
  t.after(stop);
  const issuer = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no issuer line: ${stderr}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/issuer (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return { issuer, stop, port: Number(new URL(issuer).port) };
}

async function token(as, client, resource, scope) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', resource });
  if (scope) {
    body.set('scope', scope);
  }
  const res = await fetch(`${as.issuer}/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${client}:secret`).toString('base64')}` },
    body,
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json.access_token;
}

const initialize = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'oauth-test', version: '1' } },
};

// One POST to the gateway's /mcp, with a bearer token if given.
async function post(gateway, agent, body, { bearer, session } = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  if (bearer) {
    headers.authorization = `Bearer ${bearer}`;
  }
  if (session) {
    headers['mcp-session-id'] = session;
    headers['mcp-protocol-version'] = '2025-11-25';
  }
  const res = await undiciFetch(gateway.url, { method: 'POST', headers, body: JSON.stringify(body), dispatcher: agent });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function challenge(res) {
  return res.headers.get('www-authenticate') ?? '';
}

// One subtest per [what, make a token, status, error, description]: an
// initialize with that token is refused so; with `metadataUrl`, its
// challenge points there and names the scope and the error.
async function refusalTests(t, gateway, agent, refusals, metadataUrl) {
  for (const [what, make, status, error, description] of refusals) {
    await t.test(`${what}: ${status} ${error}`, async () => {
      const res = await post(gateway, agent, initialize, { bearer: await make() });
      assert.equal(res.status, status, res.text);
      const body = JSON.parse(res.text);
      assert.equal(body.error, error);
      assert.match(body.error_description, description);
      if (metadataUrl) {
        assert.ok(challenge(res).startsWith(`Bearer resource_metadata="${metadataUrl}", scope="tools:call", error="${error}"`), challenge(res));
      }
    });
  }
}

// A minimal MCP server over plain HTTP on 127.0.0.1: one tool, `hello`.
// `gate(req)` runs first for each request: it answers and returns false to
// stop there, or returns what the tool's text says.
async function startMcpUpstream(t, gate) {
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const greeting = await gate(req, res);
    if (greeting === false) {
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const msg = JSON.parse(body);
    if (msg.id === undefined) {
      res.writeHead(202).end();
      return;
    }
    const result = msg.method === 'initialize'
      ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'upstream', version: '1' } }
      : msg.method === 'tools/list'
        ? { tools: [{ name: 'hello', description: 'says hello', inputSchema: { type: 'object' } }] }
        : { content: [{ type: 'text', text: greeting }] };
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  return server;
}

// RFC 7662: an opaque token means nothing to the gateway; it asks the
// authorization server's introspection endpoint (found in its metadata),
// authenticating as its own client, and keeps the answer at most `cache`.
test('OAuth introspection: opaque tokens asked about at oidc-provider, refused once revoked', { timeout: 120000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, `run with Node 24 (OpenSSL ${process.versions.openssl})`);
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const secret = path.join(dir, 'introspection-secret');
  writeFileSync(secret, 'secret\n', { mode: 0o600 });
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--oauth-scope', 'tools:call',
    '--oauth-introspection', `gateway:${secret}`, '--oauth-introspection-cache', '1s'], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());

  const opaque = await token(as, 'opaque', gateway.url, 'tools:call tools:list');
  assert.ok(!opaque.includes('.'), `an opaque token: ${opaque}`);
  const init = await post(gateway, agent, initialize, { bearer: opaque });
  assert.equal(init.status, 200, init.text);
  const session = init.headers.get('mcp-session-id');
  const call = await post(gateway, agent, { jsonrpc: '2.0', id: 2, method: 'tools/call',
    params: { name: 'demo__echo', arguments: { message: 'opaque' } } }, { bearer: opaque, session });
  assert.equal(call.status, 200, call.text);
  assert.match(call.text, /opaque/);

  // The caller is the token's client (a client-credentials token has no
  // other subject), in the audit trail as for a JWT.
  await until(() => auditedRequests(path.join(dir, 'gateway', 'audit.db')).some((r) => r.target === 'demo__echo'));
  const record = auditedRequests(path.join(dir, 'gateway', 'audit.db')).find((r) => r.target === 'demo__echo');
  assert.equal(record.token_subject, 'opaque');
  assert.equal(record.token_client, 'opaque');

  const refusals = [
    ['an opaque token for another resource', async () => token(as, 'opaque', 'https://elsewhere.example/mcp', 'tools:call'),
      401, 'invalid_token', /not issued for/],
    ['an opaque token without the required scope', async () => token(as, 'opaque', gateway.url, 'tools:list'),
      403, 'insufficient_scope', /lacks a required scope/],
    ['a token the authorization server never issued', async () => 'NeverIssuedByThatServer0123456789abcdefghijk',
      401, 'invalid_token', /not active/],
  ];
  await refusalTests(t, gateway, agent, refusals);

  await t.test('revoked (RFC 7009): refused once the cached answer is older than the cache', async () => {
    const revoke = await fetch(`${as.issuer}/token/revocation`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from('opaque:secret').toString('base64')}` },
      body: new URLSearchParams({ token: opaque, token_type_hint: 'access_token' }),
    });
    assert.equal(revoke.status, 200);
    await new Promise((r) => setTimeout(r, 1300));
    const res = await post(gateway, agent, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { bearer: opaque, session });
    assert.equal(res.status, 401, res.text);
    assert.match(JSON.parse(res.text).error_description, /not active/);
  });

  await t.test('the authorization server gone: 503 with Retry-After, not a hang and not a 401', async () => {
    const fresh = await token(as, 'opaque', gateway.url, 'tools:call');
    await as.stop();
    const res = await post(gateway, agent, initialize, { bearer: fresh });
    assert.equal(res.status, 503, res.text);
    assert.equal(res.headers.get('retry-after'), '5');
    assert.match(JSON.parse(res.text).error_description, /could not be asked about the token/);
  });
});

test('OAuth claims in the policy: claim:NAME=VALUE matches a token\'s claims from oidc-provider', { timeout: 120000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, `run with Node 24 (OpenSSL ${process.versions.openssl})`);
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(policy, [
    'default: deny',
    'groups:',
    '  acme-writers: ["claim:groups=writers"]',
    'rules:',
    '  - id: acme-echo',
    '    match: { identity: ["claim:tenant=acme"], tool: demo__echo }',
    '    effect: allow',
    '  - id: writers-add',
    '    match: { identity: group:acme-writers, tool: demo__add }',
    '    effect: allow',
  ].join('\n'));
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--policy', policy], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());

  const call = async (bearer, name, args) => {
    const init = await post(gateway, agent, initialize, { bearer });
    assert.equal(init.status, 200, init.text);
    const session = init.headers.get('mcp-session-id');
    const res = await post(gateway, agent, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } },
      { bearer, session });
    assert.equal(res.status, 200, res.text);
    return res.text;
  };
  // agent's tokens carry tenant "acme" and groups ["readers", "writers"];
  // short's tenant "globex" (oauth_server.mjs).
  const acme = await token(as, 'agent', gateway.url, 'tools:call');
  const globex = await token(as, 'short', gateway.url, 'tools:call');
  assert.equal(JSON.parse(Buffer.from(acme.split('.')[1], 'base64url')).tenant, 'acme');
  assert.match(await call(acme, 'demo__echo', { message: 'tenant acme' }), /tenant acme/);
  assert.match(await call(acme, 'demo__add', { a: 2, b: 3 }), /5/);
  assert.match(await call(globex, 'demo__echo', { message: 'tenant globex' }), /Denied by policy: no rule matches tools\/call demo__echo/);
});

test('OAuth introspection: a secret without its client, or a bad endpoint, is refused at start', async (t) => {
  const dir = tempDir(t);
  const res = spawnSync(PQMCP, ['serve', '--demo', '--identity', path.join(dir, 'gw'), '--listen', '127.0.0.1:0',
    '--oauth-issuer', 'http://127.0.0.1:9', '--oauth-introspection', 'gateway'], { encoding: 'utf8', timeout: 20000 });
  assert.equal(res.status, 1, res.stderr);
  assert.match(res.stderr, /--oauth-introspection gateway: expected CLIENT_ID:SECRET_FILE/);
  const bad = spawnSync(PQMCP, ['serve', '--demo', '--identity', path.join(dir, 'gw'), '--listen', '127.0.0.1:0',
    '--oauth-issuer', 'http://127.0.0.1:9', '--oauth-introspection', `gateway:${path.join(dir, 's')}`,
    '--oauth-introspection-endpoint', 'http://as.example/introspect'], { encoding: 'utf8', timeout: 20000 });
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /oauth.introspection.endpoint must be an https URL/);
});

test('OAuth resource server: metadata, challenge, JWT access tokens from oidc-provider checked one by one', { timeout: 180000 }, async (t) => {
  assert.match(process.versions.openssl, /^3\.[5-9]/, `run with Node 24 (OpenSSL ${process.versions.openssl})`);
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--oauth-scope', 'tools:call',
    '--oauth-clock-skew', '1s'], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());
  const origin = new URL(gateway.url).origin;
  const metadataUrl = `${origin}/.well-known/oauth-protected-resource/mcp`;

  await t.test('Protected Resource Metadata (RFC 9728) at its well-known paths', async () => {
    for (const url of [metadataUrl, `${origin}/.well-known/oauth-protected-resource`]) {
      const res = await undiciFetch(url, { dispatcher: agent });
      assert.equal(res.status, 200, url);
      assert.deepEqual(await res.json(), {
        resource: gateway.url,
        authorization_servers: [as.issuer],
        bearer_methods_supported: ['header'],
        resource_name: 'pqmcp gateway',
        scopes_supported: ['tools:call'],
      });
    }
  });

  await t.test('no token: 401 with the metadata URL and the scope needed, nothing reaches the session layer', async () => {
    const res = await post(gateway, agent, initialize);
    assert.equal(res.status, 401);
    assert.equal(challenge(res), `Bearer resource_metadata="${metadataUrl}", scope="tools:call"`);
    assert.equal(JSON.parse(res.text).error, 'invalid_request');
  });

  const good = await token(as, 'agent', gateway.url, 'tools:call tools:list');
  let session;
  await t.test('a valid token opens a session and calls a tool', async () => {
    const init = await post(gateway, agent, initialize, { bearer: good });
    assert.equal(init.status, 200, init.text);
    session = init.headers.get('mcp-session-id');
    assert.ok(session);
    const call = await post(gateway, agent, { jsonrpc: '2.0', id: 2, method: 'tools/call',
      params: { name: 'demo__echo', arguments: { message: 'with a token' } } }, { bearer: good, session });
    assert.equal(call.status, 200, call.text);
    assert.match(call.text, /with a token/);
  });

  await t.test('the same session without its token, or with another subject\'s: refused', async () => {
    const none = await post(gateway, agent, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { session });
    assert.equal(none.status, 401);
    // A valid token of another subject: the session is not theirs (404, as
    // for a session that does not exist).
    const other = await token(as, 'short', gateway.url, 'tools:call');
    const stolen = await post(gateway, agent, { jsonrpc: '2.0', id: 4, method: 'tools/list' }, { bearer: other, session });
    assert.equal(stolen.status, 404, stolen.text);
    assert.match(stolen.text, /Session not found/);
  });

  const refusals = [
    ['an expired token', async () => {
      const short = await token(as, 'short', gateway.url, 'tools:call');
      await new Promise((r) => setTimeout(r, 2600));
      return short;
    }, 401, 'invalid_token', /expired/],
    ['a token for another resource (audience)', async () => token(as, 'agent', 'https://elsewhere.example/mcp', 'tools:call'),
      401, 'invalid_token', /not issued for/],
    ['a tampered signature', async () => {
      const [h, p, s] = good.split('.');
      const flipped = (s[5] === 'A' ? 'B' : 'A');
      return `${h}.${p}.${s.slice(0, 5)}${flipped}${s.slice(6)}`;
    }, 401, 'invalid_token', /signature does not verify/],
    ['a tampered payload (scope added)', async () => {
      const [h, p, s] = good.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url'));
      claims.scope += ' admin';
      return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    }, 401, 'invalid_token', /signature does not verify/],
    ['a token without the required scope', async () => token(as, 'lister', gateway.url, 'tools:list'),
      403, 'insufficient_scope', /lacks a required scope/],
    ['an unsigned token (alg none)', async () => {
      const [, p] = good.split('.');
      return `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${p}.`;
    }, 401, 'invalid_token', /not a signed JWT|not accepted/],
    ['not a JWT', async () => 'opaque-token-value', 401, 'invalid_token', /not a signed JWT/],
  ];
  await refusalTests(t, gateway, agent, refusals, metadataUrl);

  await t.test('a token from another issuer with the same keys: 401, issuer named', async () => {
    const other = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
    const foreign = await token(other, 'agent', gateway.url, 'tools:call');
    const res = await post(gateway, agent, initialize, { bearer: foreign });
    assert.equal(res.status, 401);
    assert.match(JSON.parse(res.text).error_description, new RegExp(`issued by ${other.issuer}, not ${as.issuer}`));
    await other.stop();
  });

  await t.test('key rotation: the authorization server comes back with a new key, the gateway fetches it', async () => {
    await as.stop();
    const rotated = await startAuthorizationServer(t, path.join(dir, 'rotated-keys.json'), as.port);
    assert.equal(rotated.issuer, as.issuer);
    // The first token with the new key makes the gateway fetch the keys
    // again, and the request waits for them.
    const fresh = await token(rotated, 'agent', gateway.url, 'tools:call');
    const accepted = await post(gateway, agent, initialize, { bearer: fresh });
    assert.equal(accepted.status, 200, accepted.text);
    // The old key is gone from the JWKS: a token signed with it no longer verifies.
    const res = await post(gateway, agent, initialize, { bearer: good });
    assert.equal(res.status, 401);
  });

  await t.test('a key the JWKS does not have: 401 (the keys were fetched moments ago: not again for 30 s)', async () => {
    const stranger = await startAuthorizationServer(t, path.join(dir, 'stranger-keys.json'));
    const unknown = await token(stranger, 'agent', gateway.url, 'tools:call');
    const res = await post(gateway, agent, initialize, { bearer: unknown });
    assert.equal(res.status, 401);
    assert.match(JSON.parse(res.text).error_description, /no key "key-\d+" for ES256/);
    await stranger.stop();
  });

  await t.test('the audit records the token\'s subject and client with each call', async () => {
    const db = path.join(dir, 'gateway', 'audit.db');
    await until(() => auditedRequests(db).some((r) => r.token_subject === 'agent'), 10000, 'audited');
    const call = auditedRequests(db).find((r) => r.method === 'tools/call' && r.token_subject === 'agent');
    assert.ok(call);
    assert.equal(call.token_client, 'agent');
    assert.equal(call.identity, null);  // no client certificate on this connection
  });
});

test('the official SDK\'s OAuth client (client_credentials) finds the authorization server through the gateway\'s challenge', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--oauth-scope', 'tools:call'], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());
  const provider = new ClientCredentialsProvider({
    clientId: 'agent', clientSecret: 'secret', expectedIssuer: as.issuer, scope: 'tools:call tools:list',
  });
  const client = new Client({ name: 'sdk-oauth', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), {
    authProvider: provider,
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
  }));
  const echo = await client.callTool({ name: 'demo__echo', arguments: { message: 'sdk oauth' } });
  assert.equal(text(echo), 'sdk oauth');
  await client.close();
  // The SDK asked for the gateway's own resource: the token it got names it.
  const claims = JSON.parse(Buffer.from(provider.tokens().access_token.split('.')[1], 'base64url'));
  assert.equal(claims.aud, gateway.url);
});

test('no token passthrough: the client\'s token never reaches an HTTP upstream', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  // An MCP server that keeps the headers it was sent.
  const seen = [];
  const upstream = await startMcpUpstream(t, (req) => {
    seen.push(req.headers);
    return 'hello';
  });
  const gateway = await startGateway(t, ['--upstream', `h=http://127.0.0.1:${upstream.address().port}/mcp`,
    '--oauth-issuer', as.issuer], { dir });
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());
  const bearer = await token(as, 'agent', gateway.url, 'tools:call');
  const init = await post(gateway, agent, initialize, { bearer });
  assert.equal(init.status, 200, init.text);
  const session = init.headers.get('mcp-session-id');
  const call = await post(gateway, agent, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'h__hello', arguments: {} } },
    { bearer, session });
  assert.equal(call.status, 200, call.text);
  assert.match(call.text, /hello/);
  assert.ok(seen.length > 0);
  for (const headers of seen) {
    assert.equal(headers.authorization, undefined, JSON.stringify(headers));
    assert.ok(!JSON.stringify(headers).includes(bearer));
  }
});

test('auth.require either and both: a known TLS client identity and a token, one or the other or both', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const ids = path.join(dir, 'client-id');
  const keygen = spawnSync(PQMCP, ['keygen', '--out', ids], { encoding: 'utf8' });
  assert.equal(keygen.status, 0, keygen.stderr);
  const clientCert = readFileSync(path.join(ids, 'identity.crt'), 'utf8');
  const clientKey = readFileSync(path.join(ids, 'identity.key'), 'utf8');
  const known = path.join(dir, 'known_peers');
  const added = spawnSync(PQMCP, ['peers', 'add', '--file', known, peerIdOf(clientCert), 'node-agent'], { encoding: 'utf8' });
  assert.equal(added.status, 0, added.stderr);

  for (const mode of ['either', 'both']) {
    await t.test(mode, async () => {
      const home = path.join(dir, mode);
      const gateway = await startGateway(t, ['--demo', '--known-peers', known, '--oauth-issuer', as.issuer,
        '--auth-require', mode], { dir: home });
      const gatewayCert = readFileSync(path.join(home, 'gateway', 'identity.crt'), 'utf8');
      const withCert = pinnedAgent(gatewayCert, gateway.peer, { key: clientKey, cert: clientCert });
      const withoutCert = pinnedAgent(gatewayCert, gateway.peer);
      t.after(() => withCert.close());
      t.after(() => withoutCert.close());
      const bearer = await token(as, 'agent', gateway.url, 'tools:call');

      const certOnly = await post(gateway, withCert, initialize);
      assert.equal(certOnly.status, mode === 'either' ? 200 : 401, certOnly.text);
      const both = await post(gateway, withCert, initialize, { bearer });
      assert.equal(both.status, 200, both.text);
      if (mode === 'either') {
        const tokenOnly = await post(gateway, withoutCert, initialize, { bearer });
        assert.equal(tokenOnly.status, 200, tokenOnly.text);
        const neither = await post(gateway, withoutCert, initialize);
        assert.equal(neither.status, 401);
        // A token that is sent is checked, whatever the certificate.
        const bad = await post(gateway, withCert, initialize, { bearer: `${bearer}x` });
        assert.equal(bad.status, 401);
      } else {
        // both: the listener wants a known client before any HTTP.
        await assert.rejects(post(gateway, withoutCert, initialize, { bearer }));
      }
      const db = path.join(home, 'gateway', 'audit.db');
      await until(() => auditedRequests(db).some((r) => r.token_subject === 'agent' && r.identity), 10000, 'audited with both');
    });
  }
});

test('pqmcp connect --token-file carries a token for the gateway inside the PQ tunnel', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--oauth-scope', 'tools:call'], { dir });
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, `${await token(as, 'agent', gateway.url, 'tools:call')}\n`, { mode: 0o600 });

  const client = new Client({ name: 'connect-oauth', version: '1.0.0' });
  await client.connect(connectTransport(gateway, ['--token-file', tokenFile]));
  const echo = await client.callTool({ name: 'demo__echo', arguments: { message: 'through connect' } });
  assert.equal(text(echo), 'through connect');
  await client.close();
  const db = path.join(dir, 'gateway', 'audit.db');
  await until(() => auditedRequests(db).some((r) => r.token_subject === 'agent' && r.identity), 10000,
    'the call audited with both the client\'s peer id and the token\'s subject');

  // Without the token the bridge's requests are refused by the gateway.
  const refused = new Client({ name: 'connect-no-token', version: '1.0.0' });
  await assert.rejects(refused.connect(connectTransport(gateway)), /401|Unauthorized|token/i);

  // A file that holds no token is refused before anything is sent.
  const junk = path.join(dir, 'junk');
  writeFileSync(junk, 'not a token at all\n');
  const bad = spawnSync(PQMCP, ['connect', gateway.url, '--pin', gateway.peer, '--token-file', junk], { encoding: 'utf8', input: '' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /--token-file .*junk: the first line is not an access token/);
});

// An MCP server that wants a token of this authorization server for itself
// (RFC 9728 metadata, 401 challenge), checked with jose. `seen`: each
// request's Authorization header and the token's claims (null: refused).
// Its tool says hello to the token's subject.
async function startProtectedUpstream(t, as) {
  const jwks = createRemoteJWKSet(new URL(`${as.issuer}/jwks`));
  const seen = [];
  const upstream = await startMcpUpstream(t, async (req, res) => {
    const port = upstream.address().port;
    const resource = `http://127.0.0.1:${port}/mcp`;
    if (req.method === 'GET' && req.url === '/.well-known/oauth-protected-resource/mcp') {
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ resource, authorization_servers: [as.issuer], scopes_supported: ['tools:call', 'tools:list'] }));
      return false;
    }
    const header = req.headers.authorization ?? '';
    let claims = null;
    try {
      ({ payload: claims } = await jwtVerify(header.replace(/^Bearer /, ''), jwks,
        { issuer: as.issuer, audience: resource, typ: 'at+jwt' }));
    } catch {
      claims = null;
    }
    seen.push({ header, claims });
    if (!claims) {
      res.writeHead(401, { 'www-authenticate': `Bearer resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"` }).end();
      return false;
    }
    return `hello, ${claims.sub}`;
  });
  return { upstream, seen, url: `http://127.0.0.1:${upstream.address().port}/mcp` };
}

test('pqmcp connect --oauth-client: the person at the machine signs in once in a browser; the sealed refresh token serves from then on', { timeout: 180000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const gateway = await startGateway(t, ['--demo', '--oauth-issuer', as.issuer, '--oauth-scope', 'tools:call'], { dir });
  // The address, from stderr however it was cut into chunks.
  const signIn = (lines) => lines.join('\n').match(/\n {2}(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)\n/)?.[1];

  // The first time: the address on stderr, the person at the browser, then MCP.
  const first = connectTransport(gateway, ['--oauth-client', 'operator']);
  const client = new Client({ name: 'connect-sign-in', version: '1.0.0' });
  const connecting = client.connect(first);
  await until(() => signIn(first.stderrLines), 30000, 'the sign-in address on stderr')
    .catch((e) => assert.fail(`${e.message}:\n${first.stderrLines.join('\n')}`));
  const address = new URL(signIn(first.stderrLines));
  assert.equal(address.searchParams.get('resource'), gateway.url);
  assert.equal(address.searchParams.get('scope'), 'tools:call');
  assert.equal(address.searchParams.get('code_challenge_method'), 'S256');
  const person = await browse(address.href);
  assert.equal(person.status, 200, person.text);
  await connecting;
  assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'signed in' } })), 'signed in');
  // Its access tokens live two seconds: connect refreshes them on its own.
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(text(await client.callTool({ name: 'demo__echo', arguments: { message: 'still in' } })), 'still in');
  await client.close();
  const stored = readdirSync(path.join(dir, 'client', 'oauth')).filter((f) => f.endsWith('.token'));
  assert.equal(stored.length, 1, String(stored));
  assert.equal(JSON.parse(readFileSync(path.join(dir, 'client', 'oauth', stored[0]), 'utf8')).resource, gateway.url);

  // From then on: no browser.
  const second = connectTransport(gateway, ['--oauth-client', 'operator']);
  const again = new Client({ name: 'connect-signed-in', version: '1.0.0' });
  await again.connect(second);
  assert.equal(text(await again.callTool({ name: 'demo__echo', arguments: { message: 'no browser' } })), 'no browser');
  await again.close();
  assert.ok(!signIn(second.stderrLines), second.stderrLines.join('\n'));

  const db = path.join(dir, 'gateway', 'audit.db');
  await until(() => auditedRequests(db).filter((r) => r.token_subject === 'alice' && r.token_client === 'operator').length >= 3,
    10000, 'the calls audited as alice through client operator');
});

test('an upstream protected by the same authorization server: reached with the gateway\'s own token, never the client\'s', { timeout: 120000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const { upstream, seen } = await startProtectedUpstream(t, as);
  const secret = path.join(dir, 'gateway-secret');
  writeFileSync(secret, 'secret\n', { mode: 0o600 });
  const gateway = await startGateway(t, ['--upstream', `p=http://127.0.0.1:${upstream.address().port}/mcp`,
    '--upstream-oauth', `p=gateway:${secret}`, '--oauth-issuer', as.issuer], { dir });
  assert.ok(gateway.stderr.some((l) => l.includes(`upstream p: OAuth token from ${as.issuer} (client gateway)`)), gateway.stderr.join('\n'));
  assert.ok(!gateway.stderr.join('\n').includes('secret\n'));
  const gatewayCert = readFileSync(path.join(dir, 'gateway', 'identity.crt'), 'utf8');
  const agent = pinnedAgent(gatewayCert, gateway.peer);
  t.after(() => agent.close());

  // The client comes with its own token (agent's), for the gateway.
  const client = new Client({ name: 'sdk-oauth-upstream', version: '1.0.0' });
  const provider = new ClientCredentialsProvider({ clientId: 'agent', clientSecret: 'secret', expectedIssuer: as.issuer, scope: 'tools:call' });
  await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), {
    authProvider: provider,
    fetch: (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
  }));
  const hello = await client.callTool({ name: 'p__hello', arguments: {} });
  assert.equal(text(hello), 'hello, gateway');
  await client.close();

  const clientToken = provider.tokens().access_token;
  const posts = seen.filter((s) => s.claims);
  assert.ok(posts.length >= 3, JSON.stringify(seen.map((s) => s.claims?.sub ?? 'refused')));
  for (const s of seen) {
    assert.ok(!s.header.includes(clientToken), 'the client\'s token reached the upstream');
    assert.equal(s.claims?.client_id, 'gateway', JSON.stringify(s.claims));
  }
});

// The person at the browser: follows the redirects from `url` with the
// cookies it is given, through the authorization server's sign-in and
// consent (oauth_server.mjs: alice, at once; with `deny`, a refusal), to the
// redirect URI. The last response's status and text.
async function browse(url, { deny = false } = {}) {
  const jar = new Map();
  let next = new URL(url);
  for (let hop = 0; hop < 20; hop += 1) {
    if (deny && next.pathname.startsWith('/interaction/')) {
      next.searchParams.set('deny', '1');
    }
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    const text = await res.text();
    if (!location) {
      return { status: res.status, text, url: next.href };
    }
    next = new URL(location, next);
  }
  throw new Error('more than 20 redirects');
}

// `pqmcp auth login ARGS`; `person(url, redirect)` acts once the address is shown.
function authLogin(args, person) {
  const child = spawn(PQMCP, ['auth', 'login', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let acted = null;
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    const m = stderr.match(/\n {2}(http\S+)\n[\s\S]*come back to (http:\/\/127\.0\.0\.1:\d+\/callback)/);
    if (m && !acted) {
      acted = person(m[1], m[2]);
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`auth login hung:\n${stderr}`)); }, 60000);
    child.on('exit', async (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, person: await acted });
    });
  });
}

test('auth login: a person enrolls the gateway once (authorization code, PKCE); its refresh token is sealed, used, rotated', { timeout: 180000 }, async (t) => {
  const dir = tempDir(t);
  const as = await startAuthorizationServer(t, path.join(dir, 'keys.json'));
  const { url, seen } = await startProtectedUpstream(t, as);
  const identity = path.join(dir, 'gateway');
  const config = ['--identity', identity, '--upstream', `p=${url}`, '--upstream-oauth-login', 'p=operator'];
  const tokenFile = path.join(identity, 'oauth', 'p.token');

  // Before anyone enrolled it, the gateway says what to do, and runs.
  const gateway = await startGateway(t, ['--upstream', `p=${url}`, '--upstream-oauth-login', 'p=operator'], { dir });
  assert.ok(gateway.stderr.some((l) => l.includes('upstream p: no OAuth token yet') && l.includes('no enrolled refresh token')
    && l.includes('(enroll it with: pqmcp auth login p)')), gateway.stderr.join('\n'));

  await t.test('a person who refuses: exit 1 with the server\'s error, nothing stored', async () => {
    const r = await authLogin(['p', ...config], (address) => browse(address, { deny: true }));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the authorization did not complete: the authorization server answered access_denied: the person said no/);
    assert.equal(r.person.status, 200);
    assert.throws(() => statSync(tokenFile), /ENOENT/);
  });

  await t.test('an upstream without authorization_code: nothing to enroll', async () => {
    const r = spawnSync(PQMCP, ['auth', 'login', 'p', '--identity', identity, '--upstream', `p=${url}`], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /upstream p is not enrolled by a person: its oauth.grant is not authorization_code/);
  });

  await t.test('an authorization server without PKCE (no code_challenge_methods_supported): refused before the browser', async () => {
    const bare = createServer((req, res) => {
      const issuer = `http://127.0.0.1:${bare.address().port}`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(
        { issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token` }));
    });
    await new Promise((r) => bare.listen(0, '127.0.0.1', r));
    t.after(() => bare.close());
    const old = await startProtectedUpstream(t, { issuer: `http://127.0.0.1:${bare.address().port}` });
    const r = await authLogin(['o', '--identity', identity, '--upstream', `o=${old.url}`, '--upstream-oauth-login', 'o=operator'],
      () => assert.fail('the browser was sent to a server without PKCE'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /does not offer PKCE with S256 \(code_challenge_methods_supported\): refusing to proceed/);
  });

  let enrolledFile;
  await t.test('enrolled: a forged answer without the state is ignored; the real one is stored sealed', async () => {
    const r = await authLogin(['p', ...config], async (address, redirect) => {
      const u = new URL(address);
      assert.equal(u.searchParams.get('code_challenge_method'), 'S256');
      assert.match(u.searchParams.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
      assert.equal(u.searchParams.get('resource'), url);
      assert.equal(u.searchParams.get('redirect_uri'), redirect);
      assert.equal(u.searchParams.get('scope'), 'tools:call tools:list');
      const forged = await fetch(`${redirect}?code=forged&state=guessed`);
      assert.equal(forged.status, 400);
      return browse(address);
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.person.status, 200);
    assert.match(r.person.text, /pqmcp is authorized/);
    assert.match(r.stderr, new RegExp(`Enrolled: upstream p now gets its tokens from ${as.issuer} as client operator; the refresh token is sealed under the gateway's identity in ${tokenFile}`));
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    enrolledFile = JSON.parse(readFileSync(tokenFile, 'utf8'));
    assert.deepEqual(Object.keys(enrolledFile).sort(), ['client_id', 'issuer', 'resource', 'sealed', 'version']);
    assert.equal(enrolledFile.resource, url);
    assert.equal(enrolledFile.issuer, as.issuer);
    assert.equal(enrolledFile.client_id, 'operator');
  });

  await t.test('the running gateway picks the enrollment up and calls as alice; tokens of two seconds are refreshed, the rotated refresh token written back', async () => {
    await until(() => gateway.stderr.some((l) => l.includes(`oauth: a token for ${url} from ${as.issuer}`)), 20000, 'the gateway taking up the enrollment');
    const agent = pinnedAgent(readFileSync(path.join(identity, 'identity.crt'), 'utf8'), gateway.peer);
    t.after(() => agent.close());
    const client = new Client({ name: 'sdk-enrolled-upstream', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(gateway.url), {
      fetch: (u, init) => undiciFetch(u, { ...init, dispatcher: agent }),
    }));
    assert.equal(text(await client.callTool({ name: 'p__hello', arguments: {} })), 'hello, alice');
    await new Promise((r) => setTimeout(r, 3500));
    assert.equal(text(await client.callTool({ name: 'p__hello', arguments: {} })), 'hello, alice');
    await client.close();
    const accepted = seen.filter((s) => s.claims);
    assert.ok(accepted.every((s) => s.claims.client_id === 'operator' && s.claims.sub === 'alice'), JSON.stringify(accepted.map((s) => s.claims)));
    assert.ok(new Set(accepted.map((s) => s.header)).size >= 2, 'the access token was never refreshed');
    const now = JSON.parse(readFileSync(tokenFile, 'utf8'));
    assert.notEqual(now.sealed, enrolledFile.sealed, 'the rotated refresh token was not written back');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  });

  await t.test('the file does not open under another identity, nor with what it names changed', async () => {
    const other = tempDir(t);
    mkdirSync(path.join(other, 'gateway', 'oauth'), { recursive: true });
    copyFileSync(tokenFile, path.join(other, 'gateway', 'oauth', 'p.token'));
    const stranger = await startGateway(t, ['--upstream', `p=${url}`, '--upstream-oauth-login', 'p=operator'], { dir: other });
    assert.ok(stranger.stderr.some((l) => l.includes('does not open under this identity')), stranger.stderr.join('\n'));
    await stranger.stop();
    // The same identity, the file edited to name another client.
    await gateway.stop();
    const original = readFileSync(tokenFile, 'utf8');
    writeFileSync(tokenFile, JSON.stringify({ ...JSON.parse(original), client_id: 'agent' }), { mode: 0o600 });
    const again = await startGateway(t, ['--upstream', `p=${url}`, '--upstream-oauth-login', 'p=agent'], { dir });
    assert.ok(again.stderr.some((l) => l.includes('does not open under this identity')), again.stderr.join('\n'));
    writeFileSync(tokenFile, original, { mode: 0o600 });
    await again.stop();
  });

  await t.test('auth logout removes it', () => {
    const r = spawnSync(PQMCP, ['auth', 'logout', 'p', ...config], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`Removed ${tokenFile}`));
    assert.throws(() => statSync(tokenFile), /ENOENT/);
  });
});
