//! What the consensus host ([`crate::app`]), the RPC-facing API ([`crate::api`]) and the
//! transaction gossip share: the committed head, the mempool and its admission, the store, the
//! consortium's peers, and the committed-block notices.
//!
//! It is not the consensus logic (proposing, executing, committing: [`crate::app`]) nor what the
//! RPC asks (receipts, verdicts, metrics: [`crate::api`]); they read and move the head through
//! it, and data flows one way: the host commits, the API reads.

use crate::gossip::{self, Gossip};
use crate::membership::{self, Peer, peer_of};
use crate::mempool::{AdmitError, Head, Mempool};
use crate::metrics::{Metrics, Source};
use crate::store::Store;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::ids::ChainId;
use cachet_chain::tx::TxId;
use cachet_contracts::Executed;
use malachite_app_channel::NetworkRequest;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What the consensus host, the RPC-facing API and the gossip share.
pub struct Shared {
    /// The database.
    pub store: Arc<Store>,
    /// Admitted transactions.
    pub mempool: Mempool,
    /// The chain id.
    pub chain_id: ChainId,
    /// The node's name.
    pub moniker: String,
    pub(crate) head: RwLock<BlockHeader>,
    pub(crate) gossip: RwLock<Option<Gossip>>,
    pub(crate) peers: std::sync::Mutex<Vec<Peer>>,
    pub(crate) net_requests: RwLock<Option<mpsc::Sender<NetworkRequest>>>,
    pub(crate) info: serde_json::Value,
    pub(crate) trust: cachet_chain::trust::Trust,
    /// What the genesis hash stands for, for verifiers (the verify page's trust).
    pub(crate) anchor: cachet_chain::trust::TrustAnchor,
    /// The chain's checkpoint interval (fixed at genesis).
    pub(crate) checkpoint_interval: u64,
    /// The data directory.
    pub(crate) home: std::path::PathBuf,
    /// When the node calls itself ready.
    pub(crate) health: crate::config::Health,
    pub(crate) blocks: tokio::sync::broadcast::Sender<serde_json::Value>,
    /// How many times the committed height's stored certificate was replaced (the finalized
    /// one may carry more precommits than the decided one): what is built from it is stale.
    pub(crate) certificate_updates: AtomicU64,
    /// Admission (signatures, a dry run of the rules) is CPU work: RPC and gossip batches are
    /// admitted on blocking threads, at most as many at once as there are cores, so that a
    /// flood of submissions queues here instead of starving consensus and networking tasks.
    pub(crate) admission: Arc<tokio::sync::Semaphore>,
    /// This node's own handle, to move admission work onto a blocking thread.
    pub(crate) me: std::sync::Weak<Shared>,
    /// What an operator watches (`GET /metrics`).
    pub metrics: Arc<Metrics>,
    /// How far this node's clock stands from the other proposers'.
    pub(crate) clock_skew: crate::clock::SkewMeter,
    /// The free space kept under the data directory; writes wait for it.
    pub(crate) disk: crate::disk::Reserve,
    /// The snapshots this node takes and offers.
    pub(crate) snapshots: Arc<crate::statesync::snapshots::Snapshots>,
}

