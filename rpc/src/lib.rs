//! `cachet-rpc`: the JSON-RPC 2.0 server a node serves (HTTP and WebSocket, jsonrpsee).
//!
//! What it is: the method table, the JSON shapes and the stable error codes, over the
//! [`NodeApi`] trait that the node implements. Reads are public; the only write is a signed
//! transaction, so the RPC needs no accounts. Every error carries the same numeric code as the
//! rule or admission check that produced it (see `docs/spec/errors.md`).
//!
//! What it is not: consensus, storage or rules. The verification API (receipts, verify by id or
//! fingerprint, subscriptions, the verify page) grows here with the verification issue.

use cachet_chain::hash::Hash32;
use cachet_chain::state::StateKey;
use cachet_chain::tx::TxId;
use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::ErrorObjectOwned;
use std::net::SocketAddr;
use std::sync::Arc;

mod api;
pub mod envelope;
pub mod limit;
pub mod listen;
pub mod web;

pub use limit::Limits;

pub use api::{
    BlockInfo, Check, EquivocatingVote, Equivocation, Failure, NextNonce, NodeApi, Readiness,
    ReceiptOptions, Status, TxStatus, Verification,
};

/// The OpenRPC description of these methods (`docs/openrpc.json`).
pub const OPENRPC: &str = include_str!("../../docs/openrpc.json");

/// Most transactions in one `cachet_submitMany` call.
pub const MAX_SUBMIT_MANY: usize = 1000;

/// Largest request body: `cachet_submitMany` of typical transactions (a transaction is at most
/// 16 KiB; hex doubles it).
pub const MAX_REQUEST_BYTES: u32 = 4 * 1024 * 1024;

/// The JSON object `fields` with `"receipt": "<hex of receipt>"` added, written once. A receipt
/// is kilobytes of hex: putting it in a `Value` copied it, and serializing that ran serde_json's
/// byte-at-a-time escaping over it, 8% of a node's CPU while it served receipts. The raw value
/// is still checked as JSON, by serde_json's word-at-a-time string scan. `fields` must not
/// name a receipt already: a reply with the key twice is not one a client can trust.
fn with_receipt(
    fields: &serde_json::Map<String, serde_json::Value>,
    receipt: &[u8],
) -> Result<Box<serde_json::value::RawValue>, Failure> {
    if fields.contains_key("receipt") {
        return Err(Failure::internal("reply fields already hold a receipt"));
    }
    let internal = |e: serde_json::Error| Failure::internal(e.to_string());
    let mut out = serde_json::to_vec(fields).map_err(internal)?;
    out.reserve(receipt.len() * 2 + 16);
    out.pop(); // the closing brace
    if !fields.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"receipt\":\"");
    cachet_chain::hash::push_hex(&mut out, receipt);
    out.extend_from_slice(b"\"}");
    let text = String::from_utf8(out).map_err(|e| Failure::internal(e.to_string()))?;
    serde_json::value::RawValue::from_string(text).map_err(internal)
}

/// The reply to a receipt request: `{"bytes": N, "receipt": "<hex>"}`.
fn receipt_reply(receipt: &[u8]) -> Result<Box<serde_json::value::RawValue>, Failure> {
    let mut fields = serde_json::Map::new();
    fields.insert("bytes".into(), receipt.len().into());
    with_receipt(&fields, receipt)
}

/// `[id]` or `[id, options]`: a hash and a verifier's [`ReceiptOptions`].
fn hash_and_options(p: &jsonrpsee::types::Params<'_>) -> Result<(Hash32, ReceiptOptions), Failure> {
    let invalid = |e: ErrorObjectOwned| Failure::invalid_params(e.message());
    let mut seq = p.sequence();
    let s: String = seq.next().map_err(invalid)?;
    let options: Option<ReceiptOptions> = seq.optional_next().map_err(invalid)?;
    let id = s
        .parse()
        .map_err(|_| Failure::invalid_params("expected a 64-character hex id"))?;
    Ok((id, options.unwrap_or_default()))
}

/// The one parameter of a method that takes an agency id.
fn agency_param(p: &jsonrpsee::types::Params<'_>) -> Result<cachet_chain::AgencyId, Failure> {
    let (id,): (String,) = p
        .parse()
        .map_err(|e| Failure::invalid_params(e.to_string()))?;
    id.parse()
        .map_err(|e: cachet_chain::ids::InvalidId| Failure::invalid_params(e.to_string()))
}

fn hash_param(p: &jsonrpsee::types::Params<'_>) -> Result<Hash32, Failure> {
    let (s,): (String,) = p
        .parse()
        .map_err(|e| Failure::invalid_params(e.to_string()))?;
    s.parse()
        .map_err(|_| Failure::invalid_params("expected a 64-character hex id"))
}

