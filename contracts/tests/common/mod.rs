//! A small world around the example consortium for rule tests: submit one action as one
//! agency, get the events or the refusal, and check that a refusal changed nothing but, when
//! it is refused in its block, the signer's nonce.

#![allow(dead_code)]

use cachet_chain::codec;
use cachet_chain::crypto::SecretKey;
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{AgencyId, CertKind, Height, Timestamp};
use cachet_chain::state::{AgencyRecord, CertificateRecord, StateKey};
use cachet_chain::state_tree;
use cachet_chain::tx::{Action, Issuance, Terms, Transaction, TxBody};
use cachet_contracts::{Event, LocalChain, TxError, example};
use std::collections::HashMap;

pub const MINUTE: u64 = 60_000;
pub const DAY: u64 = 24 * 60 * MINUTE;

pub struct World {
    pub chain: LocalChain,
    pub keys: HashMap<String, SecretKey>,
    pub time: Timestamp,
}

pub fn id(s: &str) -> AgencyId {
    AgencyId::new(s).unwrap()
}

/// A commitment to a made-up document.
pub fn doc(name: &str) -> Commitment {
    Commitment::new(
        &Fingerprint::of(FingerprintAlg::Sha256, name.as_bytes()),
        &Salt(Hash32([9; 32])),
    )
}

/// The proposal a governance `Propose` opened, from its events.
pub fn proposal_id(events: &[Event]) -> cachet_chain::TxId {
    events
        .iter()
        .find_map(|e| match e {
            Event::Proposed { proposal } => Some(*proposal),
            _ => None,
        })
        .expect("a proposal event")
}

pub fn parcel(name: &str) -> Hash32 {
    cachet_chain::Domain::Commitment.hash(name.as_bytes())
}

impl World {
    pub fn new() -> World {
        Self::with(example::genesis())
    }

