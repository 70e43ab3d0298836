//! `cachet devnet`: the embedded default. A consortium of the example agencies on 127.0.0.1,
//! one `cachet start` process per validator, with a generated genesis, development keys and
//! configs under a directory it prints; it runs until SIGINT or SIGTERM and then stops every
//! node it started. While it runs, `devnet.json` there lists its nodes. Run it again on the
//! same directory to restart the same chain; each node keeps the tuning sections of its
//! `config.toml` (consensus, mempool, storage).
//!
//! With `--no-start --hosts`, it only writes the same consortium for nodes that each have an
//! address of their own (containers: see `docker/`), on fixed ports. Configs name their files
//! relative to their own directory either way, so the directory can be mounted anywhere.

use anyhow::{Context, Result, bail};
use cachet_chain::crypto::SecretKey;
use cachet_chain::genesis::{GenesisAgency, GenesisDoc};
use cachet_chain::ids::{AgencyId, ChainId, Timestamp};
use cachet_chain::state::{Name, Validator};
use cachet_client::Client;
use cachet_contracts::example;
use cachet_keys::file as keyfile;
use cachet_node::config::{NodeConfig, P2p, Rpc};
use cachet_node::store::TreePlacement;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct NodePlan {
    name: String,
    dir: PathBuf,
    /// Its identity on the networks: its validator key, or its own node key (`node.key` in its
    /// directory) when it has one, as a node whose validator key is in an HSM must.
    key: SecretKey,
    /// The address its peers dial, and its consensus and gossip listen on.
    host: IpAddr,
    /// The address its RPC listens on.
    rpc_listen: IpAddr,
    p2p: u16,
    gossip: u16,
    rpc: u16,
}

/// A node's own network key, in its directory, when it has one.
const NODE_KEY: &str = "node.key";

/// The ports of a node with an address of its own (`--hosts`).
const HOST_P2P_PORT: u16 = 27000;
const HOST_GOSSIP_PORT: u16 = 28000;
const HOST_RPC_PORT: u16 = 26657;
/// Its operator methods, on its own loopback.
const HOST_ADMIN_PORT: u16 = 26658;

/// Where the nodes of a devnet are reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// All on 127.0.0.1, each on free ports of its own.
    Loopback,
    /// Node `i` (validators, then spares) at `hosts[i]` on fixed ports: consensus and gossip
    /// listen on that address alone, so that they only ever use the network it is on; the RPC
    /// on every interface (a container's access network).
    Hosts(Vec<IpAddr>),
}

impl NodePlan {
    /// A node with its development key file written, reached at the `i`-th of `addresses`.
    fn new(
        name: String,
        dir: PathBuf,
        key: SecretKey,
        addresses: &Addresses,
        i: usize,
        ports: &mut Ports,
    ) -> Result<NodePlan> {
        let key_path = dir.join("validator.key");
        if !key_path.exists() {
            keyfile::write(
                &key_path,
                &key,
                None,
                Some("development validator key: INSECURE".into()),
                None,
            )?;
        }
        let node_key = dir.join(NODE_KEY);
        let key = if node_key.exists() {
            keyfile::read(&node_key)?
        } else {
            key
        };
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Ok(match addresses {
            Addresses::Loopback => NodePlan {
                name,
                dir,
                key,
                host: loopback,
                rpc_listen: loopback,
                p2p: ports.take()?,
                gossip: ports.take()?,
                rpc: ports.take()?,
            },
            Addresses::Hosts(hosts) => NodePlan {
                host: *hosts
                    .get(i)
                    .with_context(|| format!("--hosts names no address for node {name}"))?,
                name,
                dir,
                key,
                rpc_listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                p2p: HOST_P2P_PORT,
                gossip: HOST_GOSSIP_PORT,
                rpc: HOST_RPC_PORT,
            },
        })
    }

    /// The multiaddr of TCP `port` at `ip`.
    fn multiaddr(ip: IpAddr, port: u16) -> String {
        match ip {
            IpAddr::V4(ip) => format!("/ip4/{ip}/tcp/{port}"),
            IpAddr::V6(ip) => format!("/ip6/{ip}/tcp/{port}"),
        }
    }
}

