// The dashboard in a real browser: Debian's Chromium, headless, opens it over
// HTTPS trusting the gateway's ML-DSA key by its SPKI pin only
// (--ignore-certificate-errors-spki-list, not by ignoring errors). The
// gateway's own handshake record must show the browser negotiated
// X25519MLKEM768 with an ML-DSA-65 signature; the page must render the live
// session table; a screenshot is kept as a test artifact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';

import { OPENSSL, PQMCP, connectTransport, startGateway, tempDir, until } from './lib.mjs';

const CHROMIUM = process.env.PQMCP_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.PQMCP_ARTIFACTS ?? path.join(os.tmpdir(), 'pqmcp-artifacts');
const TOKEN = '0123456789abcdef0123456789abcdef';

// base64(SHA-256(SubjectPublicKeyInfo DER)) of a certificate: what Chromium's
// --ignore-certificate-errors-spki-list takes. The PEM public key is the SPKI
// DER in base64, so only the certificate parsing needs OpenSSL 3.5 (ML-DSA).
function spkiPin(certificate) {
  const out = spawnSync(OPENSSL, ['x509', '-in', certificate, '-pubkey', '-noout'], { encoding: 'utf8' });
  assert.equal(out.status, 0, out.stderr);
  const b64 = out.stdout.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64');
}

function chromium(dir, pin, url, extra) {
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${path.join(dir, 'chromium-profile')}`,
    `--ignore-certificate-errors-spki-list=${pin}`,
    '--virtual-time-budget=6000', '--window-size=1400,1100', ...extra, url,
  ];
  return spawnSync(CHROMIUM, args, { encoding: 'utf8', timeout: 90000, maxBuffer: 32 << 20 });
}

function exportRecords(db, kind) {
  const out = spawnSync(PQMCP, ['audit', 'export', db, '--kind', kind, '--json'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(out.status, 0, out.stderr);
  return out.stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

test('Chromium opens the dashboard over X25519MLKEM768 + ML-DSA-65 and sees the live session', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium`);
  const dir = tempDir(t);
  const gateway = await startGateway(t, ['--demo', '--dashboard-token', TOKEN], { dir });
  const dashboardLine = gateway.stdout.match(/dashboard (https:\S+)/) ??
    await until(() => /dashboard (https:\S+)/.test(gateway.stdout), 5000, 'the dashboard line')
      .then(() => gateway.stdout.match(/dashboard (https:\S+)/));
  const url = dashboardLine[1];
  assert.equal(url, `https://127.0.0.1:${gateway.port}/dashboard?token=${TOKEN}`);

  // A live MCP session from an identified client, held open while the browser looks.
  const client = new Client({ name: 'dashboard-test', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  t.after(() => client.close());
  await client.callTool({ name: 'demo__echo', arguments: { message: 'seen by the dashboard' } });
  const clientId = spawnSync(PQMCP, ['id', path.join(dir, 'client')], { encoding: 'utf8' }).stdout.trim();
  assert.match(clientId, /^pq1[a-z2-7]+$/);

  const pin = spkiPin(path.join(dir, 'gateway', 'identity.crt'));
  const dom = chromium(dir, pin, url, ['--dump-dom']);
  assert.equal(dom.status, 0, `chromium failed: ${dom.stderr}`);
  const html = dom.stdout;
  assert.match(html, /<body[^>]*data-loaded="true"/, 'the page loaded its data');
  const sessions = html.match(/<table id="sessions">[\s\S]*?<\/table>/);
  assert.ok(sessions, 'the session table is there');
  assert.ok(sessions[0].includes(clientId), `the session table shows the client ${clientId}:\n${sessions[0]}`);
  assert.match(sessions[0], /X25519MLKEM768/);
  assert.match(sessions[0], /mldsa65/);
  const decisions = html.match(/<table id="decisions">[\s\S]*?<\/table>/)[0];
  assert.match(decisions, /demo__echo/);
  assert.match(html, /100\.0% of \d+ connections quantum-safe/);

  mkdirSync(ARTIFACTS, { recursive: true });
  const png = path.join(ARTIFACTS, 'dashboard.png');
  const shot = chromium(dir, pin, url, [`--screenshot=${png}`]);
  assert.equal(shot.status, 0, `chromium screenshot failed: ${shot.stderr}`);
  assert.ok(statSync(png).size > 10000, 'the screenshot has content');
  t.diagnostic(`screenshot: ${png}`);

  // Without the token: no data for the browser either.
  const refused = chromium(dir, pin, `https://127.0.0.1:${gateway.port}/dashboard/data`, ['--dump-dom']);
  assert.match(refused.stdout, /unauthorized/);

  // The gateway's own record of the browser's handshakes: no client
  // certificate, X25519MLKEM768, and the gateway signed with ML-DSA-65.
  const db = path.join(dir, 'gateway', 'audit.db');
  let browser = [];
  await until(() => {
    browser = exportRecords(db, 'connection').filter((r) => r.result === 'ok' && r.peer_id === null);
    return browser.length > 0;
  }, 10000, 'the browser connection records');
  // Chromium resumes its later connections (no signature in a resumed
  // handshake, the key exchange is still X25519MLKEM768); at least one is full.
  for (const r of browser) {
    assert.equal(r.group, 'X25519MLKEM768');
    assert.equal(r.own_signature, r.resumed ? '' : 'mldsa65');
    assert.equal(r.quantum_safe, true);
    assert.equal(r.protocol, 'TLSv1.3');
  }
  assert.ok(browser.some((r) => !r.resumed), 'a full handshake with the browser');
  // And the MCP client's, with its identity.
  const identified = exportRecords(db, 'connection').filter((r) => r.peer_id === clientId);
  assert.ok(identified.length > 0);
  // pqmcp connect pins the gateway: raw public keys both ways (RFC 7250);
  // the browser gets a certificate.
  assert.ok(identified.every((r) => r.certificate_type === 'raw_public_key'), JSON.stringify(identified));
  assert.ok(browser.every((r) => r.certificate_type === ''), JSON.stringify(browser));
});

