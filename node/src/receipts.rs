//! Building receipts from the committed state: the latest committed header, just enough of its
//! precommits (re-indexed by position in the validator set that signed it) and state proofs
//! against its state root; and the advances that take a verifier to the latest checkpoint.
//! What every receipt at one height shares is built and checked once, and kept in
//! [`Receipts`] until the head moves or its certificate is replaced.
//!
//! It is not verification (`cachet_chain::receipt`), which the node applies to its own receipts
//! as any verifier would.

use crate::shared::Shared;
use cachet_chain::block::BlockHeader;
use cachet_chain::checkpoint::Advance;
use cachet_chain::document::{CertId, Commitment};
use cachet_chain::merkle::BatchProof;
use cachet_chain::receipt::{
    CommitProof, CommitSignatures, EntryRevocation, IssuerProof, Lineage, RECEIPT_VERSION,
    RECEIPT_VERSION_WITH_POLICY, Receipt, Subject, Transition, Transitions, check_head,
};
use cachet_chain::state::{AgencyRecord, BatchRecord, CertificateRecord, StateKey, decode_value};
use cachet_chain::state_tree;
use cachet_chain::trust::PolicyProof;
use cachet_chain::tx::BatchId;
use cachet_chain::{AgencyId, CertKind};
use cachet_rpc::{Failure, ReceiptOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

impl ReceiptHead {
    /// The receipt of `subject`, about a certificate or batch of `kind`: a registered kind's
    /// receipt carries its policy, proven in this head's state.
    fn receipt(
        &self,
        shared: &Shared,
        subject: Subject,
        kind: Option<CertKind>,
        issuer: Option<IssuerProof>,
        options: &ReceiptOptions,
    ) -> Result<Receipt, Failure> {
        let kind_policy = match kind.filter(|k| k.is_registered()) {
            Some(kind) => {
                let (policy, proof) =
                    raw_with_proof(shared, &self.header.state_root, &StateKey::Policy(kind))?;
                let policy = policy.ok_or_else(|| internal(format!("no policy for {kind}")))?;
                Some(PolicyProof {
                    kind,
                    policy,
                    proof,
                })
            }
            None => None,
        };
        Ok(Receipt {
            version: match kind_policy {
                Some(_) => RECEIPT_VERSION_WITH_POLICY,
                None => RECEIPT_VERSION,
            },
            kind_policy,
            header: self.header.clone(),
            commit: self.commit.clone(),
            subject,
            issuer,
            transitions: between(
                &self.transitions,
                options.trusted_height,
                self.header.height.0,
            )?,
        })
    }

    /// Refuse a verifier whose trust is not below this head: nothing here is news to it.
    fn check_trusted_height(&self, options: &ReceiptOptions) -> Result<(), Failure> {
        if options.trusted_height >= self.header.height.0 {
            return Err(trusted_height_ahead(
                options.trusted_height,
                self.header.height.0,
            ));
        }
        Ok(())
    }
}

/// The transitions a verifier trusting height `above` follows to a block at height `below`.
fn between(transitions: &Transitions, above: u64, below: u64) -> Result<Transitions, Failure> {
    Transitions::new(
        transitions
            .iter()
            .filter(|t| t.header.height.0 > above && t.header.height.0 < below)
            .cloned()
            .collect(),
    )
    .map_err(internal)
}

fn trusted_height_ahead(trusted: u64, head: u64) -> Failure {
    Failure::new(
        3002,
        "trusted_height_ahead",
        format!(
            "the verifier trusts height {trusted}, and this node's head is {head}: it has nothing newer to prove"
        ),
    )
}

fn internal(e: impl std::fmt::Display) -> Failure {
    Failure::internal(e.to_string())
}

/// What every receipt at one height shares: the committed header, its precommits and the
/// validator-set changes before it — checked once, as a verifier would check it.
pub struct ReceiptHead {
    header: BlockHeader,
    commit: CommitProof,
    transitions: Transitions,
    /// Issuer proofs already built against this head's state root. Many certificates share
    /// an issuer, and its proof is half of a receipt's tree walks.
    issuers: Mutex<HashMap<AgencyId, IssuerProof>>,
}

/// Issuer proofs a receipt head keeps at most. Agencies exist only in state, so the map is
/// bounded by the consortium's size anyway; this bounds it against a state with very many.
const ISSUERS_CACHED: usize = 16_384;

/// The receipts a node serves: the head every receipt at the committed height shares, kept
/// from the first receipt of that height on.
#[derive(Default)]
pub struct Receipts {
    /// The shared head, with the count of certificate updates it was built after.
    head: Mutex<Option<(u64, Arc<ReceiptHead>)>>,
}

impl Receipts {
    /// The receipt head of the latest committed height, built and checked on first use at each
    /// height (and again after its certificate was replaced), and shared by every receipt
    /// served at that height.
    fn committed_head(&self, shared: &Shared) -> Result<Arc<ReceiptHead>, Failure> {
        // Read before the head: an update that lands in between makes the next call rebuild.
        let updates = shared.certificate_updates();
        let head = shared.head();
        let cached = || self.head.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_after, cached)) = cached().as_ref()
            && *built_after == updates
            && cached.header == head
        {
            return Ok(cached.clone());
        }
        let built = Arc::new(build_head(shared, head)?);
        check_head(
            &built.header,
            &built.commit,
            &built.transitions,
            &shared.trust,
        )
        .map_err(|e| Failure::internal(format!("own committed head does not verify: {e}")))?;
        *cached() = Some((updates, built.clone()));
        Ok(built)
    }

    /// A receipt for certificate `id`: its record, or the proof that it does not exist.
    pub fn certificate(
        &self,
        shared: &Shared,
        id: &CertId,
        options: &ReceiptOptions,
    ) -> Result<Receipt, Failure> {
        let head = self.committed_head(shared)?;
        head.check_trusted_height(options)?;
        let root = head.header.state_root;
        let (value, proof) = raw_with_proof(shared, &root, &StateKey::Certificate(*id))?;
        let (subject, kind, issuer) = match value {
            Some(record) => {
                let r: CertificateRecord = decode_value(&record).map_err(internal)?;
                let issuer = options
                    .issuer
                    .then(|| issuer(shared, &head, &r.issuer))
                    .transpose()?;
                let lineage = match options.lineage {
                    true => Lineage::collect(&r, |id| {
                        raw_with_proof(shared, &root, &StateKey::Certificate(id))
                    })?,
                    false => Lineage::default(),
                };
                (
                    Subject::Certificate {
                        record,
                        proof,
                        lineage,
                    },
                    Some(r.kind),
                    issuer,
                )
            }
            None => (Subject::Absent { id: *id, proof }, None, None),
        };
        head.receipt(shared, subject, kind, issuer, options)
    }

    /// A receipt for one entry of a batch.
    pub fn batch_entry(
        &self,
        shared: &Shared,
        batch: &BatchId,
        commitment: Commitment,
        inclusion: BatchProof,
        options: &ReceiptOptions,
    ) -> Result<Receipt, Failure> {
        let head = self.committed_head(shared)?;
        head.check_trusted_height(options)?;
        let root = head.header.state_root;
        let (value, batch_proof) = raw_with_proof(shared, &root, &StateKey::Batch(*batch))?;
        let batch_bytes = value
            .ok_or_else(|| Failure::new(1322, "unknown_batch", format!("unknown batch {batch}")))?;
        let b: BatchRecord = decode_value(&batch_bytes).map_err(internal)?;
        let revocation = EntryRevocation::for_entry(&b, || {
            raw_with_proof(
                shared,
                &root,
                &StateKey::BatchRevocation(*batch, inclusion.index),
            )
        })?;
        let issuer = options
            .issuer
            .then(|| issuer(shared, &head, &b.issuer))
            .transpose()?;
        head.receipt(
            shared,
            Subject::BatchEntry {
                batch: batch_bytes,
                batch_proof,
                commitment,
                inclusion,
                revocation,
            },
            Some(b.kind),
            issuer,
            options,
        )
    }

    /// What takes a verifier trusting `trusted_height` to the latest checkpoint below the head
    /// (a verifier at the head itself could get no receipt until the next block): the
    /// validator-set changes after its height and below the checkpoint, the checkpoint's
    /// commit and its anchor.
    pub fn advance(&self, shared: &Shared, trusted_height: u64) -> Result<Advance, Failure> {
        let head = self.committed_head(shared)?;
        let anchor = shared
            .checkpoint_at_or_below(head.header.height.0 - 1)
            .map_err(internal)?;
        let at = anchor.header.height.0;
        if at <= trusted_height {
            return Err(Failure::new(
                3003,
                "no_newer_checkpoint",
                format!(
                    "the latest checkpoint is at height {at}, not above the verifier's trusted height {trusted_height}"
                ),
            ));
        }
        Ok(Advance {
            transitions: between(&head.transitions, trusted_height, at)?,
            commit: commit_proof(shared, at)?,
            anchor,
        })
    }
}

