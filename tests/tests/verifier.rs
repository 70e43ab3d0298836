//! The verify page's verifier (`rpc/web/verifier/`, plain JavaScript written from
//! `docs/spec/receipt.md`) is a second implementation of the spec beside
//! `cachet_chain::receipt::verify`. Here the Rust verifier judges receipts of every verdict and
//! of every way a receipt fails, every single-bit change of three receipts, and advances of a
//! verifier's trust to a checkpoint; the corpus and
//! its judgements are pinned as the spec's receipt vectors (`docs/spec/vectors/receipts.json`),
//! and the JavaScript verifier runs over it in Node.js and in headless Chromium. The two
//! implementations must agree on every receipt.

#[path = "../../contracts/tests/common/mod.rs"]
mod common;

use cachet_chain::checkpoint::{Advance, AdvanceError};
use cachet_chain::codec::encode;
use cachet_chain::crypto::SecretKey;
use cachet_chain::document::{Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, Timestamp};
use cachet_chain::receipt::{
    CommitSignatures, EntryRevocation, Receipt, ReceiptError, Transitions, Verified, verify,
};
use cachet_chain::state::{Validator, ValidatorSet};
use cachet_chain::trust::{Trust, TrustAnchor};
use cachet_chain::tx::{Action, RevocationReason};
use cachet_contracts::example;
use cachet_tests::browser::{chromium, render};
use common::receipts::*;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

fn verifier_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rpc/web/verifier")
}

/// The verifier's files, in the order the page includes them.
const PARTS: [&str; 5] = ["hash", "ed25519", "encoding", "receipt", "trust"];

/// A trust with an anchor (the genesis, a checkpoint) goes to the JavaScript verifier as the
/// page gets it — the root and the anchor it stands for — and the others as their parts.
fn trust_json(t: &Trust, anchor: Option<&TrustAnchor>) -> Value {
    if let Some(anchor) = anchor {
        return json!({ "root": anchor.root().to_string(), "anchor": hex::encode(anchor.encode()) });
    }
    let policies: serde_json::Map<String, Value> = t
        .policies
        .iter()
        .map(|(k, p)| (k.to_string(), hex::encode(encode(p)).into()))
        .collect();
    json!({
        "chain_id": t.chain_id.as_str(),
        "height": 0,
        "validators": hex::encode(encode(&t.validators)),
        "policies": policies,
    })
}

fn error_code(e: &ReceiptError) -> &'static str {
    match e {
        ReceiptError::Malformed(_) => "malformed",
        ReceiptError::WrongChain { .. } => "wrong_chain",
        ReceiptError::UntrustedValidators => "untrusted_validators",
        ReceiptError::BadCommit(_) => "bad_commit",
        ReceiptError::InsufficientPower { .. } => "insufficient_power",
        ReceiptError::BadProof(_) => "bad_proof",
        ReceiptError::TooOld { .. } => "too_old",
    }
}

fn judgement(r: &Result<Verified, ReceiptError>) -> Value {
    match r {
        Ok(v) => json!({
            "ok": true,
            "verdict": v.verdict,
            "id": v.id,
            "kind": v.kind.map(|k| k.to_string()),
            "kind_name": v.kind_definition.as_ref().map(|d| d.name.as_str()),
            "issuer": v.issuer.as_ref().map(|a| a.as_str()),
            "issuer_name": v.issuer_name,
            "lineage": v.lineage.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>(),
            "height": v.height.0,
            "as_of": v.as_of.0,
            "document_matches": v.document_matches,
        }),
        Err(e) => json!({ "ok": false, "error": error_code(e) }),
    }
}

fn advance_judgement(r: &Result<(Trust, Hash32), AdvanceError>) -> Value {
    match r {
        Ok((t, root)) => json!({ "ok": true, "root": root.to_string(), "height": t.height.0 }),
        Err(AdvanceError::Malformed(_)) => json!({ "ok": false, "error": "malformed" }),
        Err(AdvanceError::NotCommitted(e)) => json!({ "ok": false, "error": error_code(e) }),
        Err(AdvanceError::Anchor(_)) => json!({ "ok": false, "error": "bad_anchor" }),
    }
}

