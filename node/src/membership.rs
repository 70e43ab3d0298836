//! Who this node keeps in touch with, across restarts: the peers its configuration lists, plus
//! those an operator added while it ran (`cachet add-peer`, kept in the data directory), less
//! every validator governance removed from the set, whatever a configuration file still says.
//!
//! A peer's identity is its node key, which for a validator is its validator key: a validator
//! the chain's state no longer names is known by it, and refused on both networks. It is not
//! the networks themselves (the consensus network's persistent peers, [`crate::gossip`]'s
//! allow-list), which are given the list this module makes.
//!
//! # Format
//!
//! `peers.json` in the node's data directory: a JSON array of `{"p2p": multiaddr, "gossip":
//! multiaddr}`, each address ending in `/p2p/<peer id>`, in the order they were added; written
//! whole (a temporary file renamed over it) at each change.

use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tracing::warn;

/// A consortium peer: its identity and its two endpoints.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) id: libp2p::PeerId,
    pub(crate) p2p: Option<libp2p::Multiaddr>,
    pub(crate) gossip: Option<libp2p::Multiaddr>,
}

/// The peer id an address names, if it ends in `/p2p/<peer id>`.
pub(crate) fn peer_of(addr: &libp2p::Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// The file of added peers, in the data directory.
pub const ADDED_PEERS: &str = "peers.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Added {
    p2p: String,
    gossip: String,
}

fn file(home: &Path) -> PathBuf {
    home.join(ADDED_PEERS)
}

/// The peers operators added, as kept under `home`.
pub(crate) fn added(home: &Path) -> eyre::Result<Vec<Peer>> {
    let path = file(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => eyre::bail!("cannot read {}: {e}", path.display()),
    };
    let list: Vec<Added> = serde_json::from_str(&text)
        .map_err(|e| eyre::eyre!("{} is not a list of peers: {e}", path.display()))?;
    list.into_iter()
        .map(|a| {
            let p2p: libp2p::Multiaddr = a.p2p.parse()?;
            let gossip: libp2p::Multiaddr = a.gossip.parse()?;
            let id = peer_of(&p2p)
                .filter(|id| peer_of(&gossip) == Some(*id))
                .ok_or_else(|| eyre::eyre!("{}: a peer without one /p2p/ id", path.display()))?;
            Ok(Peer {
                id,
                p2p: Some(p2p),
                gossip: Some(gossip),
            })
        })
        .collect()
}

/// Keep `peer` among the added ones (replacing an earlier entry of the same id).
pub(crate) fn remember(home: &Path, peer: &Peer) -> eyre::Result<()> {
    let mut list = added(home)?;
    list.retain(|p| p.id != peer.id);
    list.push(peer.clone());
    write(home, &list)
}

/// Drop the added peers `gone`.
pub(crate) fn forget(home: &Path, gone: &[libp2p::PeerId]) -> eyre::Result<()> {
    let mut list = added(home)?;
    let before = list.len();
    list.retain(|p| !gone.contains(&p.id));
    if list.len() == before {
        return Ok(());
    }
    write(home, &list)
}

fn write(home: &Path, list: &[Peer]) -> eyre::Result<()> {
    let entries: Vec<Added> = list
        .iter()
        .filter_map(|p| {
            Some(Added {
                p2p: p.p2p.as_ref()?.to_string(),
                gossip: p.gossip.as_ref()?.to_string(),
            })
        })
        .collect();
    let path = file(home);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&entries)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// The node identities of every validator the store recorded in a set (the genesis's and each
/// change's) that the set after `head` no longer holds.
pub(crate) fn removed_validators(
    store: &Store,
    head: u64,
) -> eyre::Result<BTreeSet<libp2p::PeerId>> {
    let current = store.validators_after(head)?;
    let mut removed = BTreeSet::new();
    for h in std::iter::once(0).chain(store.validator_set_changes()?) {
        for v in store.validators_after(h)?.validators.iter() {
            if current.get(&v.key).is_none()
                && let Some(id) = crate::gossip::peer_id_of(&v.key)
            {
                removed.insert(id);
            }
        }
    }
    Ok(removed)
}

/// The peers to keep in touch with at start: `configured` and the added ones, without the
/// validators governance removed (each one dropped is logged).
pub(crate) fn at_start(
    configured: Vec<Peer>,
    home: &Path,
    store: &Store,
    head: u64,
) -> eyre::Result<Vec<Peer>> {
    let removed = removed_validators(store, head)?;
    let mut peers = configured;
    for p in added(home)? {
        peers.retain(|q| q.id != p.id);
        peers.push(p);
    }
    peers.retain(|p| {
        let keep = !removed.contains(&p.id);
        if !keep {
            warn!(peer = %p.id, "a peer in the configuration is a validator governance removed: refused");
        }
        keep
    });
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(seed: u8) -> Peer {
        let key = cachet_chain::crypto::SecretKey::from_seed(&[seed; 32]);
        let id = crate::gossip::peer_id_of(&key.public()).unwrap();
        Peer {
            id,
            p2p: Some(
                format!("/ip4/127.0.0.1/tcp/1{seed}/p2p/{id}")
                    .parse()
                    .unwrap(),
            ),
            gossip: Some(
                format!("/ip4/127.0.0.1/tcp/2{seed}/p2p/{id}")
                    .parse()
                    .unwrap(),
            ),
        }
    }

    #[test]
    fn added_peers_are_kept_replaced_and_forgotten() {
        let home = std::env::temp_dir().join(format!("cachet-peers-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        assert!(added(&home).unwrap().is_empty());
        remember(&home, &peer(1)).unwrap();
        remember(&home, &peer(2)).unwrap();
        let mut moved = peer(1);
        moved.p2p = Some(
            format!("/ip4/127.0.0.2/tcp/11/p2p/{}", moved.id)
                .parse()
                .unwrap(),
        );
        remember(&home, &moved).unwrap();
        let ids: Vec<_> = added(&home)
            .unwrap()
            .iter()
            .map(|p| (p.id, p.p2p.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![(peer(2).id, peer(2).p2p), (moved.id, moved.p2p.clone())]
        );
        forget(&home, &[peer(2).id]).unwrap();
        assert_eq!(added(&home).unwrap().len(), 1);
        std::fs::write(file(&home), "not json").unwrap();
        assert!(added(&home).is_err());
        std::fs::remove_dir_all(&home).unwrap();
    }
}
