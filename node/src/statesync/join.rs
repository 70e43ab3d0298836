//! Joining by snapshot: a node started without a database asks its peers which snapshots they
//! keep, takes the latest, checks its history against the genesis trust and its manifest
//! against that history's last header, fetches its chunks from every peer that offers it (each
//! chunk checked as it arrives, a peer that sends a wrong one dropped), and writes them to a
//! new store, which becomes the node's database only once whole. The node then follows the
//! chain from the snapshot's height by value sync, like a node that was briefly offline.
//!
//! It runs before anything else of the node starts, on a swarm of its own with the node's
//! identity (the peers' allow-lists already name it), dropped when done. It is not the
//! serving side ([`super::snapshots`], through [`crate::gossip`]).

use super::history::{self, History};
use super::protocol::{self, Request, Response, SnapshotCodec};
use crate::store::{CacheSizes, SnapshotHead, Store};
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::snapshot::{Chunk, Manifest};
use cachet_chain::trust::Trust;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, allow_block_list, noise, tcp, yamux};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

/// Chunk requests in flight per peer.
const IN_FLIGHT_PER_PEER: usize = 2;
/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a join did.
#[derive(Clone, Debug)]
pub struct Joined {
    /// The snapshot's height.
    pub height: u64,
    /// State entries written.
    pub entries: u64,
    /// Snapshot bytes received (history, manifest, chunks).
    pub bytes: u64,
    /// Chunks fetched.
    pub chunks: usize,
    /// Wall time, from the first offer asked.
    pub seconds: f64,
}

