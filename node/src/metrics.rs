//! What an operator watches: counters the node bumps where things happen (commits, proposals,
//! admission), gauges read when scraped (head, mempool, store, caches, the process), written in
//! the OpenMetrics text format and served at `GET /metrics` on the RPC port, followed by
//! Malachite's own consensus and network metrics.
//!
//! What it is not: a metrics framework. Counters are plain atomics and a scrape writes text; a
//! scrape reads RocksDB's properties and counters, the allocator's statistics and `/proc`, never
//! the state.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Upper bounds (seconds) of the duration histograms: a commit takes milliseconds, a large
/// block's build or execution up to the propose timeout (3 s).
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A histogram of durations with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; summed when written).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Record one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }
}

/// Where a transaction came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Submitted to this node's RPC.
    Rpc,
    /// Relayed by another node.
    Gossip,
    /// Refused in a committed block (its expiry passed, or the rules refused it, while it
    /// waited): its nonce is used.
    Block,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Rpc => "rpc",
            Source::Gossip => "gossip",
            Source::Block => "block",
        }
    }
}

/// The node's counters, bumped where things happen.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Heights committed since the node started.
    pub blocks_committed: AtomicU64,
    /// Transactions in them.
    pub transactions_committed: AtomicU64,
    /// The round the last committed height was decided in (0: the first proposal passed).
    pub decided_round: AtomicU64,
    /// Heights that needed more than one round.
    pub heights_past_round_zero: AtomicU64,
    /// Writing a committed height (one synced batch).
    pub commit_seconds: Histogram,
    /// Building this node's own proposal.
    pub build_seconds: Histogram,
    /// Checking and executing another proposer's block before voting.
    pub execute_seconds: Histogram,
    /// Transaction-gossip peers connected now.
    pub gossip_peers: AtomicU64,
    /// Consensus votes (prevotes and precommits) this node signed.
    pub votes_signed: std::sync::Arc<AtomicU64>,
    /// Gossip batches dropped because admission was behind.
    pub gossip_batches_dropped: AtomicU64,
    /// Admission results: `(source, None)` admitted, `(source, Some(reason))` refused.
    admission: Mutex<BTreeMap<(Source, Option<&'static str>), u64>>,
}

impl Metrics {
    /// Count one admission batch: `None` for each admitted transaction, its refusal's stable
    /// name otherwise.
    pub fn admission(
        &self,
        source: Source,
        results: impl IntoIterator<Item = Option<&'static str>>,
    ) {
        let mut counts = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        for reason in results {
            *counts.entry((source, reason)).or_default() += 1;
        }
    }

    /// Count a committed height decided in `round` with `txs` transactions, written in `took`.
    pub fn committed(&self, round: u32, txs: usize, took: Duration) {
        self.blocks_committed.fetch_add(1, Relaxed);
        self.transactions_committed.fetch_add(txs as u64, Relaxed);
        self.decided_round.store(round.into(), Relaxed);
        if round > 0 {
            self.heights_past_round_zero.fetch_add(1, Relaxed);
        }
        self.commit_seconds.observe(took);
    }
}

/// One RocksDB column family's sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilySize {
    /// The family's name.
    pub name: &'static str,
    /// Bytes in its table files (live and not yet compacted away).
    pub sst_bytes: u64,
    /// RocksDB's estimate of the bytes its live data would take after compaction.
    pub live_bytes: u64,
    /// Bytes in its memtables (written, not yet flushed).
    pub memtable_bytes: u64,
    /// Bytes its open table files hold outside the block cache (RocksDB's estimate): grows
    /// with the number of tables, so with the state.
    pub table_readers_bytes: u64,
}

