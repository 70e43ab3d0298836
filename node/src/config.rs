//! A node's configuration file (TOML). Every knob has a default that works for a consortium
//! on one machine; `validate` checks the file once at startup.

use crate::store::TreePlacement;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The node configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// A name for logs.
    pub moniker: String,
    /// Data directory: the database and the consensus write-ahead log live here.
    pub home: PathBuf,
    /// The genesis file.
    pub genesis: PathBuf,
    /// The validator's consensus key: a key file (then also the node's network identity, unless
    /// `node_key` is set), or a key held in an HSM named by its `pkcs11:` URI
    /// (`pkcs11:token=…;object=…?module-path=…&pin-source=…`), which needs `node_key`.
    pub validator_key: PathBuf,
    /// The node's network identity (its peer id on both networks), a key file of its own. It is
    /// needed when the validator key is in an HSM: the networks' handshakes sign with their key
    /// in memory. The validator key vouches for it to the other validators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<PathBuf>,
    /// For a key file sealed under a passphrase: the file holding the passphrase (a service
    /// credential, e.g. systemd's `LoadCredential`). Unset, it is asked for as the CLI does
    /// (`CACHET_PASSPHRASE_FILE`, or the terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_key_passphrase_file: Option<PathBuf>,
    /// Consensus network (Malachite).
    pub p2p: P2p,
    /// Transaction gossip network.
    pub gossip: P2p,
    /// JSON-RPC server.
    #[serde(default)]
    pub rpc: Rpc,
    /// Consensus timing.
    #[serde(default)]
    pub consensus: Consensus,
    /// Mempool bounds.
    #[serde(default)]
    pub mempool: Mempool,
    /// In-memory caches in front of the database.
    #[serde(default)]
    pub storage: Storage,
    /// When the node calls itself ready (`GET /readyz`).
    #[serde(default)]
    pub health: Health,
    /// Snapshots this node takes and offers, and joining from a peer's.
    #[serde(default)]
    pub state_sync: StateSync,
    /// Test-only misbehaviour; honoured only by binaries built with the `byzantine` feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<Byzantine>,
}

/// When a node calls itself ready to serve (`GET /readyz`, see [`crate::health`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    /// The committed head may be at most this old: a chain idle for longer still makes empty
    /// blocks (`consensus.idle_block_ms`), so an older head means the node does not follow.
    pub max_head_age_ms: u64,
    /// Free space the data directory's file system must keep, in MiB.
    pub min_free_disk_mb: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            max_head_age_ms: 30_000,
            min_free_disk_mb: 1024,
        }
    }
}

/// State snapshots: taken every `snapshot_interval` heights and offered to joining peers; and,
/// with `enable`, a node started without a database joins from its peers' latest snapshot
/// instead of replaying every block since genesis.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSync {
    /// Join from a snapshot when started without a database.
    pub enable: bool,
    /// Take a snapshot at every height that is a multiple of this (0: take none).
    pub snapshot_interval: u64,
    /// How many of the latest snapshots to keep on disk.
    pub snapshot_keep: usize,
    /// How long a joining node looks for a snapshot before it replays blocks from genesis
    /// instead.
    pub discovery_seconds: u64,
}

impl Default for StateSync {
    fn default() -> Self {
        StateSync {
            enable: false,
            snapshot_interval: 10_000,
            snapshot_keep: 2,
            discovery_seconds: 120,
        }
    }
}

/// Misbehaviour a Byzantine test node shows.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Byzantine {
    /// Send two conflicting votes for every vote.
    pub equivocate_votes: bool,
    /// Run this node's clock this many milliseconds ahead of the system's (negative: behind).
    pub clock_offset_ms: i64,
}

/// A libp2p endpoint and the consortium peers to keep connections to.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2p {
    /// Listen address, e.g. `/ip4/127.0.0.1/tcp/27000`.
    pub listen: String,
    /// Peers, each `/ip4/…/tcp/…/p2p/<peer id>`.
    #[serde(default)]
    pub peers: Vec<String>,
}