/// Free loopback ports, all distinct: each stays bound until every node has its ports, so the
/// system cannot hand the same one out twice. (Another program may still take one before the
/// node binds it; a node that cannot bind exits, and the devnet reports its log.)
#[derive(Default)]
struct Ports(Vec<std::net::TcpListener>);

impl Ports {
    fn take(&mut self) -> Result<u16> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        self.0.push(listener);
        Ok(port)
    }
}

/// Lines of a node's log quoted when the devnet cannot start.
const LOG_LINES: usize = 15;

/// A log file from byte `from` on (what one start of a node wrote to its appended log).
fn log_since(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = (from as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// At most `lines` lines of a node's log for an error message: from the last line where the
/// node says why it stopped (`Error: ...`) up to its backtrace, if it said; else the last lines.
fn log_excerpt(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    match all.iter().rposition(|l| l.starts_with("Error:")) {
        Some(at) => all[at..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("Stack backtrace:"))
            .take(lines)
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
        None => all[all.len().saturating_sub(lines)..].join("\n"),
    }
}

/// Write `contents` to `path` so that a reader that waits for `path` to exist reads it whole:
/// written beside it, then renamed over it (a rename within a directory is atomic). The
/// devnet's manifest is such a file: `cachet bench` and the test harness poll for it, and a
/// plain write let them read it empty or cut short.
fn publish(path: &Path, contents: &str) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, contents)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

fn peer_addr(key: &SecretKey, host: IpAddr, port: u16) -> Result<String> {
    let peer = cachet_node::gossip::peer_id_of(&key.public()).context("valid key")?;
    Ok(format!("{}/p2p/{peer}", NodePlan::multiaddr(host, port)))
}

/// The development genesis for `n` validators: the example consortium, with extra validator
/// agencies beyond its four.
pub fn genesis(n: usize) -> Result<GenesisDoc> {
    if n == 0 {
        bail!("a devnet needs at least one validator");
    }
    let mut doc = example::genesis();
    doc.chain_id = ChainId::new("cachet-devnet")?;
    doc.genesis_time = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
    );
    doc.validators.truncate(n);
    for i in doc.validators.len()..n {
        let id = format!("devnet-node-{}", i + 1);
        doc.agencies.push(GenesisAgency {
            id: AgencyId::new(&id)?,
            name: Name::new(format!("Devnet validator agency {}", i + 1))?,
            key: example::agency_key(&id).public(),
            accredited: vec![],
        });
        doc.validators.push(Validator {
            agency: AgencyId::new(&id)?,
            key: example::validator_key(&id).public(),
            power: 1,
        });
    }
    doc.validate()?;
    Ok(doc)
}

/// Agencies of the example that run no validator at genesis, in the order spare nodes use them.
const SPARE_AGENCIES: [&str; 3] = ["nia-immigration", "mol-labor", "guting-land-office"];

