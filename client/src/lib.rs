//! `cachet-client`: a small JSON-RPC client for a node's methods, over HTTP.
//!
//! What it is: [`Client`], which calls a method and reads its reply, submits a signed
//! transaction and waits for it to be committed; a refusal comes back as [`Refused`], with the
//! stable code and name of `docs/spec/errors.md`; and [`signer::Signer`], an agency's key signing its
//! transactions with the next free nonce.
//!
//! What it is not: a verifier. A node's answer is data: what a receipt proves is checked with
//! `cachet_chain::receipt`, against the consortium's trust root, never taken from the node.

pub mod issue;
pub mod signer;

use cachet_chain::tx::{Transaction, TxId};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A node's RPC.
pub struct Client {
    http: HttpClient,
    url: String,
}

/// A refusal from the node, with its stable code and name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused ({code} {name}): {message}")]
pub struct Refused {
    /// Stable code.
    pub code: i32,
    /// Stable name.
    pub name: String,
    /// Message.
    pub message: String,
}

/// Why a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The operator token cannot be sent in an HTTP header.
    #[error("the operator token holds characters an HTTP header cannot carry")]
    BadToken,
    /// The URL is not one the client can call.
    #[error("bad RPC URL {url}: {source}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What the HTTP client said.
        source: jsonrpsee::core::ClientError,
    },
    /// The node refused the call, with its stable code.
    #[error("{method} at {url}: {refused}")]
    Refused {
        /// The method called.
        method: String,
        /// The node's URL.
        url: String,
        /// The refusal.
        refused: Refused,
    },
    /// The call did not reach the node, or its reply was not one of its method's.
    #[error("{method} at {url}: {source}")]
    Call {
        /// The method called.
        method: String,
        /// The node's URL.
        url: String,
        /// What the HTTP client said.
        source: jsonrpsee::core::ClientError,
    },
    /// No kind is built in or registered under this name.
    #[error(
        "unknown certificate kind {0:?}: neither built in (land-title, investment-permit, reward-order, cultural-license) nor registered on this chain (cachet kinds lists them)"
    )]
    UnknownKind(String),
    /// The reply lacks what the method promises.
    #[error("{method} at {url}: {what}")]
    Reply {
        /// The method called.
        method: String,
        /// The node's URL.
        url: String,
        /// What is missing or wrong.
        what: String,
    },
    /// A transaction reached its final status without being carried out: refused in its
    /// block (its nonce used), or dropped from the mempool (it can never be in a block).
    #[error("transaction {id} was {status}, {refused}")]
    NotCarriedOut {
        /// The transaction.
        id: TxId,
        /// `refused` or `dropped`.
        status: String,
        /// Why.
        refused: Refused,
    },
    /// A transaction was not committed in time.
    #[error("transaction {id} not committed after {waited:?} (status {status})")]
    NotCommitted {
        /// The transaction.
        id: TxId,
        /// How long the client waited.
        waited: Duration,
        /// The last status the node gave.
        status: String,
    },
}

impl ClientError {
    /// The node's refusal, if that is what this is.
    pub fn refused(&self) -> Option<&Refused> {
        match self {
            ClientError::Refused { refused, .. } | ClientError::NotCarriedOut { refused, .. } => {
                Some(refused)
            }
            _ => None,
        }
    }
}

