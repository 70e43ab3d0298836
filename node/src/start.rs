//! Starting a node: open the store (initializing it from genesis on first start), start the
//! transaction gossip, the Malachite engine and the JSON-RPC, the background pruning, then run
//! the consensus host. This module only wires the parts together.

use crate::api::Api;
use crate::app::App;
use crate::codec::BorshCodec;
use crate::config::NodeConfig;
use crate::context::Address;
use crate::gossip;
use crate::membership::{Peer, peer_of};
use crate::mempool::{AdmitError, Mempool};
use crate::metrics::Source;
use crate::shared::Shared;
use crate::signing::{ConsensusSigner, ConsensusVerifier, SharedValidatorKey};
use crate::store::Store;
use cachet_chain::crypto::SecretKey;
use cachet_chain::genesis::GenesisDoc;
use cachet_rpc::NodeApi;
use eyre::WrapErr;
use malachite_app::config as mconfig;
use malachite_app::types::codec::Codec as _;
use malachite_app_channel::{
    ConsensusContext, EngineBuilder, NetworkContext, NetworkIdentity, RequestContext, Signer as _,
    SyncContext, WalContext,
};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

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

/// The keys a node runs with: its validator key, which signs its consensus messages, and its
/// node key, its identity on both networks (its peer id). They are one key unless the
/// validator key is held in a token: libp2p's handshakes need their key in memory, so a node
/// whose validator key is in an HSM has a node key of its own, which the validator key vouches
/// for in the validator proof it sends its peers.
pub struct NodeKeys {
    /// The validator's consensus key.
    pub validator: SharedValidatorKey,
    /// The node's network identity.
    pub node: SecretKey,
}

impl NodeKeys {
    /// One key in memory for both.
    pub fn single(key: SecretKey) -> NodeKeys {
        NodeKeys {
            validator: Arc::new(key.clone()),
            node: key,
        }
    }
}