    pub fn with(doc: cachet_chain::genesis::GenesisDoc) -> World {
        let time = doc.genesis_time;
        let mut keys = HashMap::new();
        for (a, ..) in example::AGENCIES {
            keys.insert(a.to_string(), example::agency_key(a));
        }
        World {
            chain: LocalChain::new(&doc).unwrap(),
            keys,
            time,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.time
    }

    pub fn agency(&self, a: &str) -> AgencyRecord {
        self.chain.get(&StateKey::Agency(id(a))).unwrap().unwrap()
    }

    pub fn cert(&self, c: &CertId) -> CertificateRecord {
        self.chain.get(&StateKey::Certificate(*c)).unwrap().unwrap()
    }

    /// A signed transaction by `agency` with its next nonce.
    pub fn tx(&self, agency: &str, action: Action) -> Transaction {
        let key = &self.keys[agency];
        let nonce = self.agency(agency).next_nonce;
        TxBody {
            chain_id: self.chain.head().chain_id.clone(),
            signer: id(agency),
            key: key.public(),
            nonce,
            expires_at: Height(self.chain.head().height.0 + 100),
            action,
        }
        .sign(key)
    }

    /// Put `txs` in the next block, in order.
    pub fn submit_block(&mut self, txs: Vec<Transaction>) -> cachet_contracts::BuiltBlock {
        self.time = self.time.plus_ms(1000);
        let proposer = example::validator_key("moi-land").public();
        self.chain.propose(self.time, proposer, txs).unwrap()
    }

    /// Put `tx` alone in the next block. Left out of it, it must change nothing; refused in
    /// it, it must change its signer's nonce and nothing else.
    pub fn submit_tx(&mut self, tx: Transaction) -> Result<Vec<Event>, TxError> {
        let before = self.chain.head().state_root;
        let signer = StateKey::Agency(tx.body.signer.clone());
        let record: Option<AgencyRecord> = self.chain.get(&signer).unwrap();
        let built = self.submit_block(vec![tx]);
        if let Some((_, e)) = built.left_out.into_iter().next() {
            assert_eq!(
                self.chain.head().state_root,
                before,
                "a transaction left out of its block changed the state"
            );
            return Err(e);
        }
        if let Some((_, e)) = built.executed.refused.into_iter().next() {
            let mut record = record.expect("a refused transaction's signer is registered");
            record.next_nonce += 1;
            let only_nonce = [(signer.hash(), Some(codec::encode(&record)))];
            let (expected, _) =
                state_tree::update(self.chain.store(), &before, &only_nonce).unwrap();
            assert_eq!(
                self.chain.head().state_root,
                expected,
                "a transaction refused in its block changed more than its signer's nonce"
            );
            return Err(e);
        }
        Ok(built.executed.events.into_iter().flatten().collect())
    }

    /// Propose `change` as moi-land and vote it through with moea and dgpa (three of the four
    /// validator agencies).
    pub fn pass(&mut self, change: cachet_chain::tx::GovernanceChange) -> Result<(), TxError> {
        let events = self.submit("moi-land", Action::Propose { change })?;
        let proposal = proposal_id(&events);
        self.submit("moea-investment", Action::Vote { proposal })?;
        self.submit("dgpa-personnel", Action::Vote { proposal })?;
        Ok(())
    }

    pub fn submit(&mut self, agency: &str, action: Action) -> Result<Vec<Event>, TxError> {
        let tx = self.tx(agency, action);
        self.submit_tx(tx)
    }

    /// Issue a land title over `parcel_name` as `agency`; returns its id.
    pub fn issue_title(&mut self, agency: &str, doc_name: &str, parcel_name: &str) -> CertId {
        let issuance = Issuance {
            kind: CertKind::LandTitle,
            commitment: doc(doc_name),
            valid_from: None,
            valid_until: None,
            terms: Terms::LandTitle {
                parcel: parcel(parcel_name),
            },
        };
        let id = issuance.cert_id();
        self.submit(agency, Action::Issue(issuance)).unwrap();
        id
    }

    /// A permit issuance valid for a year from now.
    pub fn permit(&self, doc_name: &str) -> Issuance {
        Issuance {
            kind: CertKind::InvestmentPermit,
            commitment: doc(doc_name),
            valid_from: Some(self.time),
            valid_until: Some(self.time.plus_ms(365 * DAY)),
            terms: Terms::Plain,
        }
    }
}

/// The policy of a kind the example consortium registers by governance: construction-firm
/// certificates (營造業電子證書), accredited by `moi-land`, valid up to five years, never
/// superseded, with `suspended` and `reinstated` events, receipts trusted for three days.
pub fn construction_firm_policy() -> cachet_chain::state::KindPolicy {
    use cachet_chain::ids::{EventName, KindName};
    use cachet_chain::state::{AgencyList, EventNames, KindDefinition, KindPolicy, Name};
    let mut policy = KindPolicy::open(AgencyList::new(vec![id("moi-land")]).unwrap());
    policy.requires_validity = true;
    policy.max_validity_ms = 5 * 365 * DAY;
    policy.max_receipt_age_ms = 3 * DAY;
    policy.definition = Some(KindDefinition {
        name: KindName::new("construction-firm-certificate").unwrap(),
        title_zh_tw: Name::new("營造業電子證書").unwrap(),
        title_en: Name::new("Construction firm certificate").unwrap(),
        supersedable: false,
        events: EventNames::new(vec![
            EventName::new("suspended").unwrap(),
            EventName::new("reinstated").unwrap(),
        ])
        .unwrap(),
    });
    policy
}

impl World {
    /// Register [`construction_firm_policy`] by a vote of three of the four validator
    /// agencies and accredit `moi-land` to issue it; the kind it became.
    pub fn register_construction_firms(&mut self) -> CertKind {
        let events = self
            .submit(
                "moi-land",
                Action::Propose {
                    change: cachet_chain::tx::GovernanceChange::AddKind {
                        policy: construction_firm_policy(),
                    },
                },
            )
            .unwrap();
        let proposal = proposal_id(&events);
        self.submit("moea-investment", Action::Vote { proposal })
            .unwrap();
        let events = self
            .submit("dgpa-personnel", Action::Vote { proposal })
            .unwrap();
        let kind = events
            .iter()
            .find_map(|e| match e {
                Event::KindAdded { kind, .. } => Some(*kind),
                _ => None,
            })
            .expect("the vote registered the kind");
        self.submit(
            "moi-land",
            Action::Accredit {
                kind,
                agency: id("moi-land"),
                registration: None,
            },
        )
        .unwrap();
        kind
    }

