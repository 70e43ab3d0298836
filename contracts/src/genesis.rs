//! From a genesis document to the height-0 state and header, and the trust anchor that the
//! genesis hash (a verifier's default trust root) stands for.

use cachet_chain::block::BlockHeader;
use cachet_chain::codec::encode;
use cachet_chain::genesis::{GenesisDoc, GenesisError};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Height;
use cachet_chain::merkle::empty_root;
use cachet_chain::state::{
    Accreditation, AgencyRecord, ChainParams, KeyEpoch, KeyHistory, StateKey,
};
use cachet_chain::state_tree::{self, EMPTY, MemoryTreeStore, TreeBatch};
use cachet_chain::trust::TrustAnchor;
use std::collections::BTreeMap;

/// The genesis header (height 0) and the tree writes of the initial state.
pub fn genesis_state(doc: &GenesisDoc) -> Result<(BlockHeader, TreeBatch), GenesisError> {
    doc.validate()?;
    let validators = doc.validator_set()?;
    let mut writes: BTreeMap<Hash32, Option<Vec<u8>>> = BTreeMap::new();
    let mut put = |key: StateKey, value: Vec<u8>| {
        writes.insert(key.hash(), Some(value));
    };
    put(
        StateKey::Params,
        encode(&ChainParams {
            chain_id: doc.chain_id.clone(),
            proposal_ttl: doc.proposal_ttl,
            checkpoint_interval: doc.checkpoint_interval,
        }),
    );
    put(StateKey::Validators, encode(&validators));
    for a in &doc.agencies {
        let keys = KeyHistory::new(vec![KeyEpoch {
            key: a.key,
            from: Height(0),
            until: None,
        }])
        .map_err(|e| GenesisError::Invalid(e.to_string()))?;
        let record = AgencyRecord {
            id: a.id.clone(),
            name: a.name.clone(),
            keys,
            next_nonce: 0,
            registered_at: Height(0),
            removed_at: None,
        };
        put(StateKey::Agency(a.id.clone()), encode(&record));
        for kind in &a.accredited {
            put(
                StateKey::Accreditation(*kind, a.id.clone()),
                encode(&Accreditation {
                    since: Height(0),
                    by: None,
                }),
            );
        }
    }
    for (kind, policy) in &doc.policies {
        put(StateKey::Policy(*kind), encode(policy));
    }
    let changes: Vec<_> = writes.into_iter().collect();
    let (state_root, batch) = state_tree::update(&MemoryTreeStore::new(), &EMPTY, &changes)
        .map_err(|e| GenesisError::Invalid(e.to_string()))?;
    let header = BlockHeader {
        chain_id: doc.chain_id.clone(),
        height: Height(0),
        time: doc.genesis_time,
        parent: Hash32::ZERO,
        proposer: None,
        tx_root: empty_root(),
        tx_count: 0,
        state_root,
        validators_hash: validators.hash(),
        next_validators_hash: validators.hash(),
    };
    Ok((header, batch))
}

/// The trust anchor of the genesis: its header, its validator set and every kind's policy with
/// its proof against the genesis state. Its root is the genesis hash.
pub fn anchor(doc: &GenesisDoc) -> Result<TrustAnchor, GenesisError> {
    let (header, batch) = genesis_state(doc)?;
    let mut tree = MemoryTreeStore::new();
    tree.write(batch);
    TrustAnchor::build(&tree, header).map_err(|e| GenesisError::Invalid(e.to_string()))
}