/// The example consortium's trust, and two a verifier of another consortium might hold.
fn trusts() -> Vec<(&'static str, Trust, Option<TrustAnchor>)> {
    let mut other_set = trust();
    other_set.validators = ValidatorSet::new(vec![Validator {
        agency: id("moi-land"),
        key: SecretKey::dev("somebody else").public(),
        power: 1,
    }])
    .unwrap();
    let mut other_chain = trust();
    other_chain.chain_id = cachet_chain::ChainId::new("other-chain").unwrap();
    let genesis = cachet_contracts::anchor(&example::genesis()).unwrap();
    vec![
        ("genesis", trust(), Some(genesis)),
        ("other-set", other_set, None),
        ("other-chain", other_chain, None),
    ]
}

struct Corpus {
    trusts: Vec<(&'static str, Trust, Option<TrustAnchor>)>,
    cases: Vec<Value>,
    flips: Vec<Value>,
    advances: Vec<Value>,
    verdicts: std::collections::BTreeSet<String>,
}

type Document = (Fingerprint, Salt);

impl Corpus {
    fn trust(&self, name: &str) -> &Trust {
        &self.trusts.iter().find(|(n, ..)| *n == name).unwrap().1
    }

    /// Judge an advance from trust `from` (after an encode/decode round trip) and keep it.
    fn advance(&mut self, name: &str, a: &Advance, from: &str) {
        let bytes = a.encode();
        let judged = Advance::decode(&bytes)
            .map_err(|e| AdvanceError::Malformed(e.to_string()))
            .and_then(|a| a.verify(self.trust(from)));
        self.advances.push(json!({
            "name": name,
            "advance": hex::encode(&bytes),
            "from": from,
            "expect": advance_judgement(&judged),
        }));
    }

    /// Judge `receipt` (after an encode/decode round trip, as a verifier receives it) and keep
    /// it with the judgement.
    fn case(
        &mut self,
        name: &str,
        r: &Receipt,
        trust: &str,
        now: Timestamp,
        doc: Option<&Document>,
    ) {
        let bytes = r.encode();
        let judged = Receipt::decode(&bytes)
            .map_err(|e| ReceiptError::Malformed(e.to_string()))
            .and_then(|r| verify(&r, self.trust(trust), now, doc.map(|(f, s)| (f, s))));
        if let Ok(v) = &judged {
            self.verdicts.insert(v.verdict.to_string());
        }
        self.cases.push(json!({
            "name": name,
            "receipt": hex::encode(&bytes),
            "trust": trust,
            "now": now.0,
            "document": doc.map(|(f, s)| json!({
                "alg": f.alg as u8,
                "digest": f.digest.to_string(),
                "salt": s.0.to_string(),
            })),
            "expect": judgement(&judged),
        }));
    }

    /// Every change of one bit (of those in `bits`) in every byte of `r`; the Rust verifier
    /// refuses each, and so must the JavaScript one.
    fn flips(&mut self, name: &str, r: &Receipt, now: Timestamp, bits: &[u8]) {
        let bytes = r.encode();
        let trust = self.trust("genesis").clone();
        assert!(verify(r, &trust, now, None).is_ok(), "{name} verifies");
        for i in 0..bytes.len() {
            for &bit in bits {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let accepted = Receipt::decode(&bad)
                    .ok()
                    .and_then(|r| verify(&r, &trust, now, None).ok());
                assert!(accepted.is_none(), "{name}: bit {bit} of byte {i} accepted");
            }
        }
        self.flips.push(json!({
            "name": name, "receipt": hex::encode(&bytes), "trust": "genesis", "now": now.0, "bits": bits,
        }));
    }

