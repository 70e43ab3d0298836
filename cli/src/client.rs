//! A small JSON-RPC client for the node's methods.

use anyhow::{Context, Result, anyhow};
use cachet_chain::tx::{Transaction, TxId};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use jsonrpsee::rpc_params;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A node's RPC.
pub struct Client {
    http: HttpClient,
    url: String,
}

/// A refusal from the node, with its stable code and name.
#[derive(Debug)]
pub struct Refused {
    /// Stable code.
    pub code: i32,
    /// Stable name.
    pub name: String,
    /// Message.
    pub message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused ({} {}): {}", self.code, self.name, self.message)
    }
}

impl std::error::Error for Refused {}

fn refusal(e: jsonrpsee::core::ClientError) -> anyhow::Error {
    match e {
        jsonrpsee::core::ClientError::Call(obj) => {
            let name = obj
                .data()
                .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
                .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string))
                .unwrap_or_default();
            anyhow!(Refused {
                code: obj.code(),
                name,
                message: obj.message().to_string(),
            })
        }
        other => anyhow!(other),
    }
}

impl Client {
    /// A client for the node at `url` (e.g. `http://127.0.0.1:26657`).
    pub fn new(url: &str) -> Result<Client> {
        let http = HttpClientBuilder::default()
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .with_context(|| format!("bad RPC URL {url}"))?;
        Ok(Client {
            http,
            url: url.to_string(),
        })
    }

    /// Call `method` with positional `params`.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        self.call_as(method, params).await
    }

    /// Call `method` with positional `params`, reading the result as `T` (only the fields a
    /// caller needs, without building a `Value` of the whole reply).
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<T> {
        let mut p = jsonrpsee::core::params::ArrayParams::new();
        for v in params {
            p.insert(v).expect("JSON values serialize");
        }
        self.http
            .request(method, p)
            .await
            .map_err(refusal)
            .with_context(|| format!("{method} at {}", self.url))
    }

    /// The node's status.
    pub async fn status(&self) -> Result<Value> {
        self.http
            .request("cachet_status", rpc_params![])
            .await
            .map_err(refusal)
    }

    /// Submit a signed transaction; returns its id.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxId> {
        let v = self
            .call(
                "cachet_submit",
                vec![Value::String(hex::encode(tx.encode()))],
            )
            .await?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| anyhow!("node returned no id"))?;
        Ok(TxId(id.parse().context("node returned a bad id")?))
    }

    /// Wait until `id` is committed; returns its height.
    pub async fn wait_committed(&self, id: &TxId, timeout: Duration) -> Result<u64> {
        let start = Instant::now();
        loop {
            let v = self
                .call("cachet_transaction", vec![Value::String(id.to_string())])
                .await?;
            if v["status"] == "committed" {
                return v["height"].as_u64().ok_or_else(|| anyhow!("no height"));
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "transaction {id} not committed after {timeout:?} (status {})",
                    v["status"]
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
