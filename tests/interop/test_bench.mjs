// `pqmcp bench` as a user runs it: the quick run, with tools/call through a
// running gateway, prints bench.json; the sizes on the wire are the
// algorithms' own; the HTML report needs nothing from the network and
// Debian's Chromium, headless, draws every bar as tall as bench.json says
// (read back from the screenshot's pixels). The screenshot is kept as a test
// artifact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { PNG } from 'pngjs';

import { PQMCP, startGateway, tempDir } from './lib.mjs';

const CHROMIUM = process.env.PQMCP_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.PQMCP_ARTIFACTS ?? path.join(os.tmpdir(), 'pqmcp-artifacts');

// The report's chart geometry (src/measure/report.cpp).
const PLOT_TOP = 50;
const PLOT_HEIGHT = 280;
const PQ = [0x1f, 0x5f, 0x8b];
const CLASSICAL = [0x9a, 0x9a, 0x9a];

// On the wire, per FIPS 203/204, RFC 7748/8032, SEC 1 and the DER of each
// SubjectPublicKeyInfo: what every run must report whatever the machine.
const KEY_EXCHANGE_BYTES = {
  'ML-KEM-512': 800 + 768,
  'ML-KEM-768': 1184 + 1088,
  'ML-KEM-1024': 1568 + 1568,
  X25519: 32 + 32,
  'ECDH P-256': 65 + 65,
  'RSA-3072': 422 + 384,
};
const SIGNATURE_BYTES = {
  'ML-DSA-44': 1334 + 2420,
  'ML-DSA-65': 1974 + 3309,
  'ML-DSA-87': 2614 + 4627,
  Ed25519: 44 + 64,
  'ECDSA P-256': [91 + 70, 91 + 72],  // DER signatures vary by a byte or two
  'RSA-3072': 422 + 384,
};

function rows(report, id) {
  const section = report.sections.find((s) => s.id === id);
  assert.ok(section, `no section ${id}`);
  return section.rows;
}

function row(report, id, name) {
  const found = rows(report, id).find((r) => r.name === name || r.label === name);
  assert.ok(found, `no row ${name} in ${id}`);
  return found;
}

function chromium(dir, url, extra) {
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--hide-scrollbars',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${path.join(dir, 'chromium-profile')}`, '--force-device-scale-factor=1',
    '--window-size=1000,1400', ...extra, url,
  ];
  return spawnSync(CHROMIUM, args, { encoding: 'utf8', timeout: 90000, maxBuffer: 32 << 20 });
}

const near = (pixel, colour) => colour.every((c, i) => Math.abs(pixel[i] - c) <= 3);

// Bars in a screenshot. Per column, the longest run of a bar colour, gaps of
// up to 5 px bridged (where the bytes line crosses); the labels around a bar
// stand further off. Neighbouring columns of one colour make one bar, whose
// top and bottom are its columns' most common (a label or a point of the
// line covers a few columns). Bars at least 30 px wide count (the legend's
// squares are 12). Returned top to bottom, left to right.
function barsIn(png) {
  const columns = [];
  for (let x = 0; x < png.width; x += 1) {
    for (const [kind, colour] of [['pq', PQ], ['classical', CLASSICAL]]) {
      const runs = [];
      for (let y = 0; y < png.height; y += 1) {
        const i = (y * png.width + x) * 4;
        if (near([png.data[i], png.data[i + 1], png.data[i + 2]], colour)) {
          const last = runs[runs.length - 1];
          if (last && y - last.bottom <= 6) {
            last.bottom = y;
          } else {
            runs.push({ top: y, bottom: y });
          }
        }
      }
      // Each chart's bars are in their own band: keep every run of 20 px or more.
      for (const r of runs.filter((run) => run.bottom - run.top >= 20)) {
        columns.push({ x, kind, ...r });
      }
    }
  }
  const bars = [];
  for (const c of columns.sort((a, b) => a.x - b.x)) {
    const bar = bars.find((b) => b.kind === c.kind && c.x === b.right + 1 && Math.abs(c.bottom - b.columns[0].bottom) <= 40);
    if (bar) {
      bar.right = c.x;
      bar.columns.push(c);
    } else {
      bars.push({ kind: c.kind, left: c.x, right: c.x, columns: [c] });
    }
  }
  const mode = (values) => {
    const counts = new Map();
    values.forEach((v) => counts.set(v, (counts.get(v) ?? 0) + 1));
    return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  };
  return bars
    .filter((b) => b.right - b.left + 1 >= 30)
    .map((b) => {
      const bottom = mode(b.columns.map((c) => c.bottom));
      // The bytes line, a point and its label can cover the top of a bar,
      // never lift it: the top is the higher of the modes of its left and
      // right thirds (the point sits at the middle, its label to the right).
      const third = Math.floor(b.columns.length / 3);
      const top = Math.min(mode(b.columns.slice(0, third).map((c) => c.top)),
        mode(b.columns.slice(-third).map((c) => c.top)));
      return { kind: b.kind, left: b.left, right: b.right, bottom, height: bottom - top + 1 };
    })
    .sort((a, b) => a.bottom - b.bottom || a.left - b.left);
}