/// The JSON-RPC server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rpc {
    /// Listen address (HTTP and WebSocket). The operator methods (`cachet_admin_*`) are
    /// served here when it is a loopback address, or when the node has an operator token.
    pub listen: SocketAddr,
    /// A second listener that serves the operator methods too: for a node whose `listen` is
    /// not loopback (a container's). On loopback unless the node has an operator token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// A file holding the operator token (at least 32 characters; surrounding white space is
    /// not part of it). With one, every operator call must carry `Authorization: Bearer
    /// <token>`, on every listener, and the operator methods may be served off loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_token_file: Option<std::path::PathBuf>,
    /// Serve over TLS with this certificate chain (PEM); `tls_key_file` holds its key. Both
    /// or neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate_file: Option<std::path::PathBuf>,
    /// The TLS certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<std::path::PathBuf>,
    /// Connections one client address may hold open at once (of the 1,024 a listener
    /// serves): one client holding idle WebSockets cannot lock the others out.
    #[serde(default = "default_connections_per_client")]
    pub connections_per_client: usize,
    /// Read calls (everything but submissions and operator methods) one client address may
    /// make per second, on average; beyond, calls get error 2007 `rate_limited`. 0: no limit.
    #[serde(default = "default_reads_per_second")]
    pub reads_per_second_per_client: u32,
    /// Read calls a client may make at once after a pause; at least the per-second rate.
    #[serde(default = "default_read_burst")]
    pub read_burst_per_client: u32,
}

fn default_connections_per_client() -> usize {
    64
}

fn default_reads_per_second() -> u32 {
    1_000
}

fn default_read_burst() -> u32 {
    2_000
}

/// The shortest operator token accepted.
pub const MIN_OPERATOR_TOKEN: usize = 32;

impl Rpc {
    /// The operator token, read from its file, if the node has one.
    pub fn operator_token(&self) -> eyre::Result<Option<std::sync::Arc<str>>> {
        let Some(path) = &self.operator_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre::eyre!("cannot read the operator token {}: {e}", path.display()))?;
        let token = text.trim();
        if token.len() < MIN_OPERATOR_TOKEN || token.chars().any(|c| !c.is_ascii_graphic()) {
            eyre::bail!(
                "the operator token in {} must be at least {MIN_OPERATOR_TOKEN} printable characters \
                 without spaces (e.g. `openssl rand -hex 32`)",
                path.display()
            );
        }
        Ok(Some(token.into()))
    }

    /// How the listeners are served: TLS from the certificate files, and the per-client
    /// limits.
    pub fn serving(&self) -> eyre::Result<cachet_rpc::Serving> {
        let tls = match (&self.tls_certificate_file, &self.tls_key_file) {
            (None, None) => None,
            (Some(certificate), Some(key)) => {
                Some(cachet_rpc::listen::tls_acceptor(certificate, key)?)
            }
            _ => eyre::bail!(
                "[rpc] tls_certificate_file and tls_key_file go together: set both or neither"
            ),
        };
        if self.connections_per_client == 0 {
            eyre::bail!("[rpc] connections_per_client must be at least 1");
        }
        Ok(cachet_rpc::Serving {
            tls,
            limits: cachet_rpc::Limits {
                connections_per_client: self.connections_per_client,
                reads_per_second: self.reads_per_second_per_client,
                read_burst: self.read_burst_per_client,
            },
        })
    }
}

impl Default for Rpc {
    fn default() -> Self {
        Rpc {
            listen: "127.0.0.1:26657".parse().expect("valid address"),
            admin_listen: None,
            operator_token_file: None,
            tls_certificate_file: None,
            tls_key_file: None,
            connections_per_client: default_connections_per_client(),
            reads_per_second_per_client: default_reads_per_second(),
            read_burst_per_client: default_read_burst(),
        }
    }
}

