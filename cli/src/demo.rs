//! `cachet demo`: the example consortium in one process.
//!
//! Seven agencies sign real transactions; blocks are built and executed by the same functions a
//! node uses (`cachet-contracts`), proposers taking turns among the four validators. Then every
//! certificate is checked the way a verifier checks it: a state proof against the head's state
//! root, an inclusion proof for a batch entry, the document re-hashed against its commitment.
//! No network and no consensus: those come with the node.

use anyhow::{Context, Result, bail};
use cachet_chain::block::BlockHeader;
use cachet_chain::codec::encode;
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{AgencyId, CertKind, Height, Timestamp};
use cachet_chain::merkle::MerkleTree;
use cachet_chain::state::{
    BatchRecord, CertificateRecord, RevocationRecord, StateKey, decode_value,
};
use cachet_chain::state_tree::{StateProof, value_hash};
use cachet_chain::tx::{
    Action, Attestations, BatchEntry, BatchIssuance, CertEvent, Issuance, LicenseScope,
    LicenseTerms, OracleAttestation, RevocationReason, Terms, Transaction, TxBody, batch_leaf,
    license_statement,
};
use cachet_chain::verdict::{Verdict, batch_entry_verdict, certificate_verdict};
use cachet_contracts::{LocalChain, example};
use serde::Serialize;
use std::collections::BTreeMap;

/// A document the demo "issues": its bytes stay here; the chain sees a salted commitment.
struct Document {
    bytes: Vec<u8>,
    salt: Salt,
}

impl Document {
    fn new(text: String) -> Document {
        Document {
            bytes: text.into_bytes(),
            salt: Salt::random(),
        }
    }

    fn commitment(&self) -> Commitment {
        Commitment::new(
            &Fingerprint::of(FingerprintAlg::Sha256, &self.bytes),
            &self.salt,
        )
    }
}

struct Consortium {
    chain: LocalChain,
    nonces: BTreeMap<String, u64>,
    time: Timestamp,
    round: usize,
}

impl Consortium {
    fn tx(&mut self, agency: &str, action: Action) -> Transaction {
        let nonce = self.nonces.entry(agency.to_string()).or_insert(0);
        let body = TxBody {
            chain_id: self.chain.head().chain_id.clone(),
            signer: AgencyId::new(agency).expect("example ids are valid"),
            key: example::agency_key(agency).public(),
            nonce: *nonce,
            expires_at: Height(self.chain.head().height.0 + 10),
            action,
        };
        *nonce += 1;
        body.sign(&example::agency_key(agency))
    }