// The height a bar must have: the chart's log scale runs over whole decades,
// from one below the section's fastest row to the slowest's.
function expectedHeights(section) {
  const values = section.rows.map((r) => r.us);
  const lo = Math.floor(Math.log10(Math.min(...values))) - 1;
  const hi = Math.max(Math.ceil(Math.log10(Math.max(...values))), lo + 1);
  return values.map((us) => {
    const f = Math.min(Math.max((Math.log10(us) - lo) / (hi - lo), 0), 1);
    return PLOT_TOP + PLOT_HEIGHT - Math.round(PLOT_TOP + PLOT_HEIGHT * (1 - f));
  });
}

test('pqmcp bench --quick: PQ beside classical, the gateway measured, bench.json and a chart Chromium draws right', async (t) => {
  const gateway = await startGateway(t, ['--demo']);
  const dir = tempDir(t);
  const out = path.join(dir, 'out');
  const run = spawnSync(PQMCP, ['bench', '--quick', '--out', out, '--json', '--gateway', gateway.url,
    '--pin', gateway.peer, '--identity', path.join(gateway.home, 'client'), '--requests', '200'],
  { encoding: 'utf8', timeout: 240000, maxBuffer: 16 << 20 });
  assert.equal(run.status, 0, run.stderr);

  await t.test('progress is shown on stderr as each step starts', () => {
    for (const step of ['ML-KEM-768 encaps', 'RSA-3072 decrypt', 'ML-DSA-65 sign', 'ECDSA P-256 verify',
      'pq-hybrid (X25519MLKEM768 + ML-DSA-65) resumed', `tools/call demo__echo through ${gateway.url}`]) {
      assert.match(run.stderr, new RegExp(`pqmcp bench \\[ *[0-9.]+ s\\] ${step.replace(/[()+]/g, '\\$&')}`), step);
    }
  });

  const report = JSON.parse(run.stdout);
  await t.test('--json prints what bench.json holds', () => {
    assert.deepEqual(JSON.parse(readFileSync(path.join(out, 'bench.json'), 'utf8')), report);
    assert.equal(report.quick, true);
    assert.deepEqual(report.sections.map((s) => s.id), ['key_exchange', 'signatures', 'handshakes', 'gateway']);
    assert.match(report.openssl, /^OpenSSL 3\.5/);
  });

  await t.test('bytes on the wire are the algorithms\' own', () => {
    assert.deepEqual(rows(report, 'key_exchange').map((r) => r.name), Object.keys(KEY_EXCHANGE_BYTES));
    for (const [name, bytes] of Object.entries(KEY_EXCHANGE_BYTES)) {
      assert.equal(row(report, 'key_exchange', name).bytes, bytes, name);
    }
    assert.deepEqual(rows(report, 'signatures').map((r) => r.name), Object.keys(SIGNATURE_BYTES));
    for (const [name, bytes] of Object.entries(SIGNATURE_BYTES)) {
      const got = row(report, 'signatures', name).bytes;
      if (Array.isArray(bytes)) {
        assert.ok(got >= bytes[0] && got <= bytes[1], `${name}: ${got}`);
      } else {
        assert.equal(got, bytes, name);
      }
    }
    for (const r of [...rows(report, 'key_exchange'), ...rows(report, 'signatures')]) {
      assert.equal(r.quantum_safe, r.name.startsWith('ML-'), r.name);
    }
  });

  await t.test('every figure is a measurement: positive, inside its rounds\' range, made of its parts', () => {
    for (const section of report.sections) {
      for (const r of section.rows) {
        assert.ok(r.us > 0 && r.min_us <= r.us && r.us <= r.max_us, `${r.name}: ${r.min_us} ${r.us} ${r.max_us}`);
        assert.ok(r.operations > 0, r.name);
        assert.ok(r.parts.length > 0, r.name);
      }
    }
    // Both ends of a KEM exchange: keygen, encaps, decaps once each.
    const kem = row(report, 'key_exchange', 'ML-KEM-768');
    assert.deepEqual(kem.parts.map((p) => p.operation), ['keygen', 'encaps', 'decaps']);
    const sum = kem.parts.reduce((a, p) => a + p.us, 0);
    assert.ok(Math.abs(sum - kem.us) < 1e-6 * sum, `${sum} against ${kem.us}`);
    // Two key pairs and two derivations for Diffie-Hellman.
    const x = row(report, 'key_exchange', 'X25519');
    assert.ok(Math.abs(2 * x.parts[0].us + 2 * x.parts[1].us - x.us) < 1e-6 * x.us);
  });

  await t.test('the seed\'s picture, measured: ML-KEM-768 is fast next to RSA, and much larger', () => {
    const kem = row(report, 'key_exchange', 'ML-KEM-768');
    const rsa = row(report, 'key_exchange', 'RSA-3072');
    assert.ok(kem.us < rsa.us, `ML-KEM-768 ${kem.us} µs against RSA-3072 ${rsa.us} µs`);
    assert.ok(kem.bytes > 2 * rsa.bytes);
    const x25519 = row(report, 'key_exchange', 'X25519');
    assert.ok(kem.bytes > 30 * x25519.bytes);
  });

  await t.test('handshakes: full and resumed per profile, mutual, bytes both ways', () => {
    const hs = rows(report, 'handshakes');
    assert.deepEqual(hs.map((r) => r.label), ['pq-hybrid full', 'pq-hybrid resumed', 'pq-strict full',
      'pq-strict resumed', 'classical full', 'classical resumed']);
    for (const r of hs) {
      assert.equal(r.bytes, r.bytes_client_to_server + r.bytes_server_to_client, r.name);
      assert.equal(r.quantum_safe, !r.label.startsWith('classical'), r.name);
    }
    const full = row(report, 'handshakes', 'pq-hybrid full');
    const resumed = row(report, 'handshakes', 'pq-hybrid resumed');
    assert.match(full.name, /X25519MLKEM768 \+ ML-DSA-65/);
    // A resumed handshake signs nothing and sends no key: smaller and faster.
    assert.ok(resumed.us < full.us && resumed.bytes_server_to_client < full.bytes_server_to_client / 3);
    // Raw public keys between pinned peers: a mutual pq-hybrid handshake under 14 KB.
    assert.ok(full.bytes < 14000, `${full.bytes} B`);
    assert.ok(row(report, 'handshakes', 'classical full').bytes < 2000);
  });

  await t.test('tools/call through the gateway: 200 calls, median and spread', () => {
    const [g] = rows(report, 'gateway');
    assert.equal(g.operations, 200);
    assert.equal(g.quantum_safe, true);
    assert.ok(g.min_us <= g.us && g.us <= g.max_us);
    assert.match(g.note, /^p99 \d+ us, \d+ calls\/s$/);
  });

  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  await t.test('the report needs nothing else: no script, nothing fetched', () => {
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    for (const id of ['key_exchange', 'signatures', 'handshakes']) {
      const svg = readFileSync(path.join(out, `${id}.svg`), 'utf8');
      assert.ok(html.includes(svg.trim()), `${id}.svg is the report's chart`);
    }
  });

  await t.test('Chromium draws the bars as tall as bench.json says', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium`);
    const url = `file://${path.join(out, 'report.html')}`;
    const dom = chromium(dir, url, ['--dump-dom']);
    assert.equal(dom.status, 0, dom.stderr);
    // The numbers in the rendered document are bench.json's.
    for (const id of ['key_exchange', 'signatures', 'handshakes']) {
      for (const r of rows(report, id)) {
        const esc = r.name.replace(/&/g, '&amp;').replace(/[()+]/g, '\\$&');
        assert.match(dom.stdout, new RegExp(`class="bar" data-name="${esc}" data-us="${r.us.toFixed(3)}"`), r.name);
        assert.match(dom.stdout, new RegExp(`class="point" data-name="${esc}" data-bytes="${r.bytes}"`), r.name);
      }
    }
    const png = path.join(dir, 'report.png');
    const shot = chromium(dir, url, [`--screenshot=${png}`]);
    assert.equal(shot.status, 0, shot.stderr);
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(path.join(ARTIFACTS, 'bench-report.png'), readFileSync(png));
    const image = PNG.sync.read(readFileSync(png));
    const bars = barsIn(image);
    const sections = report.sections.filter((s) => s.id !== 'gateway');
    const want = sections.flatMap((s) => s.rows.map((r) => r.quantum_safe ? 'pq' : 'classical'));
    assert.deepEqual(bars.map((b) => b.kind), want, JSON.stringify(bars));
    const heights = sections.flatMap(expectedHeights);
    bars.forEach((b, i) => {
      assert.ok(Math.abs(b.height - heights[i]) <= 2, `bar ${i}: ${b.height} px drawn, ${heights[i]} px expected`);
    });
    // Three charts, each with one baseline.
    assert.equal(new Set(bars.map((b) => b.bottom)).size, 3);
  });
});