    fn to_json(&self) -> Value {
        let trusts: serde_json::Map<String, Value> = self
            .trusts
            .iter()
            .map(|(n, t, a)| (n.to_string(), trust_json(t, a.as_ref())))
            .collect();
        json!({
            "trusts": trusts,
            "cases": self.cases,
            "flips": self.flips,
            "advances": self.advances,
        })
    }
}

fn document(name: &str) -> Document {
    (
        Fingerprint::of(FingerprintAlg::Sha256, name.as_bytes()),
        Salt(Hash32([9; 32])),
    )
}

fn soon(w: &World) -> Timestamp {
    w.chain.head().time.plus_ms(1000)
}

/// Receipts of every verdict and of every way one fails, from one in-memory chain.
fn build() -> Corpus {
    let mut c = Corpus {
        trusts: trusts(),
        cases: vec![],
        flips: vec![],
        advances: vec![],
        verdicts: Default::default(),
    };
    let mut w = World::new();

    // A land title: valid, with and without its document, at a clock behind the chain's,
    // too old, and judged by verifiers that trust something else.
    let t = w.issue_title("moi-land", "deed-1", "lot-1");
    let land = certificate_receipt(&w, t);
    let now = soon(&w);
    c.case("title", &land, "genesis", now, None);
    let mut nameless = land.clone();
    nameless.issuer = None;
    c.case(
        "title without its issuer's record",
        &nameless,
        "genesis",
        now,
        None,
    );
    c.case(
        "title with its document",
        &land,
        "genesis",
        now,
        Some(&document("deed-1")),
    );
    c.case(
        "title with another document",
        &land,
        "genesis",
        now,
        Some(&document("deed-2")),
    );
    c.case(
        "title, clock behind the chain",
        &land,
        "genesis",
        Timestamp(w.chain.head().time.0 - 60_000),
        None,
    );
    c.case("title a day old", &land, "genesis", now.plus_ms(DAY), None);
    c.case(
        "title, another validator set",
        &land,
        "other-set",
        now,
        None,
    );
    c.case("title, another chain", &land, "other-chain", now, None);
    let mut two = land.clone();
    two.commit = commit(&w, &[0, 1]);
    c.case("title signed by two of four", &two, "genesis", now, None);
    let mut dup = land.clone();
    let first = dup.commit.signatures[0].clone();
    dup.commit.signatures =
        CommitSignatures::new(vec![first.clone(), first.clone(), first]).unwrap();
    c.case(
        "title, one signature three times",
        &dup,
        "genesis",
        now,
        None,
    );
    c.flips("title", &land, now, &[0, 3, 7]);

    // Revoked; superseded (a transfer) and its successor; a certificate that does not exist.
    let revoked = w.issue_title("moi-land", "deed-revoked", "lot-2");
    w.submit(
        "moi-land",
        Action::Revoke {
            id: revoked,
            reason: RevocationReason::Fraud,
        },
    )
    .unwrap();
    c.case(
        "revoked title",
        &certificate_receipt(&w, revoked),
        "genesis",
        soon(&w),
        None,
    );
    let old = w.issue_title("moi-land", "deed-old", "lot-3");
    let next = title("deed-new", "lot-3");
    let successor = next.cert_id();
    w.submit(
        "moi-land",
        Action::Supersede {
            previous: old,
            next,
        },
    )
    .unwrap();
    c.case(
        "superseded title",
        &certificate_receipt(&w, old),
        "genesis",
        soon(&w),
        None,
    );
    c.case(
        "its successor",
        &certificate_receipt(&w, successor),
        "genesis",
        soon(&w),
        None,
    );
    let ghost = cachet_chain::CertId::derive(CertKind::LandTitle, &doc("ghost"));
    c.case(
        "unknown certificate",
        &certificate_receipt(&w, ghost),
        "genesis",
        soon(&w),
        None,
    );

    // An investment permit: pending until two approvals, then valid; a permit whose window
    // starts tomorrow: not yet valid, valid inside it, expired after it.
    let p = w.permit("permit-1");
    let pid = p.cert_id();
    w.submit("moea-investment", Action::Issue(p)).unwrap();
    c.case(
        "pending permit",
        &certificate_receipt(&w, pid),
        "genesis",
        soon(&w),
        None,
    );
    w.submit("nia-immigration", Action::Approve { id: pid })
        .unwrap();
    w.submit("mol-labor", Action::Approve { id: pid }).unwrap();
    c.case(
        "approved permit",
        &certificate_receipt(&w, pid),
        "genesis",
        soon(&w),
        None,
    );
    let (windowed, from, until) = approved_permit_from_tomorrow(&mut w);
    c.case(
        "permit before its window",
        &certificate_receipt(&w, windowed),
        "genesis",
        soon(&w),
        None,
    );
    w.time = from;
    w.issue_title("moi-land", "deed-in-window", "lot-in-window");
    c.case(
        "permit in its window",
        &certificate_receipt(&w, windowed),
        "genesis",
        soon(&w),
        None,
    );
    w.time = until;
    w.issue_title("moi-land", "deed-after-window", "lot-after-window");
    c.case(
        "permit after its window",
        &certificate_receipt(&w, windowed),
        "genesis",
        soon(&w),
        None,
    );

    // A reward-order batch: an entry valid, with its document, one revoked, one claimed with
    // the commitment of another position.
    let (b, tree, commitments) = issue_reward_orders(&mut w);
    let entry = |w: &World, i| batch_entry_receipt(w, "dgpa-personnel", &b, &tree, &commitments, i);
    let entry417 = entry(&w, 417);
    c.case("batch entry", &entry417, "genesis", soon(&w), None);
    c.case(
        "batch entry with its document",
        &entry417,
        "genesis",
        soon(&w),
        Some(&document("order-417")),
    );
    c.case(
        "batch entry with another's document",
        &entry417,
        "genesis",
        soon(&w),
        Some(&document("order-418")),
    );
    c.flips("batch entry", &entry417, soon(&w), &[0, 7]);
    revoke_reward_order(&mut w, &b, &tree, &commitments, 417);
    c.case(
        "revoked batch entry",
        &entry(&w, 417),
        "genesis",
        soon(&w),
        None,
    );
    c.case(
        "batch entry of a batch with a revoked entry",
        &entry(&w, 418),
        "genesis",
        soon(&w),
        None,
    );
    let mut hiding = entry(&w, 418);
    if let cachet_chain::receipt::Subject::BatchEntry { revocation, .. } = &mut hiding.subject {
        *revocation = EntryRevocation::NoneInBatch;
    }
    c.case(
        "batch entry hiding its batch's revocations",
        &hiding,
        "genesis",
        soon(&w),
        None,
    );
    let mut wrong = entry(&w, 10);
    if let cachet_chain::receipt::Subject::BatchEntry { commitment, .. } = &mut wrong.subject {
        *commitment = commitments[11];
    }
    c.case(
        "batch entry with another position's commitment",
        &wrong,
        "genesis",
        soon(&w),
        None,
    );

    // The issuer's key rotated after issuance.
    let before = w.issue_title("guting-land-office", "deed-before-rotation", "lot-r");
    let new_key = SecretKey::dev("guting-land-office-2028");
    let proposal = rotation_one_vote_short(&mut w, "guting-land-office", &new_key);
    w.submit("dgpa-personnel", Action::Vote { proposal })
        .unwrap();
    c.case(
        "title whose issuer's key rotated since",
        &certificate_receipt(&w, before),
        "genesis",
        soon(&w),
        None,
    );

    // A title transferred ten times: its receipt carries the ten earlier titles, each proven.
    let ids = transferred_title(&mut w, "deed-chain", "lot-chain", "moi-land", 10);
    let chained = lineage_receipt(&w, ids[10]);
    c.case(
        "title with a lineage of ten",
        &chained,
        "genesis",
        soon(&w),
        None,
    );
    let mut gapped = chained.clone();
    if let cachet_chain::receipt::Subject::Certificate { lineage, .. } = &mut gapped.subject {
        let mut hops: Vec<_> = lineage.iter().cloned().collect();
        hops.remove(4);
        *lineage = cachet_chain::receipt::Lineage::new(hops).unwrap();
    }
    c.case(
        "title with a hop left out of its lineage",
        &gapped,
        "genesis",
        soon(&w),
        None,
    );

    // A kind registered by a vote, which the genesis never heard of: its receipt carries its
    // policy (the kind's name and maximum age come from there), and one without it, with
    // another kind's, with a changed one, or on a built-in kind's receipt proves nothing.
    let kind = w.register_construction_firms();
    let firm = w.firm_certificate(kind, "firm-1");
    let firm_id = firm.cert_id();
    w.submit("moi-land", Action::Issue(firm)).unwrap();
    let registered = certificate_receipt(&w, firm_id);
    c.case("registered kind", &registered, "genesis", soon(&w), None);
    c.case(
        "registered kind with its document",
        &registered,
        "genesis",
        soon(&w),
        Some(&document("firm-1")),
    );
    c.case(
        "registered kind older than its own policy allows",
        &registered,
        "genesis",
        w.chain.head().time.plus_ms(3 * DAY + 1),
        None,
    );
    c.case(
        "registered kind within its own policy's age, past the strictest genesis kind's",
        &registered,
        "genesis",
        w.chain.head().time.plus_ms(2 * DAY),
        None,
    );
    let mut stripped = registered.clone();
    stripped.kind_policy = None;
    stripped.version = cachet_chain::receipt::RECEIPT_VERSION;
    c.case(
        "registered kind without its policy",
        &stripped,
        "genesis",
        soon(&w),
        None,
    );
    let mut misnamed = registered.clone();
    misnamed.kind_policy.as_mut().unwrap().kind = CertKind::Registered(1);
    c.case(
        "registered kind with another kind's policy",
        &misnamed,
        "genesis",
        soon(&w),
        None,
    );
    let mut lenient = registered.clone();
    let mut policy = construction_firm_policy();
    policy.max_receipt_age_ms = 365 * DAY;
    lenient.kind_policy.as_mut().unwrap().policy = encode(&policy);
    c.case(
        "registered kind with a policy the state does not hold",
        &lenient,
        "genesis",
        soon(&w),
        None,
    );
    let mut dressed = certificate_receipt(&w, t);
    dressed.kind_policy = registered.kind_policy.clone();
    dressed.version = cachet_chain::receipt::RECEIPT_VERSION_WITH_POLICY;
    c.case(
        "title carrying a registered kind's policy",
        &dressed,
        "genesis",
        soon(&w),
        None,
    );
    c.flips("registered kind", &registered, soon(&w), &[0]);

    // A validator joins: later receipts carry the transition signed by the set before.
    let Joined {
        transition,
        old_set,
        new_set,
        new_keys,
    } = a_validator_joins(&mut w);
    let after = w.issue_title("moi-land", "deed-after-change", "lot-9");
    let mut r = certificate_receipt(&w, after);
    r.commit = sign_with(w.chain.head(), &new_set, &new_keys);
    c.case(
        "title signed by a set it shows no way to",
        &r,
        "genesis",
        soon(&w),
        None,
    );
    r.transitions = Transitions::new(vec![transition.clone()]).unwrap();
    c.case(
        "title signed by a set one transition on",
        &r,
        "genesis",
        soon(&w),
        None,
    );
    c.flips("title after a transition", &r, soon(&w), &[0]);
    let mut forged = transition.clone();
    forged.next = old_set.clone();
    r.transitions = Transitions::new(vec![forged.clone()]).unwrap();
    c.case(
        "a transition naming another set",
        &r,
        "genesis",
        soon(&w),
        None,
    );

    // A checkpoint after the change: a verifier advances to it from the genesis, and then
    // takes receipts that carry no transition.
    let checkpoint = w.chain.anchor().unwrap();
    let advance = Advance {
        transitions: Transitions::new(vec![transition.clone()]).unwrap(),
        commit: sign_with(&checkpoint.header, &new_set, &new_keys),
        anchor: checkpoint.clone(),
    };
    c.advance("checkpoint after a transition", &advance, "genesis");
    let (advanced, _) = advance.verify(&trust()).unwrap();
    c.trusts
        .push(("checkpoint", advanced, Some(checkpoint.clone())));
    let mut skipped = advance.clone();
    skipped.transitions = Transitions::default();
    c.advance("checkpoint without its transition", &skipped, "genesis");
    let mut thin = advance.clone();
    thin.commit = sign_with(&checkpoint.header, &new_set, &new_keys[..3]);
    c.advance("checkpoint signed by three of five", &thin, "genesis");
    let mut forged_anchor = advance.clone();
    forged_anchor.anchor.validators = old_set;
    c.advance("checkpoint naming another set", &forged_anchor, "genesis");
    c.advance(
        "checkpoint from another chain's trust",
        &advance,
        "other-chain",
    );
    c.advance("checkpoint from itself", &advance, "checkpoint");
    let past = w.issue_title("moi-land", "deed-after-checkpoint", "lot-10");
    let mut r = certificate_receipt(&w, past);
    r.commit = sign_with(w.chain.head(), &new_set, &new_keys);
    c.case(
        "title after the checkpoint, no transition",
        &r,
        "checkpoint",
        soon(&w),
        None,
    );
    c.case(
        "title after the checkpoint, trusting the genesis",
        &r,
        "genesis",
        soon(&w),
        None,
    );
    r.transitions = Transitions::new(vec![transition]).unwrap();
    c.case(
        "title after the checkpoint with a transition before it",
        &r,
        "checkpoint",
        soon(&w),
        None,
    );
    c
}

/// The corpus as pinned in the spec's vectors: what another implementation runs itself on.
fn pinned_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/spec/vectors/receipts.json")
}

