// Cachet verifier, part 4 of 5: verifying a receipt, as docs/spec/receipt.md says, against a
// trust the verifier holds — a second implementation of that page beside the Rust one
// (`cachet_chain::receipt::verify`); both run on the same vectors and live receipts.
//
// What it is: `verify(receiptBytes, trust, nowMs, document?)` returns what the receipt proves
// (a verdict as of a committed height) or throws a ReceiptError saying why it proves nothing.
// The steps and their order follow the spec's "Verification" section, so the two
// implementations fail on the same step.
// What it is not: a source of trust. The trust (chain id, validator set, kind policies) comes
// from a trust root the user pins (trust.js), never from the node that served the receipt.
"use strict";
(function (C) {
  const E = C.encoding;
  const T = E.types;

  // Why a receipt proves nothing. `code` is the Rust `ReceiptError` variant, in snake_case.
  class ReceiptError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  const MAX_RECEIPT_BYTES = 64 * 1024;
  const MAX_STATE_VALUE_BYTES = 64 * 1024;
  const EMPTY = new Uint8Array(32);

  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const bit = (h, d) => (h[d >> 3] >> (7 - (d & 7))) & 1;
  const blake3 = (...parts) => C.hash.blake3(E.concat(...parts));

  // Decode a state value the receipt carries, or fail as malformed.
  function record(bytes, f, what) {
    try {
      return E.decodeAll(bytes, f, MAX_STATE_VALUE_BYTES);
    } catch (e) {
      throw new ReceiptError("malformed", what + ": " + e.message);
    }
  }

  // ------------------------------------------------------------ proofs (state.md#proofs)
  // The root a state proof leads to for key hash `k`, and the value hash it shows for `k`
  // (null: absent); null overall when the proof is malformed for `k`.
  function resolve(proof, k) {
    const depth = proof.siblings.length;
    let acc, shown = null;
    if (proof.terminal === null) {
      acc = EMPTY;
    } else {
      const t = proof.terminal;
      for (let d = 0; d < depth; d++) if (bit(t.key, d) !== bit(k, d)) return null;
      acc = blake3(Uint8Array.of(2), t.key, t.value);
      if (equal(t.key, k)) shown = t.value;
    }
    for (let d = depth - 1; d >= 0; d--) {
      const s = proof.siblings[d];
      acc = bit(k, d) ? blake3(Uint8Array.of(3), s, acc) : blake3(Uint8Array.of(3), acc, s);
    }
    return { root: acc, shown };
  }
  function proves(proof, root, k, valueHash) {
    const r = resolve(proof, k);
    if (r === null || !equal(r.root, root)) return false;
    return valueHash === null ? r.shown === null : r.shown !== null && equal(r.shown, valueHash);
  }
  const valueHash = (bytes) => E.H("state-value", bytes);
  function checkMember(root, key, value, proof, what) {
    if (!proves(proof, root, key, valueHash(value))) throw new ReceiptError("bad_proof", "proof does not verify: " + what);
  }

  // encoding.md#batch-and-transaction-trees
  function batchRoot(proof, leafCount, leaf) {
    let i = proof.index, n = leafCount;
    if (n === 0 || i >= n) return null;
    let acc = leaf, next = 0;
    while (n > 1) {
      if (!(i === n - 1 && n % 2 === 1)) {
        if (next >= proof.siblings.length) return null;
        const s = proof.siblings[next++];
        acc = i % 2 === 1 ? blake3(Uint8Array.of(1), s, acc) : blake3(Uint8Array.of(1), acc, s);
      }
      i = Math.floor(i / 2);
      n = Math.ceil(n / 2);
    }
    return next === proof.siblings.length ? acc : null;
  }

  // ------------------------------------------------------------ commits (receipt.md steps 2-3)
  function precommitMessage(chainId, height, round, blockHash, key) {
    const body = new Uint8Array(8 + 1 + 4 + 1 + 32 + 1 + 33);
    const v = new DataView(body.buffer);
    v.setBigUint64(0, height, true);
    body[8] = 1;
    v.setUint32(9, round, true);
    body[13] = 1;
    body.set(blockHash, 14);
    body[46] = 1;
    body[47] = 0; // the key's algorithm tag: ed25519
    body.set(key, 48);
    const id = new TextEncoder().encode(chainId);
    return E.H("signing", Uint8Array.of(3, id.length), id, body);
  }

  // Are more than two thirds of `set` (decoded, with its hash) among the signers of `header`?
  function checkSigned(header, commit, set, trust) {
    const h = header.value;
    if (h.chain_id !== trust.chain_id) {
      throw new ReceiptError("wrong_chain", "the receipt is for chain " + h.chain_id + ", the trusted chain is " + trust.chain_id);
    }
    if (!equal(h.validators_hash, set.hash)) {
      throw new ReceiptError("untrusted_validators", "the block was signed by a validator set that is not the trusted one");
    }
    const blockHash = E.H("block-header", header.bytes);
    const members = set.value.validators;
    let signed = 0n, last = -1;
    commit.signatures.forEach((s, i) => {
      if (s.validator <= last) throw new ReceiptError("bad_commit", "bad commit: signatures must be in increasing validator order");
      last = s.validator;
      const v = members[s.validator];
      if (v === undefined) throw new ReceiptError("bad_commit", "bad commit: no validator at position " + s.validator);
      const msg = precommitMessage(h.chain_id, h.height, commit.round, blockHash, v.key);
      if (!C.ed25519.verify(v.key, msg, s.signature)) throw new ReceiptError("bad_commit", "bad commit: signature " + i + " does not verify");
      signed += v.power;
    });
    const total = members.reduce((n, v) => n + v.power, 0n);
    if (signed * 3n <= total * 2n) {
      throw new ReceiptError("insufficient_power", "only " + signed + " of " + total + " voting power signed the block");
    }
  }

  const setWithHash = (set) => ({ value: set.value, hash: E.H("validator-set", set.bytes) });

  // The header and commit of a receipt are signed by the set its transitions lead to from the
  // trusted set (the part every receipt at one height shares).
  function checkHead(receipt, trust) {
    const top = receipt.header.value.height;
    if (top <= trust.height) {
      throw new ReceiptError("bad_commit", "bad commit: the block is at height " + top + ", not above the trusted height " + trust.height);
    }
    let current = trust.validators;
    let after = trust.height;
    for (const t of receipt.transitions) {
      const height = t.header.value.height;
      if (height <= after || height >= receipt.header.value.height) {
        throw new ReceiptError("bad_commit", "bad commit: validator-set changes out of order");
      }
      checkSigned(t.header, t.commit, current, trust);
      const next = setWithHash(t.next);
      if (!equal(next.hash, t.header.value.next_validators_hash)) throw new ReceiptError("bad_proof", "proof does not verify: validator-set change");
      current = next;
      after = height;
    }
    checkSigned(receipt.header, receipt.commit, current, trust);
  }

  // ------------------------------------------------------------ lineage (step 4)
  // Each hop: proven in the same state, the certificate the one before it replaced, and
  // superseded by it. Returns the records, newest first, each with its id.
  function checkLineage(root, r, hops) {
    const out = [];
    let next = r;
    hops.forEach((hop, i) => {
      const h = record(hop.record, T.certificateRecord, "lineage record");
      h.id = E.ids.certificate(h.kind, h.commitment);
      checkMember(root, E.stateKey.certificate(h.id), hop.record, hop.proof, "lineage record");
      const namesNext = h.status.state === "superseded" && equal(h.status.by, next.id);
      if (next.supersedes === null || !equal(next.supersedes, h.id) || !namesNext) {
        throw new ReceiptError("malformed", "malformed receipt: the lineage is broken at hop " + i);
      }
      out.push(h);
      next = h;
    });
    return out;
  }

  // ------------------------------------------------------------ issuer (step 5)
  // The agency's name, from its record when the receipt carries one.
  function issuerName(root, issuer, agency) {
    if (issuer === null) return null;
    checkMember(root, E.stateKey.agency(agency), issuer.agency, issuer.proof, "issuer record");
    const a = record(issuer.agency, T.agencyRecord, "issuer record");
    if (a.id !== agency) throw new ReceiptError("malformed", "malformed receipt: the issuer record is another agency's");
    return a.name;
  }

  // ------------------------------------------------------------ verdicts (verdict.rs, state.md)
  function windowVerdict(from, until, at) {
    if (from !== null && at < from) return "not_yet_valid";
    if (until !== null && at >= until) return "expired";
    return "valid";
  }
  function certificateVerdict(r, at) {
    switch (r.status.state) {
      case "pending": return "pending";
      case "revoked": return "revoked";
      case "superseded": return "superseded";
      default: return windowVerdict(r.valid_from, r.valid_until, at);
    }
  }

  // The policy of a registered kind the receipt carries, checked against the state root;
  // null for a built-in kind or no certificate, whose receipts carry none (receipt.md).
  function kindPolicy(root, kind, receipt) {
    const registered = kind !== null && !E.KINDS.includes(kind);
    const carried = receipt.kind_policy;
    if (!registered && carried === null) return null;
    if (!registered) throw new ReceiptError("malformed", "malformed receipt: the receipt carries a kind policy, but its certificate's kind is built in");
    if (carried === null) throw new ReceiptError("malformed", "malformed receipt: " + kind + " is registered by governance, and the receipt does not carry its policy");
    if (carried.kind !== kind) throw new ReceiptError("malformed", "malformed receipt: the receipt carries the policy of " + carried.kind + ", not of " + kind);
    checkMember(root, E.stateKey.policy(kind), carried.policy, carried.proof, "kind policy");
    const policy = record(carried.policy, T.kindPolicy, "kind policy");
    if (policy.definition === null) throw new ReceiptError("malformed", "malformed receipt: the policy of " + kind + " does not define it");
    return policy;
  }

  function maxAge(trust, kind) {
    if (kind !== null && trust.policies[kind]) return trust.policies[kind].max_receipt_age_ms;
    // Unknown kind (an absent certificate): the strictest policy.
    const ages = Object.values(trust.policies).map((p) => p.max_receipt_age_ms);
    return ages.length === 0 ? 0n : ages.reduce((a, b) => (b < a ? b : a));
  }

  // ------------------------------------------------------------ verify
  // `now` is the verifier's clock in ms (BigInt or Number); `document`, if given, is
  // { alg: 0 (SHA-256) | 1 (BLAKE3), digest: Uint8Array(32), salt: Uint8Array(32) }.
  function verify(bytes, trust, now, document) {
    now = BigInt(now);
    let receipt;
    try {
      receipt = E.decodeAll(bytes, T.receipt, MAX_RECEIPT_BYTES);
    } catch (e) {
      throw new ReceiptError("malformed", "malformed receipt: " + e.message);
    }
    checkHead(receipt, trust);
    const header = receipt.header.value;
    const root = header.state_root;
    const opens = (c) => document ? equal(E.ids.commitment(document.alg, document.digest, document.salt), c) : null;
    const s = receipt.subject;
    let out;
    if (s.type === "certificate") {
      const r = record(s.record, T.certificateRecord, "certificate record");
      const id = E.ids.certificate(r.kind, r.commitment);
      checkMember(root, E.stateKey.certificate(id), s.record, s.proof, "certificate record");
      r.id = id;
      const lineage = checkLineage(root, r, s.lineage);
      out = {
        verdict: certificateVerdict(r, now), id: hex(id), kind: r.kind, issuer: r.issuer,
        issuer_name: issuerName(root, receipt.issuer, r.issuer), document_matches: opens(r.commitment),
        record: r, lineage, batch: null, revocation: null,
      };
    } else if (s.type === "absent") {
      if (!proves(s.proof, root, E.stateKey.certificate(s.id), null)) throw new ReceiptError("bad_proof", "proof does not verify: absence of the certificate");
      out = {
        verdict: "unknown", id: hex(s.id), kind: null, issuer: null, issuer_name: null,
        document_matches: null, record: null, batch: null, revocation: null,
      };
    } else {
      const b = record(s.batch, T.batchRecord, "batch record");
      b.id = E.ids.batch(b.kind, b.root, b.leaf_count);
      checkMember(root, E.stateKey.batch(b.id), s.batch, s.batch_proof, "batch record");
      const leaf = blake3(Uint8Array.of(0), s.commitment);
      const reached = batchRoot(s.inclusion, b.leaf_count, leaf);
      if (reached === null || !equal(reached, b.root)) throw new ReceiptError("bad_proof", "proof does not verify: inclusion in the batch");
      const rkey = E.stateKey.batchRevocation(b.id, s.inclusion.index);
      let revocation = null;
      const rv = s.revocation;
      if (rv.type === "none_in_batch") {
        if (b.revoked !== 0) throw new ReceiptError("bad_proof", "proof does not verify: the batch has revoked entries, but no proof for this one");
      } else if (rv.type === "revoked") {
        checkMember(root, rkey, rv.record, rv.proof, "revocation record");
        revocation = record(rv.record, T.revocationRecord, "revocation record");
      } else if (!proves(rv.proof, root, rkey, null)) {
        throw new ReceiptError("bad_proof", "proof does not verify: absence of a revocation");
      }
      out = {
        verdict: revocation !== null ? "revoked" : windowVerdict(b.valid_from, b.valid_until, now),
        id: hex(b.id) + "#" + s.inclusion.index, kind: b.kind, issuer: b.issuer,
        issuer_name: issuerName(root, receipt.issuer, b.issuer),
        document_matches: opens(s.commitment), record: null, batch: b, revocation, commitment: hex(s.commitment),
        index: s.inclusion.index, inclusion: s.inclusion,
      };
    }
    out.height = header.height;
    out.as_of = header.time;
    const registered = kindPolicy(root, out.kind, receipt);
    out.kind_definition = registered === null ? null : registered.definition;
    const max = registered === null ? maxAge(trust, out.kind) : registered.max_receipt_age_ms;
    const age = now > header.time ? now - header.time : 0n;
    if (age > max) {
      const named = out.kind_definition !== null ? out.kind_definition.name : out.kind;
      const e = new ReceiptError("too_old", "the receipt is " + age + " ms old; " + (named || "unknown") + " receipts are trusted for " + max + " ms");
      e.verified = out;
      throw e;
    }
    return out;
  }

  C.receipt = { verify, ReceiptError, hex, checkHead, checkSigned, setWithHash, proves, valueHash };
})(globalThis.cachet = globalThis.cachet || {});
