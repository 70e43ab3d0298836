// Cachet verifier, part 5 of 5: the trust a receipt is checked against — the chain id, the
// validator set whose signatures count, and the kind policies (for each kind's maximum receipt
// age) — built from parts the verifier already trusts, and moved forward to a later checkpoint
// (receipt.md#checkpoints).
//
// What it is: the one place a `trust` object (as receipt.js reads it) is made, so every path
// to one checks the same things.
// What it is not: a way to trust a node. Parts handed over by a node are only trusted once
// they are checked against a root the user pinned.
"use strict";
(function (C) {
  const E = C.encoding;

  const unhex = (s) => {
    if (typeof s !== "string" || !/^([0-9a-f]{2})*$/i.test(s)) throw new Error("not hex");
    return Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  };

  // `parts`: { chain_id, height (of the trusted header; 0 for the genesis), validators (the
  // encoded set that signs the blocks after it), policies: { kind: encoded KindPolicy } }, all
  // byte strings in hex.
  function fromParts(parts) {
    const bytes = unhex(parts.validators);
    const set = E.decodeAll(bytes, E.types.validatorSet, 64 * 1024);
    const policies = {};
    for (const [kind, policy] of Object.entries(parts.policies)) {
      if (!E.KINDS.includes(kind)) throw new Error("unknown kind " + kind);
      policies[kind] = E.decodeAll(unhex(policy), E.types.kindPolicy, 64 * 1024);
    }
    return {
      chain_id: parts.chain_id,
      height: BigInt(parts.height),
      validators: { value: set, hash: E.H("validator-set", bytes) },
      policies,
    };
  }

  class AnchorError extends Error {}

  const anchorType = (r) => ({
    header: r.withBytes(E.types.blockHeader),
    validators: r.withBytes(E.types.validatorSet),
    policies: r.vec((r) => ({ kind: E.KINDS[r.tag(E.KINDS)], policy: r.byteVec(), proof: E.types.stateProof(r) }), 256),
  });

  // Check a trust anchor (bytes) against the trust root the user pinned (32 bytes) and make it
  // a trust: receipt.md#trust-roots.
  function fromAnchor(root, bytes) {
    let a;
    try {
      a = E.decodeAll(bytes, anchorType, 64 * 1024);
    } catch (e) {
      throw new AnchorError("malformed trust anchor: " + e.message);
    }
    return checkAnchor(root, a);
  }

  function checkAnchor(root, a) {
    const got = E.H("block-header", a.header.bytes);
    if (C.receipt.hex(got) !== C.receipt.hex(root)) {
      throw new AnchorError("the trust anchor's header hashes to " + C.receipt.hex(got) + ", not to the trusted root " + C.receipt.hex(root));
    }
    const validators = C.receipt.setWithHash(a.validators);
    if (C.receipt.hex(validators.hash) !== C.receipt.hex(a.header.value.next_validators_hash)) {
      throw new AnchorError("the trust anchor's validator set is not the one its header names");
    }
    const policies = {};
    let last = -1;
    for (const p of a.policies) {
      const tag = E.KINDS.indexOf(p.kind);
      const key = E.stateKey.policy(p.kind);
      if (tag <= last || !C.receipt.proves(p.proof, a.header.value.state_root, key, C.receipt.valueHash(p.policy))) {
        throw new AnchorError("the trust anchor's policy for " + p.kind + " does not verify");
      }
      last = tag;
      try {
        policies[p.kind] = E.decodeAll(p.policy, E.types.kindPolicy, 64 * 1024);
      } catch (_) {
        throw new AnchorError("the trust anchor's policy for " + p.kind + " does not verify");
      }
    }
    return { chain_id: a.header.value.chain_id, height: a.header.value.height, validators, policies };
  }

  const advanceType = (r) => ({
    transitions: r.vec(E.types.transition, 256),
    commit: E.types.commitProof(r),
    anchor: anchorType(r),
  });

  // Move `trust` to the checkpoint an advance (bytes) leads to: its header must be committed by
  // the set the transitions reach from `trust`, and its anchor must be what its header names.
  // Returns { trust, root } of the checkpoint; throws a ReceiptError or an AnchorError.
  function advance(trust, bytes) {
    let a;
    try {
      a = E.decodeAll(bytes, advanceType, 256 * 1024);
    } catch (e) {
      throw new C.receipt.ReceiptError("malformed", "malformed checkpoint: " + e.message);
    }
    C.receipt.checkHead({ header: a.anchor.header, commit: a.commit, transitions: a.transitions }, trust);
    const root = E.H("block-header", a.anchor.header.bytes);
    return { trust: checkAnchor(root, a.anchor), root };
  }

  C.trust = { fromParts, fromAnchor, advance, AnchorError, unhex };
})(globalThis.cachet = globalThis.cachet || {});
