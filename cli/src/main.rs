//! `cachet`: the command line for issuing agencies, verifiers and operators.
//!
//! Operators: `keygen`, `genesis`, `start`, `devnet`, `status`, `block`, `add-peer`,
//! `backup`, `restore`, `fsck`, `snapshot`, `probe`, `evidence`. Issuing agencies: `anchor`, `revoke`,
//! `supersede`, `approve`, `revoke-entry`, `mortgage`, `accredit`, `unaccredit`; validator
//! agencies also `propose` and `vote`; licensors `license-request` and `license`, their
//! oracles `attest`. Everyone: `fingerprint`, `history`, `demo`.

mod agency;
mod allocator;
mod demo;
mod devnet;
mod genesis_build;
mod issuer;
mod license;
mod operator;
mod qr;
mod verifier;

use anyhow::{Context, Result};
use cachet_chain::crypto::SecretKey;
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::ids::CertKind;
use cachet_keys::file as keyfile;
use clap::{Parser, Subcommand, ValueEnum};
use issuer::{IssuerArgs, Reason};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cachet",
    version,
    about = "Cachet: a permissioned notarization chain for digital certificates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local consortium of the example agencies on 127.0.0.1 until Ctrl-C.
    Devnet {
        /// Directory for genesis, keys, node data and logs (reused when it exists).
        #[arg(long)]
        dir: PathBuf,
        /// Number of validators.
        #[arg(long, default_value_t = 4)]
        validators: usize,
        /// Only write the genesis, keys and node configs, print the config paths, and exit.
        #[arg(long)]
        no_start: bool,
        /// Also prepare this many spare nodes that can join by governance (with --no-start).
        #[arg(long, default_value_t = 0)]
        spares: usize,
        /// With --no-start: one address per node (validators, then spares), comma-separated,
        /// for nodes that each have an address of their own (containers, machines). Consensus
        /// (port 27000) and gossip (28000) listen on that address and dial the others at
        /// theirs; the RPC (26657) listens on every interface.
        #[arg(long, value_delimiter = ',', requires = "no_start")]
        hosts: Vec<std::net::IpAddr>,
        /// Where every node keeps its state tree, `disk`, `memory` or `derived` (`[storage] state_tree`;
        /// by default each node keeps what its config says, `disk` in a new one).
        #[arg(long)]
        state_tree: Option<cachet_node::store::TreePlacement>,
    },
    /// Measure a local 4-validator devnet: anchor throughput and finality latency, batch
    /// anchoring, and receipts served under load (build with --release for meaningful figures).
    Bench {
        /// Phases to run, in order.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "anchors,batches,verification,fairness"
        )]
        phases: Vec<cachet_bench::Phase>,
        /// Seconds to sustain the best rate (and to run the verification load).
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Seconds to run the verification load, when it should differ from --duration (a long
        /// run on the state the anchor phase left).
        #[arg(long)]
        verification_seconds: Option<u64>,
        /// Seconds per rising-rate step.
        #[arg(long, default_value_t = 5)]
        step_seconds: u64,
        /// Issuing agencies to spread the load over.
        #[arg(long, default_value_t = 32)]
        agencies: usize,
        /// Certificates per Merkle batch in the batch phase.
        #[arg(long, default_value_t = 1000)]
        batch_leaves: u32,
        /// Concurrent verifiers in the verification phase.
        #[arg(long, default_value_t = 32)]
        verifiers: usize,
        /// Certificates the fill phase anchors (unmeasured) before the phases after it.
        #[arg(long, default_value_t = 500_000)]
        fill_certificates: usize,
        /// The scale phase's sizes: certificates in the state at each of its steps.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "100000,1000000,3000000,10000000"
        )]
        scale_sizes: Vec<usize>,
        /// Keep the devnet's data in this directory: a later run can start from it.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Start from a copy of the devnet directory an earlier run left with --dir (its
        /// state, and the certificates anchored there to verify).
        #[arg(long)]
        from: Option<PathBuf>,
        /// Measure the devnet already running in this directory (its `devnet.json`), instead
        /// of starting one; it is left running. Its nodes' processes and data directories
        /// must be on this machine (CPU, memory and disk are read from them).
        #[arg(long, conflicts_with_all = ["from", "dir"])]
        target: Option<PathBuf>,
        /// Where the devnet's nodes keep their state tree, `disk`, `memory` or `derived` (`[storage]
        /// state_tree`; by default what the node configs say: `disk` in a fresh devnet).
        #[arg(long, conflicts_with = "target")]
        state_tree: Option<cachet_node::store::TreePlacement>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Start a node from its configuration file.
    Start {
        /// The node's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Agencies: serve the agency gateway, an HTTP/JSON interface (OpenAPI 3.1, served at
    /// /openapi.json) through which the agency's case systems anchor, revoke and follow
    /// certificates; it signs with the agency's key and submits to the agency's node.
    Gateway {
        /// The gateway's TOML configuration (docs/gateway.md).
        #[arg(long)]
        config: PathBuf,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Agencies: a new token for a calling system of the gateway. Prints the token (give it to
    /// the calling system) and the `[[callers]]` entry for the gateway's configuration, which
    /// holds only its SHA-256.
    GatewayToken {
        /// The calling system's name, as the audit log will record it.
        #[arg(long)]
        name: String,
    },
    /// Operators: let a new consortium node in (`cachet_admin_addPeer`). The node keeps a
    /// connection to it on both networks; the call is served on a loopback RPC only.
    AddPeer {
        /// The node's RPC URL on loopback (its `rpc.listen`, or `rpc.admin_listen`).
        #[arg(long)]
        rpc: String,
        /// The node's operator token file, when it has one (`rpc.operator_token_file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The new node's consensus address, `/ip4/…/tcp/…/p2p/<peer id>`.
        #[arg(long)]
        p2p: String,
        /// The new node's gossip address, in the same form.
        #[arg(long)]
        gossip: String,
    },
    /// Operators: copy a running node's store into a new directory, without stopping it
    /// (`cachet_admin_backup`, served on a loopback RPC only). The copy is consistent (whole
    /// committed heights) and described by its `backup.json`; keys are not in it.
    Backup {
        /// The node's RPC URL on loopback (its `rpc.listen`, or `rpc.admin_listen`).
        #[arg(long)]
        rpc: String,
        /// The node's operator token file, when it has one (`rpc.operator_token_file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The backup directory, on the node's machine: absent or empty.
        #[arg(long)]
        out: PathBuf,
        /// Print the backup's manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operators: have a running node take a snapshot of its state at a coming height, for a
    /// node about to join (`cachet_admin_snapshot`, on its operator RPC). Ask every node for
    /// the same height: the joining node then fetches from them all.
    Snapshot {
        /// The node's RPC URL on loopback (its `rpc.listen`, or `rpc.admin_listen`).
        #[arg(long)]
        rpc: String,
        /// The node's operator token file, when it has one (`rpc.operator_token_file`).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The height to take it at: above the node's head.
        #[arg(long)]
        at: u64,
    },
    /// Operators: put a backup in place of a stopped node's lost store (its `db/` must be gone),
    /// after checking the backup as `fsck` does. The node then syncs the heights after it.
    Restore {
        /// The backup directory (`cachet backup --out`).
        #[arg(long)]
        from: PathBuf,
        /// The node's TOML configuration (its home and genesis).
        #[arg(long)]
        config: PathBuf,
        /// Skip the check of the backup.
        #[arg(long)]
        no_check: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operators: check a stopped node's store, or a backup, against itself: every block's
    /// links, transaction root and index and commit signatures, the checkpoints, and the head's
    /// state against its state root. Lists each inconsistency by height, the first first; exit
    /// 0 when consistent, 1 when not.
    Fsck {
        /// A node's home directory or a backup directory (either holds `db/`).
        dir: PathBuf,
        /// Also check that the store's genesis is this genesis file's.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Operators: ask a node whether it is ready (`GET /readyz`; with `--live`, whether it
    /// answers at all: `GET /healthz`), for a container's health check or a script. Prints the
    /// answer; exit 0 when it is 200, 1 otherwise.
    Probe {
        /// The node's RPC URL (its `rpc.listen` or `rpc.admin_listen`), `http://host:port`.
        #[arg(long)]
        rpc: String,
        /// Only whether the process answers.
        #[arg(long)]
        live: bool,
    },
    /// The latest block a node has committed.
    Status {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A committed block.
    Block {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// Its height.
        #[arg(long)]
        height: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Anchor a document, or every file of a directory as one Merkle batch; waits for finality.
    Anchor {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// Certificate kind: land-title, investment-permit, reward-order, cultural-license, or
        /// the name of a kind registered by governance (`cachet kinds` lists them).
        #[arg(long)]
        kind: String,
        /// The document, or a directory of documents.
        #[arg(long)]
        file: PathBuf,
        /// Land titles: the parcel reference (default: the file name).
        #[arg(long)]
        parcel: Option<String>,
        /// Validity in days from now (investment permits default to 365).
        #[arg(long)]
        valid_days: Option<u64>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate; waits for finality.
    Revoke {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The certificate id.
        #[arg(long)]
        id: CertId,
        /// Why.
        #[arg(long, value_enum, default_value_t = Reason::Other)]
        reason: Reason,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Replace a certificate by a new document's (a land-title transfer, a permit amendment).
    Supersede {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The certificate replaced.
        #[arg(long)]
        id: CertId,
        /// The new document.
        #[arg(long)]
        file: PathBuf,
        /// Land titles: the parcel reference (default: the replaced title's).
        #[arg(long)]
        parcel: Option<String>,
        /// Validity in days from now.
        #[arg(long)]
        valid_days: Option<u64>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a receipt: a self-contained proof of a certificate's status, checkable offline.
    Receipt {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// The genesis or checkpoint file its verifiers trust: the receipt carries only the
        /// validator-set changes after it (default: the genesis, all of them).
        #[arg(long)]
        trust: Option<PathBuf>,
        /// The certificate id.
        #[arg(long)]
        id: Option<String>,
        /// The holder's certificate file (`<document>.cachet.json`); needed for batch entries.
        #[arg(long)]
        certificate_file: Option<PathBuf>,
        /// Where to write the receipt (binary).
        #[arg(long)]
        out: PathBuf,
        /// Also carry the certificates it replaced (a land title's transfers), each proven, so
        /// that its whole lineage verifies offline (a larger receipt: not for a QR code).
        #[arg(long)]
        lineage: bool,
    },
    /// Verify a certificate against a trusted genesis: from a receipt file (offline), or by id
    /// or certificate file through a node. Exit 0 only when valid (see `docs/verify.md`).
    Verify {
        /// The receipt file.
        #[arg(long)]
        receipt: Option<PathBuf>,
        /// A receipt QR code image (PNG).
        #[arg(long)]
        qr: Option<PathBuf>,
        /// The genesis or checkpoint file to trust (chain id, validator set, policies).
        #[arg(long)]
        trust: PathBuf,
        /// Fetch the receipt from this node instead of a file.
        #[arg(long)]
        rpc: Option<String>,
        /// The certificate id (with --rpc).
        #[arg(long)]
        id: Option<String>,
        /// The holder's certificate file: names the certificate and holds the document's salt.
        #[arg(long)]
        certificate_file: Option<PathBuf>,
        /// The document, to check it is the certified one.
        #[arg(long)]
        document: Option<PathBuf>,
        /// The certificate's salt (64 hex), when there is no certificate file.
        #[arg(long)]
        salt: Option<String>,
        /// Instead, verify many: every `*.receipt` file in this directory, or with --rpc the
        /// certificates whose ids this file lists (one a line). One line each; exit 0 only when
        /// all are valid.
        #[arg(long, conflicts_with_all = ["receipt", "qr", "id", "certificate_file", "document", "salt"])]
        batch: Option<PathBuf>,
        /// Print one JSON object (with --batch, one per receipt).
        #[arg(long)]
        json: bool,
    },
    /// Move a verifier's trust to the consortium's latest checkpoint: fetch it from a node,
    /// check that it follows from the trusted genesis or checkpoint (each validator-set change
    /// signed by the set before it), and write a checkpoint file for `--trust`.
    Checkpoint {
        /// The genesis or checkpoint file trusted now.
        #[arg(long)]
        trust: PathBuf,
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// Where to write the checkpoint file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the verify page as one self-contained file (`DIR/index.html`) for an agency's web
    /// site: it verifies receipts in the browser against the trust root of the genesis file and
    /// fetches them from the given nodes, trusting none of them.
    VerifyPage {
        /// The consortium's genesis file; its hash is the page's trust root.
        #[arg(long)]
        genesis: PathBuf,
        /// A node's JSON-RPC URL to fetch receipts from (repeat for several; tried in order).
        #[arg(long = "rpc", required = true)]
        rpc: Vec<String>,
        /// Directory to write `index.html` into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a QR code (PNG or SVG) that a phone camera opens on a verify page: a link to a
    /// certificate (`--id`), or a whole receipt carried in the link (`--receipt`).
    Qr {
        /// The receipt to carry (verifiable with no node; a fresh one is fetched when it is
        /// older than its kind allows).
        #[arg(long, conflicts_with = "id")]
        receipt: Option<PathBuf>,
        /// A certificate id to link to instead.
        #[arg(long)]
        id: Option<String>,
        /// The verify page: a node's `https://node.example/verify`, or an agency's copy.
        #[arg(long, required_unless_present = "read")]
        page: Option<String>,
        /// The genesis or checkpoint file whose root the link pins.
        #[arg(long, required_unless_present = "read")]
        trust: Option<PathBuf>,
        /// Output file, `.png` or `.svg`.
        #[arg(long, required_unless_present = "read")]
        out: Option<PathBuf>,
        /// Pixels per module in a PNG (SVG: user units).
        #[arg(long, default_value_t = 8)]
        module_px: usize,
        /// Instead, print the text of the QR code in this PNG image.
        #[arg(long, conflicts_with_all = ["receipt", "id", "page", "trust"])]
        read: Option<PathBuf>,
    },
    /// Approve a pending certificate (M-of-N kinds); waits for finality.
    Approve {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The certificate id.
        #[arg(long)]
        id: CertId,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    #[command(flatten)]
    Agency(agency::Command),
    #[command(flatten)]
    License(license::Command),
    /// A certificate's lineage, oldest first: each record it superseded or was superseded by.
    History {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// The certificate id.
        #[arg(long)]
        id: CertId,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every certificate kind the chain knows: the built-in ones and those registered by
    /// governance, with their names and policies.
    Kinds {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The equivocations a node recorded (a validator's two conflicting votes), decoded.
    Evidence {
        /// The node's RPC URL.
        #[arg(long)]
        rpc: String,
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the example consortium in one process: anchor one certificate of each kind, a
    /// batch of 1,000 reward orders, a transfer, a revocation; then verify each from proofs.
    Demo {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a new signing key file (mode 0600).
    Keygen {
        /// Where to write it; refuses to overwrite.
        #[arg(long, required_unless_present = "pkcs11")]
        out: Option<PathBuf>,
        /// Generate it inside an HSM instead, as the key this pkcs11: URI names
        /// (`pkcs11:token=…;object=<new label>?module-path=…&pin-source=…`): its private half
        /// never leaves the token. Prints its public key.
        #[arg(long, conflicts_with_all = ["out", "dev", "seal"])]
        pkcs11: Option<String>,
        /// Derive a development key from this public name instead (INSECURE: anyone can
        /// recompute it).
        #[arg(long)]
        dev: Option<String>,
        /// Seal the key under a passphrase (from the file named by CACHET_PASSPHRASE_FILE,
        /// else asked twice at the terminal; at least 12 characters).
        #[arg(long)]
        seal: bool,
    },
    /// Seal a key file in place under a passphrase (Argon2id, XChaCha20-Poly1305; see
    /// `docs/spec/keyfile.md`). Reading it then needs the passphrase: from the file named by
    /// CACHET_PASSPHRASE_FILE, the terminal, or a node's validator_key_passphrase_file.
    SealKey {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Print the public key of a key file (and check the file).
    Pubkey {
        /// The key file, or an HSM key's pkcs11: URI.
        #[arg(long)]
        key: String,
    },
    /// Genesis documents.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Fingerprint a document, and with --salt its commitment and certificate id.
    Fingerprint {
        /// The document.
        #[arg(long)]
        file: PathBuf,
        /// Hash function.
        #[arg(long, value_enum, default_value_t = Alg::Sha256)]
        alg: Alg,
        /// The certificate's salt (64 hex characters).
        #[arg(long)]
        salt: Option<String>,
        /// The certificate kind (for the id).
        #[arg(long, default_value = "land-title")]
        kind: CertKind,
    },
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Print the example consortium's genesis (development keys).
    Example,
    /// Check a genesis file and print its summary and height-0 state root.
    Check {
        /// The genesis file.
        file: PathBuf,
    },
    /// Build a genesis from agency and validator key files; prints the JSON.
    Build {
        /// The chain id.
        #[arg(long)]
        chain_id: String,
        /// An agency: `ID=KEYFILE[:KIND,KIND...]` (kinds it may issue from the start).
        #[arg(long = "agency", required = true)]
        agencies: Vec<String>,
        /// A validator: `AGENCY=KEYFILE[:POWER]`.
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// JSON map of kind to policy; kinds not in it get a default policy (their
        /// accredited agencies accredit; no approvals, no oracles).
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Genesis time, ms since the Unix epoch (default: now).
        #[arg(long)]
        genesis_time: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    Sha256,
    Blake3,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,arc_malachitebft_engine=warn,arc_malachitebft_network=warn,arc_malachitebft_core_consensus=warn,arc_malachitebft_sync=warn,arc_malachitebft_discovery=warn,libp2p=warn",
        )
    });
    // Colours only for a person at a terminal: log files and `docker logs` get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A validator key as `cachet-keys` opened it (a key file, or a key in an HSM), signing for
/// the node.
struct OpenedKey(cachet_keys::SigningKey);

impl cachet_node::signing::ValidatorKey for OpenedKey {
    fn public(&self) -> cachet_chain::PublicKey {
        self.0.public()
    }

    fn sign(&self, message: &cachet_chain::Hash32) -> Result<cachet_chain::Signature, String> {
        self.0.sign(message).map_err(|e| format!("{e:#}"))
    }
}

async fn start(config: PathBuf) -> Result<()> {
    let config = cachet_node::NodeConfig::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let passphrase = match &config.validator_key_passphrase_file {
        Some(file) => keyfile::Passphrase::File(file.clone()),
        None => keyfile::Passphrase::Ask,
    };
    let (validator, _) =
        cachet_keys::SigningKey::open(&config.validator_key.to_string_lossy(), &passphrase)?;
    let node_key = match (&config.node_key, &validator) {
        (Some(path), _) => keyfile::read_with(path, &passphrase)?.0,
        (None, cachet_keys::SigningKey::InMemory(key)) => key.clone(),
        (None, cachet_keys::SigningKey::Token(_)) => anyhow::bail!(
            "the validator key is in an HSM: set node_key in the configuration to a key file of              the node's own (cachet keygen --out node.key), its identity on the networks"
        ),
    };
    let keys = cachet_node::NodeKeys {
        validator: std::sync::Arc::new(OpenedKey(validator)),
        node: node_key,
    };
    let node = cachet_node::start(config, keys)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = node.wait() => r.map_err(|e| anyhow::anyhow!("{e:#}")),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
    }
}

const STATUS_FIELDS: &[&str] = &[
    "chain_id",
    "height",
    "hash",
    "time",
    "state_root",
    "mempool",
];
const BLOCK_FIELDS: &[&str] = &[
    "height",
    "hash",
    "header.time",
    "txs",
    "signatures",
    "header.state_root",
];

/// Print `v` as JSON, or one line of `fields` (JSON paths like `header.time`) for people.
fn print_fields(v: &serde_json::Value, json: bool, fields: &[&str]) {
    if json {
        println!("{v}");
        return;
    }
    let line: Vec<String> = fields
        .iter()
        .map(|f| {
            let value = f.split('.').fold(v, |at, key| &at[key]);
            let shown = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(a) => a.len().to_string(),
                other => other.to_string(),
            };
            format!("{} {shown}", f.rsplit('.').next().unwrap_or(f))
        })
        .collect();
    println!("{}", line.join("  "));
}

fn main() -> Result<()> {
    cachet_node::metrics::report_heap_with(allocator::heap_stats);
    match Cli::parse().command {
        Command::Devnet {
            dir,
            validators,
            no_start,
            spares,
            hosts,
            state_tree,
        } => {
            let addresses = if hosts.is_empty() {
                devnet::Addresses::Loopback
            } else {
                devnet::Addresses::Hosts(hosts)
            };
            runtime()?.block_on(devnet::run(
                &dir, validators, spares, !no_start, &addresses, state_tree,
            ))
        }
        Command::Bench {
            phases,
            duration,
            verification_seconds,
            step_seconds,
            agencies,
            batch_leaves,
            verifiers,
            fill_certificates,
            scale_sizes,
            dir,
            from,
            target,
            state_tree,
            json,
        } => runtime()?.block_on(cachet_bench::run(
            cachet_bench::Options {
                phases,
                duration,
                verification_seconds: verification_seconds.unwrap_or(duration),
                step_seconds,
                agencies: agencies.max(1),
                batch_leaves: batch_leaves.clamp(1, cachet_chain::codec::limits::MAX_BATCH_LEAVES),
                verifiers: verifiers.max(1),
                fill_certificates,
                scale_sizes,
                dir,
                from,
                target,
                state_tree,
            },
            json,
        )),
        Command::Start { config, log_json } => {
            init_logging(log_json);
            runtime()?.block_on(start(config))
        }
        Command::Gateway { config, log_json } => {
            init_logging(log_json);
            let config = cachet_gateway::GatewayConfig::load(&config)?;
            runtime()?.block_on(cachet_gateway::run(config))
        }
        Command::GatewayToken { name } => {
            let (token, hash) = cachet_gateway::config::new_token()?;
            let entry = toml::to_string(&toml::toml! {
                name = (name.clone())
                token_sha256 = (hash.to_string())
            })?;
            eprintln!("token for {name} (give it to the calling system; it is not kept):");
            println!("{token}");
            eprintln!("\nadd to the gateway's configuration:\n\n[[callers]]\n{entry}");
            Ok(())
        }
        Command::AddPeer {
            rpc,
            token_file,
            p2p,
            gossip,
        } => runtime()?.block_on(async {
            operator::client(&rpc, token_file.as_deref())?
                .call(
                    "cachet_admin_addPeer",
                    vec![serde_json::json!(p2p), serde_json::json!(gossip)],
                )
                .await?;
            println!("added {p2p} and {gossip}");
            Ok(())
        }),
        Command::Snapshot {
            rpc,
            token_file,
            at,
        } => runtime()?.block_on(operator::snapshot(
            &operator::client(&rpc, token_file.as_deref())?,
            at,
        )),
        Command::Backup {
            rpc,
            token_file,
            out,
            json,
        } => runtime()?.block_on(operator::backup(
            &operator::client(&rpc, token_file.as_deref())?,
            &out,
            json,
        )),
        Command::Restore {
            from,
            config,
            no_check,
            json,
        } => operator::restore(&from, &config, !no_check, json),
        Command::Fsck { dir, genesis, json } => {
            std::process::exit(operator::fsck(&dir, genesis.as_ref(), json)?)
        }
        Command::Probe { rpc, live } => std::process::exit(operator::probe(&rpc, live)?),
        Command::Status { rpc, json } => runtime()?.block_on(async {
            let v = cachet_client::Client::new(&rpc)?.status().await?;
            print_fields(&v, json, STATUS_FIELDS);
            Ok(())
        }),
        Command::Block { rpc, height, json } => runtime()?.block_on(async {
            let v = cachet_client::Client::new(&rpc)?
                .call("cachet_block", vec![serde_json::json!(height)])
                .await?;
            print_fields(&v, json, BLOCK_FIELDS);
            Ok(())
        }),
        Command::Anchor {
            issuer,
            kind,
            file,
            parcel,
            valid_days,
            json,
        } => runtime()?.block_on(async {
            let (client, signer) = issuer.connect()?;
            let kind = client.kind(&kind).await?;
            issuer::anchor(
                &client,
                &signer,
                kind,
                &file,
                &issuer::IssueOptions { parcel, valid_days },
                json,
            )
            .await
        }),
        Command::Revoke {
            issuer,
            id,
            reason,
            json,
        } => runtime()?.block_on(async {
            let (client, signer) = issuer.connect()?;
            issuer::revoke(&client, &signer, id, reason.into(), json).await
        }),
        Command::Supersede {
            issuer,
            id,
            file,
            parcel,
            valid_days,
            json,
        } => runtime()?.block_on(async {
            let (client, signer) = issuer.connect()?;
            issuer::supersede(
                &client,
                &signer,
                id,
                &file,
                &issuer::IssueOptions { parcel, valid_days },
                json,
            )
            .await
        }),
        Command::Receipt {
            rpc,
            trust,
            id,
            certificate_file,
            out,
            lineage,
        } => runtime()?.block_on(async {
            let file = certificate_file
                .as_deref()
                .map(verifier::CertificateFile::read)
                .transpose()?;
            let trusted_height = match &trust {
                Some(path) => verifier::load_pinned(path)?.trust.height.0,
                None => 0,
            };
            let bytes = verifier::fetch(
                &cachet_client::Client::new(&rpc)?,
                id.as_deref(),
                file.as_ref(),
                trusted_height,
                lineage,
            )
            .await?;
            std::fs::write(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "receipt of {} bytes written to {}",
                bytes.len(),
                out.display()
            );
            Ok(())
        }),
        Command::Checkpoint { trust, rpc, out } => runtime()?.block_on(async {
            verifier::checkpoint(&cachet_client::Client::new(&rpc)?, &trust, &out).await
        }),
        Command::Qr {
            read: Some(image), ..
        } => {
            println!("{}", qr::read_png(&image)?);
            Ok(())
        }
        Command::Qr {
            receipt,
            id,
            page,
            trust,
            out,
            module_px,
            read: None,
        } => {
            let (page, trust, out) = (
                page.context("--page is required")?,
                trust.context("--trust is required")?,
                out.context("--out is required")?,
            );
            let root = verifier::load_pinned(&trust)?.root;
            let text = match (receipt, id) {
                (Some(path), None) => qr::receipt_link(
                    &page,
                    &std::fs::read(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                    &root,
                ),
                (None, Some(id)) => qr::link(&page, &id, &root),
                _ => anyhow::bail!("give --receipt FILE or --id CERTIFICATE_ID"),
            };
            let written = qr::write(&text, &out, module_px)?;
            println!(
                "QR code of {} characters, {m}×{m} modules, written to {}; print it at least {:.0} mm wide ({} mm a module)",
                text.len(),
                out.display(),
                written.print_mm,
                qr::PRINT_MODULE_MM,
                m = written.modules,
            );
            Ok(())
        }
        Command::VerifyPage { genesis, rpc, out } => {
            let doc = cachet_chain::genesis::GenesisDoc::from_json(
                &std::fs::read_to_string(&genesis)
                    .with_context(|| format!("cannot read {}", genesis.display()))?,
            )?;
            let anchor = cachet_contracts::anchor(&doc)?;
            let advance = runtime()?.block_on(verifier::latest_advance(&anchor, &rpc));
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let path = out.join("index.html");
            let page = cachet_rpc::web::page(&anchor, &rpc, advance.as_ref().map(|a| &a.1[..]));
            std::fs::write(&path, page)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "verify page written to {}; trust root {} (chain {}){}",
                path.display(),
                anchor.root(),
                doc.chain_id,
                match &advance {
                    Some((height, _)) => format!(", carrying the checkpoint at height {height}"),
                    None => String::new(),
                }
            );
            Ok(())
        }
        Command::Verify {
            receipt,
            qr: qr_image,
            trust,
            rpc,
            id,
            certificate_file,
            document,
            salt,
            batch,
            json,
        } => {
            // Read once: the genesis file's anchor is the genesis state, built and proven.
            let pinned = verifier::load_pinned(&trust)?;
            let trusted_height = pinned.trust.height.0;
            if let Some(path) = batch {
                let receipts = match &rpc {
                    Some(rpc) => runtime()?.block_on(async {
                        verifier::receipts_for(
                            &cachet_client::Client::new(rpc)?,
                            &path,
                            trusted_height,
                        )
                        .await
                    })?,
                    None => verifier::receipts_in(&path)?,
                };
                std::process::exit(verifier::run_batch(&receipts, &pinned.trust, json)?);
            }
            let file = certificate_file
                .as_deref()
                .map(verifier::CertificateFile::read)
                .transpose()?;
            let bytes = match (receipt, qr_image, rpc) {
                (Some(path), _, _) => std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, Some(image), _) => {
                    let (root, receipt) = qr::parse_receipt_link(&qr::read_png(&image)?)?;
                    let trusted = pinned.root;
                    if root != trusted {
                        anyhow::bail!(
                            "the QR code trusts the consortium with root {root}, not the one of {} ({trusted})",
                            trust.display()
                        );
                    }
                    receipt
                }
                // With the certificate's lineage, verified here with the receipt.
                (None, None, Some(rpc)) => runtime()?.block_on(async {
                    let client = cachet_client::Client::new(&rpc)?;
                    verifier::fetch(&client, id.as_deref(), file.as_ref(), trusted_height, true)
                        .await
                })?,
                (None, None, None) => anyhow::bail!(
                    "give --receipt FILE, --qr IMAGE, or --rpc URL with --id or --certificate-file"
                ),
            };
            let asked = verifier::asked_about(id.as_deref(), file.as_ref())?;
            let code = verifier::run(
                &bytes,
                &pinned.trust,
                asked.as_deref(),
                document.as_deref(),
                file.as_ref(),
                salt.as_deref(),
                json,
            )?;
            std::process::exit(code);
        }
        Command::Approve { issuer, id, json } => runtime()?.block_on(async {
            let (client, signer) = issuer.connect()?;
            issuer::approve(&client, &signer, id, json).await
        }),
        Command::Agency(command) => runtime()?.block_on(agency::run(command)),
        Command::License(command) => runtime()?.block_on(license::run(command)),
        Command::History { rpc, id, json } => runtime()?.block_on(async {
            agency::history(&cachet_client::Client::new(&rpc)?, id, json).await
        }),
        Command::Kinds { rpc, json } => runtime()?
            .block_on(async { agency::kinds(&cachet_client::Client::new(&rpc)?, json).await }),
        Command::Evidence { rpc, json } => runtime()?
            .block_on(async { agency::evidence(&cachet_client::Client::new(&rpc)?, json).await }),
        Command::Demo { json } => demo::run(json),
        Command::SealKey { key } => {
            let public = keyfile::seal_in_place(&key, &keyfile::Passphrase::Ask)?;
            println!("{public}");
            Ok(())
        }
        Command::Keygen {
            pkcs11: Some(uri), ..
        } => {
            let uri = cachet_keys::pkcs11::Uri::parse(&uri)?;
            println!("{}", cachet_keys::pkcs11::generate(&uri)?);
            Ok(())
        }
        Command::Keygen { out, dev, seal, .. } => {
            let out = out.context("--out names the key file")?;
            let (key, note) = match dev {
                Some(name) => (
                    SecretKey::dev(&name),
                    Some(format!(
                        "development key derived from the name {name:?}: INSECURE"
                    )),
                ),
                None => (SecretKey::generate(), None),
            };
            let seal = seal.then_some(keyfile::Passphrase::Ask);
            keyfile::write(&out, &key, None, note, seal.as_ref())?;
            println!("{}", key.public());
            Ok(())
        }
        Command::Pubkey { key } => {
            let (key, _) = cachet_keys::SigningKey::open(&key, &keyfile::Passphrase::Ask)?;
            println!("{}", key.public());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Build {
            chain_id,
            agencies,
            validators,
            policies,
            genesis_time,
        }) => {
            let doc = genesis_build::build(
                &chain_id,
                &agencies,
                &validators,
                policies.as_deref(),
                genesis_time,
            )?;
            println!("{}", doc.to_json());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Example) => {
            println!("{}", cachet_contracts::example::genesis().to_json());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc = GenesisDoc::from_json(&text)?;
            let (header, _) = cachet_contracts::genesis_state(&doc)?;
            println!("chain id     {}", doc.chain_id);
            println!("agencies     {}", doc.agencies.len());
            println!("validators   {}", doc.validators.len());
            println!("state root   {}", header.state_root);
            println!("genesis hash {}", header.hash());
            Ok(())
        }
        Command::Fingerprint {
            file,
            alg,
            salt,
            kind,
        } => {
            let alg = match alg {
                Alg::Sha256 => FingerprintAlg::Sha256,
                Alg::Blake3 => FingerprintAlg::Blake3,
            };
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let fp = Fingerprint::of_reader(alg, std::io::BufReader::new(f))?;
            println!("fingerprint {}", fp.digest);
            if let Some(salt) = salt {
                let salt = Salt(salt.parse().context("salt must be 64 hex characters")?);
                let c = Commitment::new(&fp, &salt);
                println!("commitment  {}", c.0);
                println!("id          {}", CertId::derive(kind, &c));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every command's arguments are well formed (unique names, valid requirements): clap
    /// checks this only when a command is parsed, so a bad one would fail its first user.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