/// Join from the latest snapshot the peers offer, writing the store at `db` (which must not
/// exist). `None`: no peer offered one within `discovery`, and `db` was not written (the
/// node then replays blocks from genesis).
pub async fn join(
    db: &Path,
    keypair: Keypair,
    peers: Vec<(PeerId, Multiaddr)>,
    genesis: &GenesisDoc,
    sizes: CacheSizes,
    discovery: Duration,
) -> eyre::Result<Option<Joined>> {
    let partial = db.with_extension("joining");
    if partial.exists() {
        info!(path = %partial.display(), "removing a join that was cut short");
        std::fs::remove_dir_all(&partial)?;
    }
    let trust = Trust::from_genesis(genesis)?;
    let (genesis_header, _) = cachet_contracts::genesis_state(genesis)?;
    let client = Client::spawn(keypair, peers)?;
    let started = Instant::now();
    let mut refused: HashSet<PeerId> = HashSet::new();
    info!(
        peers = client.known,
        "joining by snapshot: asking the peers for their snapshots"
    );
    loop {
        let offers = client.offers(&refused).await;
        let best = offers.keys().copied().filter(|h| *h > 0).max();
        if let Some(height) = best {
            let offering = offers[&height].clone();
            match fetch(
                &client,
                height,
                offering,
                &trust,
                &partial,
                sizes,
                &mut refused,
            )
            .await
            {
                Ok((verified, manifest, stats)) => {
                    let store = Store::open_with_cache(&partial, sizes)?;
                    let mut top = Vec::new();
                    manifest.root(&mut |k, n| top.push((k, n)));
                    store.finish_snapshot(SnapshotHead {
                        genesis: &genesis_header,
                        genesis_validators: &trust.validators,
                        blocks: &verified.blocks,
                        checkpoint: verified.checkpoint.as_ref(),
                        head: &verified.head,
                        top_nodes: &top,
                    })?;
                    drop(store);
                    std::fs::rename(&partial, db)?;
                    let joined = Joined {
                        height,
                        entries: manifest.entries(),
                        bytes: stats.bytes,
                        chunks: stats.chunks,
                        seconds: started.elapsed().as_secs_f64(),
                    };
                    info!(
                        height,
                        entries = joined.entries,
                        bytes = joined.bytes,
                        chunks = joined.chunks,
                        seconds = joined.seconds,
                        "joined by snapshot; following the chain from here"
                    );
                    return Ok(Some(joined));
                }
                Err(e) => {
                    warn!(height, error = %e, "snapshot not taken; trying again");
                    let _ = std::fs::remove_dir_all(&partial);
                }
            }
        } else if started.elapsed() > discovery {
            warn!(
                seconds = discovery.as_secs(),
                "no peer offered a snapshot; replaying the chain from genesis instead"
            );
            return Ok(None);
        }
        // Peers connect within a second or so of the start; offers are asked again soon.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Default)]
struct Stats {
    bytes: u64,
    chunks: usize,
}

/// Fetch and check the snapshot at `height` from the peers `offering` it, into a new store at
/// `partial`.
async fn fetch(
    client: &Client,
    height: u64,
    mut offering: Vec<PeerId>,
    trust: &Trust,
    partial: &Path,
    sizes: CacheSizes,
    refused: &mut HashSet<PeerId>,
) -> eyre::Result<(history::Verified, Manifest, Stats)> {
    let mut stats = Stats::default();
    // The history, from the first peer whose history checks.
    let mut verified = None;
    while verified.is_none() {
        let peer = *offering
            .first()
            .ok_or_else(|| eyre::eyre!("no peer sent a history that checks"))?;
        match client.ask(peer, Request::History { height }).await {
            Ok(Response::History(bytes)) => {
                stats.bytes += bytes.len() as u64;
                let checked = borsh::from_slice::<History>(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|h| history::verify(&h, height, trust));
                match checked {
                    Ok(v) => verified = Some(v),
                    Err(e) => {
                        warn!(%peer, height, error = %e, "peer's snapshot history does not check; peer dropped");
                        refused.insert(peer);
                        offering.retain(|p| *p != peer);
                    }
                }
            }
            other => {
                warn!(%peer, height, answer = ?other.map(|_| ()), "no history from peer");
                offering.retain(|p| *p != peer);
            }
        }
    }
    let verified = verified.expect("set above");
    // The manifest, checked against the header the history ends with.
    let mut manifest = None;
    for peer in offering.clone() {
        match client.ask(peer, Request::Manifest { height }).await {
            Ok(Response::Manifest(bytes)) => {
                stats.bytes += bytes.len() as u64;
                match Manifest::decode(&bytes).and_then(|m| {
                    m.verify(&verified.head.state_root)?;
                    Ok(m)
                }) {
                    Ok(m) if m.height == height => {
                        manifest = Some(m);
                        break;
                    }
                    other => {
                        warn!(%peer, height, error = ?other.err(), "peer's manifest does not check; peer dropped");
                        refused.insert(peer);
                        offering.retain(|p| *p != peer);
                    }
                }
            }
            _ => offering.retain(|p| *p != peer),
        }
    }
    let manifest =
        Arc::new(manifest.ok_or_else(|| eyre::eyre!("no peer sent a manifest that checks"))?);
    let wanted: Vec<u32> = (0..manifest.chunks.len() as u32)
        .filter(|i| manifest.chunks[*i as usize].entries > 0)
        .collect();
    info!(
        height,
        entries = manifest.entries(),
        chunks = wanted.len(),
        peers = offering.len(),
        "snapshot found; fetching its chunks"
    );
    let store = Arc::new(Store::open_with_cache(partial, sizes)?);
    let mut queue: std::collections::VecDeque<u32> = wanted.iter().copied().collect();
    let mut in_flight = FuturesUnordered::new();
    let mut next_peer = 0usize;
    let (total, began) = (wanted.len(), Instant::now());
    let mut last_log = Instant::now();
    while stats.chunks < total {
        while in_flight.len() < IN_FLIGHT_PER_PEER * offering.len().max(1) {
            let Some(index) = queue.pop_front() else {
                break;
            };
            let peer = *offering
                .get(next_peer % offering.len().max(1))
                .ok_or_else(|| eyre::eyre!("every peer offering the snapshot was dropped"))?;
            next_peer += 1;
            let ask = client.ask(peer, Request::Chunk { height, index });
            in_flight.push(async move { (peer, index, ask.await) });
        }
        let Some((peer, index, answer)) = in_flight.next().await else {
            eyre::bail!("no chunk request left in flight");
        };
        let bytes = match answer {
            Ok(Response::Chunk(bytes)) => bytes,
            other => {
                warn!(%peer, index, answer = ?other.map(|_| ()), "chunk not sent; asking another peer");
                offering.retain(|p| *p != peer);
                queue.push_back(index);
                continue;
            }
        };
        let len = bytes.len() as u64;
        let (store_, manifest_) = (store.clone(), manifest.clone());
        let checked = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let chunk = Chunk::decode(&bytes).map_err(|e| e.to_string())?;
            let mut nodes = Vec::new();
            manifest_
                .check_chunk(index, &chunk, &mut |k, n| nodes.push((k, n)))
                .map_err(|e| e.to_string())?;
            store_
                .put_snapshot_chunk(height, &chunk.entries, &nodes)
                .map_err(|e| format!("store: {e}"))
        })
        .await?;
        match checked {
            Ok(()) => {
                stats.chunks += 1;
                stats.bytes += len;
            }
            Err(e) if e.starts_with("store: ") => eyre::bail!("{e}"),
            Err(e) => {
                warn!(%peer, index, error = %e, "peer sent a chunk that does not check; peer dropped");
                refused.insert(peer);
                offering.retain(|p| *p != peer);
                queue.push_back(index);
            }
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            let rate = stats.chunks as f64 / began.elapsed().as_secs_f64();
            let eta = (total - stats.chunks) as f64 / rate.max(f64::MIN_POSITIVE);
            info!(
                height,
                chunks = stats.chunks,
                of = total,
                bytes = stats.bytes,
                mb_per_s = stats.bytes as f64 / 1e6 / began.elapsed().as_secs_f64(),
                eta_s = eta.round() as u64,
                "joining by snapshot"
            );
        }
    }
    drop(in_flight);
    drop(Arc::try_unwrap(store).map_err(|_| eyre::eyre!("store still shared"))?);
    let manifest = Arc::try_unwrap(manifest).map_err(|_| eyre::eyre!("manifest still shared"))?;
    Ok((verified, manifest, stats))
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    snapshots: request_response::Behaviour<SnapshotCodec>,
}

