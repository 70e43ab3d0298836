//! Starting a node: open the store (initializing it from genesis on first start), start the
//! Malachite engine, the transaction gossip and the JSON-RPC, then run the application loop.

use crate::app::App;
use crate::codec::BorshCodec;
use crate::config::NodeConfig;
use crate::context::{Address, CachetContext};
use crate::gossip::{self, Gossip};
use crate::mempool::{AdmitError, Head, Mempool};
use crate::metrics::{Metrics, Source};
use crate::signing::{ConsensusSigner, ConsensusVerifier};
use crate::store::Store;
use async_trait::async_trait;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::crypto::SecretKey;
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::ids::ChainId;
use cachet_chain::state::{self, StateKey};
use cachet_chain::state_tree;
use cachet_chain::tx::TxId;
use cachet_contracts::Executed;
use cachet_rpc::{BlockInfo, Failure, NodeApi, Status, TxStatus};
use malachite_app::config as mconfig;
use malachite_app::types::codec::Codec as _;
use malachite_app::types::core::CommitCertificate;
use malachite_app_channel::{
    ConsensusContext, EngineBuilder, NetworkContext, NetworkIdentity, NetworkRequest,
    RequestContext, Signer as _, SyncContext, WalContext,
};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

/// What the application loop, the RPC and the gossip share.
pub struct Shared {
    /// The database.
    pub store: Arc<Store>,
    /// Admitted transactions.
    pub mempool: Mempool,
    /// The chain id.
    pub chain_id: ChainId,
    /// The node's name.
    pub moniker: String,
    head: RwLock<BlockHeader>,
    gossip: RwLock<Option<Gossip>>,
    peers: std::sync::Mutex<Vec<Peer>>,
    net_requests: RwLock<Option<mpsc::Sender<NetworkRequest>>>,
    info: serde_json::Value,
    pub(crate) trust: cachet_chain::receipt::Trust,
    blocks: tokio::sync::broadcast::Sender<serde_json::Value>,
    /// What every receipt at the committed height shares, once checked.
    receipt_head: std::sync::Mutex<Option<Arc<crate::receipts::ReceiptHead>>>,
    /// Admission (signatures, a dry run of the rules) is CPU work: RPC and gossip batches are
    /// admitted on blocking threads, at most as many at once as there are cores, so that a
    /// flood of submissions queues here instead of starving consensus and networking tasks.
    admission: Arc<tokio::sync::Semaphore>,
    /// This node's own handle, to move admission work onto a blocking thread.
    me: std::sync::Weak<Shared>,
    /// What an operator watches (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}

/// A consortium peer: its identity and its two endpoints.
#[derive(Clone, Debug)]
struct Peer {
    id: libp2p::PeerId,
    p2p: Option<libp2p::Multiaddr>,
    gossip: Option<libp2p::Multiaddr>,
}

impl Shared {
    /// The latest committed header.
    pub fn head(&self) -> BlockHeader {
        self.head.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_head(&self, header: BlockHeader) {
        *self.head.write().unwrap_or_else(|p| p.into_inner()) = header;
    }

    pub(crate) fn cached_receipt_head(&self) -> Option<Arc<crate::receipts::ReceiptHead>> {
        self.receipt_head
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn cache_receipt_head(&self, head: Arc<crate::receipts::ReceiptHead>) {
        *self.receipt_head.lock().unwrap_or_else(|p| p.into_inner()) = Some(head);
    }

    /// The stored certificate of the committed height changed (the finalized one may carry
    /// more precommits than the decided one): build receipts from it from now on.
    pub(crate) fn forget_receipt_head(&self) {
        *self.receipt_head.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn with_head<T>(&self, f: impl FnOnce(&Head<'_, Store>) -> T) -> T {
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
    async fn admit_owned(
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

    pub(crate) fn after_commit(&self, block: &Block, _executed: &Executed) {
        // The notice names every transaction (an id hashed and written as hex each), 1% of a
        // validator under load: made only for a subscriber. One that subscribes after this
        // check sees the next block, as it would had it subscribed a moment later. Subscribers
        // may also lag; a send error only means nobody listens.
        if self.blocks.receiver_count() > 0 {
            let _ = self.blocks.send(serde_json::json!({
                "height": block.header.height.0,
                "hash": block.hash(),
                "time": block.header.time.0,
                "txs": block.txs.iter().map(|t| t.id()).collect::<Vec<_>>(),
                "state_root": block.header.state_root,
            }));
        }
        self.with_head(|head| {
            self.mempool
                .prune(|agency| head.next_nonce(agency).unwrap_or(0));
        });
    }

    fn gossip(&self) -> Option<Gossip> {
        self.gossip
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn net_requests(&self) -> Option<mpsc::Sender<NetworkRequest>> {
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
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|p| p.id != id);
        peers.push(Peer {
            id,
            p2p: Some(p2p),
            gossip: Some(gossip_addr),
        });
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

fn admit_failure(e: AdmitError) -> Failure {
    Failure::new(e.code(), e.name(), e.to_string())
}

#[async_trait]
impl NodeApi for Shared {
    async fn submit(&self, tx: Vec<u8>) -> Result<TxId, Failure> {
        self.submit_many(vec![tx])
            .await
            .pop()
            .expect("one result per transaction")
    }

    async fn submit_many(&self, txs: Vec<Vec<u8>>) -> Vec<Result<TxId, Failure>> {
        let txs = Arc::new(txs);
        let results = self.admit_owned(txs.clone(), Source::Rpc).await;
        let gossip = self.gossip();
        let mut out = Vec::with_capacity(results.len());
        for (result, tx) in results.into_iter().zip(txs.iter()) {
            if let (Ok(_), Some(g)) = (&result, &gossip) {
                g.publish(tx.clone()).await;
            }
            out.push(result.map_err(admit_failure));
        }
        out
    }

    fn status(&self) -> Result<Status, Failure> {
        let head = self.head();
        Ok(Status {
            moniker: self.moniker.clone(),
            chain_id: head.chain_id.to_string(),
            height: head.height.0,
            hash: head.hash(),
            time: head.time.0,
            state_root: head.state_root,
            mempool: self.mempool.len(),
        })
    }

    fn block(&self, height: u64) -> Result<Option<BlockInfo>, Failure> {
        let internal = |e: state_tree::StoreError| Failure::internal(e.to_string());
        let Some(block) = self.store.block(height).map_err(internal)? else {
            return Ok(None);
        };
        let signatures = match self.store.certificate(height).map_err(internal)? {
            Some(bytes) => borsh::from_slice::<CommitCertificate<CachetContext>>(&bytes)
                .map(|c| c.commit_signatures.len())
                .unwrap_or(0),
            None => 0,
        };
        Ok(Some(BlockInfo {
            height,
            hash: block.hash(),
            txs: block.txs.iter().map(|t| t.id()).collect(),
            header: block.header,
            signatures,
        }))
    }

    fn transaction(&self, id: &TxId) -> Result<TxStatus, Failure> {
        if let Some(loc) = self
            .store
            .tx_location(id)
            .map_err(|e| Failure::internal(e.to_string()))?
        {
            return Ok(TxStatus::Committed {
                height: loc.height,
                index: loc.index,
            });
        }
        Ok(if self.mempool.contains(id) {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }

    fn state(&self, key: &StateKey) -> Result<Option<serde_json::Value>, Failure> {
        let head = self.head();
        let Some(bytes) = state_tree::get(&*self.store, &head.state_root, &key.hash())
            .map_err(|e| Failure::internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| Failure::internal(e.to_string()))
        };
        let corrupt = |e: cachet_chain::DecodeError| Failure::internal(e.to_string());
        Ok(Some(match key {
            StateKey::Certificate(_) => json(serde_json::to_value(
                state::decode_value::<state::CertificateRecord>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::Batch(_) => json(serde_json::to_value(
                state::decode_value::<state::BatchRecord>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::Agency(_) => json(serde_json::to_value(
                state::decode_value::<state::AgencyRecord>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::Validators => json(serde_json::to_value(
                state::decode_value::<state::ValidatorSet>(&bytes).map_err(corrupt)?,
            ))?,
            _ => serde_json::Value::String(cachet_chain::hash::encode_hex(&bytes)),
        }))
    }

    fn receipt(&self, id: &cachet_chain::CertId) -> Result<Vec<u8>, Failure> {
        crate::receipts::certificate(self, id).map(|r| r.encode())
    }

    fn batch_receipt(
        &self,
        batch: &cachet_chain::tx::BatchId,
        commitment: cachet_chain::Commitment,
        inclusion: cachet_chain::merkle::BatchProof,
    ) -> Result<Vec<u8>, Failure> {
        crate::receipts::batch_entry(self, batch, commitment, inclusion).map(|r| r.encode())
    }

    fn verify(&self, id: &cachet_chain::CertId) -> Result<cachet_rpc::Verification, Failure> {
        let receipt = crate::receipts::certificate(self, id)?;
        let now = cachet_chain::Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        );
        // The node checks its own receipt as any verifier would (the shared header and commit
        // once per height, when the receipt head was built); a failure here means the node's
        // store or clock is broken, not the certificate.
        let verified = cachet_chain::receipt::verify_claims(
            &receipt,
            &self.trust,
            now.max(receipt.header.time),
            None,
        )
        .map_err(|e| Failure::internal(format!("own receipt does not verify: {e}")))?;
        let fields = match serde_json::to_value(&verified) {
            Ok(serde_json::Value::Object(fields)) => fields,
            Ok(other) => {
                return Err(Failure::internal(format!(
                    "verdict is not an object: {other}"
                )));
            }
            Err(e) => return Err(Failure::internal(e.to_string())),
        };
        Ok(cachet_rpc::Verification {
            fields,
            receipt: receipt.encode(),
        })
    }

    fn verify_document(
        &self,
        fingerprint: &cachet_chain::Fingerprint,
        salt: &cachet_chain::Salt,
    ) -> Result<cachet_rpc::Verification, Failure> {
        let commitment = cachet_chain::Commitment::new(fingerprint, salt);
        for kind in cachet_chain::CertKind::ALL {
            let id = cachet_chain::CertId::derive(kind, &commitment);
            if self.state(&StateKey::Certificate(id))?.is_some() {
                return self.verify(&id);
            }
        }
        self.verify(&cachet_chain::CertId::derive(
            cachet_chain::CertKind::LandTitle,
            &commitment,
        ))
    }

    fn history(&self, id: &cachet_chain::CertId) -> Result<Vec<serde_json::Value>, Failure> {
        let record = |id: &cachet_chain::CertId| self.state(&StateKey::Certificate(*id));
        let Some(start) = record(id)? else {
            return Err(Failure::new(
                1301,
                "unknown_certificate",
                format!("unknown certificate {id}"),
            ));
        };
        let mut older = Vec::new();
        let mut cursor = start.clone();
        while let Some(prev) = cursor["supersedes"].as_str().and_then(|s| s.parse().ok()) {
            let Some(r) = record(&prev)? else { break };
            older.push(r.clone());
            cursor = r;
            if older.len() > 1000 {
                break;
            }
        }
        older.reverse();
        older.push(start.clone());
        let mut cursor = start;
        while let Some(next) = cursor["status"]["by"]
            .as_str()
            .filter(|_| cursor["status"]["state"] == "superseded")
            .and_then(|s| s.parse().ok())
        {
            let Some(r) = record(&next)? else { break };
            older.push(r.clone());
            cursor = r;
            if older.len() > 2000 {
                break;
            }
        }
        Ok(older)
    }

    fn subscribe_blocks(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
        self.blocks.subscribe()
    }

    /// This node's metrics, then Malachite's.
    fn metrics(&self) -> String {
        let head = self.head();
        let (node_cache, value_cache) = self.store.cache_fill();
        let me = std::process::id();
        let gauges = crate::metrics::Gauges {
            height: head.height.0,
            head_time_ms: head.time.0,
            mempool_transactions: self.mempool.len(),
            pruned_height: self.store.pruned_upto().unwrap_or(0),
            families: self.store.family_sizes(),
            pending_compaction_bytes: self.store.pending_compaction_bytes(),
            block_cache_bytes: self.store.block_cache_bytes(),
            store_io: self.store.io(),
            node_cache,
            value_cache,
            tree_nodes_in_memory: self.store.resident_nodes(),
            resident_bytes: crate::metrics::resident_bytes(me),
            heap: crate::metrics::heap_stats(),
            cpu_seconds: crate::metrics::cpu_ticks(me) as f64 / crate::metrics::TICKS_PER_SECOND,
        };
        crate::metrics::render(&self.metrics, &gauges, &crate::metrics::consensus_text())
    }

    fn node_info(&self) -> Result<serde_json::Value, Failure> {
        Ok(self.info.clone())
    }

    async fn add_peer(&self, p2p: String, gossip_addr: String) -> Result<(), Failure> {
        let parse = |s: &str| {
            s.parse::<libp2p::Multiaddr>()
                .map_err(|e| Failure::invalid_params(format!("bad multiaddr {s}: {e}")))
        };
        self.connect_peer(parse(&p2p)?, parse(&gossip_addr)?)
            .await
            .map_err(|e| Failure::new(2003, "peer_refused", format!("{e:#}")))
    }

    fn evidence(&self) -> Result<Vec<(u64, String)>, Failure> {
        Ok(self
            .store
            .evidence()
            .map_err(|e| Failure::internal(e.to_string()))?
            .into_iter()
            .map(|(h, bytes)| (h, cachet_chain::hash::encode_hex(&bytes)))
            .collect())
    }
}

fn multiaddrs(list: &[String]) -> eyre::Result<Vec<libp2p::Multiaddr>> {
    list.iter()
        .map(|s| s.parse().map_err(|e| eyre::eyre!("bad multiaddr {s}: {e}")))
        .collect()
}

fn configured_peers(config: &NodeConfig) -> eyre::Result<Vec<Peer>> {
    let mut peers: Vec<Peer> = Vec::new();
    for a in multiaddrs(&config.p2p.peers)? {
        let id = peer_of(&a).ok_or_else(|| eyre::eyre!("peer {a} needs a /p2p/<peer id>"))?;
        peers.push(Peer {
            id,
            p2p: Some(a),
            gossip: None,
        });
    }
    for a in multiaddrs(&config.gossip.peers)? {
        let id = peer_of(&a).ok_or_else(|| eyre::eyre!("peer {a} needs a /p2p/<peer id>"))?;
        match peers.iter_mut().find(|p| p.id == id) {
            Some(p) => p.gossip = Some(a),
            None => peers.push(Peer {
                id,
                p2p: None,
                gossip: Some(a),
            }),
        }
    }
    Ok(peers)
}

fn peer_of(addr: &libp2p::Multiaddr) -> Option<libp2p::PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// A running node.
pub struct RunningNode {
    /// Shared state (also the RPC's view).
    pub shared: Arc<Shared>,
    /// The RPC's bound address.
    pub rpc_addr: std::net::SocketAddr,
    app: tokio::task::JoinHandle<eyre::Result<()>>,
    _rpc: jsonrpsee::server::ServerHandle,
    _admin_rpc: Option<jsonrpsee::server::ServerHandle>,
}

impl RunningNode {
    /// Wait until the application loop ends (it ends only on a fatal error or shutdown).
    pub async fn wait(self) -> eyre::Result<()> {
        self.app
            .await
            .map_err(|e| eyre::eyre!("application task: {e}"))?
    }
}

/// Start a node from its configuration, with its validator key already loaded.
pub async fn start(config: NodeConfig, key: SecretKey) -> eyre::Result<RunningNode> {
    let genesis_text = std::fs::read_to_string(&config.genesis)
        .map_err(|e| eyre::eyre!("cannot read genesis {}: {e}", config.genesis.display()))?;
    let genesis = GenesisDoc::from_json(&genesis_text)?;
    std::fs::create_dir_all(&config.home)?;
    let store = Arc::new(Store::open_with_cache(
        &config.home.join("db"),
        crate::store::CacheSizes {
            nodes: config.storage.cached_nodes,
            values: config.storage.cached_values,
            block_cache_bytes: config.storage.block_cache_mb << 20,
            memtables_bytes: config.storage.memtables_mb << 20,
            tree: config.storage.state_tree,
        },
    )?);
    let (genesis_header, genesis_tree) = cachet_contracts::genesis_state(&genesis)?;
    match store.genesis()? {
        Some(h) if h != genesis_header => eyre::bail!(
            "the database under {} belongs to another genesis",
            config.home.display()
        ),
        Some(_) => {}
        None => store.init_genesis(&genesis_header, &genesis_tree)?,
    }
    let head = store
        .head()?
        .ok_or_else(|| eyre::eyre!("store has no head"))?;
    info!(
        moniker = %config.moniker,
        height = head.height.0,
        state_root = %head.state_root,
        state_tree = config.storage.state_tree.name(),
        block_time_ms = config.block_time().as_millis() as u64,
        "store opened"
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peers = configured_peers(&config)?;
    let trust = cachet_chain::receipt::Trust::from_genesis(&genesis)?;
    let shared = Arc::new_cyclic(|me| Shared {
        me: me.clone(),
        admission: Arc::new(tokio::sync::Semaphore::new(cores)),
        store: store.clone(),
        mempool: Mempool::new(config.mempool.max_txs, config.mempool.max_bytes),
        chain_id: genesis.chain_id.clone(),
        moniker: config.moniker.clone(),
        head: RwLock::new(head),
        gossip: RwLock::new(None),
        peers: std::sync::Mutex::new(peers),
        net_requests: RwLock::new(None),
        trust,
        blocks: tokio::sync::broadcast::channel(256).0,
        receipt_head: Default::default(),
        metrics: Arc::default(),
        info: {
            let id = gossip::keypair_of(&key).public().to_peer_id();
            serde_json::json!({
                "peer_id": id.to_string(),
                "p2p": format!("{}/p2p/{id}", config.p2p.listen),
                "gossip": format!("{}/p2p/{id}", config.gossip.listen),
                "validator_key": key.public(),
            })
        },
    });

    // Transaction gossip, permissioned to the configured consortium peers.
    let gossip_peers: Vec<(libp2p::PeerId, libp2p::Multiaddr)> = multiaddrs(&config.gossip.peers)?
        .into_iter()
        .filter_map(|a| peer_of(&a).map(|p| (p, a)))
        .collect();
    // Gossip batches waiting for admission (each up to the gossip flush size).
    let (rx_tx, mut rx_rx) = mpsc::channel(4096);
    let g = gossip::spawn(
        gossip::keypair_of(&key),
        format!("cachet/{}/txs", genesis.chain_id),
        config.gossip.listen.parse()?,
        gossip_peers,
        rx_tx,
        shared.metrics.clone(),
    )?;
    *shared.gossip.write().unwrap_or_else(|p| p.into_inner()) = Some(g);
    {
        let shared = shared.clone();
        // Gossip batches share the admission slots with RPC submissions; waiting for one here
        // holds the next batches back in the channel.
        tokio::spawn(async move {
            while let Some(received) = rx_rx.recv().await {
                let Ok(permit) = shared.admission.clone().acquire_owned().await else {
                    break;
                };
                let shared = shared.clone();
                tokio::task::spawn_blocking(move || {
                    let gossip::Received { txs, from, relay } = received;
                    let refs: Vec<&[u8]> = txs.iter().map(Vec::as_slice).collect();
                    for e in shared
                        .admit_many(&refs, Source::Gossip)
                        .into_iter()
                        .filter_map(Result::err)
                    {
                        if !matches!(e, AdmitError::Duplicate(_)) {
                            tracing::debug!(from = %from, error = %e, "gossiped transaction not admitted");
                        }
                    }
                    drop(permit);
                    relay.send();
                });
            }
        });
    }

    // Consensus.
    let address = Address(key.public());
    let signer = ConsensusSigner::new(key.clone(), genesis.chain_id.clone());
    let keypair = gossip::keypair_of(&key);
    let peer_id = keypair.public().to_peer_id();
    let cachet_chain::PublicKey::Ed25519(pk_bytes) = key.public();
    let proof = signer
        .sign_validator_proof(pk_bytes.to_vec(), peer_id.to_bytes())
        .await
        .map_err(|e| eyre::eyre!("validator proof: {e:?}"))?;
    let proof_bytes = BorshCodec.encode(&proof)?;
    let identity = NetworkIdentity::new_validator(
        config.moniker.clone(),
        keypair,
        address.to_string(),
        proof_bytes,
    );
    let mut mcfg = MalachiteConfig {
        moniker: config.moniker.clone(),
        ..Default::default()
    };
    mcfg.consensus.p2p.listen_addr = config.p2p.listen.parse()?;
    mcfg.consensus.p2p.persistent_peers = multiaddrs(&config.p2p.peers)?;
    mcfg.consensus.p2p.persistent_peers_only = true;
    mcfg.consensus.p2p.discovery.enabled = false;
    mcfg.value_sync.status_update_interval = std::time::Duration::from_secs(1);
    mcfg.value_sync.request_timeout = std::time::Duration::from_secs(5);
    let wal_path = config.home.join("wal").join("consensus.wal");
    std::fs::create_dir_all(config.home.join("wal"))?;
    let builder = EngineBuilder::new(crate::context::CachetContext, mcfg)
        .with_default_wal(WalContext::new(wal_path, BorshCodec));
    let consensus = ConsensusContext::new_validator(
        address,
        Box::new(ConsensusVerifier::new(genesis.chain_id.clone())),
        Box::new(signer),
    );
    #[cfg(feature = "byzantine")]
    let byzantine = config.byzantine.clone().filter(|b| b.equivocate_votes);
    #[cfg(not(feature = "byzantine"))]
    let byzantine: Option<crate::config::Byzantine> = None;
    let (mut channels, _engine) = match byzantine {
        None => {
            builder
                .with_default_network(NetworkContext::new(identity, BorshCodec))
                .with_default_consensus(consensus)
                .with_default_sync(SyncContext::new(BorshCodec))
                .with_default_request(RequestContext::new(100))
                .build()
                .await?
        }
        #[cfg(feature = "byzantine")]
        Some(_) => {
            use malachite_engine_byzantine::{ByzantineConfig, Trigger};
            warn!("BYZANTINE TEST NODE: equivocating on every vote");
            builder
                .with_byzantine_network(malachite_app_channel::ByzantineContext {
                    identity,
                    codec: BorshCodec,
                    config: ByzantineConfig::new(Some(7)).with_equivocate_votes(Trigger::Always),
                    signer: Box::new(ConsensusSigner::new(key.clone(), genesis.chain_id.clone())),
                    address,
                    conflicting_value_fn: None,
                    conflicting_vote_value_fn: Some(Box::new(
                        |id: Option<&crate::context::BlockId>| {
                            let mut h = id.map(|i| i.0).unwrap_or_default();
                            h.0[31] ^= 1;
                            crate::context::BlockId(h)
                        },
                    )),
                })
                .await?
                .with_default_consensus(consensus)
                .with_default_sync(SyncContext::new(BorshCodec))
                .with_default_request(RequestContext::new(100))
                .build()
                .await?
        }
        #[cfg(not(feature = "byzantine"))]
        Some(_) => eyre::bail!("built without Byzantine test behaviours"),
    };

    *shared
        .net_requests
        .write()
        .unwrap_or_else(|p| p.into_inner()) = Some(channels.net_requests.clone());
    let (rpc, rpc_addr) =
        cachet_rpc::serve(config.rpc.listen, shared.clone() as Arc<dyn NodeApi>).await?;
    info!(%rpc_addr, "rpc listening");
    let admin_rpc = match config.rpc.admin_listen {
        Some(addr) => {
            let (handle, addr) =
                cachet_rpc::serve(addr, shared.clone() as Arc<dyn NodeApi>).await?;
            info!(%addr, "rpc with the operator methods listening");
            Some(handle)
        }
        None => None,
    };

    if config.storage.state_history_heights > 0 {
        tokio::spawn(prune_state(
            store.clone(),
            config.storage.state_history_heights,
        ));
    }

    let app = App::new(shared.clone(), key, &config.consensus, config.block_time());
    let app = tokio::spawn(async move {
        let result = app.run(&mut channels).await;
        if let Err(e) = &result {
            warn!(error = %e, "application loop ended");
        }
        result
    });
    Ok(RunningNode {
        shared,
        rpc_addr,
        app,
        _rpc: rpc,
        _admin_rpc: admin_rpc,
    })
}

/// Delete state older than the last `keep` heights, in bounded steps off the consensus path.
async fn prune_state(store: Arc<Store>, keep: u64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        // Step until a step makes no progress (caught up).
        let mut upto = None;
        loop {
            let step = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.prune(keep)).await
            };
            match step {
                Ok(Ok(p)) => {
                    if p.nodes + p.values > 0 {
                        debug!(
                            nodes = p.nodes,
                            values = p.values,
                            upto = p.upto,
                            "pruned stale state"
                        );
                    }
                    if upto == Some(p.upto) {
                        break;
                    }
                    upto = Some(p.upto);
                }
                Ok(Err(e)) => {
                    error!(error = %e, "pruning stopped");
                    return;
                }
                Err(e) => {
                    error!(error = %e, "pruning task failed");
                    return;
                }
            }
        }
    }
}

/// Malachite's node configuration, filled from ours.
#[derive(Clone, Debug, Default)]
struct MalachiteConfig {
    moniker: String,
    consensus: mconfig::ConsensusConfig,
    value_sync: mconfig::ValueSyncConfig,
}

impl mconfig::NodeConfig for MalachiteConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &mconfig::ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut mconfig::ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &mconfig::ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut mconfig::ValueSyncConfig {
        &mut self.value_sync
    }
}