fn build_head(shared: &Shared, head: BlockHeader) -> Result<ReceiptHead, Failure> {
    let h = head.height.0;
    if h == 0 {
        return Err(Failure::new(
            3001,
            "unknown_block",
            "no block is committed yet",
        ));
    }
    let mut transitions = Vec::new();
    for c in shared.store.validator_set_changes().map_err(internal)? {
        if c >= h {
            break;
        }
        let header = shared
            .store
            .header(c)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("no block {c}")))?;
        let next = shared.store.validators_after(c).map_err(internal)?;
        transitions.push(Transition {
            commit: commit_proof(shared, c)?,
            header,
            next,
        });
    }
    let transitions = Transitions::new(transitions).map_err(internal)?;
    Ok(ReceiptHead {
        commit: commit_proof(shared, h)?,
        header: head,
        transitions,
        issuers: Mutex::default(),
    })
}

/// The precommits of height `h`, by position in the set that signed it: just more than two
/// thirds of the power.
fn commit_proof(shared: &Shared, h: u64) -> Result<CommitProof, Failure> {
    let cert_bytes = shared
        .store
        .certificate(h)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("no certificate stored for height {h}")))?;
    // The set that signed height h is the one in the state after h - 1.
    let set = shared.store.validators_after(h - 1).map_err(internal)?;
    let mut commit = crate::context::commit_of(&cert_bytes, &set).map_err(internal)?;
    // The rest left out: each signature is 67 bytes of every receipt (and of every transition
    // in one), and a verifier needs no more.
    let total = set.total_power();
    let mut signed = 0u64;
    let enough = commit
        .signatures
        .iter()
        .position(|s| {
            signed += set.validators[s.validator as usize].power;
            signed.saturating_mul(3) > total.saturating_mul(2)
        })
        .map_or(commit.signatures.len(), |last| last + 1);
    let mut signatures = commit.signatures.to_vec();
    signatures.truncate(enough);
    commit.signatures = CommitSignatures::new(signatures).map_err(internal)?;
    Ok(commit)
}

fn raw_with_proof(
    shared: &Shared,
    root: &cachet_chain::Hash32,
    key: &StateKey,
) -> Result<(Option<Vec<u8>>, state_tree::StateProof), Failure> {
    state_tree::get_with_proof(&*shared.store, root, &key.hash()).map_err(internal)
}

/// The proof of `agency`'s record at `head`'s state root, built once per head.
fn issuer(shared: &Shared, head: &ReceiptHead, agency: &AgencyId) -> Result<IssuerProof, Failure> {
    let cached = || head.issuers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(proof) = cached().get(agency) {
        return Ok(proof.clone());
    }
    let root = head.header.state_root;
    let (value, proof) = raw_with_proof(shared, &root, &StateKey::Agency(agency.clone()))?;
    let record = value.ok_or_else(|| internal("issuer record missing"))?;
    // Decoding here catches a corrupt store before a verifier does.
    decode_value::<AgencyRecord>(&record).map_err(internal)?;
    let built = IssuerProof {
        agency: record,
        proof,
    };
    let mut issuers = cached();
    if issuers.len() < ISSUERS_CACHED {
        issuers.insert(agency.clone(), built.clone());
    }
    Ok(built)
}