/// Consensus timing, in milliseconds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Consensus {
    /// Minimum time between blocks (the engine's target time per height). Unset, it follows
    /// where the state tree is kept: see [`NodeConfig::block_time`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_time_ms: Option<u64>,
    /// Propose timeout of round 0; grows by `timeout_delta_ms` per round. It must cover the
    /// proposer building its block plus every validator receiving and executing it: at 2 s,
    /// full blocks on a loaded 2-core devnet with a large state lost round 0 (a 2 s build), and
    /// each lost round cost another build (5–7 s heights).
    pub timeout_propose_ms: u64,
    /// Prevote timeout of round 0.
    pub timeout_prevote_ms: u64,
    /// Precommit timeout of round 0.
    pub timeout_precommit_ms: u64,
    /// Increase of every timeout per round.
    pub timeout_delta_ms: u64,
    /// Most transactions per block. Every validator must receive, check and execute a
    /// proposal before its propose timeout; on a loaded 2-core machine 10,000 anchors took
    /// longer than that, so the round failed and the next proposer reaped an even larger
    /// backlog (5–6 s heights under overload).
    pub max_block_txs: usize,
    /// How long a proposer may spend building its block: it stops taking candidates when the
    /// build (counting the state root still to compute, at the cost per transaction measured
    /// in its last build of a few hundred or more) would end later; always at least one. Validators execute the same block in about the same
    /// time, so this stays well inside the propose timeout: a block sized by a count alone
    /// outgrew it once the state and the load grew (a 5,000-anchor build took 1.5–2 s on a
    /// loaded 2-core devnet, and the round was lost).
    pub build_budget_ms: u64,
    /// A proposer whose mempool is empty waits up to this long for a transaction before it
    /// proposes an empty block (never past half the propose timeout; 0: never waits). An idle
    /// chain then makes about one block per this interval, and a transaction arriving during
    /// the wait is proposed at once.
    pub idle_block_ms: u64,
}

impl Default for Consensus {
    fn default() -> Self {
        Consensus {
            block_time_ms: None,
            timeout_propose_ms: 3000,
            timeout_prevote_ms: 1000,
            timeout_precommit_ms: 1000,
            timeout_delta_ms: 500,
            max_block_txs: 5_000,
            build_budget_ms: 1000,
            idle_block_ms: 1000,
        }
    }
}

/// Mempool bounds.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mempool {
    /// Most transactions waiting.
    pub max_txs: usize,
    /// Most bytes waiting.
    pub max_bytes: usize,
}

