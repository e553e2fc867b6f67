// Helpers for the tests that run on Node 24 (OpenSSL 3.5): a client that
// speaks X25519MLKEM768 straight to the gateway, trusting it by its peer id.
import { X509Certificate, createHash } from 'node:crypto';

import { Agent } from 'undici';

// A pqmcp peer id: "pq1" and the unpadded lower-case base32 of the SHA3-256
// of the key's DER SubjectPublicKeyInfo (docs/identity.md).
export function peerIdOf(certificatePem) {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha3-256').update(spki).digest();
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) {
    out += alphabet[(value << (5 - bits)) & 31];
  }
  return `pq1${out}`;
}

// TLS for a client that pins the gateway: its certificate is its own CA, and
// the peer id of the key it proves is the one expected (the host name is not
// what identifies a pqmcp gateway).
export function pinnedAgent(gatewayCert, expectedPeer, { key, cert, groups = 'X25519MLKEM768' } = {}) {
  return new Agent({
    connect: {
      ca: gatewayCert,
      key,
      cert,
      ecdhCurve: groups,
      minVersion: 'TLSv1.3',
      checkServerIdentity: (_host, peer) => {
        const id = peerIdOf(new X509Certificate(peer.raw).toString());
        return id === expectedPeer ? undefined : new Error(`gateway ${id} is not the pinned ${expectedPeer}`);
      },
    },
  });
}