/// Every kind the chain knows, built in and registered by governance, with its policy: what a
/// client resolves a registered kind's name with (`kind` is what transactions carry).
fn kinds(api: &dyn NodeApi) -> Result<Vec<serde_json::Value>, Failure> {
    let mut out = Vec::new();
    for kind in api.kinds()? {
        let Some(policy) = api.state(&StateKey::Policy(kind))? else {
            continue;
        };
        let name = match kind.builtin_name() {
            Some(name) => name.to_string(),
            None => policy["definition"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        out.push(serde_json::json!({ "kind": kind, "name": name, "policy": policy }));
    }
    Ok(out)
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn found<T>(value: Option<T>, code: u32, name: &str, what: String) -> RpcResult<T> {
    value.ok_or_else(|| Failure::new(code, name, what).into())
}

/// Who may call the operator methods (`cachet_admin_*`) on a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operators {
    /// Nobody: they are not served.
    Nobody,
    /// Any caller: a loopback listener of a node with no operator token.
    Loopback,
    /// A caller whose request carries `Authorization: Bearer <token>`, on any listener.
    Token(Arc<str>),
}

impl Operators {
    /// Who may call them on a listener at `addr`, given the node's operator token.
    pub fn at(addr: &SocketAddr, token: Option<&Arc<str>>) -> Operators {
        match token {
            Some(t) => Operators::Token(t.clone()),
            None if addr.ip().is_loopback() => Operators::Loopback,
            None => Operators::Nobody,
        }
    }
}

/// The method table; operator methods (`cachet_admin_*`) unless `operators` is
/// [`Operators::Nobody`].
pub fn module(api: Arc<dyn NodeApi>, operators: Operators) -> RpcModule<Arc<dyn NodeApi>> {
    let admin = operators != Operators::Nobody;
    let need_token = matches!(operators, Operators::Token(_));
    let mut m = RpcModule::new(api);
    m.register_async_method("cachet_submit", |params, api, _| async move {
        let (hexed,): (String,) = params
            .parse()
            .map_err(|e| Failure::invalid_params(e.to_string()))?;
        let bytes = hex::decode(hexed.trim_start_matches("0x"))
            .map_err(|_| Failure::new(1001, "malformed", "transaction is not hex"))?;
        let id = api.submit(bytes).await?;
        Ok::<_, ErrorObjectOwned>(serde_json::json!({ "id": id }))
    })
    .expect("unique method name");
    m.register_async_method("cachet_submitMany", |params, api, _| async move {
        let (list,): (Vec<String>,) = params
            .parse()
            .map_err(|e| Failure::invalid_params(e.to_string()))?;
        if list.len() > MAX_SUBMIT_MANY {
            return Err(Failure::invalid_params(format!(
                "at most {MAX_SUBMIT_MANY} transactions per call"
            ))
            .into());
        }
        let decoded: Vec<Result<Vec<u8>, Failure>> = list
            .iter()
            .map(|hexed| {
                hex::decode(hexed.trim_start_matches("0x"))
                    .map_err(|_| Failure::new(1001, "malformed", "transaction is not hex"))
            })
            .collect();
        let mut admitted = api
            .submit_many(decoded.iter().flatten().cloned().collect())
            .await
            .into_iter();
        let out = decoded
            .into_iter()
            .map(|d| {
                let result = d.and_then(|_| {
                    admitted
                        .next()
                        .unwrap_or_else(|| Err(Failure::internal("missing admission result")))
                });
                match result {
                    Ok(id) => serde_json::json!({ "id": id }),
                    Err(f) => serde_json::json!({ "error": f }),
                }
            })
            .collect();
        Ok::<_, ErrorObjectOwned>(serde_json::Value::Array(out))
    })
    .expect("unique method name");
    m.register_method("cachet_status", |_, api, _| -> RpcResult<Status> {
        Ok(api.status()?)
    })
    .expect("unique method name");
    m.register_method("cachet_block", |params, api, _| -> RpcResult<BlockInfo> {
        let (height,): (u64,) = params
            .parse()
            .map_err(|e| Failure::invalid_params(e.to_string()))?;
        found(
            api.block(height)?,
            3001,
            "unknown_block",
            format!("no committed block at height {height}"),
        )
    })
    .expect("unique method name");
    m.register_method(
        "cachet_transaction",
        |params, api, _| -> RpcResult<TxStatus> {
            let id = TxId(hash_param(&params)?);
            api.transaction(&id).map_err(ErrorObjectOwned::from)
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_certificate",
        |params, api, _| -> RpcResult<serde_json::Value> {
            let id = cachet_chain::CertId(hash_param(&params)?);
            found(
                api.state(&StateKey::Certificate(id))?,
                1301,
                "unknown_certificate",
                format!("unknown certificate {id}"),
            )
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_batch",
        |params, api, _| -> RpcResult<serde_json::Value> {
            let id = cachet_chain::tx::BatchId(hash_param(&params)?);
            found(
                api.state(&StateKey::Batch(id))?,
                1322,
                "unknown_batch",
                format!("unknown batch {id}"),
            )
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_kinds",
        |_, api, _| -> RpcResult<Vec<serde_json::Value>> { Ok(kinds(&**api)?) },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_agency",
        |params, api, _| -> RpcResult<serde_json::Value> {
            let id = agency_param(&params)?;
            found(
                api.state(&StateKey::Agency(id.clone()))?,
                1103,
                "unknown_agency",
                format!("unknown agency {id}"),
            )
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_nextNonce",
        |params, api, _| -> RpcResult<NextNonce> {
            let id = agency_param(&params)?;
            found(
                api.next_nonce(&id)?,
                1103,
                "unknown_agency",
                format!("unknown agency {id}"),
            )
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_validators",
        |_, api, _| -> RpcResult<serde_json::Value> {
            found(
                api.state(&StateKey::Validators)?,
                2900,
                "internal",
                "state has no validator set".into(),
            )
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_evidence",
        |_, api, _| -> RpcResult<Vec<Equivocation>> { Ok(api.evidence()?) },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_receipt",
        |params, api, _| -> RpcResult<Box<serde_json::value::RawValue>> {
            let (id, options) = hash_and_options(&params)?;
            Ok(receipt_reply(
                &api.receipt(&cachet_chain::CertId(id), &options)?,
            )?)
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_batchReceipt",
        |params, api, _| -> RpcResult<Box<serde_json::value::RawValue>> {
            let invalid = |e: ErrorObjectOwned| Failure::invalid_params(e.message());
            let mut seq = params.sequence();
            let batch: String = seq.next().map_err(invalid)?;
            let commitment: String = seq.next().map_err(invalid)?;
            let inclusion: String = seq.next().map_err(invalid)?;
            let options: Option<ReceiptOptions> = seq.optional_next().map_err(invalid)?;
            let bad = |what: &str| Failure::invalid_params(format!("bad {what}"));
            let batch = cachet_chain::tx::BatchId(batch.parse().map_err(|_| bad("batch id"))?);
            let commitment =
                cachet_chain::Commitment(commitment.parse().map_err(|_| bad("commitment"))?);
            let inclusion: cachet_chain::merkle::BatchProof = cachet_chain::codec::decode(
                &hex::decode(inclusion).map_err(|_| bad("inclusion proof"))?,
                4096,
            )
            .map_err(|_| bad("inclusion proof"))?;
            Ok(receipt_reply(&api.batch_receipt(
                &batch,
                commitment,
                inclusion,
                &options.unwrap_or_default(),
            )?)?)
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_checkpoint",
        |params, api, _| -> RpcResult<serde_json::Value> {
            let trusted_height: Option<u64> = params
                .sequence()
                .optional_next()
                .map_err(|e| Failure::invalid_params(e.message()))?;
            let trusted_height = trusted_height.unwrap_or(0);
            let bytes = api.checkpoint(trusted_height)?;
            let advance = cachet_chain::checkpoint::Advance::decode(&bytes)
                .map_err(|e| Failure::internal(e.to_string()))?;
            Ok(serde_json::json!({
                "root": advance.root(),
                "height": advance.anchor.header.height.0,
                "bytes": bytes.len(),
                "advance": hex::encode(&bytes),
            }))
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_verify",
        |params, api, _| -> RpcResult<Box<serde_json::value::RawValue>> {
            let id = cachet_chain::CertId(hash_param(&params)?);
            let found = api.verify(&id)?;
            Ok(with_receipt(&found.fields, &found.receipt)?)
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_verifyDocument",
        |params, api, _| -> RpcResult<Box<serde_json::value::RawValue>> {
            let (alg, digest, salt): (String, String, String) = params
                .parse()
                .map_err(|e| Failure::invalid_params(e.to_string()))?;
            let bad = |what: &str| Failure::invalid_params(format!("bad {what}"));
            let alg = match alg.as_str() {
                "sha256" => cachet_chain::FingerprintAlg::Sha256,
                "blake3" => cachet_chain::FingerprintAlg::Blake3,
                _ => return Err(bad("algorithm (sha256 or blake3)").into()),
            };
            let fingerprint = cachet_chain::Fingerprint {
                alg,
                digest: digest.parse().map_err(|_| bad("digest"))?,
            };
            let salt = cachet_chain::Salt(salt.parse().map_err(|_| bad("salt"))?);
            let found = api.verify_document(&fingerprint, &salt)?;
            Ok(with_receipt(&found.fields, &found.receipt)?)
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_history",
        |params, api, _| -> RpcResult<Vec<serde_json::Value>> {
            let id = cachet_chain::CertId(hash_param(&params)?);
            Ok(api.history(&id)?)
        },
    )
    .expect("unique method name");
    m.register_subscription(
        "cachet_subscribeBlocks",
        "cachet_newBlock",
        "cachet_unsubscribeBlocks",
        |_, pending, api, _| async move {
            let mut rx = api.subscribe_blocks();
            let sink = pending.accept().await?;
            loop {
                match rx.recv().await {
                    Ok(block) => {
                        let msg = serde_json::value::to_raw_value(&block)?;
                        if sink.send(msg).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        },
    )
    .expect("unique method name");
    m.register_method("rpc.discover", |_, _, _| -> RpcResult<serde_json::Value> {
        serde_json::from_str(OPENRPC).map_err(|e| Failure::internal(e.to_string()).into())
    })
    .expect("unique method name");
    m.register_method(
        "cachet_trustAnchor",
        |_, api, _| -> RpcResult<serde_json::Value> {
            let anchor = api.trust_anchor();
            Ok(serde_json::json!({
                "root": anchor.root().to_string(),
                "chain_id": anchor.header.chain_id.as_str(),
                "height": anchor.header.height.0,
                "anchor": hex::encode(anchor.encode()),
            }))
        },
    )
    .expect("unique method name");
    m.register_method(
        "cachet_nodeInfo",
        |_, api, _| -> RpcResult<serde_json::Value> { Ok(api.node_info()?) },
    )
    .expect("unique method name");
    if admin {
        m.register_async_method("cachet_admin_addPeer", move |params, api, ext| async move {
            operator(&ext, need_token)?;
            let (p2p, gossip): (String, String) = params
                .parse()
                .map_err(|e| Failure::invalid_params(e.to_string()))?;
            api.add_peer(p2p, gossip).await?;
            Ok::<_, ErrorObjectOwned>(serde_json::json!({ "added": true }))
        })
        .expect("unique method name");
        m.register_async_method("cachet_admin_backup", move |params, api, ext| async move {
            operator(&ext, need_token)?;
            let (dir,): (String,) = params
                .parse()
                .map_err(|e| Failure::invalid_params(e.to_string()))?;
            Ok::<_, ErrorObjectOwned>(api.backup(dir).await?)
        })
        .expect("unique method name");
        m.register_async_method(
            "cachet_admin_snapshot",
            move |params, api, ext| async move {
                operator(&ext, need_token)?;
                let (height,): (u64,) = params
                    .parse()
                    .map_err(|e| Failure::invalid_params(e.to_string()))?;
                Ok::<_, ErrorObjectOwned>(api.snapshot_at(height).await?)
            },
        )
        .expect("unique method name");
    }
    m
}

/// May this request call an operator method? Never from a web page (its request carries an
/// `Origin`); with the node's token when it has one.
fn operator(ext: &jsonrpsee::Extensions, need_token: bool) -> Result<(), Failure> {
    if ext.get::<web::FromWebPage>().is_some() {
        return Err(Failure::new(
            2004,
            "from_web_page",
            "operator methods are not served to web pages",
        ));
    }
    if need_token && ext.get::<web::OperatorToken>().is_none() {
        return Err(Failure::new(
            2006,
            "unauthorized",
            "operator methods need this node's operator token (Authorization: Bearer …)",
        ));
    }
    Ok(())
}

/// How a listener is served: over TLS or not, and the per-client limits.
#[derive(Clone, Default)]
pub struct Serving {
    /// TLS, when the node has a certificate.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The per-client limits.
    pub limits: Limits,
}

/// Serve the RPC on `addr` until the handle is stopped. Operator methods are served with the
/// node's operator `token` (on any address), or without one on a loopback address only.
pub async fn serve(
    addr: SocketAddr,
    api: Arc<dyn NodeApi>,
    token: Option<Arc<str>>,
    serving: Serving,
) -> std::io::Result<(ServerHandle, SocketAddr)> {
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(64 * 1024 * 1024)
        .max_connections(1024)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(32))
        // A WebSocket whose client went away without closing it (a phone that lost its
        // network) is closed once it misses a ping: 30 s apart, 40 s to answer.
        .enable_ws_ping(jsonrpsee::server::PingConfig::new())
        .build();
    let pages_api = api.clone();
    let page: Arc<str> = web::page(&api.trust_anchor(), &[], None).into();
    let methods = module(api.clone(), Operators::at(&addr, token.as_ref()));
    let names: Arc<std::collections::BTreeSet<String>> =
        Arc::new(methods.method_names().map(str::to_string).collect());
    let buckets = limit::Buckets::new(serving.limits);
    let builder = Server::builder()
        .set_config(config)
        .set_http_middleware(
            tower::ServiceBuilder::new()
                .layer_fn(move |inner| web::Pages {
                    inner,
                    api: pages_api.clone(),
                    page: page.clone(),
                    token: token.clone(),
                })
                .layer_fn(move |inner| envelope::Envelope {
                    inner,
                    methods: names.clone(),
                    max_body: MAX_REQUEST_BYTES as usize,
                }),
        )
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(move |inner| {
                limit::RateLimit {
                    inner,
                    buckets: buckets.clone(),
                }
            }),
        )
        .to_service_builder();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (stop, handle) = jsonrpsee::server::stop_channel();
    let methods: jsonrpsee::Methods = methods.into();
    let make = {
        let stop = stop.clone();
        move || {
            let builder = builder.clone();
            let methods = methods.clone();
            let stop = stop.clone();
            tower::service_fn(move |request| {
                let mut service = builder.clone().build(methods.clone(), stop.clone());
                async move { tower::Service::call(&mut service, request).await }
            })
        }
    };
    tokio::spawn(listen::accept(
        listener,
        serving.tls,
        serving.limits,
        stop,
        make,
    ));
    Ok((handle, bound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// Answers nothing: only here to build the method table.
    struct Unavailable;

    /// Calls of `submit` that reached the API (only the envelope test submits).
    static SUBMITTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    fn no<T>() -> Result<T, Failure> {
        Err(Failure::internal("unavailable"))
    }

    #[async_trait]
    impl NodeApi for Unavailable {
        async fn submit(&self, _: Vec<u8>) -> Result<TxId, Failure> {
            SUBMITTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            no()
        }
        fn status(&self) -> Result<Status, Failure> {
            no()
        }
        fn block(&self, _: u64) -> Result<Option<BlockInfo>, Failure> {
            no()
        }
        fn transaction(&self, _: &TxId) -> Result<TxStatus, Failure> {
            no()
        }
        fn state(&self, _: &StateKey) -> Result<Option<serde_json::Value>, Failure> {
            no()
        }
        fn next_nonce(
            &self,
            _: &cachet_chain::AgencyId,
        ) -> Result<Option<crate::NextNonce>, Failure> {
            no()
        }
        fn evidence(&self) -> Result<Vec<crate::Equivocation>, Failure> {
            no()
        }
        fn receipt(
            &self,
            _: &cachet_chain::CertId,
            _: &crate::ReceiptOptions,
        ) -> Result<Vec<u8>, Failure> {
            no()
        }
        fn batch_receipt(
            &self,
            _: &cachet_chain::tx::BatchId,
            _: cachet_chain::Commitment,
            _: cachet_chain::merkle::BatchProof,
            _: &crate::ReceiptOptions,
        ) -> Result<Vec<u8>, Failure> {
            no()
        }
        fn checkpoint(&self, _: u64) -> Result<Vec<u8>, Failure> {
            no()
        }
        fn readiness(&self) -> crate::Readiness {
            crate::Readiness {
                ready: false,
                height: 0,
                checks: Vec::new(),
            }
        }
        fn verify(&self, _: &cachet_chain::CertId) -> Result<Verification, Failure> {
            no()
        }
        fn verify_document(
            &self,
            _: &cachet_chain::Fingerprint,
            _: &cachet_chain::Salt,
        ) -> Result<Verification, Failure> {
            no()
        }
        fn history(&self, _: &cachet_chain::CertId) -> Result<Vec<serde_json::Value>, Failure> {
            no()
        }
        fn subscribe_blocks(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
            tokio::sync::broadcast::channel(1).1
        }
        fn metrics(&self) -> String {
            String::new()
        }
        fn trust_anchor(&self) -> cachet_chain::trust::TrustAnchor {
            // Enough for the page the server builds at start; nothing verifies it here.
            let set =
                cachet_chain::state::ValidatorSet::new(vec![cachet_chain::state::Validator {
                    agency: cachet_chain::AgencyId::new("rpc-test").expect("valid"),
                    key: cachet_chain::SecretKey::dev("rpc-test").public(),
                    power: 1,
                }])
                .expect("one validator");
            let zero = Hash32([0; 32]);
            cachet_chain::trust::TrustAnchor {
                header: cachet_chain::block::BlockHeader {
                    chain_id: cachet_chain::ChainId::new("rpc-test").expect("valid"),
                    height: cachet_chain::Height(0),
                    time: cachet_chain::Timestamp(0),
                    parent: zero,
                    proposer: None,
                    tx_root: zero,
                    tx_count: 0,
                    state_root: zero,
                    validators_hash: set.hash(),
                    next_validators_hash: set.hash(),
                },
                validators: set,
                policies: Default::default(),
            }
        }
        fn node_info(&self) -> Result<serde_json::Value, Failure> {
            no()
        }
        async fn backup(&self, _: String) -> Result<serde_json::Value, Failure> {
            no()
        }
        async fn snapshot_at(&self, _: u64) -> Result<serde_json::Value, Failure> {
            no()
        }
        async fn add_peer(&self, _: String, _: String) -> Result<(), Failure> {
            no()
        }
    }

    #[test]
    fn the_openrpc_document_lists_exactly_the_served_methods() {
        let module = module(Arc::new(Unavailable), Operators::Loopback);
        let mut served: Vec<&str> = module.method_names().collect();
        served.sort();
        let doc: serde_json::Value = serde_json::from_str(OPENRPC).unwrap();
        let mut documented: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        documented.sort();
        assert_eq!(
            served, documented,
            "docs/openrpc.json and the method table differ"
        );
    }

    /// The replies written by hand parse to what building them as `Value`s gives, for empty
    /// and non-empty fields, an empty receipt and every byte value.
    #[test]
    fn receipt_replies_are_the_json_a_value_would_give() {
        let receipt: Vec<u8> = (0..=255u8).chain([0, 255]).collect();
        let parsed = |raw: Box<serde_json::value::RawValue>| {
            serde_json::from_str::<serde_json::Value>(raw.get()).unwrap()
        };
        assert_eq!(
            parsed(receipt_reply(&receipt).unwrap()),
            serde_json::json!({ "bytes": 258, "receipt": hex::encode(&receipt) })
        );
        assert_eq!(
            parsed(receipt_reply(&[]).unwrap()),
            serde_json::json!({ "bytes": 0, "receipt": "" })
        );
        let fields = serde_json::json!({ "verdict": "valid", "note": "quote \" and \\ 權狀" });
        let fields = fields.as_object().unwrap();
        let mut expected = fields.clone();
        expected.insert("receipt".into(), hex::encode(&receipt).into());
        assert_eq!(
            parsed(with_receipt(fields, &receipt).unwrap()),
            serde_json::Value::Object(expected)
        );
        assert_eq!(
            parsed(with_receipt(&serde_json::Map::new(), &receipt).unwrap()),
            serde_json::json!({ "receipt": hex::encode(&receipt) })
        );
        // Never a reply with the key twice.
        let taken = serde_json::json!({ "receipt": "00" });
        assert!(with_receipt(taken.as_object().unwrap(), &receipt).is_err());
    }

    #[test]
    fn failures_carry_their_code_and_name() {
        let e: ErrorObjectOwned = Failure::new(1301, "unknown_certificate", "unknown").into();
        assert_eq!(e.code(), 1301);
        assert!(e.data().unwrap().get().contains("unknown_certificate"));
    }

    /// A server over [`Unavailable`] on a free loopback port, with this operator `token` and
    /// these TLS and limits.
    async fn serve_unavailable(
        token: Option<&str>,
        serving: Serving,
    ) -> (ServerHandle, SocketAddr) {
        serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(Unavailable),
            token.map(Into::into),
            serving,
        )
        .await
        .expect("serves")
    }

    /// POST `body` to the server at `addr`: the HTTP status and the JSON body.
    fn post(addr: SocketAddr, body: &[u8]) -> (u16, serde_json::Value) {
        post_as(addr, body, false, "")
    }

    /// POST `body`, its length declared or (`chunked`) sent in chunks of 64 KiB, with `headers`
    /// (each ending in CRLF) added.
    fn post_as(
        addr: SocketAddr,
        body: &[u8],
        chunked: bool,
        headers: &str,
    ) -> (u16, serde_json::Value) {
        let s = std::net::TcpStream::connect(addr).expect("connects");
        exchange(s, addr, body, chunked, headers)
    }

    /// POST `body` from the local address `from` (any of 127.0.0.0/8: another client).
    fn post_from(
        from: std::net::IpAddr,
        addr: SocketAddr,
        body: &[u8],
    ) -> (u16, serde_json::Value) {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        socket
            .bind(&SocketAddr::new(from, 0).into())
            .expect("binds to the client address");
        socket.connect(&addr.into()).expect("connects");
        exchange(std::net::TcpStream::from(socket), addr, body, false, "")
    }

    /// Send one HTTP request over `s` and read the answer: its status and JSON body.
    fn exchange(
        mut s: impl std::io::Read + std::io::Write,
        addr: SocketAddr,
        body: &[u8],
        chunked: bool,
        headers: &str,
    ) -> (u16, serde_json::Value) {
        let length = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", body.len())
        };
        // A server that refuses the connection may close it first: what it answered, if
        // anything, is read below either way.
        let _ = write!(
            s,
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             {length}\r\n{headers}Connection: close\r\n\r\n"
        );
        // The server may answer (413) before reading the whole body, and close.
        if chunked {
            for chunk in body.chunks(64 * 1024) {
                let _ = write!(s, "{:x}\r\n", chunk.len());
                let _ = s.write_all(chunk);
                let _ = s.write_all(b"\r\n");
            }
            let _ = s.write_all(b"0\r\n\r\n");
        } else {
            let _ = s.write_all(body);
        }
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        let text = String::from_utf8_lossy(&reply);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let json = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
            .unwrap_or(serde_json::Value::Null);
        (status, json)
    }

    /// The codes the JSON-RPC library itself answers with, which `docs/rpc.md` lists: a body
    /// that is not JSON, an unknown method, a batch over the limit, a body over the limit (also
    /// HTTP 413); and the project's own code for parameters of the wrong form.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_library_s_own_refusals_carry_the_documented_codes() {
        let (handle, addr) = serve_unavailable(None, Serving::default()).await;
        let call = |method: &str, params: serde_json::Value| serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let code = |v: &serde_json::Value| v["error"]["code"].as_i64();
        let cases = tokio::task::spawn_blocking(move || {
            let batch: Vec<_> = (0..33)
                .map(|_| call("cachet_status", serde_json::json!([])))
                .collect();
            let huge = call(
                "cachet_submit",
                serde_json::json!(["ab".repeat(3 * 1024 * 1024)]),
            );
            [
                post(addr, b"{not json"),
                post(
                    addr,
                    call("cachet_nothing", serde_json::json!([]))
                        .to_string()
                        .as_bytes(),
                ),
                post(
                    addr,
                    call("cachet_receipt", serde_json::json!([5]))
                        .to_string()
                        .as_bytes(),
                ),
                post(addr, serde_json::Value::Array(batch).to_string().as_bytes()),
                post(addr, huge.to_string().as_bytes()),
            ]
        })
        .await
        .expect("requests");
        assert_eq!(code(&cases[0].1), Some(-32700), "{:?}", cases[0]);
        assert_eq!(code(&cases[1].1), Some(-32601), "{:?}", cases[1]);
        assert_eq!(code(&cases[2].1), Some(1000), "{:?}", cases[2]);
        assert_eq!(code(&cases[3].1), Some(-32010), "{:?}", cases[3]);
        assert_eq!(cases[4].0, 413, "{:?}", cases[4]);
        assert_eq!(code(&cases[4].1), Some(-32007), "{:?}", cases[4]);
        handle.stop().expect("stops");
    }

    /// Envelopes as JSON-RPC 2.0 has them (see `envelope`): odd ids echoed and executed,
    /// notifications executed and unanswered, ids the standard does not allow refused, deep
    /// nesting and an oversized chunked body refused with their codes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_envelope_gets_the_answer_json_rpc_prescribes() {
        let (handle, addr) = serve_unavailable(None, Serving::default()).await;
        let cases = tokio::task::spawn_blocking(move || {
            let submit = |id: &str| {
                format!(r#"{{"jsonrpc":"2.0",{id}"method":"cachet_submit","params":["00"]}}"#)
            };
            let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
            let big = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"cachet_submit","params":["{}"]}}"#,
                "ab".repeat(3 * 1024 * 1024)
            );
            [
                post(addr, submit(r#""id":-1,"#).as_bytes()),
                post(addr, submit(r#""id":1.5,"#).as_bytes()),
                post(addr, submit(r#""id":18446744073709551617,"#).as_bytes()),
                post(addr, submit(r#""id":{"a":1},"#).as_bytes()),
                post(addr, submit("").as_bytes()),
                post(addr, br#"{"jsonrpc":"2.0","method":"cachet_nothing"}"#),
                post(
                    addr,
                    format!(
                        "[{},{},{}]",
                        submit(r#""id":-7,"#),
                        submit(""),
                        submit(r#""id":"s","#)
                    )
                    .as_bytes(),
                ),
                post(addr, deep.as_bytes()),
                post_as(addr, big.as_bytes(), true, ""),
            ]
        })
        .await
        .expect("requests");
        let code = |v: &serde_json::Value| v["error"]["code"].as_i64();
        // Executed (the API refuses, with its own code) and the id echoed as written.
        for (case, id) in cases[..3].iter().zip([
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(18446744073709551617u128 as f64),
        ]) {
            assert_eq!(case.0, 200, "{case:?}");
            assert_eq!(code(&case.1), Some(2900), "{case:?}");
            assert_eq!(case.1["id"], id, "{case:?}");
        }
        assert_eq!(code(&cases[3].1), Some(-32600), "{:?}", cases[3]);
        assert_eq!(cases[3].1["id"], serde_json::Value::Null);
        // Notifications: no answer, known or not.
        assert_eq!(cases[4], (204, serde_json::Value::Null));
        assert_eq!(cases[5], (204, serde_json::Value::Null));
        // A batch: one answer per call, none for the notification.
        let batch = cases[6].1.as_array().expect("a batch answer");
        let ids: std::collections::BTreeSet<String> =
            batch.iter().map(|a| a["id"].to_string()).collect();
        assert_eq!(
            ids,
            ["-7".to_string(), "\"s\"".to_string()].into(),
            "{batch:?}"
        );
        // Every call and notification above that reached the API: -1, 1.5, 2^64+1, the lone
        // notification, and three in the batch.
        assert_eq!(SUBMITTED.load(std::sync::atomic::Ordering::SeqCst), 7);
        assert_eq!(code(&cases[7].1), Some(-32700), "{:?}", cases[7]);
        assert_eq!(cases[8].0, 413, "{:?}", cases[8]);
        assert_eq!(code(&cases[8].1), Some(-32007), "{:?}", cases[8]);
        handle.stop().expect("stops");
    }

    #[test]
    fn operator_methods_are_served_off_loopback_only_with_a_token() {
        let token: Arc<str> = "t".repeat(32).into();
        let public: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(Operators::at(&public, None), Operators::Nobody);
        assert_eq!(Operators::at(&local, None), Operators::Loopback);
        assert_eq!(
            Operators::at(&public, Some(&token)),
            Operators::Token(token.clone())
        );
        let served = |o: Operators| {
            module(Arc::new(Unavailable), o)
                .method_names()
                .any(|m| m == "cachet_admin_backup")
        };
        assert!(!served(Operators::Nobody));
        assert!(served(Operators::Loopback));
        assert!(served(Operators::Token(token)));
    }

    /// With an operator token, an operator call without it, or with another, is refused (2006)
    /// before it reaches the node; with it, it does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_operator_call_needs_the_node_s_token() {
        let token = "0123456789abcdef0123456789abcdef";
        let (handle, addr) = serve_unavailable(Some(token), Serving::default()).await;
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"cachet_admin_backup","params":["/x"]}"#;
        let cases = tokio::task::spawn_blocking(move || {
            [
                post(addr, call),
                post_as(addr, call, false, "Authorization: Bearer wrong\r\n"),
                post_as(
                    addr,
                    call,
                    false,
                    &format!("Authorization: Bearer {}x\r\n", &token[1..]),
                ),
                post_as(
                    addr,
                    call,
                    false,
                    &format!("Authorization: Bearer {token}\r\n"),
                ),
            ]
        })
        .await
        .expect("requests");
        let code = |v: &serde_json::Value| v["error"]["code"].as_i64();
        for refused in &cases[..3] {
            assert_eq!(code(&refused.1), Some(2006), "{refused:?}");
        }
        // Past the check: the API itself answers (it has nothing to back up here).
        assert_eq!(code(&cases[3].1), Some(2900), "{:?}", cases[3]);
        handle.stop().expect("stops");
    }
    /// One client address holds at most its share of connections: past it, a new connection
    /// is answered 429 with error 2008 and closed, while another client is still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_holding_its_connections_locks_nobody_else_out() {
        let limits = Limits {
            connections_per_client: 8,
            ..Limits::default()
        };
        let (handle, addr) = serve_unavailable(None, Serving { tls: None, limits }).await;
        let status = br#"{"jsonrpc":"2.0","id":1,"method":"cachet_status","params":[]}"#;
        let (over, other) = tokio::task::spawn_blocking(move || {
            // Eight idle connections, as a client holding WebSockets open would.
            let idle: Vec<_> = (0..8)
                .map(|_| std::net::TcpStream::connect(addr).expect("connects"))
                .collect();
            std::thread::sleep(std::time::Duration::from_millis(200));
            let over = post(addr, status);
            let other = post_from("127.0.0.2".parse().unwrap(), addr, status);
            drop(idle);
            (over, other)
        })
        .await
        .unwrap();
        assert_eq!(over.0, 429, "{over:?}");
        assert_eq!(over.1["error"]["code"], 2008, "{over:?}");
        assert_eq!(other.0, 200, "another client is served: {other:?}");
        assert_eq!(
            other.1["error"]["code"], 2900,
            "the node answered it: {other:?}"
        );
        // Its connections closed, the first client is served again.
        let again = tokio::task::spawn_blocking(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            post(addr, status)
        })
        .await
        .unwrap();
        assert_eq!(again.0, 200, "{again:?}");
        handle.stop().expect("stops");
    }

    /// A client past its read rate waits its turn, up to a second; past that its calls get
    /// error 2007 with the time to wait, in batches too. Its operator calls are not counted,
    /// and another client is not slowed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_greedy_client_is_slowed_to_its_rate_then_refused_and_others_are_not() {
        let limits = Limits {
            reads_per_second: 5,
            read_burst: 5,
            ..Limits::default()
        };
        let (handle, addr) = serve_unavailable(None, Serving { tls: None, limits }).await;
        let read = br#"{"jsonrpc":"2.0","id":7,"method":"cachet_status","params":[]}"#;
        // An operator method, not counted (as submissions are not; those would also count in
        // the envelope test's tally of calls that reached the API).
        let operator =
            br#"{"jsonrpc":"2.0","id":8,"method":"cachet_admin_backup","params":["/x"]}"#;
        let call = |id: u32| {
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"cachet_status","params":[]}}"#)
        };
        let batch = format!("[{}]", (1..=10).map(call).collect::<Vec<_>>().join(","));
        let (first, sixth, sixth_took, operator_call, batched, other, other_took) =
            tokio::task::spawn_blocking(move || {
                let first: Vec<_> = (0..5).map(|_| post(addr, read)).collect();
                let started = std::time::Instant::now();
                let sixth = post(addr, read);
                let sixth_took = started.elapsed();
                let operator_call = post(addr, operator);
                let batched = post(addr, batch.as_bytes());
                let started = std::time::Instant::now();
                let other = post_from("127.0.0.3".parse().unwrap(), addr, read);
                (
                    first,
                    sixth,
                    sixth_took,
                    operator_call,
                    batched,
                    other,
                    started.elapsed(),
                )
            })
            .await
            .unwrap();
        let node_answered = serde_json::json!(2900);
        for (status, body) in &first {
            assert_eq!((*status, &body["error"]["code"]), (200, &node_answered));
        }
        assert_eq!(
            sixth.1["error"]["code"], node_answered,
            "served, after its turn: {sixth:?}"
        );
        assert!(
            sixth_took >= std::time::Duration::from_millis(150),
            "{sixth_took:?}"
        );
        assert_eq!(
            operator_call.1["error"]["code"], node_answered,
            "not counted"
        );
        // Ten more at once: those whose turn is within a second are served, the rest refused.
        let answers = batched.1.as_array().expect("a batch answer");
        let refused: Vec<_> = answers
            .iter()
            .filter(|a| a["error"]["code"] == RATE_LIMITED_CODE)
            .collect();
        assert!((4..=6).contains(&refused.len()), "{batched:?}");
        for r in &refused {
            assert_eq!(r["error"]["data"]["name"], "rate_limited");
            assert!(
                r["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 1000,
                "{r}"
            );
        }
        assert_eq!(
            answers.len() - refused.len(),
            answers
                .iter()
                .filter(|a| a["error"]["code"] == node_answered)
                .count()
        );
        assert_eq!(other.1["error"]["code"], node_answered, "{other:?}");
        assert!(
            other_took < std::time::Duration::from_millis(150),
            "another client waits for nothing"
        );
        handle.stop().expect("stops");
    }

    const RATE_LIMITED_CODE: i32 = limit::RATE_LIMITED;

    /// Over TLS, with a self-signed certificate: a client that trusts it is served, an operator
    /// call without the node's token is refused (2006), and plain HTTP gets no answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rpc_is_served_over_tls() {
        let dir = std::env::temp_dir().join(format!("cachet-rpc-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_path, key_path) = (dir.join("rpc.crt"), dir.join("rpc.key"));
        std::fs::write(&cert_path, issued.cert.pem()).unwrap();
        std::fs::write(&key_path, issued.key_pair.serialize_pem()).unwrap();
        let tls = listen::tls_acceptor(&cert_path, &key_path).expect("a TLS configuration");
        let token = "0123456789abcdef0123456789abcdef";
        let (handle, addr) = serve_unavailable(
            Some(token),
            Serving {
                tls: Some(tls),
                limits: Limits::default(),
            },
        )
        .await;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(issued.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let over_tls = |body: &'static [u8]| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                let mut tls = connector.connect(name, tcp).await.expect("handshake");
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let head = format!(
                    "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                tls.write_all(head.as_bytes()).await.unwrap();
                tls.write_all(body).await.unwrap();
                let mut reply = Vec::new();
                let _ = tls.read_to_end(&mut reply).await;
                let text = String::from_utf8_lossy(&reply).into_owned();
                let json: serde_json::Value = text
                    .split_once("\r\n\r\n")
                    .and_then(|(_, b)| serde_json::from_str(b.trim()).ok())
                    .unwrap_or_default();
                json
            }
        };
        let status =
            over_tls(br#"{"jsonrpc":"2.0","id":1,"method":"cachet_status","params":[]}"#).await;
        assert_eq!(status["error"]["code"], 2900, "served over TLS: {status}");
        let operator =
            over_tls(br#"{"jsonrpc":"2.0","id":2,"method":"cachet_admin_backup","params":["/x"]}"#)
                .await;
        assert_eq!(
            operator["error"]["code"], 2006,
            "no token, no operator call: {operator}"
        );
        let plain = tokio::task::spawn_blocking(move || {
            post(
                addr,
                br#"{"jsonrpc":"2.0","id":1,"method":"cachet_status","params":[]}"#,
            )
        })
        .await
        .unwrap();
        assert_eq!(
            plain.0, 0,
            "plain HTTP on a TLS port gets no HTTP answer: {plain:?}"
        );
        handle.stop().expect("stops");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
