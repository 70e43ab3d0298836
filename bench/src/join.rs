//! The join phase: how long a new node takes to join the devnet as it stands (after a fill,
//! say), from a snapshot and by replaying every block, in one run.
//!
//! Every validator is asked for a snapshot a few heights ahead (`cachet_admin_snapshot`); once
//! all four hold it, the devnet's spare node (not a validator) is let in and started with no
//! database and `state_sync.enable`: timed until it serves its RPC (the join is done, the
//! store whole and checked) and until it has committed the head the validators had when it
//! started. Then its database is removed and it starts again without state sync, replaying
//! from genesis, timed to the same point. The bytes it fetched come from its log.
//!
//! What it is not: a test that the joined state is right (the cluster test
//! `a_new_node_joins_from_a_snapshot_though_most_peers_send_bad_chunks` checks that; a joining
//! node checks every chunk and the store's root itself).

use crate::net::Net;
use crate::probe::milli;
use anyhow::{Context, Result, bail};
use cachet_client::Client;
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

fn set_state_sync(config: &Path, enable: bool) -> Result<()> {
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(config)?)?;
    let section = table
        .entry("state_sync")
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .context("[state_sync] is not a table")?;
    section.insert("enable".into(), enable.into());
    std::fs::write(config, toml::to_string_pretty(&table)?)?;
    Ok(())
}

async fn height(client: &Client) -> Option<u64> {
    client.status().await.ok()?["height"].as_u64()
}

/// Start the spare at `home`, logging to `log`; how long until it serves its RPC and until it
/// has committed `target`.
async fn time_start(
    home: &Path,
    log: &Path,
    target: u64,
    timeout: Duration,
) -> Result<(f64, f64, Child)> {
    let config = home.join("config.toml");
    let rpc = toml::from_str::<toml::Table>(&std::fs::read_to_string(&config)?)?["rpc"]["listen"]
        .as_str()
        .context("rpc.listen")?
        .to_string();
    let client = Client::new(&format!("http://{rpc}"))?;
    let out = std::fs::File::create(log)?;
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["start", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let mut serving = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the joining node exited ({status}); see {}", log.display());
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            bail!(
                "the node did not reach height {target} in {timeout:?}; see {}",
                log.display()
            );
        }
        if let Some(h) = height(&client).await {
            let serving = *serving.get_or_insert(started.elapsed().as_secs_f64());
            if h >= target {
                return Ok((serving, started.elapsed().as_secs_f64(), child));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(mut child: Child) {
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

/// Run the phase; `replay_timeout` bounds the replay from genesis.
pub async fn run(net: &Net, replay_timeout: Duration, quiet: bool) -> Result<Value> {
    let nodes = net.nodes[0].home.parent().context("node 0's home")?;
    let home = spare(nodes)?;
    let validators: Vec<Client> = net
        .nodes
        .iter()
        .map(|n| Client::new(&n.rpc))
        .collect::<Result<_, _>>()?;
    let mut head = 0;
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
    let peer: Value = serde_json::from_str(&std::fs::read_to_string(home.join("peer.json"))?)?;
    for v in &validators {
        v.call(
            "cachet_admin_addPeer",
            vec![peer["p2p"].clone(), peer["gossip"].clone()],
        )
        .await?;
    }

    let config = home.join("config.toml");
    let _ = std::fs::remove_dir_all(home.join("db"));
    set_state_sync(&config, true)?;
    let target = height(&validators[0]).await.context("node 0")?;
    let log = home.join("join-snapshot.log");
    let (joined_s, following_s, child) =
        time_start(&home, &log, target, Duration::from_secs(1800)).await?;
    stop(child);
    let snapshot = json!({
        "height": logged(&log, "joined by snapshot", "height"),
        "entries": logged(&log, "joined by snapshot", "entries"),
        "bytes": logged(&log, "joined by snapshot", "bytes"),
        "chunks": logged(&log, "joined by snapshot", "chunks"),
        "join_s": logged(&log, "joined by snapshot", "seconds"),
        "serving_s": milli(joined_s),
        "following_s": milli(following_s),
    });
    if !quiet {
        eprintln!(
            "join: from the snapshot, serving after {joined_s:.1} s, at height {target} after {following_s:.1} s"
        );
    }

    std::fs::remove_dir_all(home.join("db"))?;
    set_state_sync(&config, false)?;
    let target = height(&validators[0]).await.context("node 0")?;
    let log = home.join("join-replay.log");
    let replay = match time_start(&home, &log, target, replay_timeout).await {
        Ok((_, following_s, child)) => {
            stop(child);
            if !quiet {
                eprintln!(
                    "join: replaying from genesis, at height {target} after {following_s:.1} s"
                );
            }
            json!({ "height": target, "following_s": milli(following_s) })
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