/// What RocksDB counted since the store was opened (its ticker statistics): how reads went
/// through the block cache, and the bytes written to the log, flushed and compacted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreIo {
    /// Block-cache lookups by the kind of block: data, index and filter blocks.
    pub block_cache: [BlockCacheUse; 3],
    /// Point lookups a table's Bloom filter answered without reading the table.
    pub filter_skips: u64,
    /// Bytes written to the write-ahead log.
    pub wal_bytes: u64,
    /// Bytes memtable flushes wrote to table files.
    pub flush_bytes: u64,
    /// Bytes compaction read from table files.
    pub compaction_read_bytes: u64,
    /// Bytes compaction wrote to table files.
    pub compaction_write_bytes: u64,
    /// Time writes were delayed or stopped for compaction to catch up.
    pub stall_micros: u64,
}

/// Block-cache lookups of one kind of block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCacheUse {
    /// `data`, `index` or `filter`.
    pub block: &'static str,
    /// Lookups that found the block cached.
    pub hits: u64,
    /// Lookups that read the block from its table file.
    pub misses: u64,
    /// Bytes of such blocks read from table files into the cache.
    pub inserted_bytes: u64,
}

/// A cache's fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheFill {
    /// Entries held.
    pub entries: usize,
    /// The most it holds.
    pub capacity: usize,
}

/// The process allocator's own account of its memory, split as an operator needs it to explain
/// RSS: what the program holds, what the allocator keeps in pages for it, what is resident.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes the program has allocated and not freed.
    pub allocated: u64,
    /// Bytes in the pages those allocations occupy (`allocated` plus fragmentation).
    pub active: u64,
    /// The allocator's own bookkeeping.
    pub metadata: u64,
    /// Bytes of the allocator's pages that are resident: active, metadata, and freed pages not
    /// yet returned to the kernel.
    pub resident: u64,
    /// Address space returned to the kernel but kept mapped for reuse (not resident).
    pub retained: u64,
}

/// Where a scrape reads [`HeapStats`] from. The binary that chose the allocator sets it, once
/// per process; a library cannot know which allocator it was linked with.
static HEAP_STATS: OnceLock<fn() -> Option<HeapStats>> = OnceLock::new();

/// Makes scrapes report the allocator's statistics from `source`. Only the first call counts
/// (`false` after it).
pub fn report_heap_with(source: fn() -> Option<HeapStats>) -> bool {
    HEAP_STATS.set(source).is_ok()
}

/// The allocator's statistics now, if a source was set and it answered.
pub fn heap_stats() -> Option<HeapStats> {
    HEAP_STATS.get().and_then(|source| source())
}

/// What is read when scraped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gauges {
    /// Latest committed height.
    pub height: u64,
    /// Its block time, ms since the epoch.
    pub head_time_ms: u64,
    /// How far this node's clock is ahead of the other proposers' (ms; negative: behind), once
    /// known.
    pub clock_skew_ms: Option<i64>,
    /// How long ago the head was made, by the consortium's clock.
    pub head_age_ms: u64,
    /// Bytes free under the data directory, if they can be read.
    pub disk_free_bytes: Option<u64>,
    /// Whether the node waits for disk space before writing (below its reserve).
    pub writes_paused: bool,
    /// Transactions waiting in the mempool.
    pub mempool_transactions: usize,
    /// The last height whose stale state is deleted.
    pub pruned_height: u64,
    /// The store's base: the blocks at or below it are not all kept.
    pub base_height: u64,
    /// The store's column families.
    pub families: Vec<FamilySize>,
    /// Compaction RocksDB still has to do, estimated.
    pub pending_compaction_bytes: u64,
    /// Bytes in RocksDB's block cache.
    pub block_cache_bytes: u64,
    /// RocksDB's counters since the store was opened.
    pub store_io: StoreIo,
    /// The tree-node cache.
    pub node_cache: Option<CacheFill>,
    /// The state-value cache.
    pub value_cache: Option<CacheFill>,
    /// State-tree nodes held in memory, when the tree is kept there.
    pub tree_nodes_in_memory: Option<usize>,
    /// This process's resident memory.
    pub resident_bytes: u64,
    /// The allocator's split of it, where the allocator reports one.
    pub heap: Option<HeapStats>,
    /// This process's user + system CPU.
    pub cpu_seconds: f64,
}