fn prepare(
    dir: &Path,
    n: usize,
    spares: usize,
    addresses: &Addresses,
    state_tree: Option<TreePlacement>,
) -> Result<(PathBuf, Vec<NodePlan>)> {
    let genesis_path = dir.join("genesis.json");
    let doc = if genesis_path.exists() {
        GenesisDoc::from_json(&std::fs::read_to_string(&genesis_path)?)?
    } else {
        let doc = genesis(n)?;
        std::fs::create_dir_all(dir.join("keys"))?;
        for a in &doc.agencies {
            let path = dir.join("keys").join(format!("{}.key", a.id));
            if !path.exists() {
                keyfile::write(
                    &path,
                    &example::agency_key(a.id.as_str()),
                    Some(a.id.clone()),
                    Some("development key: INSECURE".into()),
                    None,
                )?;
            }
        }
        std::fs::write(&genesis_path, doc.to_json() + "\n")?;
        doc
    };
    let mut plans = Vec::new();
    let mut ports = Ports::default();
    for v in &doc.validators {
        let name = v.agency.to_string();
        let node_dir = dir.join("nodes").join(&name);
        std::fs::create_dir_all(&node_dir)?;
        let key = example::validator_key(&name);
        // An operator may have moved a validator's key into an HSM (its configuration names it
        // by a pkcs11: URI, and the genesis its public key): the devnet keeps it.
        let in_token = NodeConfig::load(&node_dir.join("config.toml"))
            .is_ok_and(|c| c.validator_key_in_token());
        if key.public() != v.key && !in_token {
            bail!(
                "validator {name} in {} does not use the development key",
                genesis_path.display()
            );
        }
        let i = plans.len();
        plans.push(NodePlan::new(
            name, node_dir, key, addresses, i, &mut ports,
        )?);
    }
    let validators = plans.len();
    if spares > SPARE_AGENCIES.len() {
        bail!("at most {} spare nodes", SPARE_AGENCIES.len());
    }
    // Spare nodes: ready to join by governance; validators do not list them as peers.
    for name in &SPARE_AGENCIES[..spares] {
        let node_dir = dir.join("nodes").join(name);
        std::fs::create_dir_all(&node_dir)?;
        let i = plans.len();
        plans.push(NodePlan::new(
            name.to_string(),
            node_dir,
            example::validator_key(name),
            addresses,
            i,
            &mut ports,
        )?);
    }
    for (i, p) in plans.iter().enumerate() {
        let others: Vec<&NodePlan> = plans
            .iter()
            .enumerate()
            .filter(|(j, o)| o.name != p.name && (i >= validators || *j < validators))
            .map(|(_, o)| o)
            .collect();
        // A devnet started again on its directory keeps each node's tuning (consensus,
        // mempool, storage, health, per-client RPC limits), its key's passphrase file and a
        // validator key moved into an HSM as the operator left them; only the addresses are new.
        let config_path = p.dir.join("config.toml");
        let (consensus, mempool, mut storage, health, state_sync, passphrase, old_rpc, in_token) =
            if config_path.exists() {
                let old = NodeConfig::load(&config_path).map_err(|e| anyhow::anyhow!("{e:#}"))?;
                let in_token = old
                    .validator_key_in_token()
                    .then(|| old.validator_key.clone());
                let passphrase = old.validator_key_passphrase_file;
                let rpc = Some(old.rpc);
                (
                    old.consensus,
                    old.mempool,
                    old.storage,
                    old.health,
                    old.state_sync,
                    passphrase,
                    rpc,
                    in_token,
                )
            } else {
                Default::default()
            };
        if let Some(placement) = state_tree {
            storage.state_tree = placement;
        }
        // Paths relative to the node's directory (`dir/nodes/<name>/`), which `NodeConfig::load`
        // resolves: the devnet's directory works wherever it is mounted.
        let config = NodeConfig {
            moniker: p.name.clone(),
            home: PathBuf::from("."),
            genesis: PathBuf::from("../../genesis.json"),
            validator_key: in_token.unwrap_or_else(|| PathBuf::from("validator.key")),
            node_key: p
                .dir
                .join(NODE_KEY)
                .exists()
                .then(|| PathBuf::from(NODE_KEY)),
            validator_key_passphrase_file: passphrase,
            p2p: P2p {
                listen: NodePlan::multiaddr(p.host, p.p2p),
                peers: others
                    .iter()
                    .map(|o| peer_addr(&o.key, o.host, o.p2p))
                    .collect::<Result<_>>()?,
            },
            gossip: P2p {
                listen: NodePlan::multiaddr(p.host, p.gossip),
                peers: others
                    .iter()
                    .map(|o| peer_addr(&o.key, o.host, o.gossip))
                    .collect::<Result<_>>()?,
            },
            rpc: Rpc {
                listen: std::net::SocketAddr::new(p.rpc_listen, p.rpc),
                // A node with an address of its own serves its RPC off loopback, where the
                // operator methods are off: they get a loopback listener of their own.
                admin_listen: (!p.rpc_listen.is_loopback()).then(|| {
                    std::net::SocketAddr::new(Ipv4Addr::LOCALHOST.into(), HOST_ADMIN_PORT)
                }),
                operator_token_file: None,
                // The bench's verification phase is one client asking as fast as it can: a
                // devnet measures capacity, so its nodes do not limit a client's reads unless
                // their configuration already did.
                reads_per_second_per_client: old_rpc
                    .as_ref()
                    .map_or(0, |r| r.reads_per_second_per_client),
                read_burst_per_client: old_rpc
                    .as_ref()
                    .map_or(Rpc::default().read_burst_per_client, |r| {
                        r.read_burst_per_client
                    }),
                connections_per_client: old_rpc
                    .as_ref()
                    .map_or(Rpc::default().connections_per_client, |r| {
                        r.connections_per_client
                    }),
                ..Rpc::default()
            },
            consensus,
            mempool,
            storage,
            health,
            state_sync,
            byzantine: None,
        };
        std::fs::write(&config_path, toml::to_string_pretty(&config)?)?;
        if i >= validators {
            // What the consortium's operators pass to `cachet add-peer` to let a spare in.
            let peer = serde_json::json!({
                "p2p": peer_addr(&p.key, p.host, p.p2p)?,
                "gossip": peer_addr(&p.key, p.host, p.gossip)?,
            });
            std::fs::write(
                p.dir.join("peer.json"),
                serde_json::to_string_pretty(&peer)?,
            )?;
        }
    }
    Ok((genesis_path, plans))
}

