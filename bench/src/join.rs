//! The join phase: how long a new node takes to join the devnet as it stands (after a fill,
//! say), from a snapshot and by replaying every block, in one run.
//!
//! Governance first makes the devnet's spare node a validator (moi-land proposes, two more
//! validator agencies vote), so that four of the five validators run and the new one is
//! awaited. Every validator is asked for a snapshot a few heights ahead
//! (`cachet_admin_snapshot`); once all four hold it, the spare is let in and started with no
//! database and `state_sync.enable`, timed until it serves its RPC (the join is done, the
//! store whole and checked), until it has committed the head the validators had when it
//! started, and until it signs its first vote (`cachet_votes_signed_total`). Then its database
//! and consensus log are removed and it starts again without state sync, replaying from
//! genesis, timed to the same points. The bytes it fetched come from its log.
//!
//! What it is not: a test that the joined state is right (the cluster test
//! `a_new_node_joins_from_a_snapshot_though_most_peers_send_bad_chunks` checks that; a joining
//! node checks every chunk and the store's root itself).

use crate::net::Net;
use crate::probe::milli;
use anyhow::{Context, Result, bail};
use cachet_chain::tx::GovernanceChange;
use cachet_chain::{Action, AgencyId, ChainId, Height, Transaction, TxBody};
use cachet_client::Client;
use cachet_contracts::example;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Heights ahead of the head the snapshot is asked for: every validator gets the request
/// before it commits that height.
const AHEAD: u64 = 5;

/// The home of a spare node among the devnet's `nodes`.
fn spare(nodes: &Path) -> Result<PathBuf> {
    let mut spares: Vec<PathBuf> = std::fs::read_dir(nodes)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("peer.json").exists())
        .collect();
    spares.sort();
    spares
        .into_iter()
        .next()
        .context("the devnet has no spare node (cachet devnet --spares 1)")
}

/// Set `key` of `[section]` in the node config at `config`.
pub(crate) fn configure(
    config: &Path,
    section: &str,
    key: &str,
    value: impl Into<toml::Value>,
) -> Result<()> {
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(config)?)?;
    table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .with_context(|| format!("[{section}] is not a table"))?
        .insert(key.into(), value.into());
    std::fs::write(config, toml::to_string_pretty(&table)?)?;
    Ok(())
}

fn set_state_sync(config: &Path, enable: bool) -> Result<()> {
    configure(config, "state_sync", "enable", enable)
}

/// The operators of `validators` let the spare at `home` in (its addresses in `peer.json`).
pub(crate) async fn admit(validators: &[Client], home: &Path) -> Result<()> {
    let peer: Value = serde_json::from_str(&std::fs::read_to_string(home.join("peer.json"))?)?;
    for v in validators {
        v.call(
            "cachet_admin_addPeer",
            vec![peer["p2p"].clone(), peer["gossip"].clone()],
        )
        .await?;
    }
    Ok(())
}

/// The RPC address of the node whose config is at `config`.
pub(crate) fn rpc_of(config: &Path) -> Result<String> {
    Ok(
        toml::from_str::<toml::Table>(&std::fs::read_to_string(config)?)?["rpc"]["listen"]
            .as_str()
            .context("rpc.listen")?
            .to_string(),
    )
}

/// Start the node at `home`, logging to `log`.
pub(crate) fn start(home: &Path, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log)?;
    Ok(Command::new(std::env::current_exe()?)
        .args(["start", "--config"])
        .arg(home.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?)
}

pub(crate) async fn height(client: &Client) -> Option<u64> {
    client.status().await.ok()?["height"].as_u64()
}

/// `agency`'s next transaction, `action`, signed with its development key.
async fn signed(client: &Client, agency: &str, action: Action) -> Result<Transaction> {
    let status = client.status().await?;
    let chain_id: ChainId = status["chain_id"].as_str().unwrap_or_default().parse()?;
    let head = status["height"].as_u64().unwrap_or(0);
    let signer = AgencyId::new(agency)?;
    let key = example::agency_key(agency);
    Ok(TxBody {
        chain_id,
        nonce: client.next_nonce(&signer).await?,
        signer,
        key: key.public(),
        expires_at: Height(head + 10_000),
        action,
    }
    .sign(&key))
}

async fn commit(client: &Client, tx: &Transaction) -> Result<()> {
    let id = client.submit(tx).await?;
    client.wait_committed(&id, Duration::from_secs(120)).await?;
    Ok(())
}

/// Governance adds the validator of `agency` (three of the four validator agencies).
async fn add_validator(client: &Client, agency: &str) -> Result<()> {
    let change = GovernanceChange::AddValidator {
        agency: AgencyId::new(agency)?,
        key: example::validator_key(agency).public(),
        power: 1,
    };
    let propose = signed(client, "moi-land", Action::Propose { change }).await?;
    let proposal = propose.id();
    commit(client, &propose).await?;
    for voter in ["moea-investment", "dgpa-personnel"] {
        commit(
            client,
            &signed(client, voter, Action::Vote { proposal }).await?,
        )
        .await?;
    }
    Ok(())
}

/// When a started node got to each point, in seconds from its start.
struct Timing {
    serving_s: f64,
    following_s: f64,
    voting_s: f64,
}

