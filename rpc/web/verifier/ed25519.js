// Cachet verifier, part 2 of 5: ed25519 signature verification under the strict rule of
// docs/spec/encoding.md#signatures (RFC 8032 with a canonical S, the cofactorless equation,
// neither R nor A of small order), in plain JavaScript with BigInt field arithmetic.
//
// What it is: verification only — a verifier never signs. Points are in extended twisted
// Edwards coordinates (Hisil et al. 2008, a = -1); R is compared by its encoding, so a
// non-canonical R never verifies.
// What it is not: constant-time (nothing here is secret) or fast (a few milliseconds a
// signature, for the handful a receipt carries).
"use strict";
(function (C) {
  const P = (1n << 255n) - 19n;
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  const D = 37095705934669439343138083508754565189542113879843219016388785533085940283555n;
  const D2 = (2n * D) % P;
  const SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752n;
  const BX = 15112221349535400772501151409588531511454012693041857206046113283949847762202n;
  const BY = 46316835694926478169428394003475163141307993866256225615783033603165251855960n;

  const mod = (a) => {
    const r = a % P;
    return r >= 0n ? r : r + P;
  };
  function pow(b, e) {
    let r = 1n;
    b = mod(b);
    while (e > 0n) {
      if (e & 1n) r = (r * b) % P;
      b = (b * b) % P;
      e >>= 1n;
    }
    return r;
  }

  const point = (X, Y, Z, T) => ({ X, Y, Z, T });
  const IDENTITY = point(0n, 1n, 1n, 0n);
  const BASE = point(BX, BY, 1n, (BX * BY) % P);

  function add(p, q) {
    const a = mod((p.Y - p.X) * (q.Y - q.X));
    const b = mod((p.Y + p.X) * (q.Y + q.X));
    const c = mod(((p.T * D2) % P) * q.T);
    const d = mod(2n * p.Z * q.Z);
    const e = b - a, f = d - c, g = d + c, h = b + a;
    return point(mod(e * f), mod(g * h), mod(f * g), mod(e * h));
  }

  function double(p) {
    const a = (p.X * p.X) % P;
    const b = (p.Y * p.Y) % P;
    const c = (2n * p.Z * p.Z) % P;
    const e = mod((p.X + p.Y) * (p.X + p.Y) - a - b);
    const g = b - a; // D + B with D = -A (a = -1)
    const f = g - c;
    const h = -a - b; // D - B
    return point(mod(e * f), mod(g * h), mod(f * g), mod(e * h));
  }

  const negate = (p) => point(mod(-p.X), p.Y, p.Z, mod(-p.T));

  function isSmallOrder(p) {
    const q = double(double(double(p)));
    return q.X === 0n && q.Y === q.Z;
  }

  const leToBig = (bytes) => {
    let n = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
    return n;
  };

  function encode(p) {
    const zi = pow(p.Z, P - 2n);
    const x = (p.X * zi) % P;
    let y = (p.Y * zi) % P;
    const out = new Uint8Array(32);
    for (let i = 0; i < 32; i++) {
      out[i] = Number(y & 0xffn);
      y >>= 8n;
    }
    out[31] |= Number(x & 1n) << 7;
    return out;
  }

  // The point a public key encodes, or null. As the reference implementation the node uses
  // (curve25519-dalek) does, y is read modulo p; keys reach a verifier only through a
  // validator set it has checked by hash, whose keys the chain checked when they were
  // registered.
  function decode(bytes) {
    const sign = bytes[31] >> 7;
    const yb = bytes.slice();
    yb[31] &= 0x7f;
    const y = mod(leToBig(yb));
    const y2 = (y * y) % P;
    const u = mod(y2 - 1n);
    const v = mod(D * y2 + 1n);
    const v3 = (((v * v) % P) * v) % P;
    const v7 = (((v3 * v3) % P) * v) % P;
    let x = (((u * v3) % P) * pow((u * v7) % P, (P - 5n) / 8n)) % P;
    const vx2 = (((x * x) % P) * v) % P;
    if (vx2 !== u) {
      if (vx2 !== mod(-u)) return null;
      x = (x * SQRT_M1) % P;
    }
    if (Number(x & 1n) !== sign) x = mod(-x);
    return point(x, y, 1n, (x * y) % P);
  }

  // [s]B + [k]Q by one double-and-add pass over both scalars (Shamir's trick).
  function doubleScalarMul(s, k, q) {
    const bq = add(BASE, q);
    let acc = IDENTITY;
    for (let i = 255n; i >= 0n; i--) {
      acc = double(acc);
      const sb = (s >> i) & 1n, kb = (k >> i) & 1n;
      if (sb && kb) acc = add(acc, bq);
      else if (sb) acc = add(acc, BASE);
      else if (kb) acc = add(acc, q);
    }
    return acc;
  }

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // Signatures that verified, by key ‖ message ‖ signature: receipts of one height carry the
  // same commit signatures, and a pure function's answer does not change. Bounded; cleared
  // when full.
  const verified = new Set();
  const MAX_REMEMBERED = 4096;

  // Does `signature` (64 bytes, R ‖ S) verify for `key` (32 bytes) over `message`?
  function verify(key, message, signature) {
    const memo = hex(key) + hex(message) + hex(signature);
    if (verified.has(memo)) return true;
    const ok = verifyStrict(key, message, signature);
    if (ok) {
      if (verified.size >= MAX_REMEMBERED) verified.clear();
      verified.add(memo);
    }
    return ok;
  }

  function verifyStrict(key, message, signature) {
    if (key.length !== 32 || signature.length !== 64) return false;
    const rBytes = signature.subarray(0, 32);
    const s = leToBig(signature.subarray(32, 64));
    if (s >= L) return false;
    const a = decode(key);
    if (a === null || isSmallOrder(a)) return false;
    const challenge = new Uint8Array(64 + message.length);
    challenge.set(rBytes, 0);
    challenge.set(key, 32);
    challenge.set(message, 64);
    const k = leToBig(C.hash.sha512(challenge)) % L;
    const r = doubleScalarMul(s, k, negate(a));
    return equalBytes(encode(r), rBytes) && !isSmallOrder(r);
  }

  C.ed25519 = { verify };
})(globalThis.cachet = globalThis.cachet || {});
