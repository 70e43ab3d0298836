//! Transaction gossip: our own libp2p swarm (gossipsub over noise-encrypted TCP), separate from
//! Malachite's consensus network. Only peers on the allow-list (the consortium's node keys) may
//! connect; anything else is refused at the connection level. The same swarm answers joining
//! peers' snapshot requests ([`crate::statesync::protocol`]) from the snapshots this node keeps.
//!
//! A transaction submitted to any node is admitted there (see [`crate::mempool`]) and published;
//! the other nodes admit it again (each node checks once for itself) and keep it until a
//! proposer includes it. A node relays a batch to its other peers only once it has admitted
//! it (see [`Relay`]).

use crate::metrics::Metrics;
use crate::statesync::protocol::{self as snapshot_protocol, SnapshotCodec};
use futures::StreamExt;
use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, allow_block_list, noise, tcp, yamux};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// The largest gossip message (a handful of transactions).
const MAX_MESSAGE: usize = 1024 * 1024;
/// A batch is sent when it reaches this size …
const FLUSH_BYTES: usize = 256 * 1024;
/// … or this long after its first transaction.
const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// One gossip message: Borsh `Vec<Vec<u8>>` of encoded transactions.
fn encode_batch(pending: &mut Vec<Vec<u8>>) -> Vec<u8> {
    let batch = std::mem::take(pending);
    borsh::to_vec(&batch).expect("in-memory encoding cannot fail")
}

/// The transactions of a gossip message, or `None` if it is not a batch.
fn decode_batch(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    if bytes.len() > MAX_MESSAGE {
        return None;
    }
    borsh::from_slice(bytes).ok()
}

/// Transactions kept for a retry while no peer is in the gossip mesh.
const MAX_RETRY: usize = 10_000;
/// How long such a transaction is retried.
const RETRY_FOR: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    gossipsub: gossipsub::Behaviour,
    snapshots: libp2p::request_response::Behaviour<SnapshotCodec>,
}

/// Answers a peer's snapshot request (it reads files: called on a blocking thread).
pub type ServeSnapshots =
    Arc<dyn Fn(snapshot_protocol::Request) -> snapshot_protocol::Response + Send + Sync>;

/// A batch of transactions received from a peer.
#[derive(Debug)]
pub struct Received {
    /// Encoded transactions, as one peer published them together.
    pub txs: Vec<Vec<u8>>,
    /// The peer that relayed it.
    pub from: PeerId,
    /// Relays the batch to this node's other peers: to be sent once it has been admitted.
    pub relay: Relay,
}

/// Relays a received batch onwards. Gossipsub forwards a message to every mesh peer but the
/// one it came from; on a consortium where every node is connected to every other, each node
/// then received each batch once from its publisher and again from every other receiver that
/// forwarded it before this node's "I have it" (IDONTWANT) arrived: three copies each on four
/// nodes, every one decrypted, demultiplexed and hashed for its id. Relayed only after this
/// node's admission (a batch signature check, a millisecond or more), a batch goes only to the
/// peers that have not said they have it, so on a full mesh it is sent about once per peer,
/// and a node reached through another one still gets it. A batch that is not one is never
/// relayed.
#[derive(Debug)]
pub struct Relay {
    commands: mpsc::Sender<Command>,
    id: MessageId,
    from: PeerId,
}

impl Relay {
    /// Let the gossip task forward the batch.
    pub fn send(self) {
        let Relay { commands, id, from } = self;
        if commands.try_send(Command::Relay(id, from)).is_err() {
            debug!("gossip task is behind or stopped; batch not relayed");
        }
    }
}

/// Commands to the gossip task.
#[derive(Debug)]
pub enum Command {
    /// Publish an encoded transaction.
    Publish(Vec<u8>),
    /// Allow and dial a new consortium peer.
    AddPeer(PeerId, Multiaddr),
    /// Refuse and disconnect a peer that left the consortium.
    RemovePeer(PeerId),
    /// Forward a received batch (its id, the peer it came from) to the other peers.
    Relay(MessageId, PeerId),
    /// Send the answer to a peer's snapshot request.
    Answer(
        libp2p::request_response::ResponseChannel<snapshot_protocol::Response>,
        snapshot_protocol::Response,
    ),
}

/// Handle to the gossip task.
#[derive(Clone)]
pub struct Gossip {
    commands: mpsc::Sender<Command>,
}

impl Gossip {
    /// Publish an encoded transaction to the other nodes.
    pub async fn publish(&self, tx: Vec<u8>) {
        if self.commands.send(Command::Publish(tx)).await.is_err() {
            warn!("gossip task has stopped; transaction not relayed");
        }
    }