    /// A construction-firm certificate of `kind` over `doc_name`, valid for a year from now.
    pub fn firm_certificate(&self, kind: CertKind, doc_name: &str) -> Issuance {
        Issuance {
            kind,
            commitment: doc(doc_name),
            valid_from: Some(self.time),
            valid_until: Some(self.time.plus_ms(365 * DAY)),
            terms: Terms::Plain,
        }
    }
}

/// Receipts built from the in-memory chain, signed by the example validators' dev keys.
pub mod receipts {
    use super::{World, doc, id, parcel, proposal_id};
    use cachet_chain::crypto::SecretKey;
    use cachet_chain::ids::CertKind;
    use cachet_chain::receipt::{
        CommitProof, CommitSignature, CommitSignatures, IssuerProof, RECEIPT_VERSION, Receipt,
        Subject, precommit_message,
    };
    use cachet_chain::state::{StateKey, ValidatorSet};
    use cachet_chain::trust::Trust;
    use cachet_chain::tx::Action;
    use cachet_contracts::example;

    pub fn trust() -> Trust {
        Trust::from_genesis(&example::genesis()).unwrap()
    }

    /// Sign the head of `w` with the validators at `positions` of the (sorted) set.
    pub fn commit(w: &World, positions: &[u16]) -> CommitProof {
        let set: ValidatorSet = example::genesis().validator_set().unwrap();
        let h = w.chain.head();
        let signatures = positions
            .iter()
            .map(|&p| {
                let v = &set.validators[p as usize];
                let sk = example::AGENCIES
                    .iter()
                    .map(|a| example::validator_key(a.0))
                    .find(|k| k.public() == v.key)
                    .unwrap();
                CommitSignature {
                    validator: p,
                    signature: sk.sign(&precommit_message(
                        &h.chain_id,
                        h.height,
                        0,
                        &h.hash(),
                        &v.key,
                    )),
                }
            })
            .collect();
        CommitProof {
            round: 0,
            signatures: CommitSignatures::new(signatures).unwrap(),
        }
    }

    pub fn issuer(w: &World, agency: &str) -> IssuerProof {
        let (v, proof) = w.chain.prove(&StateKey::Agency(id(agency))).unwrap();
        IssuerProof {
            agency: v.unwrap(),
            proof,
        }
    }

    pub fn certificate_receipt(w: &World, cert: cachet_chain::CertId) -> Receipt {
        let (value, proof) = w.chain.prove(&StateKey::Certificate(cert)).unwrap();
        let (subject, kind, issuer) = match value {
            Some(record) => {
                let r: cachet_chain::state::CertificateRecord =
                    cachet_chain::state::decode_value(&record).unwrap();
                (
                    Subject::Certificate {
                        record,
                        proof,
                        lineage: Default::default(),
                    },
                    Some(r.kind),
                    Some(issuer(w, r.issuer.as_str())),
                )
            }
            None => (Subject::Absent { id: cert, proof }, None, None),
        };
        // A registered kind's receipt carries its policy, as a node builds it.
        let kind_policy = kind.filter(|k| k.is_registered()).map(|kind| {
            let (policy, proof) = w.chain.prove(&StateKey::Policy(kind)).unwrap();
            cachet_chain::trust::PolicyProof {
                kind,
                policy: policy.unwrap(),
                proof,
            }
        });
        Receipt {
            version: match kind_policy {
                Some(_) => cachet_chain::receipt::RECEIPT_VERSION_WITH_POLICY,
                None => RECEIPT_VERSION,
            },
            transitions: Default::default(),
            header: w.chain.head().clone(),
            commit: commit(w, &[0, 1, 2]),
            subject,
            issuer,
            kind_policy,
        }
    }

    /// A land title over `parcel`, `<name>-0` issued by `moi-land`, then transferred `n` times
    /// by the land office `by` (`<name>-1` …): every id, oldest first.
    pub fn transferred_title(
        w: &mut World,
        name: &str,
        parcel: &str,
        by: &str,
        n: usize,
    ) -> Vec<cachet_chain::CertId> {
        let first = title(&format!("{name}-0"), parcel);
        let mut ids = vec![first.cert_id()];
        w.submit("moi-land", Action::Issue(first)).unwrap();
        for i in 1..=n {
            let next = title(&format!("{name}-{i}"), parcel);
            let id = next.cert_id();
            let previous = *ids.last().unwrap();
            w.submit(by, Action::Supersede { previous, next }).unwrap();
            ids.push(id);
        }
        ids
    }

