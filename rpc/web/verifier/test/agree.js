// Runs the JavaScript verifier over a corpus of receipts that the Rust verifier has already
// judged (written by `contracts/tests/receipts_in_javascript.rs`) and reports every case where
// the two disagree. The same function runs in Node.js (`node agree.js corpus.json`) and in a
// browser page that embeds the corpus (`agreeInPage`).
"use strict";
const runByNode = typeof require === "function" && typeof module === "object" && require.main === module;
if (runByNode) {
  for (const part of ["hash", "ed25519", "encoding", "receipt", "trust"]) require(require("path").join(__dirname, "..", part + ".js"));
}
(function (C) {
  const R = C.receipt;
  const unhex = C.trust.unhex;

  function outcome(receipt, trust, now, document) {
    try {
      const v = R.verify(receipt, trust, now, document);
      return {
        ok: true,
        verdict: v.verdict,
        id: v.id,
        kind: v.kind,
        kind_name: v.kind_definition ? v.kind_definition.name : null,
        issuer: v.issuer,
        issuer_name: v.issuer_name,
        lineage: (v.lineage || []).map((h) => R.hex(h.id)),
        height: Number(v.height),
        as_of: Number(v.as_of),
        document_matches: v.document_matches,
      };
    } catch (e) {
      if (!(e instanceof R.ReceiptError)) throw e;
      return { ok: false, error: e.code };
    }
  }

  function advanceOutcome(bytes, trust) {
    try {
      const a = C.trust.advance(trust, bytes);
      return { ok: true, root: R.hex(a.root), height: Number(a.trust.height) };
    } catch (e) {
      if (e instanceof R.ReceiptError) return { ok: false, error: e.code };
      if (e instanceof C.trust.AnchorError) return { ok: false, error: "bad_anchor" };
      throw e;
    }
  }

  // JSON with sorted keys, as serde_json writes it.
  const canonical = (v) => JSON.stringify(v, (_, x) =>
    x && typeof x === "object" && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x);

  // { checked, mismatches: [{ name, expected, got }] }
  function runCorpus(corpus) {
    const trusts = {};
    for (const [name, t] of Object.entries(corpus.trusts)) {
      trusts[name] = t.anchor ? C.trust.fromAnchor(unhex(t.root), unhex(t.anchor)) : C.trust.fromParts(t);
    }
    const mismatches = [];
    let checked = 0;
    for (const c of corpus.cases) {
      const doc = c.document && { alg: c.document.alg, digest: unhex(c.document.digest), salt: unhex(c.document.salt) };
      const got = outcome(unhex(c.receipt), trusts[c.trust], c.now, doc);
      checked++;
      if (canonical(got) !== canonical(c.expect)) mismatches.push({ name: c.name, expected: c.expect, got });
    }
    for (const f of corpus.flips) {
      const bytes = unhex(f.receipt);
      const whole = outcome(bytes, trusts[f.trust], f.now, null);
      if (!whole.ok) mismatches.push({ name: f.name + " unchanged", expected: "accepted", got: whole });
      for (let i = 0; i < bytes.length; i++) {
        for (const b of f.bits) {
          const bad = bytes.slice();
          bad[i] ^= 1 << b;
          const got = outcome(bad, trusts[f.trust], f.now, null);
          checked++;
          if (got.ok) mismatches.push({ name: f.name + " byte " + i + " bit " + b, expected: "rejected", got });
        }
      }
    }
    for (const a of corpus.advances) {
      const got = advanceOutcome(unhex(a.advance), trusts[a.from]);
      checked++;
      if (canonical(got) !== canonical(a.expect)) mismatches.push({ name: a.name, expected: a.expect, got });
    }
    return { checked, mismatches };
  }

  C.agree = { runCorpus };

  if (runByNode) {
    const corpus = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
    const started = Date.now();
    const { checked, mismatches } = runCorpus(corpus);
    for (const m of mismatches) console.log("DISAGREE " + m.name + ": rust " + JSON.stringify(m.expected) + ", javascript " + JSON.stringify(m.got));
    console.log("checked " + checked + " receipts in " + (Date.now() - started) + " ms, " + mismatches.length + " disagreements");
    process.exit(mismatches.length === 0 ? 0 : 1);
  }
})(globalThis.cachet = globalThis.cachet || {});
