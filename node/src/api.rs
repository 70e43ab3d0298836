//! The node as the JSON-RPC sees it: the [`NodeApi`] the `cachet-rpc` server calls, answered
//! from the committed state: submissions (admitted, then gossiped), blocks, transactions,
//! state, receipts and verdicts, history, metrics, and the operator's methods.
//!
//! It is not the server (`cachet-rpc`: HTTP, JSON, the verify page) nor the consensus host: it
//! only reads what the host committed, through [`Shared`].

use crate::context::{Address, CachetContext, Vote};
use crate::mempool::AdmitError;
use crate::metrics::Source;
use crate::receipts::Receipts;
use crate::shared::Shared;
use async_trait::async_trait;
use cachet_chain::ids::AgencyId;
use cachet_chain::state::{self, StateKey};
use cachet_chain::state_tree;
use cachet_chain::tx::TxId;
use cachet_rpc::{
    BlockInfo, EquivocatingVote, Equivocation, Failure, NextNonce, NodeApi, Status, TxStatus,
};
use malachite_app::types::core::CommitCertificate;
use std::sync::Arc;

/// The node's answers to the RPC.
pub struct Api {
    node: Arc<Shared>,
    /// What every receipt at the committed height shares, built once per height.
    receipts: Receipts,
}

impl Api {
    /// The API of a running node.
    pub fn new(node: Arc<Shared>) -> Api {
        Api {
            node,
            receipts: Receipts::default(),
        }
    }
}

fn admit_failure(e: AdmitError) -> Failure {
    Failure::new(e.code(), e.name(), e.to_string())
}

#[async_trait]
impl NodeApi for Api {
    async fn submit(&self, tx: Vec<u8>) -> Result<TxId, Failure> {
        self.submit_many(vec![tx])
            .await
            .pop()
            .expect("one result per transaction")
    }

    async fn submit_many(&self, txs: Vec<Vec<u8>>) -> Vec<Result<TxId, Failure>> {
        let txs = Arc::new(txs);
        let results = self.node.admit_owned(txs.clone(), Source::Rpc).await;
        let gossip = self.node.gossip();
        let mut out = Vec::with_capacity(results.len());
        for (result, tx) in results.into_iter().zip(txs.iter()) {
            if let (Ok(_), Some(g)) = (&result, &gossip) {
                g.publish(tx.clone()).await;
            }
            out.push(result.map_err(admit_failure));
        }
        out
    }

    fn status(&self) -> Result<Status, Failure> {
        let head = self.node.head();
        Ok(Status {
            moniker: self.node.moniker.clone(),
            chain_id: head.chain_id.to_string(),
            height: head.height.0,
            hash: head.hash(),
            time: head.time.0,
            state_root: head.state_root,
            mempool: self.node.mempool.len(),
        })
    }

    fn block(&self, height: u64) -> Result<Option<BlockInfo>, Failure> {
        let internal = |e: state_tree::StoreError| Failure::internal(e.to_string());
        let Some(block) = self.node.store.block(height).map_err(internal)? else {
            let base = self.node.store.base().map_err(internal)?;
            if height > 0 && height <= base && height <= self.node.head().height.0 {
                return Err(Failure::new(
                    3001,
                    "unknown_block",
                    format!(
                        "block {height} is not kept here: this node holds every block from height \
                         {} on (it joined from a snapshot, or prunes old blocks); ask an archive node",
                        base + 1
                    ),
                ));
            }
            return Ok(None);
        };
        let signatures = match self.node.store.certificate(height).map_err(internal)? {
            Some(bytes) => borsh::from_slice::<CommitCertificate<CachetContext>>(&bytes)
                .map(|c| c.commit_signatures.len())
                .unwrap_or(0),
            None => 0,
        };
        Ok(Some(BlockInfo {
            height,
            hash: block.hash(),
            txs: block.txs.iter().map(|t| t.id()).collect(),
            header: block.header,
            signatures,
        }))
    }