impl Client {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:26657`).
    pub fn new(url: &str) -> Result<Client, ClientError> {
        Client::with_token(url, None)
    }

    /// A client for the node at `url` that sends `token` (the node's operator token) with each
    /// call, as `Authorization: Bearer <token>`.
    pub fn with_token(url: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let mut headers = jsonrpsee::http_client::HeaderMap::new();
        if let Some(token) = token {
            let value = format!("Bearer {token}")
                .parse()
                .map_err(|_| ClientError::BadToken)?;
            headers.insert("authorization", value);
        }
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .set_headers(headers)
            .build(url)
            .map_err(|source| ClientError::BadUrl {
                url: url.to_string(),
                source,
            })?;
        Ok(Client {
            http,
            url: url.to_string(),
        })
    }

    /// The kind `text` names: a built-in kind's name as it is; a registered kind by the name it
    /// was registered under or by its number (`kind-<n>`), checked against the node's
    /// `cachet_kinds` so that a kind nobody registered is refused before anything is signed.
    pub async fn kind(&self, text: &str) -> Result<cachet_chain::CertKind, ClientError> {
        if let Ok(kind) = text.parse::<cachet_chain::CertKind>()
            && !kind.is_registered()
        {
            return Ok(kind);
        }
        let kinds: Vec<Value> = self.call_as("cachet_kinds", vec![]).await?;
        kinds
            .iter()
            .find(|k| k["name"] == text || k["kind"] == text)
            .and_then(|k| k["kind"].as_str()?.parse().ok())
            .ok_or_else(|| ClientError::UnknownKind(text.to_string()))
    }

    /// Call `method` with positional `params`.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.call_as(method, params).await
    }

    /// Call `method` with positional `params`, reading the result as `T` (only the fields a
    /// caller needs, without building a `Value` of the whole reply).
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<T, ClientError> {
        let mut p = jsonrpsee::core::params::ArrayParams::new();
        for v in params {
            p.insert(v).expect("JSON values serialize");
        }
        self.http
            .request(method, p)
            .await
            .map_err(|e| self.failed(method, e))
    }

    fn failed(&self, method: &str, e: jsonrpsee::core::ClientError) -> ClientError {
        let (method, url) = (method.to_string(), self.url.clone());
        match e {
            jsonrpsee::core::ClientError::Call(obj) => {
                let name = obj
                    .data()
                    .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
                    .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
                    .unwrap_or_default();
                ClientError::Refused {
                    method,
                    url,
                    refused: Refused {
                        code: obj.code(),
                        name,
                        message: obj.message().to_string(),
                    },
                }
            }
            source => ClientError::Call {
                method,
                url,
                source,
            },
        }
    }

    fn bad_reply(&self, method: &str, what: &str) -> ClientError {
        ClientError::Reply {
            method: method.to_string(),
            url: self.url.clone(),
            what: what.to_string(),
        }
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.call("cachet_status", vec![]).await
    }

    /// Submit a signed transaction; returns its id.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxId, ClientError> {
        const METHOD: &str = "cachet_submit";
        let v = self
            .call(METHOD, vec![Value::String(hex::encode(tx.encode()))])
            .await?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| self.bad_reply(METHOD, "no id"))?;
        Ok(TxId(
            id.parse().map_err(|_| self.bad_reply(METHOD, "a bad id"))?,
        ))
    }

    /// The nonce agency `id`'s next transaction should carry, counting the node's mempool
    /// (`cachet_nextNonce`).
    pub async fn next_nonce(&self, id: &cachet_chain::AgencyId) -> Result<u64, ClientError> {
        const METHOD: &str = "cachet_nextNonce";
        let v = self
            .call(METHOD, vec![Value::String(id.to_string())])
            .await?;
        v["next"]
            .as_u64()
            .ok_or_else(|| self.bad_reply(METHOD, "no next nonce"))
    }

    /// Wait until `id` is committed and carried out; returns its height. A final status
    /// other than that (refused in its block, dropped) is an error at once.
    pub async fn wait_committed(&self, id: &TxId, timeout: Duration) -> Result<u64, ClientError> {
        const METHOD: &str = "cachet_transaction";
        let start = Instant::now();
        loop {
            let v = self
                .call(METHOD, vec![Value::String(id.to_string())])
                .await?;
            if v["status"] == "committed" {
                return v["height"].as_u64().ok_or_else(|| {
                    self.bad_reply(METHOD, "a committed transaction without a height")
                });
            }
            if v["status"] == "refused" || v["status"] == "dropped" {
                let code = v["code"].as_i64().and_then(|c| i32::try_from(c).ok());
                let refused = Refused {
                    code: code.ok_or_else(|| self.bad_reply(METHOD, "a refusal without a code"))?,
                    name: v["name"].as_str().unwrap_or_default().to_string(),
                    message: v["message"].as_str().unwrap_or_default().to_string(),
                };
                return Err(ClientError::NotCarriedOut {
                    id: *id,
                    status: v["status"].as_str().unwrap_or_default().to_string(),
                    refused,
                });
            }
            if start.elapsed() > timeout {
                return Err(ClientError::NotCommitted {
                    id: *id,
                    waited: timeout,
                    status: v["status"].to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
