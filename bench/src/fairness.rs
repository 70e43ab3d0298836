//! Phase 4: one greedy client beside polite ones. Polite verifiers, each from a loopback address
//! of its own, ask a node for receipts at a steady pace and time each answer; then a greedy
//! client, from another address, asks as fast as `GREEDY_IN_FLIGHT` calls at once allow. Both
//! windows run against a node without a per-client read limit and against one with it (the
//! bench's devnet gives one node `FAIR_READS_PER_SECOND`), in the same run, so that the
//! report compares the polite clients' latency with and without the greedy one, on each node.
//!
//! Clients here speak HTTP/1.1 themselves over a socket bound to their own address: the node
//! tells clients apart by address, and the JSON-RPC client library cannot choose one.

use super::net::Net;
use super::probe::{self, milli, percentile};
use anyhow::{Context, Result, bail};
use cachet_chain::CertId;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The read limit the bench's devnet gives one of its nodes (per client, per second; the
/// bucket holds as many).
pub const FAIR_READS_PER_SECOND: u32 = 200;
/// Polite clients, and the pause between a polite client's calls.
const POLITE: usize = 4;
const POLITE_PAUSE: Duration = Duration::from_millis(50);
/// Calls the greedy client keeps in flight.
const GREEDY_IN_FLIGHT: usize = 16;

/// A JSON-RPC client over one keep-alive HTTP/1.1 connection from a chosen local address.
struct LocalClient {
    from: IpAddr,
    to: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl LocalClient {
    fn new(from: IpAddr, to: SocketAddr) -> LocalClient {
        LocalClient {
            from,
            to,
            conn: None,
        }
    }

    async fn connect(&self) -> Result<BufReader<TcpStream>> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket
            .bind(SocketAddr::new(self.from, 0))
            .with_context(|| format!("binding to {}", self.from))?;
        let stream = socket.connect(self.to).await?;
        // A request is one write; without this, the body would wait on the reply's ACK.
        stream.set_nodelay(true)?;
        Ok(BufReader::new(stream))
    }

    /// Call `method` with `params`; the reply's JSON (a result or an error object).
    async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let body =
            json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.to,
            body.len()
        );
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let reply = match self.conn.as_mut() {
            Some(conn) => exchange(conn, &head, &body).await,
            None => bail!("no connection"),
        };
        if reply.is_err() {
            // The server may have closed an idle connection: the next call opens another.
            self.conn = None;
        }
        reply
    }
}

async fn exchange(conn: &mut BufReader<TcpStream>, head: &str, body: &str) -> Result<Value> {
    conn.get_mut()
        .write_all(format!("{head}{body}").as_bytes())
        .await?;
    let mut length = None;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            bail!("the connection closed");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>()?);
        }
    }
    let mut reply = vec![0u8; length.context("a reply without Content-Length")?];
    conn.read_exact(&mut reply).await?;
    Ok(serde_json::from_slice(&reply)?)
}

/// What a client saw in a window.
#[derive(Default)]
struct Seen {
    served_ms: Vec<f64>,
    refused: usize,
    failed: usize,
}

impl Seen {
    /// What several clients saw, together.
    async fn gather(clients: Vec<tokio::task::JoinHandle<Seen>>) -> Result<Seen> {
        let mut all = Seen::default();
        for client in clients {
            let seen = client.await.context("a client task")?;
            all.served_ms.extend(seen.served_ms);
            all.refused += seen.refused;
            all.failed += seen.failed;
        }
        Ok(all)
    }
}