impl Default for Mempool {
    fn default() -> Self {
        Mempool {
            max_txs: 100_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The fewest heights of blocks a pruning node keeps: a validator that was offline for a few
/// minutes still catches up by block sync from any peer.
pub const MIN_BLOCK_HISTORY: u64 = 1000;

/// In-memory caches in front of the database. Entries are immutable (keyed by their hash), so
/// the sizes trade memory for speed and never affect results.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// The memory the store may take, in MiB, as one number (at least 256): the memtables, the
    /// block cache, the node and value caches and a derived tree's top are sized from it
    /// ([`crate::store::CacheSizes::within`]), so none of those five may be set beside it. The
    /// process adds its own needs (about 100 MB, and the mempool's `max_bytes`). A tree held
    /// in memory grows with the state, which no budget bounds: refused with
    /// `state_tree = "memory"`. Unset (the default): each part's own setting or default.
    pub memory_mb: Option<usize>,
    /// Decoded state-tree nodes to keep (about 110 bytes each with their index; never more).
    /// Every transaction walks about log2(state entries) of them; 0 turns the cache off.
    /// Unused while the tree is held in memory (`state_tree = "memory"`). Default 600,000.
    pub cached_nodes: Option<usize>,
    /// Small state values to keep (agency records, policies); 0 turns the cache off. Default
    /// 20,000.
    pub cached_values: Option<usize>,
    /// RocksDB's block cache, in MiB: table blocks read from disk, with the index and filter
    /// blocks that every lookup uses. Default 64.
    pub block_cache_mb: Option<usize>,
    /// RocksDB's memtables, in MiB, all column families together: writes are gathered there
    /// and flushed to table files, each family when its share is full. Larger flushes mean
    /// less rewriting by compaction; twice this is held at most, while full ones are flushed.
    /// Default 182; at least 16.
    pub memtables_mb: Option<usize>,
    /// Heights of state history to keep: older tree nodes that later heights replaced are
    /// deleted. The node reads state only at its head (receipts at the finalized head, one
    /// behind at most), so a few heights would do; the margin is for readers still working on
    /// a recent head. Under load most written nodes are stale within a few heights: deleted
    /// early, they die in the next compaction instead of being rewritten by it (with 100
    /// heights compaction wrote 1.8 times the nodes in a bench run, and the node kept 1,775 B
    /// per certificate; 1,018 B with 10). 0 keeps every version (an archive, whose tree must
    /// be on disk). Blocks, certificates and validator sets are kept unless
    /// `block_history_heights` says otherwise.
    pub state_history_heights: u64,
    /// Heights of blocks to keep below the head, with their commit certificates and the index
    /// of their transactions; 0 (the default) keeps every block, an archive. Older blocks are
    /// deleted but for those receipts and checkpoint advances carry (the blocks that changed
    /// the validator set, the checkpoints'), and the blocks after the oldest snapshot the
    /// node keeps (its joiners ask for them). A peer further behind than this catches up from
    /// a snapshot or from an archive; at least [`MIN_BLOCK_HISTORY`] are kept.
    pub block_history_heights: u64,
    /// Where the state tree's nodes are kept. `"disk"` (the default) stores them, behind the
    /// node cache: memory stays bounded however large the state grows, and an archive needs
    /// it. `"memory"` holds them in memory, 300-600 bytes per state entry (about 130 MB at
    /// 370k entries, 2 GB at 4.5 M), and rebuilds them from the database's index of entries
    /// at start (about 1.4 s at 370k); anchoring then writes no tree nodes, and takes about a quarter less
    /// CPU and a third of the disk. Switching either way happens at the next start, without a
    /// resync. `"derived"` holds only the tree's top `tree_top_levels` levels in memory and
    /// derives the nodes below from that index when they are read (a subtree of a few entries
    /// each at ten million entries), keeping those read last in the node cache: no tree writes
    /// either, and memory bounded by the levels rather than the state (ADR 0016).
    pub state_tree: TreePlacement,
    /// With `state_tree = "derived"`, the levels of the tree held in memory (1 to 32): about
    /// 2^levels nodes of 130-250 bytes once the state has more entries than that. Below them,
    /// each read rebuilds the subtree of its position at that depth from the index (about
    /// entries / 2^levels entries) unless the node cache has it: fewer levels trade memory for
    /// CPU, never for correctness. Default 20.
    pub tree_top_levels: Option<usize>,
    /// Free space, in MiB, the node keeps on the file system holding its data: below it, it
    /// stops writing (it commits nothing, keeps no proposal) until space is freed, then resumes
    /// by itself and catches up; it does not start with less. RocksDB is never left to fail a
    /// write for want of space (an error it would not recover from while open).
    pub reserve_disk_mb: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            memory_mb: None,
            cached_nodes: None,
            cached_values: None,
            block_cache_mb: None,
            memtables_mb: None,
            state_history_heights: 10,
            block_history_heights: 0,
            state_tree: TreePlacement::Disk,
            tree_top_levels: None,
            reserve_disk_mb: 256,
        }
    }
}

/// The least `[storage] memtables_mb`: the tree nodes' memtable then holds about 5 MiB.
const MIN_MEMTABLES_MB: usize = 16;