/// Start a node from its configuration, with its keys already loaded.
pub async fn start(config: NodeConfig, keys: NodeKeys) -> eyre::Result<RunningNode> {
    let NodeKeys {
        validator: key,
        node: node_key,
    } = keys;
    let genesis_text = std::fs::read_to_string(&config.genesis)
        .map_err(|e| eyre::eyre!("cannot read genesis {}: {e}", config.genesis.display()))?;
    let genesis = GenesisDoc::from_json(&genesis_text)?;
    #[cfg(feature = "byzantine")]
    if let Some(offset) = config.byzantine.as_ref().map(|b| b.clock_offset_ms)
        && offset != 0
    {
        warn!(offset_ms = offset, "BYZANTINE TEST NODE: clock shifted");
        crate::clock::set_test_offset_ms(offset);
    }
    std::fs::create_dir_all(&config.home)?;
    let disk = crate::disk::Reserve::new(&config.home, config.storage.reserve_disk_mb);
    disk.check_at_start()?;
    let sizes = config.storage.cache_sizes()?;
    info!(
        tree = sizes.tree.name(),
        cached_nodes = sizes.nodes,
        cached_values = sizes.values,
        block_cache_mb = sizes.block_cache_bytes >> 20,
        memtables_mb = sizes.memtables_bytes >> 20,
        tree_top_levels = sizes.tree_top_levels,
        at_most_mb = sizes.most_bytes() >> 20,
        "store memory"
    );
    let db = config.home.join("db");
    if config.state_sync.enable && !db.exists() {
        let id = gossip::keypair_of(&node_key).public().to_peer_id();
        info!(
            p2p = %format!("{}/p2p/{id}", config.p2p.listen),
            gossip = %format!("{}/p2p/{id}", config.gossip.listen),
            "no database: joining from a peer's snapshot (the consortium's operators add this \
             node with these addresses: cachet add-peer)"
        );
        let peers = configured_peers(&config)?
            .into_iter()
            .chain(crate::membership::added(&config.home)?)
            .filter_map(|p| Some((p.id, p.gossip?)))
            .collect();
        crate::statesync::join::join(
            &db,
            gossip::keypair_of(&node_key),
            peers,
            &genesis,
            sizes,
            std::time::Duration::from_secs(config.state_sync.discovery_seconds),
        )
        .await?;
    }
    let store = Arc::new(Store::open_with_cache(&db, sizes)?);
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
    let peers = crate::membership::at_start(
        configured_peers(&config)?,
        &config.home,
        &store,
        head.height.0,
    )?;
    let consensus_peers: Vec<libp2p::Multiaddr> =
        peers.iter().filter_map(|p| p.p2p.clone()).collect();
    // Transaction gossip, permissioned to the same consortium peers.
    let gossip_peers: Vec<(libp2p::PeerId, libp2p::Multiaddr)> = peers
        .iter()
        .filter_map(|p| Some((p.id, p.gossip.clone()?)))
        .collect();
    let trust = cachet_chain::trust::Trust::from_genesis(&genesis)?;
    let anchor = cachet_contracts::anchor(&genesis)?;
    let trust_root = anchor.root().to_string();
    let snapshots = Arc::new(crate::statesync::snapshots::Snapshots::new(
        &config.home,
        config.state_sync.snapshot_interval,
        config.state_sync.snapshot_keep,
        config.health.min_free_disk_mb << 20,
    )?);
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
        anchor,
        checkpoint_interval: genesis.checkpoint_interval,
        home: config.home.clone(),
        health: config.health.clone(),
        blocks: tokio::sync::broadcast::channel(256).0,
        certificate_updates: Default::default(),
        metrics: Arc::default(),
        clock_skew: Default::default(),
        disk,
        snapshots,
        info: {
            let id = gossip::keypair_of(&node_key).public().to_peer_id();
            serde_json::json!({
                "peer_id": id.to_string(),
                "p2p": format!("{}/p2p/{id}", config.p2p.listen),
                "gossip": format!("{}/p2p/{id}", config.gossip.listen),
                "validator_key": key.public(),
                "trust_root": trust_root,
            })
        },
    });

    // A crash between a checkpoint's commit and its anchor leaves the head at the checkpoint.
    shared.keep_checkpoint(&shared.head())?;

    // Gossip batches waiting for admission (each up to the gossip flush size).
    let (rx_tx, mut rx_rx) = mpsc::channel(4096);
    let g = gossip::spawn(
        gossip::keypair_of(&node_key),
        format!("cachet/{}/txs", genesis.chain_id),
        config.gossip.listen.parse()?,
        gossip_peers,
        rx_tx,
        shared.metrics.clone(),
        {
            let snapshots = shared.snapshots.clone();
            Arc::new(move |request| snapshots.serve(request))
        },
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
    let signer = ConsensusSigner::new(key.clone(), genesis.chain_id.clone())
        .counting_votes(shared.metrics.votes_signed.clone());
    let keypair = gossip::keypair_of(&node_key);
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
    mcfg.consensus.p2p.persistent_peers = consensus_peers;
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
    let api: Arc<dyn NodeApi> = Arc::new(Api::new(shared.clone()));
    let token = config.rpc.operator_token()?;
    let serving = config.rpc.serving()?;
    let (rpc, rpc_addr) = cachet_rpc::serve(
        config.rpc.listen,
        api.clone(),
        token.clone(),
        serving.clone(),
    )
    .await
    .wrap_err_with(|| format!("cannot serve the RPC on rpc.listen {}", config.rpc.listen))?;
    info!(%rpc_addr, "rpc listening");
    let admin_rpc = match config.rpc.admin_listen {
        Some(addr) => {
            let (handle, addr) =
                cachet_rpc::serve(addr, api.clone(), token.clone(), serving.clone())
                    .await
                    .wrap_err_with(|| format!("cannot serve the RPC on rpc.admin_listen {addr}"))?;
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
    if config.storage.block_history_heights > 0 {
        tokio::spawn(prune_blocks(
            store.clone(),
            config
                .storage
                .block_history_heights
                .max(crate::config::MIN_BLOCK_HISTORY),
            shared.snapshots.clone(),
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
    step_until_caught_up("pruning", move || {
        let p = store.prune(keep)?;
        if p.nodes + p.values > 0 {
            debug!(
                nodes = p.nodes,
                values = p.values,
                upto = p.upto,
                "pruned stale state"
            );
        }
        Ok(p.upto)
    })
    .await
}

/// Delete blocks more than `keep` heights below the head (but those receipts need), in
/// bounded steps off the consensus path.
async fn prune_blocks(
    store: Arc<Store>,
    keep: u64,
    snapshots: Arc<crate::statesync::snapshots::Snapshots>,
) {
    // Once pruning has caught up, and enough has been deleted since the last compaction, the
    // space is reclaimed; a node that starts pruning a long history compacts once, at the end.
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let last = AtomicU64::new(store.base().unwrap_or(0));
    step_until_caught_up("block pruning", move || {
        let base = store.prune_blocks(keep, snapshots.oldest())?;
        let caught_up = last.swap(base, Relaxed) == base;
        if caught_up && store.pruned_blocks_compaction_due() {
            let started = std::time::Instant::now();
            store.compact_pruned_blocks(base);
            info!(
                base,
                seconds = started.elapsed().as_secs_f64(),
                "pruned blocks compacted"
            );
        }
        Ok(base)
    })
    .await
}

/// Every second, run `step` on a blocking thread until the height it reports stops moving
/// (caught up); stop for good, saying so, when a step fails.
async fn step_until_caught_up(
    what: &'static str,
    step: impl Fn() -> Result<u64, cachet_chain::state_tree::StoreError> + Send + Sync + 'static,
) {
    let step = Arc::new(step);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let mut reached = None;
        loop {
            let step = step.clone();
            match tokio::task::spawn_blocking(move || step()).await {
                Ok(Ok(h)) if reached == Some(h) => break,
                Ok(Ok(h)) => reached = Some(h),
                Ok(Err(e)) => {
                    error!(error = %e, "{what} stopped");
                    return;
                }
                Err(e) => {
                    error!(error = %e, "{what} task failed");
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
