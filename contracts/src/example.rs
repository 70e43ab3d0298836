//! The example consortium: four validator agencies (land, investment, personnel, culture), two
//! approving agencies, a second land office and three culture oracles, with *development keys*
//! derived from public names ([`SecretKey::dev`]). Anyone can recompute these keys: this
//! consortium is for `cachet devnet`, demos and tests, never for production.

use cachet_chain::crypto::SecretKey;
use cachet_chain::genesis::{GenesisAgency, GenesisDoc};
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Timestamp};
use cachet_chain::state::{AgencyList, KeyList, KindPolicy, Name, Validator};
use std::collections::BTreeMap;

/// 2026-01-01T00:00:00Z.
pub const EXAMPLE_GENESIS_TIME: Timestamp = Timestamp(1_767_225_600_000);

/// The example chain id.
pub const EXAMPLE_CHAIN_ID: &str = "cachet-example";

/// Agencies of the example: `(id, name, accredited kinds, runs a validator)`.
pub const AGENCIES: &[(&str, &str, &[CertKind], bool)] = &[
    (
        "moi-land",
        "內政部地政司 MOI Department of Land Administration",
        &[CertKind::LandTitle],
        true,
    ),
    (
        "moea-investment",
        "經濟部 Ministry of Economic Affairs",
        &[CertKind::InvestmentPermit],
        true,
    ),
    (
        "dgpa-personnel",
        "行政院人事行政總處 Directorate-General of Personnel Administration",
        &[CertKind::RewardOrder],
        true,
    ),
    (
        "moc-culture",
        "文化部 Ministry of Culture",
        &[CertKind::CulturalLicense],
        true,
    ),
    (
        "nia-immigration",
        "內政部移民署 National Immigration Agency",
        &[],
        false,
    ),
    ("mol-labor", "勞動部 Ministry of Labor", &[], false),
    (
        "guting-land-office",
        "臺北市古亭地政事務所 Taipei Guting Land Office",
        &[CertKind::LandTitle],
        false,
    ),
];

/// Names of the culture oracles' dev keys.
pub const ORACLES: &[&str] = &["oracle-1", "oracle-2", "oracle-3"];

/// The dev signing key of an example agency.
pub fn agency_key(id: &str) -> SecretKey {
    SecretKey::dev(&format!("agency:{id}"))
}

/// The dev consensus key of the example validator run by `id`.
pub fn validator_key(id: &str) -> SecretKey {
    SecretKey::dev(&format!("validator:{id}"))
}

/// The dev key of an example oracle.
pub fn oracle_key(name: &str) -> SecretKey {
    SecretKey::dev(&format!("oracle:{name}"))
}

fn agencies(ids: &[&str]) -> AgencyList {
    AgencyList::new(ids.iter().map(|s| id(s)).collect()).expect("short list")
}

fn id(s: &str) -> AgencyId {
    AgencyId::new(s).expect("example ids are valid")
}

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The example genesis document.
pub fn genesis() -> GenesisDoc {
    let agencies_doc = AGENCIES
        .iter()
        .map(|(a, name, kinds, _)| GenesisAgency {
            id: id(a),
            name: Name::new(*name).expect("example names are valid"),
            key: agency_key(a).public(),
            accredited: kinds.to_vec(),
        })
        .collect();
    let validators = AGENCIES
        .iter()
        .filter(|(_, _, _, v)| *v)
        .map(|(a, ..)| Validator {
            agency: id(a),
            key: validator_key(a).public(),
            power: 1,
        })
        .collect();
    let base = KindPolicy::open(AgencyList::default());
    let mut policies = BTreeMap::new();
    policies.insert(
        CertKind::LandTitle,
        KindPolicy {
            accreditors: agencies(&["moi-land"]),
            ..base.clone()
        },
    );
    policies.insert(
        CertKind::InvestmentPermit,
        KindPolicy {
            accreditors: agencies(&["moea-investment"]),
            approvers: agencies(&["nia-immigration", "mol-labor"]),
            approvals_required: 2,
            requires_validity: true,
            max_validity_ms: 5 * 366 * DAY_MS,
            ..base.clone()
        },
    );
    policies.insert(
        CertKind::RewardOrder,
        KindPolicy {
            accreditors: agencies(&["dgpa-personnel"]),
            max_batch_leaves: 1 << 20,
            max_receipt_age_ms: 30 * DAY_MS,
            ..base.clone()
        },
    );
    policies.insert(
        CertKind::CulturalLicense,
        KindPolicy {
            accreditors: agencies(&["moc-culture"]),
            oracles: KeyList::new(ORACLES.iter().map(|o| oracle_key(o).public()).collect())
                .expect("short list"),
            oracle_threshold: 2,
            max_attestation_window_ms: 10 * 60 * 1000,
            max_receipt_age_ms: 7 * DAY_MS,
            ..base
        },
    );
    GenesisDoc {
        chain_id: ChainId::new(EXAMPLE_CHAIN_ID).expect("valid"),
        genesis_time: EXAMPLE_GENESIS_TIME,
        proposal_ttl: 10_000,
        checkpoint_interval: 1_000,
        agencies: agencies_doc,
        validators,
        policies,
    }
}

/// `count` land titles anchored by `moi-land` with nonces from `first` (document and parcel `n`
/// for nonce `n`), signed for `chain_id`: the load of the benchmarks.
pub fn land_title_anchors(
    chain_id: &ChainId,
    first: u64,
    count: usize,
) -> Vec<cachet_chain::tx::Transaction> {
    use cachet_chain::document::{Commitment, Fingerprint, FingerprintAlg, Salt};
    use cachet_chain::hash::{Domain, Hash32};
    use cachet_chain::ids::Height;
    use cachet_chain::tx::{Action, Issuance, Terms, TxBody};
    let key = agency_key("moi-land");
    (first..first + count as u64)
        .map(|n| {
            TxBody {
                chain_id: chain_id.clone(),
                signer: AgencyId::new("moi-land").expect("valid id"),
                key: key.public(),
                nonce: n,
                expires_at: Height(1_000),
                action: Action::Issue(Issuance {
                    kind: CertKind::LandTitle,
                    commitment: Commitment::new(
                        &Fingerprint::of(FingerprintAlg::Sha256, &n.to_le_bytes()),
                        &Salt(Hash32([3; 32])),
                    ),
                    valid_from: None,
                    valid_until: None,
                    terms: Terms::LandTitle {
                        parcel: Domain::Commitment.hash(&n.to_le_bytes()),
                    },
                }),
            }
            .sign(&key)
        })
        .collect()
}
