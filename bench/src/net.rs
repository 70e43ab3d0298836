//! The devnet under load, as the bench sees it: its nodes (RPC, pid, data directory), the
//! issuing agencies the bench signs for, and the committed transactions the block subscription
//! reports, with the time each was seen.

use super::probe;
use anyhow::{Context, Result, bail};
use cachet_chain::crypto::SecretKey;
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{AgencyId, CertKind, ChainId, Height};
use cachet_chain::receipt::{Receipt, verify};
use cachet_chain::state::Name;
use cachet_chain::trust::Trust;
use cachet_chain::tx::{Action, AgencyRegistration, Transaction, TxBody, TxId};
use cachet_chain::verdict::Verdict;
use cachet_client::Client;
use cachet_contracts::example;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One node process of the devnet.
pub struct NodeProc {
    /// Its JSON-RPC URL.
    pub rpc: String,
    /// Its process id.
    pub pid: u64,
    /// Its data directory.
    pub home: PathBuf,
}

/// An issuing agency the bench signs for, with its next nonce.
pub struct Agency {
    id: AgencyId,
    key: SecretKey,
    nonce: u64,
}

impl Agency {
    fn new(id: &str, key: SecretKey, nonce: u64) -> Result<Agency> {
        Ok(Agency {
            id: AgencyId::new(id)?,
            key,
            nonce,
        })
    }
}

/// Samples of every node's resident memory: `(seconds since the start, MiB per node)`.
pub type RssTimeline = Arc<Mutex<Vec<(u64, Vec<u64>)>>>;

/// Committed transaction ids and when the subscription saw them.
pub type Committed = Arc<Mutex<HashMap<TxId, Instant>>>;

/// The devnet and the bench's accounts on it.
pub struct Net {
    /// The node processes.
    pub nodes: Vec<NodeProc>,
    /// One RPC client per node.
    pub clients: Vec<Client>,
    /// The genesis file (the verifier's trust root).
    pub genesis: PathBuf,
    chain: ChainId,
    agencies: Vec<Agency>,
    next_agency: usize,
    next_client: usize,
    /// Every transaction committed since the bench subscribed.
    pub committed: Committed,
    retry: Vec<Transaction>,
    /// How many transactions were committed when the waiting ones were last resubmitted.
    retried_at: usize,
    retried: usize,
    refused: usize,
    first_refusal: Option<String>,
    /// Resident memory of every node, sampled every few seconds: `(seconds, MiB per node)`.
    pub rss_timeline: RssTimeline,
}

/// Refusals that pass: the mempool is full (2001), the nonce is too far ahead (1107).
const RETRY_CODES: [u64; 2] = [2001, 1107];

/// The RPC's code for an agency the chain does not know.
const UNKNOWN_AGENCY: i32 = 1103;

/// The longest the bench waits for the devnet it started.
const DEVNET_START: Duration = Duration::from_secs(600);

/// How often the bench samples the nodes' resident memory.
const RSS_EVERY: Duration = Duration::from_secs(10);