impl Storage {
    /// The store's cache sizes and tree placement: from `memory_mb` when it is set, otherwise
    /// from each part's setting or its default. An error names what is wrong.
    pub fn cache_sizes(&self) -> eyre::Result<crate::store::CacheSizes> {
        let parts = [
            ("cached_nodes", self.cached_nodes),
            ("cached_values", self.cached_values),
            ("block_cache_mb", self.block_cache_mb),
            ("memtables_mb", self.memtables_mb),
            ("tree_top_levels", self.tree_top_levels),
        ];
        let sizes = if let Some(budget) = self.memory_mb {
            if let Some((name, _)) = parts.iter().find(|(_, v)| v.is_some()) {
                eyre::bail!(
                    "memory_mb sizes {name} itself: set memory_mb or the parts it shares, not both"
                );
            }
            crate::store::CacheSizes::within(budget.saturating_mul(1 << 20), self.state_tree)
                .map_err(|e| eyre::eyre!("memory_mb = {budget}: {e}"))?
        } else {
            let d = crate::store::CacheSizes::default();
            crate::store::CacheSizes {
                nodes: self.cached_nodes.unwrap_or(d.nodes),
                values: self.cached_values.unwrap_or(d.values),
                block_cache_bytes: self
                    .block_cache_mb
                    .map_or(d.block_cache_bytes, |mb| mb.saturating_mul(1 << 20)),
                memtables_bytes: self
                    .memtables_mb
                    .map_or(d.memtables_bytes, |mb| mb.saturating_mul(1 << 20)),
                tree: self.state_tree,
                tree_top_levels: self.tree_top_levels.unwrap_or(d.tree_top_levels),
            }
        };
        if sizes.memtables_bytes < MIN_MEMTABLES_MB << 20 {
            // Smaller memtables flush files of kilobytes, which compaction rewrites over and
            // over with the whole level below.
            eyre::bail!("memtables_mb must be at least {MIN_MEMTABLES_MB}");
        }
        if !(1..=cachet_chain::state_tree::NODE_KEY_PATH_BITS).contains(&sizes.tree_top_levels) {
            eyre::bail!(
                "tree_top_levels must be 1 to {}",
                cachet_chain::state_tree::NODE_KEY_PATH_BITS
            );
        }
        Ok(sizes)
    }
}

/// The block time with the state tree on disk when `block_time_ms` is unset. A height has a
/// fixed cost (the commit's write, the tree's new nodes written and pruned) that a shorter block
/// time pays more often: under full anchoring load on a 2-core devnet, 250 ms cost 14-18% more
/// CPU per transaction and 10-18% of the held rate on disk (ADR 0008).
pub const DISK_BLOCK_TIME_MS: u64 = 500;
/// The block time with the state tree in memory when `block_time_ms` is unset. There a height's
/// fixed cost is small: 250 ms took 38-48% off p50 finality and 22-55% off p99 at every load
/// below the peak for about 4% more CPU per transaction, and lost none of the held rate
/// (ADR 0008).
pub const MEMORY_BLOCK_TIME_MS: u64 = 250;