/// Writes metric families in the OpenMetrics text format.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# TYPE {name} {kind}\n# HELP {name} {help}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                // Label values here are fixed names (families, reasons, sources): nothing to
                // escape, but a quote or backslash must never end up unescaped.
                let v = v.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "counter", help);
        self.sample(&format!("{name}_total"), &[], value);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&h.buckets) {
            cumulative += n.load(Relaxed);
            self.sample(&bucket, &[("le", &bound.to_string())], cumulative);
        }
        let count = h.count.load(Relaxed);
        self.sample(&bucket, &[("le", "+Inf")], count);
        self.sample(&format!("{name}_count"), &[], count);
        let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
        self.sample(&format!("{name}_sum"), &[], sum);
    }
}

/// The node's metrics as OpenMetrics text, followed by `consensus` (Malachite's registry, which
/// ends with `# EOF`; when it is empty, this adds the `# EOF` itself).
pub fn render(metrics: &Metrics, gauges: &Gauges, consensus: &str) -> String {
    let mut t = Text(String::with_capacity(8192));
    t.gauge("cachet_height", "Latest committed height.", gauges.height);
    t.gauge(
        "cachet_head_time_seconds",
        "Block time of the latest committed height (seconds since the epoch).",
        gauges.head_time_ms as f64 / 1000.0,
    );
    t.counter(
        "cachet_blocks_committed",
        "Heights committed since the node started.",
        metrics.blocks_committed.load(Relaxed),
    );
    t.counter(
        "cachet_transactions_committed",
        "Transactions in the heights committed since the node started.",
        metrics.transactions_committed.load(Relaxed),
    );
    t.gauge(
        "cachet_decided_round",
        "Round the latest height was decided in (above 0: its first proposal failed).",
        metrics.decided_round.load(Relaxed),
    );
    t.counter(
        "cachet_heights_past_round_zero",
        "Heights that needed more than one round.",
        metrics.heights_past_round_zero.load(Relaxed),
    );
    t.histogram(
        "cachet_commit_seconds",
        "Writing a committed height to the store (one synced batch).",
        &metrics.commit_seconds,
    );
    t.histogram(
        "cachet_proposal_build_seconds",
        "Building this node's own proposal.",
        &metrics.build_seconds,
    );
    t.histogram(
        "cachet_proposal_execute_seconds",
        "Checking and executing another proposer's block before voting.",
        &metrics.execute_seconds,
    );
    t.gauge(
        "cachet_mempool_transactions",
        "Transactions waiting in the mempool.",
        gauges.mempool_transactions,
    );
    {
        let counts = metrics.admission.lock().unwrap_or_else(|p| p.into_inner());
        t.family(
            "cachet_transactions_admitted",
            "counter",
            "Transactions admitted to the mempool, by where they came in.",
        );
        for ((source, _), n) in counts.iter().filter(|((_, r), _)| r.is_none()) {
            t.sample(
                "cachet_transactions_admitted_total",
                &[("source", source.label())],
                n,
            );
        }
        t.family(
            "cachet_transactions_refused",
            "counter",
            "Transactions refused at admission (source rpc or gossip) or in a committed block (source block), by the refusal's stable name.",
        );
        for ((source, reason), n) in counts.iter() {
            if let Some(reason) = reason {
                t.sample(
                    "cachet_transactions_refused_total",
                    &[("source", source.label()), ("reason", reason)],
                    n,
                );
            }
        }
    }
    t.counter(
        "cachet_votes_signed",
        "Consensus votes (prevotes and precommits) this node signed: it grows while the node is a validator that votes.",
        metrics.votes_signed.load(Relaxed),
    );
    t.gauge(
        "cachet_gossip_peers",
        "Transaction-gossip peers connected.",
        metrics.gossip_peers.load(Relaxed),
    );
    t.counter(
        "cachet_gossip_batches_dropped",
        "Gossiped transaction batches dropped because admission was behind.",
        metrics.gossip_batches_dropped.load(Relaxed),
    );
    t.gauge(
        "cachet_pruned_height",
        "Last height whose stale state is deleted.",
        gauges.pruned_height,
    );
    t.gauge(
        "cachet_store_base_height",
        "Blocks at or below this height are not kept, but for those receipts need (0: every \
         block, an archive).",
        gauges.base_height,
    );
    let per_family = |t: &mut Text, name: &str, help: &str, value: fn(&FamilySize) -> u64| {
        t.family(name, "gauge", help);
        for f in &gauges.families {
            t.sample(name, &[("family", f.name)], value(f));
        }
    };
    per_family(
        &mut t,
        "cachet_store_sst_bytes",
        "Bytes in a column family's table files.",
        |f| f.sst_bytes,
    );
    per_family(
        &mut t,
        "cachet_store_live_bytes",
        "RocksDB's estimate of a column family's live data.",
        |f| f.live_bytes,
    );
    per_family(
        &mut t,
        "cachet_store_memtable_bytes",
        "Bytes in a column family's memtables.",
        |f| f.memtable_bytes,
    );
    per_family(
        &mut t,
        "cachet_store_table_readers_bytes",
        "Bytes a column family's open table files hold outside the block cache.",
        |f| f.table_readers_bytes,
    );
    t.gauge(
        "cachet_store_pending_compaction_bytes",
        "Compaction RocksDB estimates it still has to do.",
        gauges.pending_compaction_bytes,
    );
    t.gauge(
        "cachet_store_block_cache_bytes",
        "Bytes RocksDB's block cache holds (data, index and filter blocks).",
        gauges.block_cache_bytes,
    );
    let io = &gauges.store_io;
    for (name, help, value) in [
        (
            "cachet_store_block_cache_hits",
            "Block-cache lookups that found the block cached, by kind of block.",
            (|b: &BlockCacheUse| b.hits) as fn(&BlockCacheUse) -> u64,
        ),
        (
            "cachet_store_block_cache_misses",
            "Block-cache lookups that read the block from its table file, by kind of block.",
            |b: &BlockCacheUse| b.misses,
        ),
        (
            "cachet_store_block_cache_insert_bytes",
            "Bytes of blocks read from table files into the block cache, by kind of block.",
            |b: &BlockCacheUse| b.inserted_bytes,
        ),
    ] {
        t.family(name, "counter", help);
        let total = format!("{name}_total");
        for use_ in &io.block_cache {
            t.sample(&total, &[("block", use_.block)], value(use_));
        }
    }
    for (name, help, value) in [
        (
            "cachet_store_filter_skips",
            "Point lookups a table's Bloom filter answered without reading the table.",
            io.filter_skips,
        ),
        (
            "cachet_store_wal_bytes",
            "Bytes written to RocksDB's write-ahead log.",
            io.wal_bytes,
        ),
        (
            "cachet_store_flush_bytes",
            "Bytes memtable flushes wrote to table files.",
            io.flush_bytes,
        ),
        (
            "cachet_store_compaction_read_bytes",
            "Bytes compaction read from table files.",
            io.compaction_read_bytes,
        ),
        (
            "cachet_store_compaction_write_bytes",
            "Bytes compaction wrote to table files.",
            io.compaction_write_bytes,
        ),
    ] {
        t.counter(name, help, value);
    }
    t.counter(
        "cachet_store_write_stall_seconds",
        "Time RocksDB delayed or stopped writes for compaction to catch up.",
        io.stall_micros as f64 / 1e6,
    );
    for (name, help, value) in [
        (
            "cachet_cache_entries",
            "Entries a cache holds.",
            (|c: &CacheFill| c.entries) as fn(&CacheFill) -> usize,
        ),
        (
            "cachet_cache_capacity",
            "Entries a cache holds at most.",
            |c: &CacheFill| c.capacity,
        ),
    ] {
        t.family(name, "gauge", help);
        for (cache, fill) in [("nodes", gauges.node_cache), ("values", gauges.value_cache)] {
            if let Some(fill) = fill {
                t.sample(name, &[("cache", cache)], value(&fill));
            }
        }
    }
    if let Some(free) = gauges.disk_free_bytes {
        t.gauge(
            "cachet_disk_free_bytes",
            "Bytes free on the file system holding the data directory.",
            free,
        );
    }
    t.gauge(
        "cachet_writes_paused",
        "1 while the node writes nothing because the disk is below its reserve ([storage] reserve_disk_mb).",
        u64::from(gauges.writes_paused),
    );
    t.gauge(
        "cachet_head_age_seconds",
        "How long ago the committed head was made, by the consortium's clock: grows while this node lags or the chain stalls.",
        gauges.head_age_ms as f64 / 1000.0,
    );
    if let Some(ms) = gauges.clock_skew_ms {
        t.gauge(
            "cachet_clock_skew_seconds",
            "How far this node's clock is ahead of the other validators' (negative: behind), the median over their recent proposals.",
            ms as f64 / 1000.0,
        );
    }
    if let Some(nodes) = gauges.tree_nodes_in_memory {
        t.gauge(
            "cachet_state_tree_nodes_in_memory",
            "State-tree nodes held in memory: the head's, and those of the heights not pruned yet.",
            nodes,
        );
    }
    t.gauge(
        "process_resident_memory_bytes",
        "Resident memory of the node process.",
        gauges.resident_bytes,
    );
    if let Some(heap) = gauges.heap {
        t.family(
            "cachet_heap_bytes",
            "gauge",
            "The memory allocator's bytes: allocated (held by the program), active (its pages), \
             metadata, resident (all its resident pages), retained (unmapped, kept for reuse).",
        );
        for (kind, bytes) in [
            ("allocated", heap.allocated),
            ("active", heap.active),
            ("metadata", heap.metadata),
            ("resident", heap.resident),
            ("retained", heap.retained),
        ] {
            t.sample("cachet_heap_bytes", &[("kind", kind)], bytes);
        }
    }
    t.family(
        "process_cpu_seconds",
        "counter",
        "User and system CPU time of the node process.",
    );
    t.sample("process_cpu_seconds_total", &[], gauges.cpu_seconds);
    let mut out = t.0;
    if consensus.trim().is_empty() {
        out.push_str("# EOF\n");
    } else {
        out.push_str(consensus);
        if !consensus.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Malachite's consensus and network metrics (its process-wide registry), as OpenMetrics text
/// ending with `# EOF`.
pub fn consensus_text() -> String {
    let mut out = String::new();
    malachite_app::metrics::export(&mut out);
    out
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU ticks process `pid` has used (0 where `/proc` cannot tell).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime is the 14th field, stime the 15th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Resident memory of process `pid`, in bytes (0 where `/proc` cannot tell).
pub fn resident_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
        * 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the OpenMetrics shape a scraper relies on: every sample belongs to the family
    /// declared just before it (by name or name plus a suffix its type allows), each family is
    /// declared once, values are numbers, and the text ends with one `# EOF`.
    fn check_exposition(text: &str) -> BTreeMap<String, f64> {
        let mut declared = std::collections::HashSet::new();
        let mut current: Option<(String, String)> = None;
        let mut samples = BTreeMap::new();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
        assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1);
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("name and type");
                assert!(declared.insert(name.to_string()), "{name} declared twice");
                current = Some((name.to_string(), kind.to_string()));
            } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            } else {
                let (series, value) = line.rsplit_once(' ').expect("a sample and its value");
                let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
                let name = series.split('{').next().unwrap();
                let (family, kind) = current.as_ref().expect("a family before its samples");
                let suffix = name.strip_prefix(family.as_str()).unwrap_or_else(|| {
                    panic!("{name} outside its family {family}");
                });
                let allowed: &[&str] = match kind.as_str() {
                    "counter" => &["_total", "_created"],
                    "histogram" => &["_bucket", "_count", "_sum", "_created"],
                    _ => &["", "_info"],
                };
                assert!(allowed.contains(&suffix), "{name} in a {kind}");
                samples.insert(series.to_string(), value);
            }
        }
        samples
    }

    #[test]
    fn the_text_is_openmetrics_with_every_family() {
        let m = Metrics::default();
        m.committed(0, 5, Duration::from_millis(3));
        m.committed(2, 1, Duration::from_millis(40));
        m.build_seconds.observe(Duration::from_secs(9));
        m.admission(
            Source::Rpc,
            [None, None, Some("bad_signature"), Some("malformed")],
        );
        m.admission(Source::Gossip, [None, Some("duplicate")]);
        let gauges = Gauges {
            height: 42,
            head_time_ms: 1_700_000_000_500,
            clock_skew_ms: Some(-61_250),
            head_age_ms: 2_500,
            disk_free_bytes: Some(5 << 30),
            writes_paused: true,
            families: vec![FamilySize {
                name: "nodes",
                sst_bytes: 10,
                live_bytes: 8,
                memtable_bytes: 2,
                table_readers_bytes: 3,
            }],
            block_cache_bytes: 4096,
            heap: Some(HeapStats {
                allocated: 100,
                active: 120,
                metadata: 7,
                resident: 150,
                retained: 1 << 30,
            }),
            node_cache: Some(CacheFill {
                entries: 3,
                capacity: 600_000,
            }),
            tree_nodes_in_memory: Some(1_234),
            store_io: StoreIo {
                block_cache: [
                    BlockCacheUse {
                        block: "data",
                        hits: 90,
                        misses: 10,
                        inserted_bytes: 40_960,
                    },
                    BlockCacheUse {
                        block: "index",
                        ..BlockCacheUse::default()
                    },
                    BlockCacheUse {
                        block: "filter",
                        hits: 5,
                        misses: 1,
                        inserted_bytes: 731_000,
                    },
                ],
                filter_skips: 7,
                wal_bytes: 123,
                stall_micros: 1_500_000,
                ..StoreIo::default()
            },
            ..Gauges::default()
        };
        let s = check_exposition(&render(&m, &gauges, ""));
        let get = |k: &str| s.get(k).copied().unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(get("cachet_height"), 42.0);
        assert_eq!(get("cachet_state_tree_nodes_in_memory"), 1_234.0);
        assert_eq!(get("cachet_head_time_seconds"), 1_700_000_000.5);
        assert_eq!(get("cachet_clock_skew_seconds"), -61.25);
        assert_eq!(get("cachet_head_age_seconds"), 2.5);
        assert_eq!(get("cachet_disk_free_bytes"), (5u64 << 30) as f64);
        assert_eq!(get("cachet_writes_paused"), 1.0);
        assert_eq!(get("cachet_blocks_committed_total"), 2.0);
        assert_eq!(get("cachet_transactions_committed_total"), 6.0);
        assert_eq!(get("cachet_decided_round"), 2.0);
        assert_eq!(get("cachet_heights_past_round_zero_total"), 1.0);
        assert_eq!(get("cachet_commit_seconds_bucket{le=\"0.005\"}"), 1.0);
        assert_eq!(get("cachet_commit_seconds_bucket{le=\"0.05\"}"), 2.0);
        assert_eq!(get("cachet_commit_seconds_bucket{le=\"+Inf\"}"), 2.0);
        assert_eq!(get("cachet_commit_seconds_count"), 2.0);
        assert!((get("cachet_commit_seconds_sum") - 0.043).abs() < 1e-9);
        // Above the last bound: only in +Inf.
        assert_eq!(get("cachet_proposal_build_seconds_bucket{le=\"5\"}"), 0.0);
        assert_eq!(
            get("cachet_proposal_build_seconds_bucket{le=\"+Inf\"}"),
            1.0
        );
        assert_eq!(
            get("cachet_transactions_admitted_total{source=\"rpc\"}"),
            2.0
        );
        assert_eq!(
            get("cachet_transactions_refused_total{source=\"rpc\",reason=\"bad_signature\"}"),
            1.0
        );
        assert_eq!(
            get("cachet_transactions_refused_total{source=\"gossip\",reason=\"duplicate\"}"),
            1.0
        );
        assert_eq!(get("cachet_store_sst_bytes{family=\"nodes\"}"), 10.0);
        assert_eq!(
            get("cachet_store_table_readers_bytes{family=\"nodes\"}"),
            3.0
        );
        assert_eq!(get("cachet_store_block_cache_bytes"), 4096.0);
        assert_eq!(get("cachet_cache_capacity{cache=\"nodes\"}"), 600_000.0);
        assert!(!s.contains_key("cachet_cache_entries{cache=\"values\"}"));
        assert_eq!(
            get("cachet_store_block_cache_misses_total{block=\"filter\"}"),
            1.0
        );
        assert_eq!(
            get("cachet_store_block_cache_insert_bytes_total{block=\"filter\"}"),
            731_000.0
        );
        assert_eq!(
            get("cachet_store_block_cache_hits_total{block=\"data\"}"),
            90.0
        );
        assert_eq!(
            get("cachet_store_block_cache_hits_total{block=\"index\"}"),
            0.0
        );
        assert_eq!(get("cachet_store_filter_skips_total"), 7.0);
        assert_eq!(get("cachet_store_wal_bytes_total"), 123.0);
        assert_eq!(get("cachet_store_compaction_write_bytes_total"), 0.0);
        assert_eq!(get("cachet_store_write_stall_seconds_total"), 1.5);
        assert_eq!(get("cachet_heap_bytes{kind=\"allocated\"}"), 100.0);
        assert_eq!(get("cachet_heap_bytes{kind=\"active\"}"), 120.0);
        assert_eq!(get("cachet_heap_bytes{kind=\"metadata\"}"), 7.0);
        assert_eq!(get("cachet_heap_bytes{kind=\"resident\"}"), 150.0);
        assert_eq!(get("cachet_heap_bytes{kind=\"retained\"}"), 1073741824.0);

        // An allocator that reports nothing: no heap family at all, rather than zeros.
        let s = check_exposition(&render(&m, &Gauges::default(), ""));
        assert!(!s.keys().any(|k| k.starts_with("cachet_heap_bytes")));
    }

    #[test]
    fn the_heap_is_read_from_the_source_the_binary_set() {
        fn fixed() -> Option<HeapStats> {
            Some(HeapStats {
                allocated: 1,
                ..HeapStats::default()
            })
        }
        fn other() -> Option<HeapStats> {
            None
        }
        assert!(report_heap_with(fixed));
        assert!(!report_heap_with(other), "a second source is refused");
        assert_eq!(heap_stats().map(|h| h.allocated), Some(1));
    }

    #[test]
    fn consensus_metrics_follow_and_end_the_text() {
        let consensus = "# TYPE malachitebft_x gauge\nmalachitebft_x{moniker=\"n0\"} 1\n# EOF\n";
        let text = render(&Metrics::default(), &Gauges::default(), consensus);
        let s = check_exposition(&text);
        assert_eq!(s["malachitebft_x{moniker=\"n0\"}"], 1.0);
        assert!(text.ends_with(consensus));
    }

    #[test]
    fn a_label_value_cannot_break_out_of_its_quotes() {
        let mut t = Text(String::new());
        t.sample("x", &[("reason", "a\"b\\")], 1);
        assert_eq!(t.0, "x{reason=\"a\\\"b\\\\\"} 1\n");
    }

    #[test]
    fn this_process_is_seen_in_proc() {
        let me = std::process::id();
        assert!(resident_bytes(me) > 1 << 20);
        // Spin until the kernel has charged this process a tick (10 ms), for at most 5 s.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_ticks(me) == 0 && start.elapsed() < Duration::from_secs(5) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        assert!(cpu_ticks(me) > 0);
        assert_eq!(resident_bytes(u32::MAX), 0);
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }
}
