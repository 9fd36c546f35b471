// gen-vectors.mjs: regenerate the crypto interop fixtures with Node's
// WebCrypto (crypto.subtle), i.e. the very API the web app uses in the
// browser.  Run:   node tests/crypto/gen-vectors.mjs
// Writes tests/fixtures/crypto/{TEST-ONLY-private-key.pem, vectors.txt,
// vectors.sql, vectors.json}.  The tests read only those files, so they
// never need Node.  The key pair is a TEST-ONLY key: never deploy it.
import { webcrypto } from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const subtle = webcrypto.subtle;
const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'crypto');
mkdirSync(out, { recursive: true });

const utf8 = (s) => new TextEncoder().encode(s);
const b64 = (u8) => Buffer.from(u8).toString('base64');
const hex = (u8) => Buffer.from(u8).toString('hex');

// SPEC 5.2, exactly as the web app derives an MDK (JS default sort).
async function deriveMdk(master, d) {
  const info = `mana-ai-mission-grant:v1:tables=${[...d.tables].sort().join(',')}:ids=${[...d.recordIds].sort().join(',')}`;
  const ikm = await subtle.importKey('raw', master, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: utf8(d.missionId), info: utf8(info) }, ikm, 256);
  return new Uint8Array(bits);
}

async function rsaPair() {
  return subtle.generateKey(
    { name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    true, ['wrapKey', 'unwrapKey', 'encrypt', 'decrypt']);
}

// Wrap the MDK as the browser does: an AES-GCM CryptoKey wrapped raw under RSA-OAEP.
async function wrapMdk(mdk, publicKey) {
  const aes = await subtle.importKey('raw', mdk, { name: 'AES-GCM' }, true, ['encrypt', 'decrypt']);
  return new Uint8Array(await subtle.wrapKey('raw', aes, publicKey, { name: 'RSA-OAEP' }));
}

async function encValue(mdk, plaintextBytes) {
  const key = await subtle.importKey('raw', mdk, { name: 'AES-GCM' }, false, ['encrypt']);
  const iv = webcrypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv }, key, plaintextBytes));
  return `enc:1:${b64(iv)}.${b64(ct)}`;
}

function flipBit(blob, part, byteIndex) {
  const [ivb, ctb] = blob.slice(6).split('.');
  const iv = Buffer.from(ivb, 'base64');
  const ct = Buffer.from(ctb, 'base64');
  if (part === 'iv') iv[byteIndex] ^= 0x01;
  else if (part === 'ct') ct[byteIndex] ^= 0x01;
  else ct[ct.length - 1 - byteIndex] ^= 0x01; // tag
  return `enc:1:${iv.toString('base64')}.${ct.toString('base64')}`;
}

function pem(der, label) {
  const body = Buffer.from(der).toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

const master = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const derivation = { version: 'v1', missionId: 'mission-abc', tables: ['tasks', 'notes'], recordIds: ['tasks:t1', 'notes:n1'] };
const mdk = await deriveMdk(master, derivation);
const GOLDEN = '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628';
if (hex(mdk) !== GOLDEN) throw new Error(`HKDF golden vector mismatch: ${hex(mdk)}`);

const pair = await rsaPair();
const other = await rsaPair();
const pkcs8 = new Uint8Array(await subtle.exportKey('pkcs8', pair.privateKey));
const grant = (wrapped, expiresAt) => JSON.stringify({
  wrappedKey: typeof wrapped === 'string' ? wrapped : b64(wrapped),
  derivation, issuedAt: '2026-01-01T00:00:00.000Z', expiresAt,
});
const wrapped = await wrapMdk(mdk, pair.publicKey);
const future = '2099-12-31T23:59:59.000Z';

const noteBody = 'Einkaufsliste: Milch, Brot, Äpfel — und ein sehr langer Text. '.repeat(12);
const v = {
  master_key_hex: hex(master),
  mdk_hex: GOLDEN,
  mdk_b64: b64(mdk),
  derivation: JSON.stringify(derivation),
  grant_ok: grant(wrapped, future),
  grant_expired: grant(wrapped, '2020-01-01T00:00:00.000Z'),
  grant_bad_expiry: grant(wrapped, 'next tuesday'),
  grant_bad_b64: grant(b64(wrapped).slice(0, -3) + '!!=', future),
  grant_wrong_length: grant(await wrapMdk(mdk.slice(0, 16), pair.publicKey), future),
  grant_wrong_key: grant(await wrapMdk(mdk, other.publicKey), future),
  grant_missing_field: JSON.stringify({ wrappedKey: b64(wrapped), expiresAt: future }),
  enc_note_title: await encValue(mdk, utf8(JSON.stringify('Einkauf'))),
  enc_note_content: await encValue(mdk, utf8(JSON.stringify(noteBody))),
  plain_note_content: noteBody,
  enc_task_title: await encValue(mdk, utf8(JSON.stringify('Steuererklärung abgeben'))),
  enc_task_description: await encValue(mdk, utf8(JSON.stringify('Belege sammeln'))),
  enc_object: await encValue(mdk, utf8(JSON.stringify({ a: 1, b: [true, null, 'x'] }))),
  enc_empty_string: await encValue(mdk, utf8(JSON.stringify(''))),
  enc_not_json: await encValue(mdk, utf8('this is not json {')),
  enc_wrong_key: await encValue(webcrypto.getRandomValues(new Uint8Array(32)), utf8(JSON.stringify('secret'))),
};
v.enc_tampered_iv = flipBit(v.enc_note_title, 'iv', 3);
v.enc_tampered_ct = flipBit(v.enc_note_title, 'ct', 0);
v.enc_tampered_tag = flipBit(v.enc_note_title, 'tag', 0);
v.enc_truncated = v.enc_note_title.slice(0, -6);
v.enc_truncated_block = (() => { const [i, c] = v.enc_note_title.slice(6).split('.'); return `enc:1:${i}.${b64(Buffer.from(c, 'base64').subarray(0, 12))}`; })();
v.enc_bad_b64 = v.enc_note_title.replace('.', '.*');
v.enc_short_iv = `enc:1:${b64(new Uint8Array(8))}.${v.enc_note_title.split('.')[1]}`;

writeFileSync(join(out, 'TEST-ONLY-private-key.pem'), pem(pkcs8, 'PRIVATE KEY'));
writeFileSync(join(out, 'vectors.json'), JSON.stringify(v, null, 2) + '\n');
writeFileSync(join(out, 'vectors.txt'),
  '# name value (one per line; generated by tests/crypto/gen-vectors.mjs)\n' +
  Object.entries(v).map(([k, x]) => `${k} ${x}`).join('\n') + '\n');
// The MDK and the master key stay out of the SQL vectors: the secret-scan
// test greps a server log that records every statement.
const sqlSecret = new Set(['master_key_hex', 'mdk_hex', 'mdk_b64']);
const q = (s) => `'${s.replace(/'/g, "''")}'`;
writeFileSync(join(out, 'vectors.sql'),
  '-- generated by tests/crypto/gen-vectors.mjs; TEST-ONLY material\n' +
  'CREATE TEMP TABLE crypto_vectors (name text PRIMARY KEY, value text NOT NULL);\n' +
  'INSERT INTO crypto_vectors VALUES\n' +
  Object.entries(v).filter(([k]) => !sqlSecret.has(k))
    .map(([k, x]) => `  (${q(k)}, ${q(x)})`).join(',\n') + ';\n');
console.log(`wrote ${Object.keys(v).length} vectors and a TEST-ONLY key to ${out}`);