impl NodeConfig {
    /// The minimum time between blocks: `block_time_ms` if set, otherwise the default for where
    /// the state tree is kept ([`DISK_BLOCK_TIME_MS`], [`MEMORY_BLOCK_TIME_MS`]). It paces this
    /// node's own heights and no block's content depends on it, so validators may set it
    /// differently.
    pub fn block_time(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.consensus.block_time_ms.unwrap_or(
            match self.storage.state_tree {
                TreePlacement::Disk => DISK_BLOCK_TIME_MS,
                TreePlacement::Memory | TreePlacement::Derived => MEMORY_BLOCK_TIME_MS,
            },
        ))
    }

    /// Whether `validator_key` names a key in a token (a `pkcs11:` URI) rather than a file.
    pub fn validator_key_in_token(&self) -> bool {
        self.validator_key.to_string_lossy().starts_with("pkcs11:")
    }

    /// Read and validate a configuration file. Relative paths in it (`home`, `genesis`,
    /// `validator_key`) are taken from the file's own directory, so that a node's directory
    /// can be moved or mounted elsewhere (a container) as a whole.
    pub fn load(path: &std::path::Path) -> eyre::Result<NodeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre::eyre!("cannot read config {}: {e}", path.display()))?;
        let mut cfg: NodeConfig =
            toml::from_str(&text).map_err(|e| eyre::eyre!("config {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or(std::path::Path::new(""));
        let in_token = cfg.validator_key_in_token();
        for file in [&mut cfg.home, &mut cfg.genesis]
            .into_iter()
            .chain((!in_token).then_some(&mut cfg.validator_key))
            .chain(cfg.node_key.as_mut())
            .chain(cfg.rpc.operator_token_file.as_mut())
            .chain(cfg.validator_key_passphrase_file.as_mut())
            .chain(cfg.rpc.tls_certificate_file.as_mut())
            .chain(cfg.rpc.tls_key_file.as_mut())
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values that would make the node misbehave.
    pub fn validate(&self) -> eyre::Result<()> {
        let c = &self.consensus;
        if c.timeout_propose_ms == 0 || c.timeout_prevote_ms == 0 || c.timeout_precommit_ms == 0 {
            eyre::bail!("consensus timeouts must be positive");
        }
        if c.max_block_txs == 0 || c.max_block_txs > cachet_chain::codec::limits::MAX_BLOCK_TXS {
            eyre::bail!(
                "max_block_txs must be between 1 and {}",
                cachet_chain::codec::limits::MAX_BLOCK_TXS
            );
        }
        if let Some(admin) = self.rpc.admin_listen
            && !admin.ip().is_loopback()
            && self.rpc.operator_token_file.is_none()
        {
            eyre::bail!(
                "rpc.admin_listen ({admin}) must be a loopback address: it serves the operator \
                 methods (or set rpc.operator_token_file)"
            );
        }
        if c.build_budget_ms == 0 || c.build_budget_ms >= c.timeout_propose_ms {
            eyre::bail!("build_budget_ms must be positive and below timeout_propose_ms");
        }
        if self.byzantine.is_some() && !cfg!(feature = "byzantine") {
            eyre::bail!(
                "this binary was built without Byzantine test behaviours; remove [byzantine]"
            );
        }
        if self.mempool.max_txs == 0
            || self.mempool.max_bytes < cachet_chain::codec::limits::MAX_TX_BYTES
        {
            eyre::bail!("mempool bounds are too small");
        }
        self.storage.cache_sizes()?;
        if self.storage.state_history_heights == 0 && self.storage.state_tree != TreePlacement::Disk
        {
            // An archive keeps every version, which memory would hold until it ran out.
            eyre::bail!(
                "an archive (state_history_heights = 0) keeps every version of the state tree: \
                 set state_tree = \"disk\""
            );
        }
        for addr in std::iter::once(&self.p2p.listen)
            .chain(&self.p2p.peers)
            .chain(std::iter::once(&self.gossip.listen))
            .chain(&self.gossip.peers)
        {
            addr.parse::<libp2p::Multiaddr>()
                .map_err(|e| eyre::eyre!("bad multiaddr {addr}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{NodeConfig, TreePlacement};

    /// A node's file as an operator writes it before the build budget and the block cache
    /// size existed: only the required parts.
    const MINIMAL: &str = r#"
        moniker = "moi-land"
        home = "/var/lib/cachet"
        genesis = "genesis.json"
        validator_key = "validator.key"
        [p2p]
        listen = "/ip4/127.0.0.1/tcp/27000"
        [gossip]
        listen = "/ip4/127.0.0.1/tcp/28000"
        [consensus]
        timeout_propose_ms = 3000
    "#;

    #[test]
    fn a_file_without_the_newer_knobs_gets_their_defaults_and_validates() {
        let config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        config.validate().unwrap();
        assert_eq!(config.consensus.build_budget_ms, 1000);
        let sizes = config.storage.cache_sizes().unwrap();
        assert_eq!(sizes.block_cache_bytes, 64 << 20);
        assert_eq!(sizes.memtables_bytes, 182 << 20);
    }

    #[test]
    fn the_rpc_limits_default_and_tls_needs_both_files() {
        let config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        let serving = config.rpc.serving().unwrap();
        assert!(serving.tls.is_none());
        assert_eq!(serving.limits.connections_per_client, 64);
        assert_eq!(serving.limits.reads_per_second, 1_000);
        let half =
            format!("{MINIMAL}\n[rpc]\nlisten = \"127.0.0.1:26657\"\ntls_key_file = \"rpc.key\"\n");
        let config: NodeConfig = toml::from_str(&half).unwrap();
        let refused = config.rpc.serving().map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("set both or neither"), "{refused}");
        let missing = half.replace(
            "tls_key_file",
            "tls_certificate_file = \"/nonexistent.crt\"\ntls_key_file",
        );
        let config: NodeConfig = toml::from_str(&missing).unwrap();
        let refused = config.rpc.serving().map(|_| ()).unwrap_err().to_string();
        assert!(refused.contains("/nonexistent.crt"), "{refused}");
    }

    #[test]
    fn an_unset_block_time_follows_where_the_tree_is_kept_and_a_set_one_wins() {
        use std::time::Duration;
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(config.consensus.block_time_ms, None);
        assert_eq!(config.block_time(), Duration::from_millis(500));
        config.storage.state_tree = TreePlacement::Memory;
        assert_eq!(config.block_time(), Duration::from_millis(250));
        // Written back unset, so that a later change of placement still moves it.
        let text = toml::to_string_pretty(&config).unwrap();
        assert!(!text.contains("block_time_ms"), "{text}");

        let set = MINIMAL.replace("[consensus]", "[consensus]\nblock_time_ms = 400");
        let mut config: NodeConfig = toml::from_str(&set).unwrap();
        for placement in [
            TreePlacement::Disk,
            TreePlacement::Memory,
            TreePlacement::Derived,
        ] {
            config.storage.state_tree = placement;
            assert_eq!(config.block_time(), Duration::from_millis(400));
        }
        let text = toml::to_string_pretty(&config).unwrap();
        assert!(text.contains("block_time_ms = 400"), "{text}");
    }

    #[test]
    fn relative_paths_are_taken_from_the_files_directory() {
        let dir = std::env::temp_dir().join(format!("cachet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.toml");
        let text = MINIMAL.replace(r#"home = "/var/lib/cachet""#, r#"home = ".""#);
        std::fs::write(&path, text.replace("genesis.json", "../genesis.json")).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.home, dir.join("."));
        assert_eq!(config.genesis, dir.join("../genesis.json"));
        assert_eq!(config.validator_key, dir.join("validator.key"));
        // Absolute paths stay as written.
        std::fs::write(&path, MINIMAL).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.home, std::path::Path::new("/var/lib/cachet"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_operator_listener_must_be_on_loopback_unless_a_token_guards_it() {
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        config.rpc.admin_listen = Some("0.0.0.0:26658".parse().unwrap());
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("admin_listen"), "{error}");
        config.rpc.admin_listen = Some("127.0.0.1:26658".parse().unwrap());
        config.validate().unwrap();
        let dir = std::env::temp_dir().join(format!("cachet-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("operator.token");
        config.rpc.admin_listen = Some("0.0.0.0:26658".parse().unwrap());
        config.rpc.operator_token_file = Some(file.clone());
        config.validate().unwrap();
        std::fs::write(&file, "short\n").unwrap();
        let error = config.rpc.operator_token().unwrap_err().to_string();
        assert!(error.contains("at least 32"), "{error}");
        std::fs::write(&file, format!("{}\n", "ab".repeat(32))).unwrap();
        assert_eq!(
            config.rpc.operator_token().unwrap().as_deref(),
            Some("ab".repeat(32).as_str())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn memtables_too_small_to_flush_useful_files_are_refused() {
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        config.storage.memtables_mb = Some(15);
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("memtables_mb"), "{error}");
        config.storage.memtables_mb = Some(16);
        config.validate().unwrap();
    }

    #[test]
    fn an_archive_keeps_its_tree_on_disk() {
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(config.storage.state_tree, TreePlacement::Disk);
        config.storage.state_history_heights = 0;
        config.validate().unwrap();
        let text =
            format!("{MINIMAL}\n[storage]\nstate_history_heights = 0\nstate_tree = \"memory\"\n");
        let archive: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(archive.storage.state_tree, TreePlacement::Memory);
        let error = archive.validate().unwrap_err().to_string();
        assert!(error.contains("state_tree"), "{error}");
        let derived: NodeConfig = toml::from_str(&text.replace("memory", "derived")).unwrap();
        assert_eq!(derived.storage.state_tree, TreePlacement::Derived);
        let error = derived.validate().unwrap_err().to_string();
        assert!(error.contains("state_tree"), "{error}");
    }

    #[test]
    fn a_derived_trees_top_levels_are_1_to_32() {
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        assert_eq!(config.storage.cache_sizes().unwrap().tree_top_levels, 20);
        for refused in [0, 33] {
            config.storage.tree_top_levels = Some(refused);
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("tree_top_levels"), "{refused}: {error}");
        }
        for accepted in [1, 32] {
            config.storage.tree_top_levels = Some(accepted);
            config.validate().unwrap();
        }
    }

    #[test]
    fn one_memory_budget_sizes_the_store_instead_of_its_parts() {
        let text = format!("{MINIMAL}\n[storage]\nmemory_mb = 1024\nstate_tree = \"derived\"\n");
        let config: NodeConfig = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        let sizes = config.storage.cache_sizes().unwrap();
        assert_eq!(sizes.tree, TreePlacement::Derived);
        assert!(sizes.most_bytes() <= 1 << 30, "{sizes:?}");
        assert_eq!(sizes.tree_top_levels, 20);
        // Written back as read: the parts stay unset, so the budget still sizes them.
        let again: NodeConfig = toml::from_str(&toml::to_string_pretty(&config).unwrap()).unwrap();
        assert_eq!(again.storage.cache_sizes().unwrap(), sizes);
        // A part set beside it, a tree in memory and a budget too small are refused by name.
        for (extra, named) in [
            ("block_cache_mb = 64", "block_cache_mb"),
            ("tree_top_levels = 18", "tree_top_levels"),
            ("cached_nodes = 10", "cached_nodes"),
        ] {
            let both: NodeConfig = toml::from_str(&format!("{text}{extra}\n")).unwrap();
            let error = both.validate().unwrap_err().to_string();
            assert!(
                error.contains(named) && error.contains("not both"),
                "{error}"
            );
        }
        let memory: NodeConfig = toml::from_str(&text.replace("derived", "memory")).unwrap();
        let error = memory.validate().unwrap_err().to_string();
        assert!(error.contains("grows with the state"), "{error}");
        let small: NodeConfig = toml::from_str(&text.replace("1024", "100")).unwrap();
        let error = small.validate().unwrap_err().to_string();
        assert!(error.contains("memory_mb = 100"), "{error}");
    }

    #[test]
    fn a_build_budget_must_fit_inside_the_propose_timeout() {
        let mut config: NodeConfig = toml::from_str(MINIMAL).unwrap();
        for refused in [0, 3000, 5000] {
            config.consensus.build_budget_ms = refused;
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains("build_budget_ms"), "{refused}: {error}");
        }
        config.consensus.build_budget_ms = 2999;
        config.validate().unwrap();
    }
}