    /// Send a command to the gossip task.
    pub async fn command(&self, cmd: Command) {
        let _ = self.commands.send(cmd).await;
    }
}

/// The libp2p peer id of a node whose network key is this ed25519 key.
pub fn peer_id_of(key: &cachet_chain::PublicKey) -> Option<PeerId> {
    let cachet_chain::PublicKey::Ed25519(bytes) = key;
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(bytes).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

/// The libp2p keypair for a node key.
pub fn keypair_of(key: &cachet_chain::SecretKey) -> Keypair {
    let mut seed = key.seed();
    Keypair::ed25519_from_bytes(&mut seed).expect("a 32-byte seed is a valid ed25519 key")
}

/// Start the gossip task. Received transactions are sent to `received`.
pub fn spawn(
    keypair: Keypair,
    topic: String,
    listen: Multiaddr,
    peers: Vec<(PeerId, Multiaddr)>,
    received: mpsc::Sender<Received>,
    metrics: Arc<Metrics>,
    serve_snapshots: ServeSnapshots,
) -> eyre::Result<Gossip> {
    // Messages are not signed, and a signature is not checked: each connection is already
    // noise-authenticated to a peer on the consortium's allow-list, and every transaction inside
    // carries its agency's signature, which each node checks at admission. A gossipsub
    // signature added a SHA-512 pass over each batch at the publisher and at every receiver
    // (about 3% of a validator's CPU under load) and proved nothing a node acts on. `None`
    // rather than `Anonymous` so that the signed messages of a node not yet upgraded are still
    // taken during a rolling upgrade. Message ids are content hashes, so relays of one batch
    // are still recognised as duplicates.
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::None)
        // Forwarded only when the node says so (`Relay`), after admission.
        .validate_messages()
        .heartbeat_interval(Duration::from_millis(500))
        .max_transmit_size(MAX_MESSAGE)
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(blake3::hash(&m.data).as_bytes().to_vec())
        })
        .build()
        .map_err(|e| eyre::eyre!("gossipsub config: {e}"))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_key| {
            let gossipsub =
                gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
                    .expect("valid gossipsub configuration");
            Behaviour {
                allowed: allow_block_list::Behaviour::default(),
                gossipsub,
                snapshots: snapshot_protocol::behaviour(),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    let topic = IdentTopic::new(topic);
    swarm.behaviour_mut().gossipsub.subscribe(&topic)?;
    swarm.listen_on(listen)?;
    let mut known: Vec<(PeerId, Multiaddr)> = Vec::new();
    for (peer, addr) in peers {
        swarm.behaviour_mut().allowed.allow_peer(peer);
        known.push((peer, addr));
    }
    let (tx, mut rx) = mpsc::channel::<Command>(4096);
    let relays = tx.clone();
    tokio::spawn(async move {
        let mut redial = tokio::time::interval(Duration::from_secs(1));
        let mut connected: HashSet<PeerId> = HashSet::new();
        let mut retry: std::collections::VecDeque<(Vec<u8>, std::time::Instant)> =
            Default::default();
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = flush.tick(), if !pending.is_empty() => {
                    let bytes = encode_batch(&mut pending);
                    pending_bytes = 0;
                    if swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes.clone()).is_err() {
                        if retry.len() >= MAX_RETRY {
                            retry.pop_front();
                        }
                        retry.push_back((bytes, std::time::Instant::now()));
                    }
                }
                _ = redial.tick() => {
                    for (peer, addr) in &known {
                        if !connected.contains(peer) && !swarm.is_connected(peer) {
                            let _ = swarm.dial(addr.clone());
                        }
                    }
                    let pending = std::mem::take(&mut retry);
                    for (bytes, since) in pending {
                        if since.elapsed() > RETRY_FOR {
                            continue;
                        }
                        if swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes.clone()).is_err() {
                            retry.push_back((bytes, since));
                        }
                    }
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Publish(tx)) => {
                        // Transactions go out in batches: one gossip message (one round of
                        // relaying, one message id) for many transactions.
                        pending_bytes += tx.len();
                        pending.push(tx);
                        if pending_bytes < FLUSH_BYTES {
                            continue;
                        }
                        let bytes = encode_batch(&mut pending);
                        pending_bytes = 0;
                        match swarm.behaviour_mut().gossipsub.publish(topic.clone(), bytes.clone()) {
                            Ok(_) => {}
                            // No peer in the mesh yet (startup, a reconnect): keep it and retry,
                            // or the other validators would only see it in our own proposals.
                            Err(gossipsub::PublishError::NoPeersSubscribedToTopic | gossipsub::PublishError::AllQueuesFull(_)) => {
                                if retry.len() >= MAX_RETRY {
                                    retry.pop_front();
                                }
                                retry.push_back((bytes, std::time::Instant::now()));
                            }
                            Err(e) => debug!(error = %e, "gossip publish"),
                        }
                    }
                    Some(Command::AddPeer(peer, addr)) => {
                        swarm.behaviour_mut().allowed.allow_peer(peer);
                        known.push((peer, addr));
                    }
                    Some(Command::RemovePeer(peer)) => {
                        swarm.behaviour_mut().allowed.disallow_peer(peer);
                        known.retain(|(p, _)| *p != peer);
                        let _ = swarm.disconnect_peer_id(peer);
                    }
                    Some(Command::Answer(channel, response)) => {
                        // False when the peer gave up waiting.
                        let _ = swarm.behaviour_mut().snapshots.send_response(channel, response);
                    }
                    Some(Command::Relay(id, from)) => {
                        // False once the message has left the cache (several heartbeats).
                        swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &from, MessageAcceptance::Accept);
                    }
                },
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, propagation_source, message_id })) => {
                        let gossipsub = &mut swarm.behaviour_mut().gossipsub;
                        match decode_batch(&message.data) {
                            Some(txs) => {
                                let relay = Relay { commands: relays.clone(), id: message_id, from: propagation_source };
                                // Kept together, so that admission batch-verifies their signatures.
                                if let Err(refused) = received.try_send(Received { txs, from: propagation_source, relay }) {
                                    metrics.gossip_batches_dropped.fetch_add(1, Relaxed);
                                    warn!(peer = %propagation_source, "admission is behind; gossip batch dropped");
                                    // Passed on unchecked rather than held from the nodes beyond.
                                    let Received { relay, .. } = refused.into_inner();
                                    gossipsub.report_message_validation_result(&relay.id, &relay.from, MessageAcceptance::Accept);
                                }
                            }
                            None => {
                                debug!(peer = %propagation_source, "malformed gossip batch");
                                gossipsub.report_message_validation_result(&message_id, &propagation_source, MessageAcceptance::Reject);
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Snapshots(libp2p::request_response::Event::Message {
                        peer,
                        message: libp2p::request_response::Message::Request { request, channel, .. },
                        ..
                    })) => {
                        debug!(%peer, ?request, "snapshot request");
                        let (serve, answers) = (serve_snapshots.clone(), relays.clone());
                        tokio::task::spawn_blocking(move || {
                            let response = serve(request);
                            let _ = answers.blocking_send(Command::Answer(channel, response));
                        });
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                        connected.insert(peer_id);
                        metrics.gossip_peers.store(connected.len() as u64, Relaxed);
                        debug!(%peer_id, "gossip peer connected");
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                        connected.remove(&peer_id);
                        metrics.gossip_peers.store(connected.len() as u64, Relaxed);
                    }
                    SwarmEvent::NewListenAddr { address, .. } => info!(%address, "gossip listening"),
                    _ => {}
                },
            }
        }
    });
    Ok(Gossip { commands: tx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_junk_is_refused() {
        let mut pending = vec![vec![1u8, 2, 3], vec![], vec![9u8; 1000]];
        let expect = pending.clone();
        let bytes = encode_batch(&mut pending);
        assert!(pending.is_empty());
        assert_eq!(decode_batch(&bytes), Some(expect));
        assert_eq!(decode_batch(b"junk"), None);
        assert_eq!(decode_batch(&vec![0u8; MAX_MESSAGE + 1]), None);
    }

    /// Three nodes in a line, `a` – `b` – `c`: `c` hears `a`'s batches only through `b`, and
    /// `b` passes a batch on only once its `Relay` is sent (after admission, in a node).
    #[tokio::test]
    async fn a_batch_is_relayed_only_once_the_node_has_taken_it() {
        let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
        let ids: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().port()
            })
            .collect();
        let addr =
            |i: usize| -> Multiaddr { format!("/ip4/127.0.0.1/tcp/{}", ports[i]).parse().unwrap() };
        let neighbours = [vec![1], vec![0, 2], vec![1]];
        let mut nodes = Vec::new();
        let mut inboxes = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let (received_tx, received) = mpsc::channel(16);
            let peers = neighbours[i].iter().map(|&j| (ids[j], addr(j))).collect();
            let node = spawn(
                key,
                "cachet-test-relay".into(),
                addr(i),
                peers,
                received_tx,
                Arc::new(Metrics::default()),
                Arc::new(|_| snapshot_protocol::Response::Unavailable),
            )
            .unwrap();
            nodes.push(node);
            inboxes.push(received);
        }
        let [inbox_b, inbox_c] = &mut inboxes[1..] else {
            unreachable!()
        };

        // Until the mesh has formed, `a` publishes again (a fresh batch each time, or it would be
        // a duplicate) and `b` relays at once, until `c` has one.
        tokio::time::timeout(Duration::from_secs(30), async {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            for n in 0u32.. {
                tokio::select! {
                    _ = tick.tick() => nodes[0].publish(format!("warm-up {n}").into_bytes()).await,
                    Some(batch) = inbox_b.recv() => batch.relay.send(),
                    Some(_) = inbox_c.recv() => break,
                }
            }
        })
        .await
        .expect("the line connects within 30 s");
        // Drain the warm-up batches still on their way.
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Ok(batch) = inbox_b.try_recv() {
            batch.relay.send();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        while inbox_c.try_recv().is_ok() {}

        nodes[0].publish(b"held by b".to_vec()).await;
        let held = next_batch(inbox_b, b"held by b", ids[0]).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(1), inbox_c.recv())
                .await
                .is_err(),
            "c got the batch before b relayed it"
        );
        held.relay.send();
        next_batch(inbox_c, b"held by b", ids[1]).await;
    }

    /// The next batch `inbox` receives (within 10 s): one transaction, `tx`, relayed by `from`.
    async fn next_batch(inbox: &mut mpsc::Receiver<Received>, tx: &[u8], from: PeerId) -> Received {
        let batch = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .expect("the batch arrives within 10 s")
            .expect("the gossip task is running");
        assert_eq!(batch.txs, vec![tx.to_vec()]);
        assert_eq!(batch.from, from);
        batch
    }

    /// A node's batches go out unsigned, and it still takes the signed batches of a node not
    /// yet upgraded. The other side publishes as nodes before this one did (`Signed`) and
    /// validates `Permissive`ly: it takes a message without a signature, and would name the
    /// signer of one with a signature.
    #[tokio::test]
    async fn batches_go_out_unsigned_and_signed_ones_are_still_taken() {
        let topic = "cachet-test-txs".to_string();
        let older_key = Keypair::generate_ed25519();
        let older_id = older_key.public().to_peer_id();
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(ValidationMode::Permissive)
            .heartbeat_interval(Duration::from_millis(100))
            .build()
            .unwrap();
        let mut older = libp2p::SwarmBuilder::with_existing_identity(older_key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| {
                gossipsub::Behaviour::<
                    gossipsub::IdentityTransform,
                    gossipsub::AllowAllSubscriptionFilter,
                >::new(MessageAuthenticity::Signed(key.clone()), config)
                .unwrap()
            })
            .unwrap()
            .build();
        let shared_topic = IdentTopic::new(topic.clone());
        older.behaviour_mut().subscribe(&shared_topic).unwrap();
        older
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let older_addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = older.select_next_some().await {
                break address;
            }
        };

        let (received_tx, mut received) = mpsc::channel(16);
        let ours = spawn(
            Keypair::generate_ed25519(),
            topic,
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            vec![(older_id, older_addr)],
            received_tx,
            Arc::new(Metrics::default()),
            Arc::new(|_| snapshot_protocol::Response::Unavailable),
        )
        .unwrap();
        ours.publish(b"from the upgraded node".to_vec()).await;

        let signed = encode_batch(&mut vec![b"from the older node".to_vec()]);
        let (mut got_unsigned, mut got_signed, mut published) = (false, false, false);
        let mut retry = tokio::time::interval(Duration::from_millis(100));
        tokio::time::timeout(Duration::from_secs(30), async {
            while !(got_unsigned && got_signed) {
                tokio::select! {
                    _ = retry.tick(), if !published => {
                        // Until our node has joined the topic, there is nobody to publish to.
                        published = older.behaviour_mut().publish(shared_topic.clone(), signed.clone()).is_ok();
                    }
                    event = older.select_next_some() => {
                        if let SwarmEvent::Behaviour(gossipsub::Event::Message { message, .. }) = event {
                            assert_eq!(message.source, None, "an upgraded node's batch names no signer");
                            assert_eq!(decode_batch(&message.data), Some(vec![b"from the upgraded node".to_vec()]));
                            got_unsigned = true;
                        }
                    }
                    Some(batch) = received.recv() => {
                        assert_eq!(batch.txs, vec![b"from the older node".to_vec()]);
                        assert_eq!(batch.from, older_id);
                        got_signed = true;
                    }
                }
            }
        })
        .await
        .expect("both batches arrive within 30 s");
    }
}