fn corpus_text(c: &Corpus) -> String {
    serde_json::to_string_pretty(&c.to_json()).unwrap() + "\n"
}

/// The corpus is deterministic (development keys, deterministic signatures, the example
/// genesis's clock): it is pinned, and any change to it is a format change.
#[test]
fn the_receipt_vectors_are_pinned() {
    let text = corpus_text(&build());
    if std::env::var_os("CACHET_WRITE_VECTORS").is_some() {
        std::fs::write(pinned_path(), &text).unwrap();
    }
    let pinned = std::fs::read_to_string(pinned_path()).expect("docs/spec/vectors/receipts.json");
    assert!(
        pinned == text,
        "docs/spec/vectors/receipts.json differs from the receipts built now: a format change \
         (write it again with CACHET_WRITE_VECTORS=1)"
    );
}

#[test]
fn the_corpus_holds_every_verdict() {
    let c = build();
    let all = [
        "valid",
        "pending",
        "revoked",
        "superseded",
        "expired",
        "not yet valid",
        "unknown",
    ];
    for v in all {
        assert!(c.verdicts.contains(v), "no receipt judged {v}");
    }
}

fn node() -> Option<&'static str> {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install node (see scripts/install-deps)"
    );
    if !found {
        eprintln!("skipping: no node on this machine (apt-get install nodejs)");
    }
    found.then_some("node")
}

