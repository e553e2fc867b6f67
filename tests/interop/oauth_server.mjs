// A real OAuth 2.1 authorization server for the tests: oidc-provider (a
// certified OpenID Connect implementation, exact version in the lockfile),
// issuing RFC 9068 JWT access tokens by the client_credentials grant for the
// resource a client names (RFC 8707). Node 22 or later.
//
//   node oauth_server.mjs              env: PORT (0: any), KEYS (a JSON file of
//                                      private JWKs, created with one new EC
//                                      P-256 key if missing)
// Prints "issuer URL" once it listens.
//
// Clients (secret "secret"): agent (tools:call tools:list), lister
// (tools:list only), short (tools:call, tokens that live one second),
// gateway (tools:call tools:list: the gateway's own, towards upstreams; the
// only client that may introspect tokens, RFC 7662), opaque (tools:call
// tools:list, opaque access tokens: only introspection tells what they are;
// revocable, RFC 7009). operator: a public native client (no secret, PKCE,
// any loopback port) for the authorization code grant, with rotating
// refresh tokens and access tokens that live two seconds.
//
// The person at the browser: /interaction/UID signs in as alice and
// consents to what was asked, at once; with ?deny=1 the person refuses.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const keysFile = process.env.KEYS;
if (!existsSync(keysFile)) {
  const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  writeFileSync(keysFile, JSON.stringify([{ ...jwk, kid: `key-${Date.now()}`, alg: 'ES256', use: 'sig' }]));
}
const keys = JSON.parse(readFileSync(keysFile, 'utf8'));
const scopes = ['tools:call', 'tools:list'];

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const client = (id, scope) => ({
  client_id: id, client_secret: 'secret', grant_types: ['client_credentials'],
  redirect_uris: [], response_types: [], scope,
});
const provider = new Provider(issuer, {
  clients: [client('agent', 'tools:call tools:list'), client('lister', 'tools:list'), client('short', 'tools:call'),
    client('gateway', 'tools:call tools:list'), client('opaque', 'tools:call tools:list'),
    {
      client_id: 'operator', application_type: 'native', token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'], scope: 'tools:call tools:list',
    }],
  // Refresh tokens for every client allowed the grant, not tied to a session.
  issueRefreshToken: (ctx, c) => c.grantTypeAllowed('refresh_token'),
  expiresWithSession: () => false,
  jwks: { keys },
  scopes,
  // Claims a policy can match (claim:NAME=VALUE): agent's tenant and groups.
  extraTokenClaims: (ctx, token) => (token.clientId === 'agent'
    ? { tenant: 'acme', groups: ['readers', 'writers'] }
    : token.clientId === 'short' ? { tenant: 'globex' } : undefined),
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  // A function, so that each resource server's accessTokenTTL applies.
  ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 60 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: (ctx, c) => c.clientId === 'gateway' },
    revocation: { enabled: true, allowedPolicy: (ctx, c, token) => c.clientId === token.clientId },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, c) => ({
        scope: scopes.join(' '),
        audience: resource,
        accessTokenTTL: c.clientId === 'short' ? 1 : c.clientId === 'operator' ? 2 : 60,
        ...(c.clientId === 'opaque'
          ? { accessTokenFormat: 'opaque' }
          : { accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
      }),
    },
  },
});
const callback = provider.callback();
server.on('request', async (req, res) => {
  if (!req.url.startsWith('/interaction/')) {
    callback(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    const once = { mergeWithLastSubmission: false };
    if (new URL(req.url, issuer).searchParams.has('deny')) {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the person said no' }, once);
    } else if (details.prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: 'alice' } }, once);
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) {
        grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      }
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
    }
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
  }
});
console.log(`issuer ${issuer}`);