// --browser-cert: a TLS client that cannot verify ML-DSA (OpenSSL 3.5's
// s_client offering only ECDSA, as such a browser would) is served the extra
// ECDSA P-256 certificate; the key exchange stays X25519MLKEM768, every client
// that offers ML-DSA still gets the ML-DSA identity, and the gateway's audit
// says which certificate each connection saw. Without the option, such a
// client gets no connection at all.
function sClient(port, extra) {
  const r = spawnSync(OPENSSL, ['s_client', '-connect', `127.0.0.1:${port}`, '-groups', 'X25519MLKEM768',
    '-tls1_3', '-brief', ...extra], { input: '', encoding: 'utf8', timeout: 20000 });
  return { status: r.status, output: r.stdout + r.stderr };
}

test('--browser-cert serves ECDSA P-256 to a client without ML-DSA, over X25519MLKEM768', async (t) => {
  const plain = await startGateway(t, ['--demo']);
  const refused = sClient(plain.port, ['-sigalgs', 'ecdsa_secp256r1_sha256']);
  assert.notEqual(refused.status, 0, refused.output);
  assert.match(refused.output, /handshake failure|alert number 40/i, refused.output);

  const dir = tempDir(t);
  const gateway = await startGateway(t, ['--demo', '--browser-cert', 'auto'], { dir });
  const browserCert = path.join(dir, 'gateway', 'browser', 'identity.crt');
  const browserId = spawnSync(PQMCP, ['id', browserCert], { encoding: 'utf8' }).stdout.trim();
  assert.match(browserId, /^ec1[a-z2-7]+$/);
  await until(() => gateway.stderr.some((l) => l.includes(`browser certificate ${browserId}`)), 5000,
    'the browser certificate log line');

  const ecdsa = sClient(gateway.port, ['-sigalgs', 'ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256']);
  assert.equal(ecdsa.status, 0, ecdsa.output);
  assert.match(ecdsa.output, /Negotiated TLS1\.3 group: X25519MLKEM768/, ecdsa.output);
  assert.match(ecdsa.output, /Signature type: ecdsa_secp256r1_sha256/, ecdsa.output);
  assert.match(ecdsa.output, new RegExp(`Peer certificate: CN\\s*=\\s*${browserId}`), ecdsa.output);

  const mldsa = sClient(gateway.port, []);
  assert.equal(mldsa.status, 0, mldsa.output);
  assert.match(mldsa.output, /Signature type: mldsa65/, mldsa.output);
  assert.match(mldsa.output, new RegExp(`Peer certificate: CN\\s*=\\s*${gateway.peer}`), mldsa.output);

  // And the official SDK through pqmcp connect, pinned to the ML-DSA identity, is unaffected.
  const client = new Client({ name: 'browser-cert-test', version: '1.0.0' });
  await client.connect(connectTransport(gateway));
  const echoed = await client.callTool({ name: 'demo__echo', arguments: { message: 'still ML-DSA' } });
  assert.equal(echoed.content[0].text, 'still ML-DSA');
  await client.close();

  await gateway.stop();
  const records = exportRecords(path.join(dir, 'gateway', 'audit.db'), 'connection')
    .filter((r) => r.result === 'ok');
  assert.ok(records.every((r) => r.group === 'X25519MLKEM768'), JSON.stringify(records));
  const signatures = records.filter((r) => !r.resumed).map((r) => r.own_signature);
  assert.equal(signatures.filter((s) => s === 'ecdsa_secp256r1_sha256').length, 1, signatures.join(','));
  assert.ok(signatures.filter((s) => s === 'mldsa65').length >= 2, signatures.join(','));
});