/// Lock a mutex even if a panicking holder poisoned it (the data is plain counters).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Net {
    /// Wait for the devnet in `dir` to be up (`devnet`: the process the bench started, if it
    /// did), then register `agencies` issuing agencies (accredited by the DGPA for reward
    /// orders) and subscribe to committed blocks. A devnet that exits instead is reported with
    /// the end of its output.
    pub async fn connect(
        dir: &Path,
        agencies: usize,
        mut devnet: Option<&mut Child>,
    ) -> Result<Net> {
        let manifest = dir.join("devnet.json");
        if devnet.is_none() && !manifest.exists() {
            bail!(
                "{} has no devnet.json: is a devnet running there (`cachet devnet --dir {}`)?",
                dir.display(),
                dir.display()
            );
        }
        let start = Instant::now();
        while !manifest.exists() {
            if let Some(status) = devnet.as_mut().map(|d| d.try_wait()).transpose()?.flatten() {
                let log = dir.join("devnet.log");
                bail!(
                    "the devnet exited ({status}) before it was up; the end of {}:\n{}",
                    log.display(),
                    log_tail(&log, 80)
                );
            }
            // The devnet bounds its own start (nodes serving, then a check anchor on each);
            // this only guards against a devnet that hangs.
            if start.elapsed() > DEVNET_START {
                bail!("the devnet did not start within {DEVNET_START:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest)?)?;
        let nodes: Vec<NodeProc> = m["nodes"]
            .as_array()
            .context("nodes")?
            .iter()
            .map(|n| NodeProc {
                rpc: n["rpc"].as_str().unwrap_or_default().to_string(),
                pid: n["pid"].as_u64().unwrap_or(0),
                home: PathBuf::from(n["home"].as_str().unwrap_or_default()),
            })
            .collect();
        let clients: Vec<Client> = nodes
            .iter()
            .map(|n| Client::new(&n.rpc))
            .collect::<Result<_, _>>()?;
        let status = clients[0].status().await?;
        let chain: ChainId = status["chain_id"].as_str().unwrap_or_default().parse()?;
        let committed = subscribe(&nodes[0].rpc).await?;
        let rss_timeline: RssTimeline = Arc::default();
        {
            let pids: Vec<u64> = nodes.iter().map(|n| n.pid).collect();
            let timeline = rss_timeline.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                loop {
                    let sample = pids.iter().map(|p| probe::rss_mb(*p)).collect();
                    lock(&timeline).push((start.elapsed().as_secs(), sample));
                    tokio::time::sleep(RSS_EVERY).await;
                }
            });
        }
        let mut net = Net {
            retry: Vec::new(),
            retried_at: 0,
            retried: 0,
            refused: 0,
            first_refusal: None,
            rss_timeline,
            genesis: PathBuf::from(m["genesis"].as_str().context("genesis")?),
            nodes,
            clients,
            chain,
            agencies: Vec::new(),
            next_agency: 0,
            next_client: 0,
            committed,
        };
        net.register(agencies).await?;
        Ok(net)
    }

    async fn register(&mut self, count: usize) -> Result<()> {
        let dgpa_nonce = self.clients[0]
            .call("cachet_agency", vec![json!("dgpa-personnel")])
            .await?["next_nonce"]
            .as_u64()
            .unwrap_or(0);
        let mut dgpa = Agency::new(
            "dgpa-personnel",
            example::agency_key("dgpa-personnel"),
            dgpa_nonce,
        )?;
        let mut setup = Vec::new();
        for i in 0..count {
            let id = format!("bench-agency-{i}");
            // On a saved chain the agency may be registered already: go on from its nonce.
            if let Some(nonce) = self.agency_nonce(&id).await? {
                self.agencies
                    .push(Agency::new(&id, SecretKey::dev(&id), nonce)?);
                continue;
            }
            let agency = Agency::new(&id, SecretKey::dev(&id), 0)?;
            let action = Action::Accredit {
                kind: CertKind::RewardOrder,
                agency: agency.id.clone(),
                registration: Some(AgencyRegistration {
                    name: Name::new(id).expect("valid name"),
                    key: agency.key.public(),
                }),
            };
            setup.push(sign(&self.chain, &mut dgpa, action));
            self.agencies.push(agency);
        }
        if setup.is_empty() {
            return Ok(());
        }
        let accepted = submit(&self.clients[0], &setup)
            .await?
            .iter()
            .filter(|r| r.is_none())
            .count();
        if accepted != setup.len() {
            bail!(
                "only {accepted} of {} agency registrations were accepted",
                setup.len()
            );
        }
        // Every node must know the agencies before the load is spread over them: a node a height
        // behind refuses their anchors as `unknown_agency`, a refusal that is final, and the
        // nonce gap it leaves held back everything those agencies signed after it (a test run
        // finalized nothing after its first step).
        let last = setup.last().context("no agencies")?.id();
        for client in &self.clients {
            client
                .wait_committed(&last, Duration::from_secs(60))
                .await?;
        }
        Ok(())
    }

    /// The next nonce of agency `id`, or `None` if the chain does not know it.
    async fn agency_nonce(&self, id: &str) -> Result<Option<u64>> {
        match self.clients[0].call("cachet_agency", vec![json!(id)]).await {
            Ok(record) => Ok(Some(
                record["next_nonce"].as_u64().context("agency next_nonce")?,
            )),
            Err(e) if e.refused().is_some_and(|r| r.code == UNKNOWN_AGENCY) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `action`, signed by the next bench agency in turn.
    pub fn signed(&mut self, action: Action) -> Transaction {
        let i = self.next_agency % self.agencies.len();
        self.next_agency += 1;
        sign(&self.chain, &mut self.agencies[i], action)
    }

    /// Submit `txs` in chunks, spreading the chunks over the nodes in `targets` in turn, after
    /// the transactions waiting to be retried. A transaction refused for a passing reason (the
    /// mempool is full, or its nonce is too far ahead of the committed one) is kept and
    /// resubmitted as it was, as an issuer would: skipping it would leave a nonce gap that
    /// holds back everything its agency signs after it. Returns how many were accepted.
    ///
    /// Like an issuer, the bench backs off: what waits is resubmitted only once something was
    /// committed since the last try, since only a commit frees mempool room or moves a nonce
    /// window. (Resubmitting every tick made a backlog cost each node a decode and a state
    /// lookup per waiting transaction ten times a second.)
    pub async fn submit(&mut self, txs: &[Transaction], targets: &[usize]) -> Result<usize> {
        let committed = self.committed_count();
        let mut all = if committed != self.retried_at {
            self.retried_at = committed;
            std::mem::take(&mut self.retry)
        } else {
            Vec::new()
        };
        all.extend_from_slice(txs);
        let mut accepted = 0;
        for chunk in all.chunks(1000) {
            let node = targets[self.next_client % targets.len()];
            self.next_client += 1;
            let codes = submit(&self.clients[node], chunk).await?;
            for (tx, code) in chunk.iter().zip(codes) {
                match code {
                    None => accepted += 1,
                    Some(code) if RETRY_CODES.contains(&code) => {
                        self.retried += 1;
                        self.retry.push(tx.clone());
                    }
                    Some(code) => {
                        self.refused += 1;
                        if self.first_refusal.is_none() {
                            self.first_refusal = Some(format!("{} refused: {code}", tx.id()));
                        }
                    }
                }
            }
        }
        Ok(accepted)
    }

    /// Transactions waiting to be resubmitted.
    pub fn retry_len(&self) -> usize {
        self.retry.len()
    }

    /// What was refused, for the report: resubmissions, final refusals and the first of them.
    pub fn refusals(&self) -> Value {
        json!({
            "resubmitted": self.retried,
            "refused": self.refused,
            "first_refusal": self.first_refusal,
        })
    }

    /// Every node, as submission targets.
    pub fn all_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len()).collect()
    }

    /// How many transactions the subscription has seen committed.
    pub fn committed_count(&self) -> usize {
        lock(&self.committed).len()
    }

    /// Transactions waiting in all mempools.
    pub async fn waiting(&self) -> u64 {
        let mut waiting = 0;
        for c in &self.clients {
            waiting += c
                .status()
                .await
                .ok()
                .and_then(|s| s["mempool"].as_u64())
                .unwrap_or(0);
        }
        waiting
    }

    /// Wait (at most a minute) until no transaction waits to be resubmitted and the mempools
    /// hold fewer than `below`.
    pub async fn drain(&mut self, below: u64) -> Result<()> {
        let start = Instant::now();
        let targets = self.all_nodes();
        while start.elapsed() < Duration::from_secs(60) {
            if !self.retry.is_empty() {
                self.submit(&[], &targets).await?;
            } else if self.waiting().await < below {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// The verifier's trust root: this devnet's genesis.
    pub fn trust(&self) -> Result<Trust> {
        let doc = GenesisDoc::from_json(&std::fs::read_to_string(&self.genesis)?)?;
        Ok(Trust::from_genesis(&doc)?)
    }

    /// Verify an encoded receipt as a verifier would, now, and insist it says `valid`.
    pub fn check_valid(trust: &Trust, receipt: &[u8]) -> Result<()> {
        let verified = verify(&Receipt::decode(receipt)?, trust, now(), None)?;
        if verified.verdict != Verdict::Valid {
            bail!("the receipt for {} says {}", verified.id, verified.verdict);
        }
        Ok(())
    }

    /// CPU ticks used so far by all node processes together.
    pub fn cpu_ticks(&self) -> u64 {
        self.nodes.iter().map(|n| probe::cpu_ticks(n.pid)).sum()
    }

    /// Bytes on disk under all node data directories.
    pub fn disk_bytes(&self) -> u64 {
        self.nodes.iter().map(|n| probe::dir_bytes(&n.home)).sum()
    }

    /// Table and memtable bytes per column family, summed over the nodes (see
    /// [`probe::store_bytes`]); empty when a node does not answer.
    pub async fn store_bytes(&self) -> BTreeMap<String, u64> {
        let mut sum = BTreeMap::new();
        for node in &self.nodes {
            match probe::store_bytes(&node.rpc).await {
                Ok(families) => {
                    for (family, bytes) in families {
                        *sum.entry(family).or_default() += bytes;
                    }
                }
                Err(_) => return BTreeMap::new(),
            }
        }
        sum
    }

    /// Resident memory of each node, in MiB.
    pub fn rss_mb(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| probe::rss_mb(n.pid)).collect()
    }
}

fn sign(chain: &ChainId, agency: &mut Agency, action: Action) -> Transaction {
    let tx = TxBody {
        chain_id: chain.clone(),
        signer: agency.id.clone(),
        key: agency.key.public(),
        nonce: agency.nonce,
        expires_at: Height(u64::MAX / 2),
        action,
    }
    .sign(&agency.key);
    agency.nonce += 1;
    tx
}

/// Submit `txs` in one `cachet_submitMany` call; returns each one's refusal code, if any.
async fn submit(client: &Client, txs: &[Transaction]) -> Result<Vec<Option<u64>>> {
    let list: Vec<Value> = txs.iter().map(|t| json!(hex::encode(t.encode()))).collect();
    let v = client
        .call("cachet_submitMany", vec![Value::Array(list)])
        .await?;
    let results = v.as_array().context("submitMany returns a list")?;
    if results.len() != txs.len() {
        bail!("submitMany answered {} of {}", results.len(), txs.len());
    }
    Ok(results
        .iter()
        .map(|r| match r.get("id") {
            Some(_) => None,
            None => Some(r["error"]["code"].as_u64().unwrap_or(0)),
        })
        .collect())
}

/// Follow committed blocks on `rpc` over WebSocket, recording when each transaction was seen.
async fn subscribe(rpc: &str) -> Result<Committed> {
    use jsonrpsee::core::client::SubscriptionClientT;
    let ws = jsonrpsee::ws_client::WsClientBuilder::default()
        .max_response_size(64 << 20)
        .build(rpc.replace("http://", "ws://"))
        .await?;
    let mut sub: jsonrpsee::core::client::Subscription<Value> = ws
        .subscribe(
            "cachet_subscribeBlocks",
            jsonrpsee::rpc_params![],
            "cachet_unsubscribeBlocks",
        )
        .await?;
    let committed: Committed = Arc::default();
    let seen = committed.clone();
    tokio::spawn(async move {
        let _ws = ws;
        while let Some(Ok(block)) = sub.next().await {
            let now = Instant::now();
            let mut s = lock(&seen);
            // A transaction refused in its block was not carried out: it is not counted.
            let refused: Vec<u64> = block["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["index"].as_u64())
                .collect();
            let txs = block["txs"].as_array().into_iter().flatten().enumerate();
            for (_, id) in txs.filter(|(i, _)| !refused.contains(&(*i as u64))) {
                if let Some(Ok(id)) = id.as_str().map(str::parse::<Hash32>) {
                    s.insert(TxId(id), now);
                }
            }
        }
    });
    Ok(committed)
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// This machine's clock, as a chain timestamp: the time a verifier checks a receipt at.
pub(crate) fn now() -> cachet_chain::ids::Timestamp {
    cachet_chain::ids::Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}