    fn transaction(&self, id: &TxId) -> Result<TxStatus, Failure> {
        if let Some(loc) = self
            .node
            .store
            .tx_location(id)
            .map_err(|e| Failure::internal(e.to_string()))?
        {
            return Ok(match loc.refused {
                None => TxStatus::Committed {
                    height: loc.height,
                    index: loc.index,
                },
                Some(r) => TxStatus::Refused {
                    height: loc.height,
                    index: loc.index,
                    code: r.code,
                    name: r.name,
                    message: r.message,
                },
            });
        }
        if self.node.mempool.contains(id) {
            return Ok(TxStatus::Pending);
        }
        Ok(match self.node.mempool.dropped(id) {
            Some(e) => TxStatus::Dropped {
                code: e.code(),
                name: e.name().to_string(),
                message: e.to_string(),
            },
            None => TxStatus::Unknown,
        })
    }

    fn next_nonce(&self, id: &AgencyId) -> Result<Option<NextNonce>, Failure> {
        let record = self
            .node
            .with_head(|head| head.agency(id))
            .map_err(|e| Failure::internal(e.to_string()))?;
        Ok(record.map(|a| NextNonce {
            agency: id.clone(),
            committed: a.next_nonce,
            next: self.node.mempool.next_free_nonce(id, a.next_nonce),
        }))
    }