    /// Build, execute and commit the next block; every transaction must be accepted.
    fn block(&mut self, txs: Vec<Transaction>) -> Result<()> {
        let validators: Vec<&str> = example::AGENCIES
            .iter()
            .filter(|a| a.3)
            .map(|a| a.0)
            .collect();
        let proposer = example::validator_key(validators[self.round % validators.len()]).public();
        self.round += 1;
        self.time = self.time.plus_ms(2_000);
        let built = self.chain.propose(self.time, proposer, txs)?;
        if let Some((id, e)) = built.failures().first() {
            bail!("transaction {id} was refused: {e} (code {})", e.code());
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct Checked {
    kind: CertKind,
    label: String,
    id: String,
    verdict: Verdict,
    issuer: Option<AgencyId>,
    document_matches: bool,
    proof_bytes: usize,
    detail: String,
}

#[derive(Serialize)]
struct Report {
    chain_id: String,
    height: u64,
    state_root: Hash32,
    block_hash: Hash32,
    certificates: Vec<Checked>,
}

/// Check a proof for `key` against `header` and return the authenticated value.
fn authenticated(
    chain: &LocalChain,
    header: &BlockHeader,
    key: &StateKey,
) -> Result<(Option<Vec<u8>>, StateProof)> {
    let (value, proof) = chain.prove(key)?;
    let k = key.hash();
    let ok = match &value {
        Some(v) => proof.verify_membership(&header.state_root, &k, &value_hash(v)),
        None => proof.verify_absence(&header.state_root, &k),
    };
    if !ok {
        bail!("state proof for {key:?} does not verify");
    }
    Ok((value, proof))
}

fn check_certificate(
    chain: &LocalChain,
    head: &BlockHeader,
    label: &str,
    kind: CertKind,
    doc: &Document,
) -> Result<Checked> {
    let commitment = doc.commitment();
    let id = CertId::derive(kind, &commitment);
    let (value, proof) = authenticated(chain, head, &StateKey::Certificate(id))?;
    let proof_bytes = encode(&proof).len();
    let Some(value) = value else {
        return Ok(Checked {
            kind,
            label: label.into(),
            id: id.to_string(),
            verdict: Verdict::Unknown,
            issuer: None,
            document_matches: false,
            proof_bytes,
            detail: "no such certificate (non-membership proven)".into(),
        });
    };
    let record: CertificateRecord = decode_value(&value)?;
    let verdict = certificate_verdict(&record, head.time);
    let fingerprint = Fingerprint::of(FingerprintAlg::Sha256, &doc.bytes);
    let detail = match (&record.supersedes, &record.status) {
        (_, cachet_chain::state::CertStatus::Superseded { by, at, .. }) => {
            format!("superseded by {} at height {at}", &by.to_string()[..12])
        }
        (Some(prev), _) => format!("supersedes {}", &prev.to_string()[..12]),
        (None, cachet_chain::state::CertStatus::Revoked { reason, at, .. }) => {
            format!("revoked ({reason:?}) at height {at}")
        }
        _ => format!("issued at height {}", record.issued_at),
    };
    Ok(Checked {
        kind,
        label: label.into(),
        id: id.to_string(),
        verdict,
        issuer: Some(record.issuer.clone()),
        document_matches: record.commitment.opens_to(&fingerprint, &doc.salt),
        proof_bytes,
        detail,
    })
}

fn check_batch_entry(
    chain: &LocalChain,
    head: &BlockHeader,
    label: &str,
    batch: &BatchIssuance,
    tree: &MerkleTree,
    index: usize,
    doc: &Document,
) -> Result<Checked> {
    let id = batch.batch_id();
    let (value, batch_proof) = authenticated(chain, head, &StateKey::Batch(id))?;
    let record: BatchRecord = decode_value(&value.context("batch is on chain")?)?;
    let inclusion = tree.proof(index).context("index in range")?;
    let included = inclusion.verify(
        &record.root,
        record.leaf_count,
        &batch_leaf(&doc.commitment()),
    );
    let (revocation, revocation_proof) =
        authenticated(chain, head, &StateKey::BatchRevocation(id, index as u32))?;
    let revocation: Option<RevocationRecord> = revocation.map(|v| decode_value(&v)).transpose()?;
    let verdict = if included {
        batch_entry_verdict(&record, revocation.as_ref(), head.time)
    } else {
        Verdict::Unknown
    };
    Ok(Checked {
        kind: record.kind,
        label: label.into(),
        id: format!("{id}#{index}"),
        verdict,
        issuer: Some(record.issuer),
        document_matches: included,
        proof_bytes: encode(&batch_proof).len()
            + encode(&inclusion).len()
            + encode(&revocation_proof).len(),
        detail: match revocation {
            Some(r) => format!(
                "entry {index} of {} revoked at height {}",
                record.leaf_count, r.at
            ),
            None => format!(
                "entry {index} of {}, not revoked (non-membership proven)",
                record.leaf_count
            ),
        },
    })
}

pub fn run(json: bool) -> Result<()> {
    let genesis = example::genesis();
    let chain = LocalChain::new(&genesis)?;
    let time = genesis.genesis_time;
    let mut c = Consortium {
        chain,
        nonces: BTreeMap::new(),
        time,
        round: 0,
    };
    let chain_id = genesis.chain_id.clone();

    // Documents, as their issuers hold them.
    let title = Document::new(
        "數位權狀 / digital land title: Daan District, section 3, lot 123-4; owner #A".into(),
    );
    let title_after_sale = Document::new(
        "數位權狀 / digital land title: Daan District, section 3, lot 123-4; owner #B".into(),
    );
    let permit = Document::new(
        "投資許可證明 / investment permit: foreign investment in ACME Taiwan Ltd.".into(),
    );
    let work =
        Document::new("版權存證 / copyright deposit: 'Mountain Rain', ink on paper, 1962".into());
    let licence =
        Document::new("授權 / licence: reproduction of 'Mountain Rain' in a catalogue".into());
    let orders: Vec<Document> = (0..1000)
        .map(|i| {
            Document::new(format!(
                "獎勵令 / reward order no. 115-{i:04}: commendation, one merit"
            ))
        })
        .collect();
    let parcel = cachet_chain::Domain::Commitment.hash(b"Daan District, section 3, lot 123-4");

    // Block 1: issue one of each kind and a batch of 1,000 reward orders.
    let title_issue = Issuance {
        kind: CertKind::LandTitle,
        commitment: title.commitment(),
        valid_from: None,
        valid_until: None,
        terms: Terms::LandTitle { parcel },
    };
    let title_id = title_issue.cert_id();
    let permit_issue = Issuance {
        kind: CertKind::InvestmentPermit,
        commitment: permit.commitment(),
        valid_from: Some(c.time),
        valid_until: Some(c.time.plus_ms(3 * 365 * 24 * 3600 * 1000)),
        terms: Terms::Plain,
    };
    let permit_id = permit_issue.cert_id();
    let work_issue = Issuance {
        kind: CertKind::CulturalLicense,
        commitment: work.commitment(),
        valid_from: None,
        valid_until: None,
        terms: Terms::WorkDeposit,
    };
    let work_id = work_issue.cert_id();
    let leaves: Vec<Hash32> = orders.iter().map(|d| batch_leaf(&d.commitment())).collect();
    let tree = MerkleTree::new(&leaves);
    let batch = BatchIssuance {
        kind: CertKind::RewardOrder,
        root: tree.root(),
        leaf_count: leaves.len() as u32,
        valid_from: None,
        valid_until: None,
    };
    let txs = vec![
        c.tx("moi-land", Action::Issue(title_issue)),
        c.tx("moea-investment", Action::Issue(permit_issue)),
        c.tx("moc-culture", Action::Issue(work_issue)),
        c.tx("dgpa-personnel", Action::IssueBatch(batch.clone())),
    ];
    c.block(txs)?;

    // Block 2: a mortgage, two approvals, a licence attested by two of three oracles.
    let mortgage = cachet_chain::Domain::Commitment.hash(b"mortgage: Bank A, first lien");
    let licensee = cachet_chain::Domain::Commitment.hash(b"licensee: National Palace Museum Press");
    let scope = LicenseScope::REPRODUCE | LicenseScope::DISTRIBUTE;
    let (from, until) = (Some(c.time), Some(c.time.plus_ms(365 * 24 * 3600 * 1000)));
    let statement = license_statement(
        &work_id,
        &licence.commitment(),
        &licensee,
        scope,
        from,
        until,
    );
    let window = (c.time, c.time.plus_ms(5 * 60 * 1000));
    let attestations = ["oracle-1", "oracle-2"]
        .iter()
        .enumerate()
        .map(|(i, o)| {
            OracleAttestation::sign(
                &example::oracle_key(o),
                &chain_id,
                statement,
                1000 + i as u64,
                window.0,
                window.1,
            )
        })
        .collect();
    let licence_issue = Issuance {
        kind: CertKind::CulturalLicense,
        commitment: licence.commitment(),
        valid_from: from,
        valid_until: until,
        terms: Terms::License(LicenseTerms {
            work: work_id,
            licensee,
            scope,
            attestations: Attestations::new(attestations)?,
        }),
    };
    let txs = vec![
        c.tx(
            "guting-land-office",
            Action::RecordEvent {
                id: title_id,
                event: CertEvent::MortgageSet { mortgage },
            },
        ),
        c.tx("nia-immigration", Action::Approve { id: permit_id }),
        c.tx("mol-labor", Action::Approve { id: permit_id }),
        c.tx("moc-culture", Action::Issue(licence_issue)),
    ];
    c.block(txs)?;

    // Block 3: the mortgage is paid off and the title sold; one reward order is revoked.
    let txs = vec![
        c.tx(
            "moi-land",
            Action::RecordEvent {
                id: title_id,
                event: CertEvent::MortgageCancelled { mortgage },
            },
        ),
        c.tx(
            "guting-land-office",
            Action::Supersede {
                previous: title_id,
                next: Issuance {
                    kind: CertKind::LandTitle,
                    commitment: title_after_sale.commitment(),
                    valid_from: None,
                    valid_until: None,
                    terms: Terms::LandTitle { parcel },
                },
            },
        ),
        c.tx(
            "dgpa-personnel",
            Action::RevokeBatchEntry {
                entry: BatchEntry {
                    batch: batch.batch_id(),
                    commitment: orders[417].commitment(),
                    proof: tree.proof(417).context("in range")?,
                },
                reason: RevocationReason::IssuedInError,
            },
        ),
    ];
    c.block(txs)?;

    // Verify everything against the head, the way a verifier would.
    let head = c.chain.head().clone();
    let never_issued = Document::new("a document nobody anchored".into());
    let checks = vec![
        check_certificate(
            &c.chain,
            &head,
            "land title, before sale",
            CertKind::LandTitle,
            &title,
        )?,
        check_certificate(
            &c.chain,
            &head,
            "land title, after sale",
            CertKind::LandTitle,
            &title_after_sale,
        )?,
        check_certificate(
            &c.chain,
            &head,
            "investment permit",
            CertKind::InvestmentPermit,
            &permit,
        )?,
        check_certificate(
            &c.chain,
            &head,
            "copyright deposit",
            CertKind::CulturalLicense,
            &work,
        )?,
        check_certificate(
            &c.chain,
            &head,
            "licence",
            CertKind::CulturalLicense,
            &licence,
        )?,
        check_batch_entry(
            &c.chain,
            &head,
            "reward order #0",
            &batch,
            &tree,
            0,
            &orders[0],
        )?,
        check_batch_entry(
            &c.chain,
            &head,
            "reward order #417",
            &batch,
            &tree,
            417,
            &orders[417],
        )?,
        check_certificate(
            &c.chain,
            &head,
            "never anchored",
            CertKind::LandTitle,
            &never_issued,
        )?,
    ];
    let report = Report {
        chain_id: head.chain_id.to_string(),
        height: head.height.0,
        state_root: head.state_root,
        block_hash: head.hash(),
        certificates: checks,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "Example consortium {} — 7 agencies, 4 validators, in one process (no network yet).",
        report.chain_id
    );
    println!("Anchored 4 certificates and a batch of 1,000 reward orders; registered a mortgage,");
    println!("two approvals, a licence with 2-of-3 oracle attestations; cancelled the mortgage,");
    println!("transferred the title and revoked one reward order.\n");
    println!(
        "Head: height {}, block {}, state root {}\n",
        report.height, report.block_hash, report.state_root
    );
    println!(
        "{:<26} {:<18} {:<12} {:<20} {:>6}  detail",
        "certificate", "kind", "verdict", "issuer", "proof"
    );
    for ch in &report.certificates {
        println!(
            "{:<26} {:<18} {:<12} {:<20} {:>5}B  {}{}",
            ch.label,
            ch.kind.to_string(),
            ch.verdict.to_string(),
            ch.issuer
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            ch.proof_bytes,
            ch.detail,
            if ch.document_matches || ch.verdict == Verdict::Unknown {
                ""
            } else {
                " [DOCUMENT MISMATCH]"
            },
        );
    }
    println!("\nEvery verdict above comes from a Merkle proof checked against the state root.");
    Ok(())
}