#[test]
fn the_javascript_verifier_agrees_with_the_rust_one_in_node() {
    let Some(node) = node() else { return };
    assert!(
        std::fs::read_to_string(pinned_path()).is_ok_and(|p| p == corpus_text(&build())),
        "the pinned receipt vectors are out of date"
    );
    let out = Command::new(node)
        .arg(verifier_dir().join("test/agree.js"))
        .arg(pinned_path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the verifiers disagree:\n{text}");
    assert!(text.contains(" 0 disagreements"), "{text}");
}

/// The page's hash functions, on inputs across BLAKE3's block and chunk boundaries and
/// SHA-2's padding, give the Rust crates' digests (and Node's own SHA-2).
#[test]
fn the_javascript_hashes_match_the_rust_ones() {
    let Some(node) = node() else { return };
    let lengths = [
        0usize, 1, 55, 56, 63, 64, 65, 111, 112, 128, 1023, 1024, 1025, 2048, 2049, 3072, 3073,
        4096, 4097, 5121, 8192, 8193, 16_384, 31_744, 65_536, 100_001,
    ];
    let cases: Vec<Value> = lengths
        .iter()
        .map(|&n| {
            let input: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            json!({
                "len": n,
                "blake3": Fingerprint::of(FingerprintAlg::Blake3, &input).digest.to_string(),
                "sha256": Fingerprint::of(FingerprintAlg::Sha256, &input).digest.to_string(),
            })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!("cachet-hashes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hashes.json");
    std::fs::write(&path, Value::from(cases).to_string()).unwrap();
    let out = Command::new(node)
        .arg(verifier_dir().join("test/hashes.js"))
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0 differences"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_javascript_verifier_agrees_with_the_rust_one_in_chromium() {
    let Some(browser) = chromium() else { return };
    let built = build();
    let corpus = built.to_json();
    let mut page = String::from(
        "<!doctype html><meta charset=utf-8><body><pre id=out>running</pre><script>\n",
    );
    for part in PARTS {
        page += &std::fs::read_to_string(verifier_dir().join(format!("{part}.js"))).unwrap();
    }
    page += &std::fs::read_to_string(verifier_dir().join("test/agree.js")).unwrap();
    page += &format!(
        "\nconst corpus = {corpus};\n\
         try {{ const r = cachet.agree.runCorpus(corpus);\n\
           document.getElementById('out').textContent = 'checked ' + r.checked + ', ' + r.mismatches.length + ' disagreements\\n' + JSON.stringify(r.mismatches.slice(0, 20), null, 1); }}\n\
         catch (e) {{ document.getElementById('out').textContent = 'threw ' + e.stack; }}\n</script>"
    );
    let dir = std::env::temp_dir().join(format!("cachet-verifier-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("agree.html");
    std::fs::write(&html, page).unwrap();
    let dom = render(
        browser,
        &format!("file://{}", html.display()),
        600_000,
        None,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        dom.contains(" 0 disagreements"),
        "in Chromium:\n{}",
        &dom[..dom.len().min(4000)]
    );
}
