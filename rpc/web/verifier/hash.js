// Cachet verifier, part 1 of 5: the hash functions a receipt and a document need — BLAKE3
// (plain and derive_key modes), SHA-256 and SHA-512 — in plain JavaScript.
//
// What it is: straightforward implementations of the published algorithms (the BLAKE3 paper
// and reference implementation's tree mode; FIPS 180-4), written for clarity over speed, with no
// dependency on WebCrypto, which browsers only offer in a secure context (https or localhost):
// the verify page must work on plain HTTP at any address and from a saved copy.
// What it is not: constant-time (nothing here is secret), or an incremental (streaming) API:
// each function takes the whole input.
"use strict";
(function (C) {
  // ---------------------------------------------------------------- SHA-2 constants
  // The first 64 bits of the fractional parts of the cube roots of the first 80 primes
  // (FIPS 180-4 §4.2.3); SHA-256's constants are the first 64 of them, high halves.
  const K512 = [
    "428a2f98d728ae22 7137449123ef65cd b5c0fbcfec4d3b2f e9b5dba58189dbbc",
    "3956c25bf348b538 59f111f1b605d019 923f82a4af194f9b ab1c5ed5da6d8118",
    "d807aa98a3030242 12835b0145706fbe 243185be4ee4b28c 550c7dc3d5ffb4e2",
    "72be5d74f27b896f 80deb1fe3b1696b1 9bdc06a725c71235 c19bf174cf692694",
    "e49b69c19ef14ad2 efbe4786384f25e3 0fc19dc68b8cd5b5 240ca1cc77ac9c65",
    "2de92c6f592b0275 4a7484aa6ea6e483 5cb0a9dcbd41fbd4 76f988da831153b5",
    "983e5152ee66dfab a831c66d2db43210 b00327c898fb213f bf597fc7beef0ee4",
    "c6e00bf33da88fc2 d5a79147930aa725 06ca6351e003826f 142929670a0e6e70",
    "27b70a8546d22ffc 2e1b21385c26c926 4d2c6dfc5ac42aed 53380d139d95b3df",
    "650a73548baf63de 766a0abb3c77b2a8 81c2c92e47edaee6 92722c851482353b",
    "a2bfe8a14cf10364 a81a664bbc423001 c24b8b70d0f89791 c76c51a30654be30",
    "d192e819d6ef5218 d69906245565a910 f40e35855771202a 106aa07032bbd1b8",
    "19a4c116b8d2d0c8 1e376c085141ab53 2748774cdf8eeb99 34b0bcb5e19b48a8",
    "391c0cb3c5c95a63 4ed8aa4ae3418acb 5b9cca4f7763e373 682e6ff3d6b2b8a3",
    "748f82ee5defb2fc 78a5636f43172f60 84c87814a1f0ab72 8cc702081a6439ec",
    "90befffa23631e28 a4506cebde82bde9 bef9a3f7b2c67915 c67178f2e372532b",
    "ca273eceea26619c d186b8c721c0c207 eada7dd6cde0eb1e f57d4f7fee6ed178",
    "06f067aa72176fba 0a637dc5a2c898a6 113f9804bef90dae 1b710b35131c471b",
    "28db77f523047d84 32caab7b40c72493 3c9ebe0a15c9bebc 431d67c49c100d4c",
    "4cc5d4becb3e42b6 597f299cfc657e2a 5fcb6fab3ad6faec 6c44198c4a475817",
  ].join(" ").split(" ").map((h) => BigInt("0x" + h));
  // The first 64 bits of the fractional parts of the square roots of the first 8 primes.
  const IV512 = [
    "6a09e667f3bcc908", "bb67ae8584caa73b", "3c6ef372fe94f82b", "a54ff53a5f1d36f1",
    "510e527fade682d1", "9b05688c2b3e6c1f", "1f83d9abfb41bd6b", "5be0cd19137e2179",
  ].map((h) => BigInt("0x" + h));
  const K256 = new Uint32Array(K512.slice(0, 64).map((k) => Number(k >> 32n)));
  // SHA-256's initial value, which BLAKE3 also uses as its IV.
  const IV256 = new Uint32Array(IV512.map((k) => Number(k >> 32n)));

  // ---------------------------------------------------------------- SHA-256
  function sha256(bytes) {
    const len = bytes.length;
    const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
    padded.set(bytes);
    padded[len] = 0x80;
    const view = new DataView(padded.buffer);
    view.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
    view.setUint32(padded.length - 4, (len << 3) >>> 0);
    const h = IV256.slice();
    const w = new Uint32Array(64);
    for (let off = 0; off < padded.length; off += 64) {
      for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
      for (let i = 16; i < 64; i++) {
        const a = w[i - 15], b = w[i - 2];
        const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
        const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 64; i++) {
        const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        const ch = (e & f) ^ (~e & g);
        const t1 = (hh + S1 + ch + K256[i] + w[i]) >>> 0;
        const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        const maj = (a & b) ^ (a & c) ^ (b & c);
        const t2 = (S0 + maj) >>> 0;
        hh = g; g = f; f = e; e = (d + t1) >>> 0;
        d = c; c = b; b = a; a = (t1 + t2) >>> 0;
      }
      h[0] += a; h[1] += b; h[2] += c; h[3] += d;
      h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    const out = new Uint8Array(32);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setUint32(4 * i, h[i]);
    return out;
  }

  // ---------------------------------------------------------------- SHA-512
  // BigInt words: slower than 32-bit halves but plain; it only hashes the 96 bytes of an
  // ed25519 challenge.
  const M64 = (1n << 64n) - 1n;
  const rotr64 = (x, n) => ((x >> n) | (x << (64n - n))) & M64;

  function sha512(bytes) {
    const len = bytes.length;
    const padded = new Uint8Array(((len + 17 + 127) >> 7) << 7);
    padded.set(bytes);
    padded[len] = 0x80;
    const view = new DataView(padded.buffer);
    view.setBigUint64(padded.length - 8, BigInt(len) * 8n);
    const h = IV512.slice();
    const w = new Array(80);
    for (let off = 0; off < padded.length; off += 128) {
      for (let i = 0; i < 16; i++) w[i] = view.getBigUint64(off + 8 * i);
      for (let i = 16; i < 80; i++) {
        const s0 = rotr64(w[i - 15], 1n) ^ rotr64(w[i - 15], 8n) ^ (w[i - 15] >> 7n);
        const s1 = rotr64(w[i - 2], 19n) ^ rotr64(w[i - 2], 61n) ^ (w[i - 2] >> 6n);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M64;
      }
      let [a, b, c, d, e, f, g, hh] = h;
      for (let i = 0; i < 80; i++) {
        const S1 = rotr64(e, 14n) ^ rotr64(e, 18n) ^ rotr64(e, 41n);
        const ch = (e & f) ^ (~e & M64 & g);
        const t1 = (hh + S1 + ch + K512[i] + w[i]) & M64;
        const S0 = rotr64(a, 28n) ^ rotr64(a, 34n) ^ rotr64(a, 39n);
        const maj = (a & b) ^ (a & c) ^ (b & c);
        hh = g; g = f; f = e; e = (d + t1) & M64;
        d = c; c = b; b = a; a = (t1 + S0 + maj) & M64;
      }
      h[0] = (h[0] + a) & M64; h[1] = (h[1] + b) & M64;
      h[2] = (h[2] + c) & M64; h[3] = (h[3] + d) & M64;
      h[4] = (h[4] + e) & M64; h[5] = (h[5] + f) & M64;
      h[6] = (h[6] + g) & M64; h[7] = (h[7] + hh) & M64;
    }
    const out = new Uint8Array(64);
    const ov = new DataView(out.buffer);
    for (let i = 0; i < 8; i++) ov.setBigUint64(8 * i, h[i]);
    return out;
  }

  // ---------------------------------------------------------------- BLAKE3
  const CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8;
  const DERIVE_KEY_CONTEXT = 32, DERIVE_KEY_MATERIAL = 64;
  const PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];

  // The compression function: the first 8 words of its output are a chaining value.
  function compress(cv, m, counter, blockLen, flags) {
    const s = new Uint32Array(16);
    s.set(cv, 0);
    s.set(IV256.subarray(0, 4), 8);
    s[12] = counter >>> 0;
    s[13] = Math.floor(counter / 0x100000000) >>> 0;
    s[14] = blockLen;
    s[15] = flags;
    let msg = m.slice();
    const g = (a, b, c, d, x, y) => {
      s[a] = s[a] + s[b] + x; s[d] ^= s[a]; s[d] = (s[d] >>> 16) | (s[d] << 16);
      s[c] = s[c] + s[d]; s[b] ^= s[c]; s[b] = (s[b] >>> 12) | (s[b] << 20);
      s[a] = s[a] + s[b] + y; s[d] ^= s[a]; s[d] = (s[d] >>> 8) | (s[d] << 24);
      s[c] = s[c] + s[d]; s[b] ^= s[c]; s[b] = (s[b] >>> 7) | (s[b] << 25);
    };
    for (let round = 0; round < 7; round++) {
      g(0, 4, 8, 12, msg[0], msg[1]);
      g(1, 5, 9, 13, msg[2], msg[3]);
      g(2, 6, 10, 14, msg[4], msg[5]);
      g(3, 7, 11, 15, msg[6], msg[7]);
      g(0, 5, 10, 15, msg[8], msg[9]);
      g(1, 6, 11, 12, msg[10], msg[11]);
      g(2, 7, 8, 13, msg[12], msg[13]);
      g(3, 4, 9, 14, msg[14], msg[15]);
      msg = PERMUTATION.map((i) => msg[i]);
    }
    for (let i = 0; i < 8; i++) s[i] ^= s[i + 8];
    return s.subarray(0, 8);
  }

  // Little-endian words of a 64-byte block (zero-padded).
  function blockWords(bytes, off, len) {
    const w = new Uint32Array(16);
    for (let i = 0; i < len; i++) w[i >> 2] |= bytes[off + i] << (8 * (i & 3));
    return w;
  }

  // The last compression of a node, kept unfinished: as a chaining value it is compressed as
  // is; as the root it is compressed again with ROOT (and output block counter 0).
  function chunkOutput(key, bytes, off, len, chunkIndex, flags) {
    let cv = key;
    const blocks = Math.max(1, Math.ceil(len / 64));
    for (let b = 0; b < blocks - 1; b++) {
      const f = flags | (b === 0 ? CHUNK_START : 0);
      cv = compress(cv, blockWords(bytes, off + 64 * b, 64), chunkIndex, 64, f);
    }
    const lastLen = len - 64 * (blocks - 1);
    const f = flags | CHUNK_END | (blocks === 1 ? CHUNK_START : 0);
    return { cv, m: blockWords(bytes, off + 64 * (blocks - 1), lastLen), counter: chunkIndex, len: lastLen, flags: f };
  }

  function parentOutput(key, left, right, flags) {
    const m = new Uint32Array(16);
    m.set(left, 0);
    m.set(right, 8);
    return { cv: key, m, counter: 0, len: 64, flags: flags | PARENT };
  }

  const chainingValue = (o) => compress(o.cv, o.m, o.counter, o.len, o.flags).slice();

  function wordsToBytes(words) {
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      out[4 * i] = words[i]; out[4 * i + 1] = words[i] >>> 8;
      out[4 * i + 2] = words[i] >>> 16; out[4 * i + 3] = words[i] >>> 24;
    }
    return out;
  }

  // The 32-byte BLAKE3 output of `bytes` under `key` (8 words) and mode `flags`.
  function blake3Tree(bytes, key, flags) {
    const chunks = Math.max(1, Math.ceil(bytes.length / 1024));
    const stack = [];
    for (let i = 0; i < chunks - 1; i++) {
      let cv = chainingValue(chunkOutput(key, bytes, 1024 * i, 1024, i, flags));
      // Merge completed subtrees: one merge per trailing zero bit of the chunks done.
      for (let done = i + 1; (done & 1) === 0; done >>= 1) {
        cv = chainingValue(parentOutput(key, stack.pop(), cv, flags));
      }
      stack.push(cv);
    }
    const lastOff = 1024 * (chunks - 1);
    let out = chunkOutput(key, bytes, lastOff, bytes.length - lastOff, chunks - 1, flags);
    while (stack.length > 0) out = parentOutput(key, stack.pop(), chainingValue(out), flags);
    return wordsToBytes(compress(out.cv, out.m, 0, out.len, out.flags | ROOT));
  }

  const blake3 = (bytes) => blake3Tree(bytes, IV256, 0);

  // BLAKE3's derive_key mode: a key derived from the context string, then the material hashed
  // under it.
  function deriveKey(context, material) {
    const ctxKey = blake3Tree(new TextEncoder().encode(context), IV256, DERIVE_KEY_CONTEXT);
    const key = new Uint32Array(8);
    for (let i = 0; i < 8; i++) key[i] = new DataView(ctxKey.buffer).getUint32(4 * i, true);
    return blake3Tree(material, key, DERIVE_KEY_MATERIAL);
  }

  C.hash = { sha256, sha512, blake3, deriveKey };
})(globalThis.cachet = globalThis.cachet || {});