    /// [`certificate_receipt`] carrying the certificate's lineage (the certificates it replaced).
    pub fn lineage_receipt(w: &World, cert: cachet_chain::CertId) -> Receipt {
        let mut r = certificate_receipt(w, cert);
        if let Subject::Certificate {
            record, lineage, ..
        } = &mut r.subject
        {
            let record = cachet_chain::state::decode_value(record).unwrap();
            *lineage = cachet_chain::receipt::Lineage::collect(&record, |id| {
                w.chain.prove(&StateKey::Certificate(id))
            })
            .unwrap();
        }
        r
    }

    /// The reward orders `order-0` … `order-999` issued by `dgpa-personnel` as one batch:
    /// the issuance, its tree and the entries' commitments.
    pub fn issue_reward_orders(
        w: &mut World,
    ) -> (
        cachet_chain::tx::BatchIssuance,
        cachet_chain::merkle::MerkleTree,
        Vec<cachet_chain::Commitment>,
    ) {
        issue_reward_orders_of(w, 1000)
    }

    /// The reward orders `order-0` … `order-<n - 1>`, as [`issue_reward_orders`].
    pub fn issue_reward_orders_of(
        w: &mut World,
        n: usize,
    ) -> (
        cachet_chain::tx::BatchIssuance,
        cachet_chain::merkle::MerkleTree,
        Vec<cachet_chain::Commitment>,
    ) {
        let commitments: Vec<_> = (0..n).map(|i| doc(&format!("order-{i}"))).collect();
        let leaves: Vec<_> = commitments
            .iter()
            .map(cachet_chain::tx::batch_leaf)
            .collect();
        let tree = cachet_chain::merkle::MerkleTree::new(&leaves);
        let b = cachet_chain::tx::BatchIssuance {
            kind: CertKind::RewardOrder,
            root: tree.root(),
            leaf_count: n as u32,
            valid_from: None,
            valid_until: None,
        };
        w.submit("dgpa-personnel", Action::IssueBatch(b.clone()))
            .unwrap();
        (b, tree, commitments)
    }

    /// An investment permit valid from a day after now for 30 days, issued and approved:
    /// its id and its window.
    pub fn approved_permit_from_tomorrow(
        w: &mut World,
    ) -> (
        cachet_chain::CertId,
        cachet_chain::Timestamp,
        cachet_chain::Timestamp,
    ) {
        let mut p = w.permit("permit-window");
        let from = w.time.plus_ms(super::DAY);
        let until = from.plus_ms(30 * super::DAY);
        (p.valid_from, p.valid_until) = (Some(from), Some(until));
        let id = p.cert_id();
        w.submit("moea-investment", Action::Issue(p)).unwrap();
        w.submit("nia-immigration", Action::Approve { id }).unwrap();
        w.submit("mol-labor", Action::Approve { id }).unwrap();
        (id, from, until)
    }

    /// Revoke entry `i` of batch `b` (its tree `tree` over `commitments`) as its issuer.
    pub fn revoke_reward_order(
        w: &mut World,
        b: &cachet_chain::tx::BatchIssuance,
        tree: &cachet_chain::merkle::MerkleTree,
        commitments: &[cachet_chain::Commitment],
        i: usize,
    ) {
        let entry = cachet_chain::tx::BatchEntry {
            batch: b.batch_id(),
            commitment: commitments[i],
            proof: tree.proof(i).unwrap(),
        };
        w.submit(
            "dgpa-personnel",
            Action::RevokeBatchEntry {
                entry,
                reason: cachet_chain::tx::RevocationReason::IssuedInError,
            },
        )
        .unwrap();
    }