/// One client asking for receipts of `ids` from `from` until `stop`, pausing `pause` between
/// calls.
async fn ask(
    from: IpAddr,
    to: SocketAddr,
    ids: Arc<Vec<CertId>>,
    seed: usize,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut client = LocalClient::new(from, to);
    let mut seen = Seen::default();
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = i.wrapping_mul(31).wrapping_add(17);
        let id = ids[i % ids.len()];
        let start = Instant::now();
        match client
            .call("cachet_receipt", json!([id.0.to_string()]))
            .await
        {
            Ok(reply) if reply.get("result").is_some() => {
                seen.served_ms.push(start.elapsed().as_secs_f64() * 1000.0)
            }
            Ok(reply) if reply["error"]["data"]["name"] == "rate_limited" => seen.refused += 1,
            _ => seen.failed += 1,
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    seen
}

/// Run the polite clients (and the greedy one, if `greedy`) against `to` (the node with
/// process id `pid`) for `window`.
async fn window(
    to: SocketAddr,
    pid: u64,
    ids: &Arc<Vec<CertId>>,
    greedy: bool,
    window: Duration,
) -> Result<Value> {
    let cpu0 = probe::cpu_ticks(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let polite: Vec<_> = (0..POLITE)
        .map(|i| {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 10 + i as u8));
            tokio::spawn(ask(from, to, ids.clone(), i, POLITE_PAUSE, stop.clone()))
        })
        .collect();
    let greedy: Vec<_> = (0..if greedy { GREEDY_IN_FLIGHT } else { 0 })
        .map(|i| {
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 200));
            tokio::spawn(ask(
                from,
                to,
                ids.clone(),
                1000 + i,
                Duration::ZERO,
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let seconds = window.as_secs_f64();
    let cpu_ms = probe::ticks_ms(probe::cpu_ticks(pid) - cpu0);
    let mut calm = Seen::gather(polite).await?;
    let hungry = Seen::gather(greedy).await?;
    calm.served_ms.sort_by(|a, b| a.total_cmp(b));
    let mut report = json!({
        "polite_served": calm.served_ms.len(),
        "polite_refused": calm.refused,
        "polite_failed": calm.failed,
        "polite_p50_ms": milli(percentile(&calm.served_ms, 0.50)),
        "polite_p99_ms": milli(percentile(&calm.served_ms, 0.99)),
        // Of one core: what the node spent on everyone in the window.
        "node_cpu_share": milli(cpu_ms / 1000.0 / seconds),
    });
    if hungry.served_ms.len() + hungry.refused + hungry.failed > 0 {
        report["greedy_served_per_s"] = json!((hungry.served_ms.len() as f64 / seconds).round());
        report["greedy_refused_per_s"] = json!((hungry.refused as f64 / seconds).round());
        report["greedy_failed"] = json!(hungry.failed);
    }
    Ok(report)
}

/// The per-client read limit node `i` of the devnet in `dir` is configured with (0: none).
fn read_limit(net: &Net, i: usize) -> u32 {
    let config = net.nodes[i].home.join("config.toml");
    cachet_node::config::NodeConfig::load(&config)
        .map(|c| c.rpc.reads_per_second_per_client)
        .unwrap_or(0)
}

/// Run the phase: on a node without a per-client read limit and on one with it, polite
/// clients alone for `each`, then beside the greedy one for `each`.
pub async fn run(net: &Net, ids: Vec<CertId>, each: Duration, quiet: bool) -> Result<Value> {
    let limits: Vec<u32> = (0..net.nodes.len()).map(|i| read_limit(net, i)).collect();
    let (Some(without), Some(with)) = (
        limits.iter().position(|l| *l == 0),
        limits.iter().position(|l| *l > 0),
    ) else {
        bail!(
            "the fairness phase needs a node with a per-client read limit and one without: {limits:?}"
        );
    };
    if ids.is_empty() {
        bail!("the fairness phase needs anchored certificates");
    }
    let ids = Arc::new(ids);
    let mut report = json!({
        "polite_clients": POLITE,
        "polite_pause_ms": POLITE_PAUSE.as_millis() as u64,
        "greedy_in_flight": GREEDY_IN_FLIGHT,
        "window_s": each.as_secs_f64(),
    });
    for (label, i) in [("node_without_limit", without), ("node_with_limit", with)] {
        let to: SocketAddr = net.nodes[i]
            .rpc
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("node {i}'s RPC address"))?;
        let pid = net.nodes[i].pid;
        let alone = window(to, pid, &ids, false, each).await?;
        let beside = window(to, pid, &ids, true, each).await?;
        if !quiet {
            eprintln!(
                "fairness, {label}: polite p99 {} ms alone, {} ms beside a greedy client served {}/s",
                alone["polite_p99_ms"], beside["polite_p99_ms"], beside["greedy_served_per_s"]
            );
        }
        report[label] = json!({
            "reads_per_second_per_client": read_limit(net, i),
            "alone": alone,
            "beside_greedy": beside,
        });
    }
    Ok(report)
}