fn terminate(children: &mut [(String, Child)]) {
    for (_, c) in children.iter_mut() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (_, c) in children.iter_mut() {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Anchor one document through the first node and check that every node finalized the same
/// certificate and state: the consortium works end to end.
async fn smoke_check(dir: &Path, plans: &[NodePlan]) -> Result<()> {
    let doc = dir.join("welcome.txt");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    std::fs::write(&doc, format!("Cachet devnet check, {stamp}\n"))?;
    let first = Client::new(&format!("http://127.0.0.1:{}", plans[0].rpc))?;
    let key = dir.join("keys").join("moi-land.key");
    let signer = crate::issuer::Signer::load(&key.to_string_lossy(), None)?;
    let fp =
        cachet_chain::Fingerprint::of(cachet_chain::FingerprintAlg::Sha256, &std::fs::read(&doc)?);
    let commitment = cachet_chain::Commitment::new(&fp, &cachet_chain::Salt::random());
    let issuance = cachet_chain::tx::Issuance {
        kind: cachet_chain::CertKind::LandTitle,
        commitment,
        valid_from: None,
        valid_until: None,
        terms: cachet_chain::tx::Terms::LandTitle {
            parcel: cachet_chain::Domain::Commitment.hash(b"devnet check parcel"),
        },
    };
    let id = issuance.cert_id();
    let (_, height) = signer
        .send(&first, cachet_chain::Action::Issue(issuance))
        .await?;
    for p in plans {
        let client = Client::new(&format!("http://127.0.0.1:{}", p.rpc))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match client
                .call("cachet_certificate", vec![json!(id.to_string())])
                .await
            {
                Ok(record) if record["issued_at"] == json!(height) => break,
                _ if Instant::now() > deadline => {
                    bail!("node {} did not finalize the check certificate", p.name)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    println!(
        "check: anchored a land title at height {height}; all {} nodes hold it",
        plans.len()
    );
    Ok(())
}

/// How many times the nodes are started on fresh ports before the devnet gives up.
const LAUNCH_ATTEMPTS: usize = 3;

/// Why the nodes did not all come up.
enum Launch {
    /// A node could not bind one of its ports: another program took it after it was found free.
    PortTaken(String),
    /// Anything else, with the failing node's log quoted.
    Failed(anyhow::Error),
}

/// Start every planned node and wait until each serves RPC; on failure, none is left running.
async fn launch(
    exe: &Path,
    plans: &[NodePlan],
) -> std::result::Result<Vec<(String, Child)>, Launch> {
    let mut children: Vec<(String, Child)> = Vec::new();
    // Where this start's lines begin in each (appended) log.
    let mut log_starts = Vec::new();
    for p in plans {
        let spawned = (|| -> Result<(u64, Child)> {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p.dir.join("node.log"))?;
            let start = log.metadata()?.len();
            let child = Command::new(exe)
                .args(["start", "--config"])
                .arg(p.dir.join("config.toml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start node {}", p.name))?;
            Ok((start, child))
        })();
        match spawned {
            Ok((start, child)) => {
                log_starts.push(start);
                children.push((p.name.clone(), child));
            }
            Err(e) => {
                terminate(&mut children);
                return Err(Launch::Failed(e));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    for (i, p) in plans.iter().enumerate() {
        let client = Client::new(&format!("http://127.0.0.1:{}", p.rpc))
            .map_err(|e| Launch::Failed(e.into()))?;
        loop {
            if client.status().await.is_ok() {
                break;
            }
            let log = p.dir.join("node.log");
            if let Some((name, c)) = children.iter_mut().find(|(n, _)| *n == p.name)
                && let Ok(Some(status)) = c.try_wait()
            {
                let name = name.clone();
                terminate(&mut children);
                let this_start = log_since(&log, log_starts[i]);
                if this_start.contains(ADDRESS_IN_USE) {
                    return Err(Launch::PortTaken(name));
                }
                return Err(Launch::Failed(anyhow::anyhow!(
                    "node {name} exited ({status}); the end of {}:\n{}",
                    log.display(),
                    log_excerpt(&this_start, LOG_LINES)
                )));
            }
            if Instant::now() > deadline {
                terminate(&mut children);
                return Err(Launch::Failed(anyhow::anyhow!(
                    "node {} did not serve RPC in time; the end of {}:\n{}",
                    p.name,
                    log.display(),
                    log_excerpt(&log_since(&log, log_starts[i]), LOG_LINES)
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(children)
}

/// How the operating system words a bind to a port in use (`EADDRINUSE`), as Rust prints it.
const ADDRESS_IN_USE: &str = "Address already in use";

/// Run the devnet until a signal (or, without `start`, only write its files, spare nodes too).
pub async fn run(
    dir: &Path,
    validators: usize,
    spares: usize,
    start: bool,
    addresses: &Addresses,
    state_tree: Option<TreePlacement>,
) -> Result<()> {
    if start && *addresses != Addresses::Loopback {
        bail!(
            "--hosts writes a consortium for other machines or containers: use it with --no-start"
        );
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let (genesis_path, mut plans) = prepare(&dir, validators, spares, addresses, state_tree)?;
    if !start {
        for p in &plans {
            println!("{}", p.dir.join("config.toml").display());
        }
        return Ok(());
    }
    plans.truncate(plans.len() - spares);
    let exe = std::env::current_exe()?;
    // A port found free may be taken by another program before the node binds it; the nodes
    // are then started again on ports found anew, a bounded number of times.
    let mut attempt = 1;
    let mut children = loop {
        match launch(&exe, &plans).await {
            Ok(children) => break children,
            Err(Launch::PortTaken(name)) if attempt < LAUNCH_ATTEMPTS => {
                eprintln!("node {name} found a port taken; starting the nodes on other ports");
                attempt += 1;
                let (_, again) = prepare(&dir, validators, spares, addresses, state_tree)?;
                plans = again;
                plans.truncate(plans.len() - spares);
            }
            Err(Launch::PortTaken(name)) => {
                bail!("node {name} found a port taken {LAUNCH_ATTEMPTS} times; see its node.log")
            }
            Err(Launch::Failed(e)) => return Err(e),
        }
    };
    if let Err(e) = smoke_check(&dir, &plans).await {
        terminate(&mut children);
        let logs: Vec<String> = plans
            .iter()
            .map(|p| {
                let log = p.dir.join("node.log");
                format!(
                    "the end of {}:\n{}",
                    log.display(),
                    log_excerpt(&log_since(&log, 0), LOG_LINES)
                )
            })
            .collect();
        bail!("{e:#}\n{}", logs.join("\n"));
    }
    let doc = GenesisDoc::from_json(&std::fs::read_to_string(&genesis_path)?)?;
    let manifest = json!({
        "genesis": genesis_path,
        "nodes": plans.iter().zip(&children).map(|(p, (_, c))| json!({
            "name": p.name,
            "rpc": format!("http://127.0.0.1:{}", p.rpc),
            "pid": c.id(),
            "home": p.dir,
            "log": p.dir.join("node.log"),
        })).collect::<Vec<_>>(),
        "agencies": doc.agencies.iter().map(|a| json!({
            "name": a.id,
            "kinds": a.accredited,
            "key": dir.join("keys").join(format!("{}.key", a.id)),
        })).collect::<Vec<_>>(),
    });
    let manifest_path = dir.join("devnet.json");
    publish(
        &manifest_path,
        &(serde_json::to_string_pretty(&manifest)? + "\n"),
    )?;
    println!(
        "Cachet devnet: {} validators of chain {} on 127.0.0.1",
        plans.len(),
        doc.chain_id
    );
    println!("  directory  {}", dir.display());
    for p in &plans {
        println!(
            "  {:<18} rpc http://127.0.0.1:{}  log {}",
            p.name,
            p.rpc,
            p.dir.join("node.log").display()
        );
    }
    println!(
        "  agency keys (development, INSECURE) in {}",
        dir.join("keys").display()
    );
    println!("Press Ctrl-C to stop.");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                for (name, c) in children.iter_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        eprintln!("node {name} exited ({status}); stopping the devnet");
                        let name = name.clone();
                        terminate(&mut children);
                        let _ = std::fs::remove_file(&manifest_path);
                        bail!("node {name} exited");
                    }
                }
            }
        }
    }
    println!("stopping {} nodes", children.len());
    terminate(&mut children);
    // The manifest describes a running devnet (`bench --target` and scripts read it).
    let _ = std::fs::remove_file(&manifest_path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_log_is_quoted_from_where_the_node_says_why_it_stopped() {
        let log = "starting\nlistening\nError: cannot listen on 127.0.0.1:4: Address already in use (os error 98)\n\nStack backtrace:\n   0: anyhow::error\n   1: main\n";
        let quoted = log_excerpt(log, 15);
        assert!(quoted.starts_with("Error: cannot listen"), "{quoted}");
        assert!(quoted.contains(ADDRESS_IN_USE));
        assert!(!quoted.contains("anyhow::error"), "{quoted}");
        // Without such a line: the last lines.
        let plain: String = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(log_excerpt(&plain, 3), "line 37\nline 38\nline 39");
    }

    #[test]
    fn a_published_file_is_read_whole_by_whoever_waits_for_it() {
        let dir = std::env::temp_dir().join(format!("cachet-publish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Large enough that a plain write is seen half done by a reader polling for the file.
        let contents = "x".repeat(8 << 20);
        for round in 0..8 {
            let path = dir.join(format!("manifest-{round}.json"));
            let reader = {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Bounded, so that a publish that never creates the file fails the test
                    // rather than hanging it.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !path.exists() {
                        assert!(
                            Instant::now() < deadline,
                            "{} never appeared",
                            path.display()
                        );
                        std::hint::spin_loop();
                    }
                    std::fs::read_to_string(&path).unwrap().len()
                })
            };
            publish(&path, &contents).unwrap();
            assert_eq!(reader.join().unwrap(), contents.len(), "round {round}");
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 8, "no partial files left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_devnet_prepared_again_keeps_each_nodes_tuning_and_takes_new_ports() {
        let dir = std::env::temp_dir().join(format!("cachet-devnet-tuning-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (_, plans) = prepare(&dir, 4, 0, &Addresses::Loopback, None).unwrap();
        let path = plans[0].dir.join("config.toml");
        let mut config = NodeConfig::load(&path).unwrap();
        config.storage.cached_nodes = Some(1_234_567);
        config.consensus.timeout_propose_ms += 1;
        std::fs::write(&path, toml::to_string_pretty(&config).unwrap()).unwrap();

        let (_, plans) = prepare(&dir, 4, 0, &Addresses::Loopback, None).unwrap();
        let again = NodeConfig::load(&plans[0].dir.join("config.toml")).unwrap();
        assert_eq!(again.storage.cached_nodes, Some(1_234_567));
        assert_eq!(
            again.consensus.timeout_propose_ms,
            config.consensus.timeout_propose_ms
        );
        // Another node, untouched, keeps the defaults.
        let other = NodeConfig::load(&plans[1].dir.join("config.toml")).unwrap();
        assert_eq!(other.storage.cached_nodes, None);
        assert_eq!(
            other.storage.cache_sizes().unwrap().nodes,
            cachet_node::store::DEFAULT_CACHED_NODES
        );
        // Addresses are the new run's own.
        assert_eq!(again.rpc.listen.port(), plans[0].rpc);
        // Where the tree is kept can be chosen for every node, and the rest stays.
        let (_, plans) = prepare(
            &dir,
            4,
            0,
            &Addresses::Loopback,
            Some(TreePlacement::Memory),
        )
        .unwrap();
        for plan in &plans {
            let config = NodeConfig::load(&plan.dir.join("config.toml")).unwrap();
            assert_eq!(
                config.storage.state_tree,
                TreePlacement::Memory,
                "{}",
                plan.name
            );
        }
        let again = NodeConfig::load(&plans[0].dir.join("config.toml")).unwrap();
        assert_eq!(again.storage.cached_nodes, Some(1_234_567));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_devnet_for_hosts_dials_each_host_at_its_address_and_can_be_moved() {
        let dir = std::env::temp_dir().join(format!("cachet-devnet-hosts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let hosts: Vec<IpAddr> = (11..16)
            .map(|i| format!("172.28.0.{i}").parse().unwrap())
            .collect();
        let addresses = Addresses::Hosts(hosts.clone());
        let (_, plans) = prepare(&dir, 4, 1, &addresses, None).unwrap();
        assert_eq!(plans.len(), 5);

        // Moved elsewhere, as a container mounts it, every file is still found.
        let moved = dir.with_extension("moved");
        let _ = std::fs::remove_dir_all(&moved);
        std::fs::rename(&dir, &moved).unwrap();
        for (i, plan) in plans.iter().enumerate() {
            let path = moved.join("nodes").join(&plan.name).join("config.toml");
            let config = NodeConfig::load(&path).unwrap();
            assert!(config.genesis.exists() && config.validator_key.exists());
            assert_eq!(config.home, path.parent().unwrap().join("."));
            assert_eq!(config.p2p.listen, format!("/ip4/{}/tcp/27000", hosts[i]));
            assert_eq!(config.gossip.listen, format!("/ip4/{}/tcp/28000", hosts[i]));
            assert_eq!(config.rpc.listen, "0.0.0.0:26657".parse().unwrap());
            assert_eq!(
                config.rpc.admin_listen,
                Some("127.0.0.1:26658".parse().unwrap())
            );
            // Each other node at its own host; validators do not dial the spare.
            let dialled: Vec<&str> = config
                .p2p
                .peers
                .iter()
                .map(|p| p.split("/tcp/").next().unwrap())
                .collect();
            let expected: Vec<String> = hosts
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i && (i == 4 || *j < 4))
                .map(|(_, h)| format!("/ip4/{h}"))
                .collect();
            assert_eq!(dialled, expected, "node {i}");
            assert!(config.gossip.peers[0].contains("/tcp/28000/p2p/"));
        }
        // Fewer addresses than nodes is an error, not a node without one.
        let short = Addresses::Hosts(hosts[..3].to_vec());
        let error = prepare(&moved, 4, 0, &short, None)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("--hosts"), "{error}");
        std::fs::remove_dir_all(&moved).unwrap();
    }
}