    /// The receipt of entry `i` of batch `b` issued by `agency` (its tree over `commitments`
    /// is `tree`), signed by validators 1, 2 and 3.
    pub fn batch_entry_receipt(
        w: &World,
        agency: &str,
        b: &cachet_chain::tx::BatchIssuance,
        tree: &cachet_chain::merkle::MerkleTree,
        commitments: &[cachet_chain::Commitment],
        i: usize,
    ) -> Receipt {
        let (batch, batch_proof) = w.chain.prove(&StateKey::Batch(b.batch_id())).unwrap();
        let batch = batch.unwrap();
        let record: cachet_chain::state::BatchRecord =
            cachet_chain::state::decode_value(&batch).unwrap();
        let revocation = cachet_chain::receipt::EntryRevocation::for_entry(&record, || {
            w.chain
                .prove(&StateKey::BatchRevocation(b.batch_id(), i as u32))
        })
        .unwrap();
        Receipt {
            version: RECEIPT_VERSION,
            kind_policy: None,
            transitions: Default::default(),
            header: w.chain.head().clone(),
            commit: commit(w, &[1, 2, 3]),
            subject: Subject::BatchEntry {
                batch,
                batch_proof,
                commitment: commitments[i],
                inclusion: tree.proof(i).unwrap(),
                revocation,
            },
            issuer: Some(issuer(w, agency)),
        }
    }

    /// A fifth validator joins by governance: the block that changes the set, signed by the
    /// set before it (the transition a later receipt carries), the set after it, and every
    /// key of the set after it.
    pub struct Joined {
        pub transition: cachet_chain::receipt::Transition,
        pub old_set: ValidatorSet,
        pub new_set: ValidatorSet,
        pub new_keys: Vec<SecretKey>,
    }

    pub fn a_validator_joins(w: &mut World) -> Joined {
        let old_keys: Vec<SecretKey> = example::AGENCIES
            .iter()
            .filter(|a| a.3)
            .map(|a| example::validator_key(a.0))
            .collect();
        let v5 = SecretKey::dev("validator-5");
        let change = cachet_chain::tx::GovernanceChange::AddValidator {
            agency: id("nia-immigration"),
            key: v5.public(),
            power: 1,
        };
        let events = w.submit("moi-land", Action::Propose { change }).unwrap();
        let proposal = proposal_id(&events);
        w.submit("moea-investment", Action::Vote { proposal })
            .unwrap();
        w.submit("dgpa-personnel", Action::Vote { proposal })
            .unwrap();
        let changed = w.chain.head().clone();
        let old_set = example::genesis().validator_set().unwrap();
        let new_set: ValidatorSet = w.chain.get(&StateKey::Validators).unwrap().unwrap();
        let transition = cachet_chain::receipt::Transition {
            commit: sign_with(&changed, &old_set, &old_keys),
            header: changed,
            next: new_set.clone(),
        };
        let mut new_keys = old_keys;
        new_keys.push(v5);
        Joined {
            transition,
            old_set,
            new_set,
            new_keys,
        }
    }

    /// Sign `header` with every key in `keys` that is in `set`.
    pub fn sign_with(
        header: &cachet_chain::BlockHeader,
        set: &ValidatorSet,
        keys: &[SecretKey],
    ) -> cachet_chain::receipt::CommitProof {
        let signatures = set
            .validators
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let k = keys.iter().find(|k| k.public() == v.key)?;
                let m = cachet_chain::receipt::precommit_message(
                    &header.chain_id,
                    header.height,
                    0,
                    &header.hash(),
                    &v.key,
                );
                Some(cachet_chain::receipt::CommitSignature {
                    validator: i as u16,
                    signature: k.sign(&m),
                })
            })
            .collect();
        cachet_chain::receipt::CommitProof {
            round: 0,
            signatures: CommitSignatures::new(signatures).unwrap(),
        }
    }

    /// Open a governance proposal to rotate `agency`'s key to `key` and cast all but the last vote
    /// it needs; returns the proposal, for the last vote (`dgpa-personnel`'s) to carry it out.
    pub fn rotation_one_vote_short(
        w: &mut World,
        agency: &str,
        key: &SecretKey,
    ) -> cachet_chain::TxId {
        let events = w
            .submit(
                "moi-land",
                Action::Propose {
                    change: cachet_chain::tx::GovernanceChange::RotateAgencyKey {
                        id: id(agency),
                        key: key.public(),
                    },
                },
            )
            .unwrap();
        let proposal = proposal_id(&events);
        w.submit("moea-investment", Action::Vote { proposal })
            .unwrap();
        proposal
    }

    pub fn title(doc_name: &str, parcel_name: &str) -> cachet_chain::tx::Issuance {
        cachet_chain::tx::Issuance {
            kind: CertKind::LandTitle,
            commitment: doc(doc_name),
            valid_from: None,
            valid_until: None,
            terms: cachet_chain::tx::Terms::LandTitle {
                parcel: parcel(parcel_name),
            },
        }
    }
}
