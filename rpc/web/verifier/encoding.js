// Cachet verifier, part 3 of 5: decoding the canonical (Borsh) encoding of the types a
// receipt carries, with the invariants of docs/spec/encoding.md, and the hash domains.
//
// What it is: a strict reader — trailing bytes, unknown enum tags, bad booleans, over-long
// lists, invalid UTF-8 and ids or names that break their rules are refused, so a decoded value
// re-encodes to exactly its input (which is why hashes are taken over the input's own bytes).
// u64 values are BigInt. Field names follow the spec (snake_case).
// What it is not: an encoder; the verifier never writes these types.
"use strict";
(function (C) {
  class DecodeError extends Error {}

  const MAX_SET_LEN = 256, MAX_KEY_HISTORY = 64, MAX_BATCH_PROOF_LEN = 32, MAX_PROOF_DEPTH = 256, MAX_LINEAGE = 64;
  const MAX_NAME_LEN = 120, MAX_KIND_EVENTS = 16;
  const RECEIPT_VERSION = 1, RECEIPT_VERSION_WITH_POLICY = 2;
  // 1-40 bytes of a-z, 0-9 and "-", not starting with "-".
  const ID_RULE = /^[a-z0-9][a-z0-9-]{0,39}$/;
  const KINDS = ["land-title", "investment-permit", "reward-order", "cultural-license"];
  const REASONS = ["issued-in-error", "cancelled", "fraud", "court-order", "other"];

  class Reader {
    constructor(bytes) {
      this.bytes = bytes;
      this.at = 0;
      this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    need(n) {
      if (this.at + n > this.bytes.length) throw new DecodeError("unexpected end of input");
      const start = this.at;
      this.at += n;
      return start;
    }
    u8() { return this.bytes[this.need(1)]; }
    u16() { return this.view.getUint16(this.need(2), true); }
    u32() { return this.view.getUint32(this.need(4), true); }
    u64() { return this.view.getBigUint64(this.need(8), true); }
    fixed(n) { const s = this.need(n); return this.bytes.slice(s, s + n); }
    bool() {
      const b = this.u8();
      if (b > 1) throw new DecodeError("invalid bool " + b);
      return b === 1;
    }
    byteVec() { return this.fixed(this.u32()); }
    string() {
      const raw = this.byteVec();
      try {
        return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
      } catch (_) {
        throw new DecodeError("invalid UTF-8");
      }
    }
    option(f) {
      const tag = this.u8();
      if (tag === 0) return null;
      if (tag === 1) return f(this);
      throw new DecodeError("invalid option tag " + tag);
    }
    vec(f, max) {
      const n = this.u32();
      if (n > max) throw new DecodeError("list of " + n + " over its limit of " + max);
      const out = [];
      for (let i = 0; i < n; i++) out.push(f(this));
      return out;
    }
    tag(names) {
      const t = this.u8();
      if (t >= names.length) throw new DecodeError("unknown tag " + t);
      return t;
    }
    // `f`'s value and the exact bytes it was read from.
    withBytes(f) {
      const start = this.at;
      const value = f(this);
      return { value, bytes: this.bytes.subarray(start, this.at) };
    }
    end() {
      if (this.at !== this.bytes.length) throw new DecodeError("trailing bytes after the value");
    }
  }

  // Decode all of `bytes` as `f`, refusing input over `limit` bytes before parsing.
  function decodeAll(bytes, f, limit) {
    if (bytes.length > limit) throw new DecodeError("over the " + limit + "-byte limit");
    const r = new Reader(bytes);
    const v = f(r);
    r.end();
    return v;
  }

  // ---------------------------------------------------------------- leaf types
  const hash32 = (r) => r.fixed(32);
  function id(r) {
    const s = r.string();
    if (!ID_RULE.test(s)) throw new DecodeError("invalid id");
    return s;
  }
  function name(r) {
    const s = r.string();
    const len = new TextEncoder().encode(s).length;
    if (len < 1 || len > MAX_NAME_LEN || /[\u0000-\u001f\u007f-\u009f]/.test(s)) throw new DecodeError("invalid name");
    return s;
  }
  function publicKey(r) {
    r.tag(["ed25519"]);
    return r.fixed(32);
  }
  function signature(r) {
    r.tag(["ed25519"]);
    return r.fixed(64);
  }
  // A built-in kind by its name; a kind registered by governance (tag 4, then a u16) as
  // "kind-<n>".
  function kind(r) {
    const t = r.u8();
    if (t < KINDS.length) return KINDS[t];
    if (t === KINDS.length) return "kind-" + r.u16();
    throw new DecodeError("unknown tag " + t);
  }
  const reason = (r) => REASONS[r.tag(REASONS)];

  // ---------------------------------------------------------------- blocks and validators
  const blockHeader = (r) => ({
    chain_id: id(r),
    height: r.u64(),
    time: r.u64(),
    parent: hash32(r),
    proposer: r.option(publicKey),
    tx_root: hash32(r),
    tx_count: r.u32(),
    state_root: hash32(r),
    validators_hash: hash32(r),
    next_validators_hash: hash32(r),
  });
  const validator = (r) => ({ agency: id(r), key: publicKey(r), power: r.u64() });
  const validatorSet = (r) => ({ validators: r.vec(validator, MAX_SET_LEN) });
  const commitProof = (r) => ({
    round: r.u32(),
    signatures: r.vec((r) => ({ validator: r.u16(), signature: signature(r) }), MAX_SET_LEN),
  });

  // ---------------------------------------------------------------- proofs
  const stateProof = (r) => ({
    siblings: r.vec(hash32, MAX_PROOF_DEPTH),
    terminal: r.tag(["empty", "leaf"]) === 0 ? null : { key: hash32(r), value: hash32(r) },
  });
  const batchProof = (r) => ({ index: r.u32(), siblings: r.vec(hash32, MAX_BATCH_PROOF_LEN) });

  // ---------------------------------------------------------------- state records
  const keyEpoch = (r) => ({ key: publicKey(r), from: r.u64(), until: r.option((r) => r.u64()) });
  const agencyRecord = (r) => ({
    id: id(r),
    name: name(r),
    keys: r.vec(keyEpoch, MAX_KEY_HISTORY),
    next_nonce: r.u64(),
    registered_at: r.u64(),
    removed_at: r.option((r) => r.u64()),
  });
  const kindDefinition = (r) => ({
    name: id(r),
    title_zh_tw: name(r),
    title_en: name(r),
    supersedable: r.bool(),
    events: r.vec(id, MAX_KIND_EVENTS),
  });
  const kindPolicy = (r) => ({
    accreditors: r.vec(id, MAX_SET_LEN),
    approvers: r.vec(id, MAX_SET_LEN),
    approvals_required: r.u16(),
    oracles: r.vec(publicKey, MAX_SET_LEN),
    oracle_threshold: r.u16(),
    max_attestation_window_ms: r.u64(),
    requires_validity: r.bool(),
    max_validity_ms: r.u64(),
    max_batch_leaves: r.u32(),
    max_receipt_age_ms: r.u64(),
    definition: r.option(kindDefinition),
  });
  function recordTerms(r) {
    switch (r.tag(["plain", "land_title", "work_deposit", "license"])) {
      case 0: return { type: "plain" };
      case 1: return { type: "land_title", parcel: hash32(r) };
      case 2: return { type: "work_deposit" };
      default: return { type: "license", work: hash32(r), licensee: hash32(r), scope: r.u32() };
    }
  }
  function certStatus(r) {
    switch (r.tag(["pending", "active", "revoked", "superseded"])) {
      case 0: return { state: "pending" };
      case 1: return { state: "active" };
      case 2: return { state: "revoked", at: r.u64(), time: r.u64(), by: id(r), reason: reason(r) };
      default: return { state: "superseded", by: hash32(r), at: r.u64(), time: r.u64() };
    }
  }
  const timestampOpt = (r) => r.option((r) => r.u64());
  const certificateRecord = (r) => ({
    kind: kind(r),
    issuer: id(r),
    commitment: hash32(r),
    issued_at: r.u64(),
    issued_time: r.u64(),
    valid_from: timestampOpt(r),
    valid_until: timestampOpt(r),
    terms: recordTerms(r),
    status: certStatus(r),
    supersedes: r.option(hash32),
    approvals: r.vec((r) => ({ agency: id(r), at: r.u64() }), MAX_SET_LEN),
    mortgages: r.vec(hash32, MAX_SET_LEN),
    updated_at: r.u64(),
  });
  const batchRecord = (r) => ({
    kind: kind(r),
    issuer: id(r),
    root: hash32(r),
    leaf_count: r.u32(),
    revoked: r.u32(),
    issued_at: r.u64(),
    issued_time: r.u64(),
    valid_from: timestampOpt(r),
    valid_until: timestampOpt(r),
  });
  const revocationRecord = (r) => ({
    commitment: hash32(r),
    at: r.u64(),
    time: r.u64(),
    by: id(r),
    reason: reason(r),
  });

  // ---------------------------------------------------------------- the receipt
  function subject(r) {
    switch (r.tag(["certificate", "absent", "batch_entry"])) {
      case 0: return {
        type: "certificate", record: r.byteVec(), proof: stateProof(r),
        lineage: r.vec((r) => ({ record: r.byteVec(), proof: stateProof(r) }), MAX_LINEAGE),
      };
      case 1: return { type: "absent", id: hash32(r), proof: stateProof(r) };
      default: return {
        type: "batch_entry",
        batch: r.byteVec(),
        batch_proof: stateProof(r),
        commitment: hash32(r),
        inclusion: batchProof(r),
        revocation: entryRevocation(r),
      };
    }
  }
  function entryRevocation(r) {
    switch (r.tag(["none_in_batch", "revoked", "not_revoked"])) {
      case 0: return { type: "none_in_batch" };
      case 1: return { type: "revoked", record: r.byteVec(), proof: stateProof(r) };
      default: return { type: "not_revoked", proof: stateProof(r) };
    }
  }
  // Headers and validator sets keep their bytes: their hashes are taken over them.
  const transition = (r) => ({
    header: r.withBytes(blockHeader),
    commit: commitProof(r),
    next: r.withBytes(validatorSet),
  });
  const policyProof = (r) => ({ kind: kind(r), policy: r.byteVec(), proof: stateProof(r) });
  // Version 2 is version 1 followed by the policy of the certificate's (registered) kind.
  function receipt(r) {
    const version = r.u8();
    if (version !== RECEIPT_VERSION && version !== RECEIPT_VERSION_WITH_POLICY) {
      throw new DecodeError("unknown receipt version " + version);
    }
    return {
      version,
      header: r.withBytes(blockHeader),
      commit: commitProof(r),
      subject: subject(r),
      issuer: r.option((r) => ({ agency: r.byteVec(), proof: stateProof(r) })),
      transitions: r.vec(transition, MAX_SET_LEN),
      kind_policy: version === RECEIPT_VERSION_WITH_POLICY ? policyProof(r) : null,
    };
  }

  // ---------------------------------------------------------------- hashing (encoding.md)
  const H = (domain, ...parts) => C.hash.deriveKey("cachet v1 " + domain, concat(...parts));
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  const u32le = (n) => new Uint8Array(new Uint32Array([n]).buffer);
  const encodeString = (s) => {
    const b = new TextEncoder().encode(s);
    return concat(u32le(b.length), b);
  };
  // The encoding of a kind: its tag, and a registered kind's number after tag 4.
  function kindTag(k) {
    const builtin = KINDS.indexOf(k);
    if (builtin >= 0) return Uint8Array.of(builtin);
    const n = Number(k.slice("kind-".length));
    return Uint8Array.of(KINDS.length, n & 0xff, n >> 8);
  }
  // Tree paths of the state keys a receipt proves (state.md#keys).
  const stateKey = {
    agency: (agency) => H("state-key", Uint8Array.of(2), encodeString(agency)),
    policy: (k) => H("state-key", Uint8Array.of(3), kindTag(k)),
    certificate: (cert) => H("state-key", Uint8Array.of(5), cert),
    batch: (batch) => H("state-key", Uint8Array.of(6), batch),
    batchRevocation: (batch, index) => H("state-key", Uint8Array.of(7), batch, u32le(index)),
  };
  const ids = {
    certificate: (k, commitment) => H("cert-id", kindTag(k), commitment),
    batch: (k, root, leafCount) => H("batch-id", kindTag(k), root, u32le(leafCount)),
    commitment: (alg, digest, salt) => H("commitment", Uint8Array.of(alg), digest, salt),
  };

  C.encoding = {
    DecodeError, Reader, decodeAll, KINDS, RECEIPT_VERSION, RECEIPT_VERSION_WITH_POLICY, H, concat, stateKey, ids,
    types: {
      receipt, transition, blockHeader, validatorSet, commitProof, stateProof, batchProof, agencyRecord,
      kindPolicy, policyProof, certificateRecord, batchRecord, revocationRecord,
    },
  };
})(globalThis.cachet = globalThis.cachet || {});