impl Shared {
    /// The latest committed header.
    pub fn head(&self) -> BlockHeader {
        self.head.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_head(&self, header: BlockHeader) {
        *self.head.write().unwrap_or_else(|p| p.into_inner()) = header;
    }

    /// The stored certificate of the committed height changed (the finalized one may carry
    /// more precommits than the decided one): what was built from the old one is stale.
    pub(crate) fn certificate_updated(&self) {
        self.certificate_updates.fetch_add(1, Ordering::Release);
    }

    /// How many times a committed height's certificate was replaced so far.
    pub(crate) fn certificate_updates(&self) -> u64 {
        self.certificate_updates.load(Ordering::Acquire)
    }

    /// Keep the trust anchor of `header` if it is a checkpoint the store lacks: right after
    /// its commit, while its state is the head's (pruning never reaches it then).
    pub(crate) fn keep_checkpoint(&self, header: &BlockHeader) -> eyre::Result<()> {
        let h = header.height.0;
        if h == 0 || !h.is_multiple_of(self.checkpoint_interval.max(1)) {
            return Ok(());
        }
        if self
            .store
            .checkpoint_at_or_below(h)?
            .is_some_and(|a| a.header.height.0 == h)
        {
            return Ok(());
        }
        let anchor = cachet_chain::trust::TrustAnchor::build(&*self.store, header.clone())?;
        self.store.put_checkpoint(&anchor)?;
        info!(height = h, root = %anchor.root(), "checkpoint");
        Ok(())
    }

    /// The trust anchor of the latest checkpoint at or below `height` (the genesis if none).
    pub(crate) fn checkpoint_at_or_below(
        &self,
        height: u64,
    ) -> Result<cachet_chain::trust::TrustAnchor, cachet_chain::state_tree::StoreError> {
        Ok(self
            .store
            .checkpoint_at_or_below(height)?
            .unwrap_or_else(|| self.anchor.clone()))
    }

    pub(crate) fn with_head<T>(&self, f: impl FnOnce(&Head<'_, Store>) -> T) -> T {
        let head = self.head();
        f(&Head {
            store: &self.store,
            state_root: head.state_root,
            height: head.height,
            time: head.time,
            chain_id: &self.chain_id,
        })
    }

    /// Admit encoded transactions on a blocking thread once an admission slot is free.
    pub(crate) async fn admit_owned(
        &self,
        txs: Arc<Vec<Vec<u8>>>,
        source: Source,
    ) -> Vec<Result<TxId, AdmitError>> {
        // `self` is borrowed from the Arc that `start` built, and the slots are never closed.
        let me = self.me.upgrade().expect("Shared lives in an Arc");
        let _slot = self
            .admission
            .acquire()
            .await
            .expect("admission slots are never closed");
        let work = txs.clone();
        match tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = work.iter().map(Vec::as_slice).collect();
            me.admit_many(&refs, source)
        })
        .await
        {
            Ok(results) => results,
            // A panic in admission is a bug (its decoders and rules are fuzzed): it surfaces
            // here as it would have inline.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Admit encoded transactions that arrived together from `source`; one result each, in
    /// order.
    pub fn admit_many(&self, txs: &[&[u8]], source: Source) -> Vec<Result<TxId, AdmitError>> {
        let results: Vec<_> = self
            .with_head(|head| self.mempool.admit_many(txs, head))
            .into_iter()
            .map(|r| r.map(|(id, _)| id))
            .collect();
        self.metrics.admission(
            source,
            results
                .iter()
                .map(|r| r.as_ref().err().map(AdmitError::name)),
        );
        results
    }

    pub(crate) fn after_commit(&self, block: &Block, executed: &Executed) {
        let committed: Vec<TxId> = block.txs.iter().map(|t| t.id()).collect();
        // The notice names every transaction (an id written as hex each), 1% of a validator
        // under load: made only for a subscriber. One that subscribes after this
        // check sees the next block, as it would had it subscribed a moment later. Subscribers
        // may also lag; a send error only means nobody listens.
        if self.blocks.receiver_count() > 0 {
            let _ = self.blocks.send(serde_json::json!({
                "height": block.header.height.0,
                "hash": block.hash(),
                "time": block.header.time.0,
                "txs": &committed,
                "refused": executed.refused.iter().map(|(index, e)| serde_json::json!({
                    "index": index,
                    "code": e.code(),
                    "name": e.name(),
                })).collect::<Vec<_>>(),
                "state_root": block.header.state_root,
            }));
        }
        self.with_head(|head| self.mempool.prune(&committed, |agency| head.agency(agency)));
    }

    pub(crate) fn gossip(&self) -> Option<Gossip> {
        self.gossip
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn net_requests(&self) -> Option<mpsc::Sender<NetworkRequest>> {
        self.net_requests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Connect to a new consortium peer (operator action, e.g. a node joining).
    pub async fn connect_peer(
        &self,
        p2p: libp2p::Multiaddr,
        gossip_addr: libp2p::Multiaddr,
    ) -> eyre::Result<()> {
        let id = peer_of(&p2p)
            .ok_or_else(|| eyre::eyre!("the consensus address needs a /p2p/<peer id>"))?;
        if peer_of(&gossip_addr) != Some(id) {
            eyre::bail!("both addresses must name the same peer id");
        }
        if membership::removed_validators(&self.store, self.head().height.0)?.contains(&id) {
            eyre::bail!("governance removed this validator from the set");
        }
        {
            let net = self
                .net_requests()
                .ok_or_else(|| eyre::eyre!("the consensus network is not running"))?;
            use malachite_app_channel::app::engine::network::PersistentPeerError;
            match NetworkRequest::add_persistent_peer(&net, p2p.clone()).await {
                Ok(Ok(())) | Ok(Err(PersistentPeerError::AlreadyExists)) => {}
                Ok(Err(e)) => eyre::bail!("consensus network refused the peer: {e}"),
                Err(e) => eyre::bail!("consensus network: {e}"),
            }
        }
        if let Some(g) = self.gossip() {
            g.command(gossip::Command::AddPeer(id, gossip_addr.clone()))
                .await;
        }
        let peer = Peer {
            id,
            p2p: Some(p2p),
            gossip: Some(gossip_addr),
        };
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        // Kept across restarts; under the lock, so that two additions write in turn.
        membership::remember(&self.home, &peer)?;
        peers.retain(|p| p.id != id);
        peers.push(peer);
        info!(peer = %id, "peer added");
        Ok(())
    }

    /// Drop the peers of validators that left the set: they may no longer connect.
    pub(crate) async fn drop_removed_validators(
        &self,
        before: &cachet_chain::state::ValidatorSet,
        after: &cachet_chain::state::ValidatorSet,
    ) {
        let gone: Vec<libp2p::PeerId> = before
            .validators
            .iter()
            .filter(|v| after.get(&v.key).is_none())
            .filter_map(|v| gossip::peer_id_of(&v.key))
            .collect();
        if gone.is_empty() {
            return;
        }
        let removed: Vec<Peer> = {
            let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = membership::forget(&self.home, &gone) {
                warn!(error = %e, "cannot update the added peers");
            }
            let (out, keep): (Vec<Peer>, Vec<Peer>) =
                peers.drain(..).partition(|p| gone.contains(&p.id));
            *peers = keep;
            out
        };
        for p in removed {
            if let (Some(net), Some(addr)) = (self.net_requests(), p.p2p.clone()) {
                let _ = NetworkRequest::remove_persistent_peer(&net, addr).await;
            }
            if let Some(g) = self.gossip() {
                g.command(gossip::Command::RemovePeer(p.id)).await;
            }
            warn!(peer = %p.id, "validator left the set: peer removed");
        }
    }
}