type Ask = (PeerId, Request, oneshot::Sender<Result<Response, String>>);

/// The joining node's side of the protocol: a swarm task that dials the peers and carries
/// requests.
struct Client {
    asks: mpsc::Sender<Ask>,
    connected: watch::Receiver<Vec<PeerId>>,
    known: usize,
}

impl Client {
    fn spawn(keypair: Keypair, peers: Vec<(PeerId, Multiaddr)>) -> eyre::Result<Client> {
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| Behaviour {
                allowed: allow_block_list::Behaviour::default(),
                snapshots: protocol::behaviour(),
            })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        for (peer, _) in &peers {
            swarm.behaviour_mut().allowed.allow_peer(*peer);
        }
        let known = peers.len();
        let (asks, mut rx) = mpsc::channel::<Ask>(256);
        let (connected_tx, connected) = watch::channel(Vec::new());
        tokio::spawn(async move {
            let mut pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Response, String>>> =
                HashMap::new();
            let mut up: HashSet<PeerId> = HashSet::new();
            let mut redial = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = redial.tick() => {
                        for (peer, addr) in &peers {
                            if !swarm.is_connected(peer) {
                                let _ = swarm.dial(addr.clone());
                            }
                        }
                    }
                    ask = rx.recv() => match ask {
                        None => break,
                        Some((peer, request, reply)) => {
                            let id = swarm.behaviour_mut().snapshots.send_request(&peer, request);
                            pending.insert(id, reply);
                        }
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::Behaviour(BehaviourEvent::Snapshots(e)) => match e {
                            request_response::Event::Message { message: request_response::Message::Response { request_id, response }, .. } => {
                                if let Some(reply) = pending.remove(&request_id) {
                                    let _ = reply.send(Ok(response));
                                }
                            }
                            request_response::Event::Message { message: request_response::Message::Request { channel, .. }, .. } => {
                                let _ = swarm.behaviour_mut().snapshots.send_response(channel, Response::Unavailable);
                            }
                            request_response::Event::OutboundFailure { request_id, error, .. } => {
                                if let Some(reply) = pending.remove(&request_id) {
                                    let _ = reply.send(Err(error.to_string()));
                                }
                            }
                            _ => {}
                        },
                        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                            up.insert(peer_id);
                            let _ = connected_tx.send(up.iter().copied().collect());
                        }
                        SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                            up.remove(&peer_id);
                            let _ = connected_tx.send(up.iter().copied().collect());
                        }
                        _ => {}
                    },
                }
            }
        });
        Ok(Client {
            asks,
            connected,
            known,
        })
    }

    /// Ask `peer`; an error if it cannot be reached or does not answer in time.
    fn ask(
        &self,
        peer: PeerId,
        request: Request,
    ) -> impl Future<Output = Result<Response, String>> + use<> {
        let asks = self.asks.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            asks.send((peer, request, reply))
                .await
                .map_err(|_| "the join's network task stopped".to_string())?;
            answer.await.map_err(|_| "no answer".to_string())?
        }
    }

    /// The snapshots the connected peers (less those refused) offer: height → peers.
    async fn offers(&self, refused: &HashSet<PeerId>) -> HashMap<u64, Vec<PeerId>> {
        let peers: Vec<PeerId> = self
            .connected
            .borrow()
            .iter()
            .filter(|p| !refused.contains(p))
            .copied()
            .collect();
        let answers = futures::future::join_all(peers.iter().map(|p| {
            let ask = self.ask(*p, Request::Offers);
            async move { tokio::time::timeout(Duration::from_secs(10), ask).await }
        }))
        .await;
        let mut offers: HashMap<u64, Vec<PeerId>> = HashMap::new();
        for (peer, answer) in peers.into_iter().zip(answers) {
            if let Ok(Ok(Response::Offers(heights))) = answer {
                for h in heights {
                    offers.entry(h).or_default().push(peer);
                }
            }
        }
        offers
    }
}