/// Start the spare at `home`, logging to `log`: when it serves its RPC, has committed
/// `target`, and has signed a vote.
async fn time_start(
    home: &Path,
    log: &Path,
    target: u64,
    timeout: Duration,
) -> Result<(Timing, Child)> {
    let rpc = rpc_of(&home.join("config.toml"))?;
    let client = Client::new(&format!("http://{rpc}"))?;
    let started = Instant::now();
    let mut child = start(home, log)?;
    let (mut serving, mut following, mut voting) = (None, None, None);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the joining node exited ({status}); see {}", log.display());
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            bail!(
                "the node did not reach height {target} and vote in {timeout:?}; see {}",
                log.display()
            );
        }
        let now = started.elapsed().as_secs_f64();
        if let Some(h) = height(&client).await {
            serving.get_or_insert(now);
            if h >= target {
                following.get_or_insert(now);
            }
            let votes = crate::probe::metrics_text(&rpc)
                .await
                .ok()
                .and_then(|t| crate::probe::metric(&t, "cachet_votes_signed_total"));
            if votes.is_some_and(|v| v > 0.0) {
                voting.get_or_insert(now);
            }
        }
        if let (Some(serving_s), Some(following_s), Some(voting_s)) = (serving, following, voting) {
            let timing = Timing {
                serving_s,
                following_s,
                voting_s,
            };
            return Ok((timing, child));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A `key=value` field of the log line containing `marker`.
fn logged(log: &Path, marker: &str, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains(marker))?;
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split_whitespace().next()?.parse().ok()
}

/// The home of the devnet's spare node, and a client of each validator's node.
pub(crate) fn spare_and_validators(net: &Net) -> Result<(PathBuf, Vec<Client>)> {
    let nodes = net.nodes[0].home.parent().context("node 0's home")?;
    let validators = net
        .nodes
        .iter()
        .map(|n| Client::new(&n.rpc))
        .collect::<Result<_, _>>()?;
    Ok((spare(nodes)?, validators))
}

/// Run the phase; `replay_timeout` bounds the replay from genesis.
pub async fn run(net: &Net, replay_timeout: Duration, quiet: bool) -> Result<Value> {
    let (home, validators) = spare_and_validators(net)?;
    let mut head = 0;
    for v in &validators {
        head = head.max(height(v).await.context("a validator does not answer")?);
    }
    let agency = home
        .file_name()
        .and_then(|n| n.to_str())
        .context("the spare's directory")?
        .to_string();
    add_validator(&validators[0], &agency).await?;
    if !quiet {
        eprintln!("join: {agency}'s validator added by governance; the chain runs on four of five");
    }
    for v in &validators {
        head = head.max(height(v).await.context("a validator does not answer")?);
    }
    let at = head + AHEAD;
    for v in &validators {
        v.call("cachet_admin_snapshot", vec![json!(at)]).await?;
    }
    let asked = Instant::now();
    let snapshot_dirs: Vec<PathBuf> = net
        .nodes
        .iter()
        .map(|n| {
            n.home
                .join("snapshots")
                .join(format!("{at:020}"))
                .join("manifest")
        })
        .collect();
    while !snapshot_dirs.iter().all(|d| d.exists()) {
        if asked.elapsed() > Duration::from_secs(1800) {
            bail!("the validators did not write their snapshot at height {at}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let snapshot_s = asked.elapsed().as_secs_f64();
    let snapshot_bytes: u64 = crate::probe::dir_bytes(
        &net.nodes[0]
            .home
            .join("snapshots")
            .join(format!("{at:020}")),
    );
    if !quiet {
        eprintln!(
            "join: every validator holds the snapshot at height {at} ({snapshot_bytes} bytes) after {snapshot_s:.1} s"
        );
    }
    // The operators let the new node in.
    admit(&validators, &home).await?;

    let config = home.join("config.toml");
    let _ = std::fs::remove_dir_all(home.join("db"));
    set_state_sync(&config, true)?;
    let target = height(&validators[0]).await.context("node 0")?;
    let log = home.join("join-snapshot.log");
    let (timing, child) = time_start(&home, &log, target, Duration::from_secs(1800)).await?;
    stop(child);
    let snapshot = json!({
        "height": logged(&log, "joined by snapshot", "height"),
        "entries": logged(&log, "joined by snapshot", "entries"),
        "bytes": logged(&log, "joined by snapshot", "bytes"),
        "chunks": logged(&log, "joined by snapshot", "chunks"),
        "join_s": logged(&log, "joined by snapshot", "seconds"),
        "serving_s": milli(timing.serving_s),
        "following_s": milli(timing.following_s),
        "voting_s": milli(timing.voting_s),
    });
    if !quiet {
        eprintln!(
            "join: from the snapshot, serving after {:.1} s, at height {target} after {:.1} s, voting after {:.1} s",
            timing.serving_s, timing.following_s, timing.voting_s
        );
    }

    // The consensus log goes too: the node votes again only at heights above its last vote.
    std::fs::remove_dir_all(home.join("db"))?;
    std::fs::remove_dir_all(home.join("wal"))?;
    set_state_sync(&config, false)?;
    let target = height(&validators[0]).await.context("node 0")?;
    let log = home.join("join-replay.log");
    let replay = match time_start(&home, &log, target, replay_timeout).await {
        Ok((timing, child)) => {
            stop(child);
            if !quiet {
                eprintln!(
                    "join: replaying from genesis, at height {target} after {:.1} s, voting after {:.1} s",
                    timing.following_s, timing.voting_s
                );
            }
            json!({
                "height": target,
                "following_s": milli(timing.following_s),
                "voting_s": milli(timing.voting_s),
            })
        }
        Err(e) => json!({ "height": target, "error": format!("{e:#}") }),
    };
    Ok(json!({
        "snapshot_height": at,
        "snapshot_write_s": milli(snapshot_s),
        "snapshot_bytes_on_disk": snapshot_bytes,
        "from_snapshot": snapshot,
        "replay": replay,
    }))
}