    fn state(&self, key: &StateKey) -> Result<Option<serde_json::Value>, Failure> {
        let head = self.node.head();
        let Some(bytes) = state_tree::get(&*self.node.store, &head.state_root, &key.hash())
            .map_err(|e| Failure::internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| Failure::internal(e.to_string()))
        };
        let corrupt = |e: cachet_chain::DecodeError| Failure::internal(e.to_string());
        // A record does not repeat its key; a client reading it as JSON gets it back as `id`.
        let with_id = |mut v: serde_json::Value, id: String| {
            if let Some(fields) = v.as_object_mut() {
                fields.insert("id".into(), id.into());
            }
            v
        };
        Ok(Some(match key {
            StateKey::Certificate(id) => with_id(
                json(serde_json::to_value(
                    state::decode_value::<state::CertificateRecord>(&bytes).map_err(corrupt)?,
                ))?,
                id.to_string(),
            ),
            StateKey::Batch(id) => with_id(
                json(serde_json::to_value(
                    state::decode_value::<state::BatchRecord>(&bytes).map_err(corrupt)?,
                ))?,
                id.to_string(),
            ),
            StateKey::Agency(_) => json(serde_json::to_value(
                state::decode_value::<state::AgencyRecord>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::Validators => json(serde_json::to_value(
                state::decode_value::<state::ValidatorSet>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::Policy(_) => json(serde_json::to_value(
                state::decode_value::<state::KindPolicy>(&bytes).map_err(corrupt)?,
            ))?,
            StateKey::RegisteredKinds => {
                serde_json::Value::from(state::decode_value::<u16>(&bytes).map_err(corrupt)?)
            }
            StateKey::KindByName(_) => json(serde_json::to_value(
                state::decode_value::<cachet_chain::CertKind>(&bytes).map_err(corrupt)?,
            ))?,
            _ => serde_json::Value::String(cachet_chain::hash::encode_hex(&bytes)),
        }))
    }

    fn receipt(
        &self,
        id: &cachet_chain::CertId,
        options: &cachet_rpc::ReceiptOptions,
    ) -> Result<Vec<u8>, Failure> {
        self.receipts
            .certificate(&self.node, id, options)
            .map(|r| r.encode())
    }

    fn batch_receipt(
        &self,
        batch: &cachet_chain::tx::BatchId,
        commitment: cachet_chain::Commitment,
        inclusion: cachet_chain::merkle::BatchProof,
        options: &cachet_rpc::ReceiptOptions,
    ) -> Result<Vec<u8>, Failure> {
        self.receipts
            .batch_entry(&self.node, batch, commitment, inclusion, options)
            .map(|r| r.encode())
    }

    fn checkpoint(&self, trusted_height: u64) -> Result<Vec<u8>, Failure> {
        self.receipts
            .advance(&self.node, trusted_height)
            .map(|a| a.encode())
    }

    fn verify(&self, id: &cachet_chain::CertId) -> Result<cachet_rpc::Verification, Failure> {
        // With the issuer's record: the verdict names the agency.
        let options = cachet_rpc::ReceiptOptions {
            issuer: true,
            ..Default::default()
        };
        let receipt = self.receipts.certificate(&self.node, id, &options)?;
        let now = cachet_chain::Timestamp(crate::clock::now_ms());
        // The node checks its own receipt as any verifier would (the shared header and commit
        // once per height, when the receipt head was built); a failure here means the node's
        // store or clock is broken, not the certificate.
        let verified = cachet_chain::receipt::verify_claims(
            &receipt,
            &self.node.trust,
            now.max(receipt.header.time),
            None,
        )
        .map_err(|e| Failure::internal(format!("own receipt does not verify: {e}")))?;
        let fields = match serde_json::to_value(&verified) {
            Ok(serde_json::Value::Object(fields)) => fields,
            Ok(other) => {
                return Err(Failure::internal(format!(
                    "verdict is not an object: {other}"
                )));
            }
            Err(e) => return Err(Failure::internal(e.to_string())),
        };
        Ok(cachet_rpc::Verification {
            fields,
            receipt: receipt.encode(),
        })
    }

    fn verify_document(
        &self,
        fingerprint: &cachet_chain::Fingerprint,
        salt: &cachet_chain::Salt,
    ) -> Result<cachet_rpc::Verification, Failure> {
        let commitment = cachet_chain::Commitment::new(fingerprint, salt);
        for kind in self.kinds()? {
            let id = cachet_chain::CertId::derive(kind, &commitment);
            if self.state(&StateKey::Certificate(id))?.is_some() {
                return self.verify(&id);
            }
        }
        self.verify(&cachet_chain::CertId::derive(
            cachet_chain::CertKind::LandTitle,
            &commitment,
        ))
    }

    fn history(&self, id: &cachet_chain::CertId) -> Result<Vec<serde_json::Value>, Failure> {
        let record = |id: &cachet_chain::CertId| self.state(&StateKey::Certificate(*id));
        let Some(start) = record(id)? else {
            return Err(Failure::new(
                1301,
                "unknown_certificate",
                format!("unknown certificate {id}"),
            ));
        };
        let mut older = Vec::new();
        let mut cursor = start.clone();
        while let Some(prev) = cursor["supersedes"].as_str().and_then(|s| s.parse().ok()) {
            let Some(r) = record(&prev)? else { break };
            older.push(r.clone());
            cursor = r;
            if older.len() > 1000 {
                break;
            }
        }
        older.reverse();
        older.push(start.clone());
        let mut cursor = start;
        while let Some(next) = cursor["status"]["by"]
            .as_str()
            .filter(|_| cursor["status"]["state"] == "superseded")
            .and_then(|s| s.parse().ok())
        {
            let Some(r) = record(&next)? else { break };
            older.push(r.clone());
            cursor = r;
            if older.len() > 2000 {
                break;
            }
        }
        Ok(older)
    }

    fn subscribe_blocks(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
        self.node.blocks.subscribe()
    }

    fn readiness(&self) -> cachet_rpc::Readiness {
        let head = self.node.head();
        let clock = self.node.clock_skew.skew();
        let validators = self
            .node
            .store
            .validators_after(head.height.0)
            .map(|s| s.validators.len())
            .unwrap_or(0);
        crate::health::readiness(
            &crate::health::Observed {
                height: head.height.0,
                head_age_ms: crate::clock::age_ms(head.time.0, clock),
                clock,
                peers: self
                    .node
                    .metrics
                    .gossip_peers
                    .load(std::sync::atomic::Ordering::Relaxed) as usize,
                validators,
                home: &self.node.home,
                writes_paused: self.node.disk.paused(),
            },
            &self.node.health,
        )
    }

    /// This node's metrics, then Malachite's.
    fn metrics(&self) -> String {
        let head = self.node.head();
        let (node_cache, value_cache) = self.node.store.cache_fill();
        let me = std::process::id();
        let gauges = crate::metrics::Gauges {
            height: head.height.0,
            head_time_ms: head.time.0,
            clock_skew_ms: self.node.clock_skew.skew().map(|s| s.ms),
            head_age_ms: crate::clock::age_ms(head.time.0, self.node.clock_skew.skew()),
            disk_free_bytes: self.node.disk.free(),
            writes_paused: self.node.disk.paused(),
            mempool_transactions: self.node.mempool.len(),
            pruned_height: self.node.store.pruned_upto().unwrap_or(0),
            base_height: self.node.store.base().unwrap_or(0),
            families: self.node.store.family_sizes(),
            pending_compaction_bytes: self.node.store.pending_compaction_bytes(),
            block_cache_bytes: self.node.store.block_cache_bytes(),
            store_io: self.node.store.io(),
            node_cache,
            value_cache,
            tree_nodes_in_memory: self.node.store.resident_nodes(),
            resident_bytes: crate::metrics::resident_bytes(me),
            heap: crate::metrics::heap_stats(),
            cpu_seconds: crate::metrics::cpu_ticks(me) as f64 / crate::metrics::TICKS_PER_SECOND,
        };
        crate::metrics::render(
            &self.node.metrics,
            &gauges,
            &crate::metrics::consensus_text(),
        )
    }

    fn node_info(&self) -> Result<serde_json::Value, Failure> {
        Ok(self.node.info.clone())
    }

    fn trust_anchor(&self) -> cachet_chain::trust::TrustAnchor {
        self.node.anchor.clone()
    }

    async fn add_peer(&self, p2p: String, gossip_addr: String) -> Result<(), Failure> {
        let parse = |s: &str| {
            s.parse::<libp2p::Multiaddr>()
                .map_err(|e| Failure::invalid_params(format!("bad multiaddr {s}: {e}")))
        };
        self.node
            .connect_peer(parse(&p2p)?, parse(&gossip_addr)?)
            .await
            .map_err(|e| Failure::new(2003, "peer_refused", format!("{e:#}")))
    }

    async fn snapshot_at(&self, height: u64) -> Result<serde_json::Value, Failure> {
        let head = self.node.head().height.0;
        if height <= head {
            return Err(Failure::new(
                2009,
                "snapshot_refused",
                format!("height {height} is not above the head, {head}"),
            ));
        }
        self.node.snapshots.schedule(height);
        tracing::info!(height, "snapshot scheduled");
        Ok(serde_json::json!({ "height": height }))
    }

    async fn backup(&self, dir: String) -> Result<serde_json::Value, Failure> {
        let node = self.node.clone();
        let taken = tokio::task::spawn_blocking(move || {
            crate::backup::take(&node.store, &node.moniker, std::path::Path::new(&dir))
        })
        .await
        .map_err(|e| Failure::internal(e.to_string()))?;
        match taken {
            Ok(manifest) => {
                tracing::info!(height = manifest.height, "backup taken");
                serde_json::to_value(manifest).map_err(|e| Failure::internal(e.to_string()))
            }
            Err(e) => Err(Failure::new(2005, "backup_failed", format!("{e:#}"))),
        }
    }

    fn evidence(&self) -> Result<Vec<Equivocation>, Failure> {
        let internal = |e: String| Failure::internal(e);
        let stored = self
            .node
            .store
            .evidence()
            .map_err(|e| internal(e.to_string()))?;
        stored
            .into_iter()
            .map(|(height, bytes)| {
                let (validator, a, b): (Address, SignedVote, SignedVote) =
                    borsh::from_slice(&bytes).map_err(|e| {
                        internal(format!("evidence recorded at {height} is corrupt: {e}"))
                    })?;
                let agency = self
                    .node
                    .store
                    .validators_after(height.saturating_sub(1))
                    .ok()
                    .and_then(|set| {
                        let v = set.validators.iter().find(|v| v.key == validator.0)?;
                        Some(v.agency.clone())
                    });
                Ok(Equivocation {
                    height,
                    validator: validator.0,
                    agency,
                    votes: vec![seen(&a), seen(&b)],
                    encoded: cachet_chain::hash::encode_hex(&bytes),
                })
            })
            .collect()
    }
}

/// A vote of a recorded equivocation, signed.
type SignedVote = malachite_app::types::core::SignedMessage<CachetContext, Vote>;

/// A signed vote as `cachet_evidence` shows it.
fn seen(vote: &SignedVote) -> EquivocatingVote {
    use malachite_app::types::core::{NilOrVal, VoteType};
    let v = &vote.message;
    let cachet_chain::crypto::Signature::Ed25519(signature) = vote.signature.0;
    EquivocatingVote {
        kind: match v.vote_type {
            VoteType::Prevote => "prevote",
            VoteType::Precommit => "precommit",
        }
        .to_string(),
        height: v.height.0,
        round: v.round.as_i64(),
        block: match &v.value {
            NilOrVal::Nil => None,
            NilOrVal::Val(id) => Some(id.0),
        },
        signature: cachet_chain::hash::encode_hex(&signature),
    }
}
