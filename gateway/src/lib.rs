//! `cachet-gateway`: the agency gateway, an HTTP/JSON interface through which an agency's own
//! case systems (Java, .NET, PHP, Python) anchor, supersede, approve and revoke certificates,
//! record lifecycle events, and follow their submissions, with plain JSON and a bearer token.
//! The OpenAPI 3.1 document (`docs/openapi.json`, served at `/openapi.json`) describes every
//! endpoint, body, answer and error.
//!
//! It runs beside the agency's node, as the agency's own process: it holds the agency's key (a
//! key file, sealed or not, or a key in an HSM) and signs each transaction with it, so the key
//! never leaves the agency and the case systems never handle it; each calling system has a
//! token of its own, and every call is recorded in an audit log with who asked
//! ([`config`], [`audit`]). Submissions go to the node's JSON-RPC; the node's answers (a
//! submission's status, a certificate, a receipt) are passed on as data.
//!
//! What it is not: a verifier (a receipt it passes on is verified by whoever relies on it,
//! against the consortium's trust root), nor the rules (the chain refuses what they refuse, and
//! the gateway passes the refusal on with its code).

pub mod api;
pub mod audit;
pub mod config;
pub mod server;

use anyhow::{Context, Result};
use cachet_keys::Passphrase;
use std::sync::Arc;

pub use config::GatewayConfig;
pub use server::OPENAPI;

/// Open what `config` names (the key, the node's client, the audit log) and serve on its
/// `listen` address until the process ends.
pub async fn run(config: GatewayConfig) -> Result<()> {
    let how = match &config.key_passphrase_file {
        Some(file) => Passphrase::File(file.clone()),
        None => Passphrase::Ask,
    };
    let signer = cachet_client::signer::Signer::open(&config.key, config.agency.clone(), &how)?;
    let node = cachet_client::Client::new(&config.node)?;
    let audit = audit::AuditLog::open(&config.audit_log)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        agency = %signer.agency,
        node = %config.node,
        callers = config.callers.len(),
        "gateway serving"
    );
    let gateway = Arc::new(server::Gateway {
        agency: api::Agency::new(node, signer),
        audit,
        config,
    });
    server::serve(gateway, listener).await;
    Ok(())
}
