//! The gateway's HTTP: routes each request to its operation ([`crate::api`]), lets in only
//! callers with a known token, bounds bodies, answers JSON, and records every call in the audit
//! log before answering.
//!
//! It is not the operations themselves, nor TLS: an agency that reaches its gateway over a
//! network puts its TLS proxy in front, as it does for its other services.

use crate::api::{
    Agency, AnchorRequest, BatchRequest, EntryRequest, EventRequest, Failure, MAX_BODY_BYTES,
    RevokeEntryRequest, RevokeRequest,
};
use crate::audit::{AuditLog, Entry, Phase};
use crate::config::GatewayConfig;
use bytes::Bytes;
use cachet_chain::document::CertId;
use cachet_chain::hash::Hash32;
use cachet_chain::tx::TxId;
use cachet_client::issue::now_ms;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// The OpenAPI 3.1 document of the gateway (`docs/openapi.json`), served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// How long a client may take to send a request's head: a connection that trickles it is
/// closed rather than held.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A running gateway's state.
pub struct Gateway {
    /// Its configuration.
    pub config: GatewayConfig,
    /// The agency and its node.
    pub agency: Agency,
    /// The audit log.
    pub audit: AuditLog,
}

/// Serve `gateway` on `listener` until the process ends.
pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener) {
    loop {
        let (socket, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "gateway accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&gateway, request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .await
            {
                debug!(%remote, error = %e, "gateway connection ended");
            }
        });
    }
}

/// What a call did, for its audit entry.
#[derive(Default)]
struct Outcome {
    caller: Option<String>,
    certificate: Option<String>,
}

/// Answer `request`, recording it in the audit log first.
async fn handle(gateway: &Gateway, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let mut outcome = Outcome::default();
    let answer = route(gateway, request, &mut outcome).await;
    let (status, body, code) = match &answer {
        Ok((status, body)) => (*status, body.to_string(), None),
        Err(failure) => (
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            failure.body().to_string(),
            Some(failure.code),
        ),
    };
    let submission = match &answer {
        Ok((_, body)) => body["submission"].as_str().map(str::to_string),
        Err(failure) if failure.status >= 500 => {
            warn!(%method, %path, code = failure.code, message = %failure.message, "call failed");
            None
        }
        Err(_) => None,
    };
    let entry = Entry {
        time_ms: now_ms(),
        phase: Phase::Answered,
        caller: outcome.caller,
        method: method.to_string(),
        path: path.clone(),
        status: Some(status.as_u16()),
        code,
        submission,
        certificate: outcome.certificate,
    };
    if let Err(e) = gateway.audit.record(&entry) {
        warn!(error = %e, %path, "the audit log cannot be written");
        // An answer the log lacks would be a call nobody can account for; but a write made is
        // answered all the same: its `received` line is logged, and its caller needs the
        // submission's id.
        if status != StatusCode::ACCEPTED {
            let failure = Failure::internal("the audit log cannot be written");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                failure.body().to_string(),
            );
        }
    }
    let mut response = json_response(status, body);
    match answer {
        Err(f) if f.status == 401 => {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        Err(f) if f.status == 405 => {
            if let Some(allow) = allowed(&path) {
                response
                    .headers_mut()
                    .insert(header::ALLOW, header::HeaderValue::from_static(allow));
            }
        }
        _ => {}
    }
    response
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Where the OpenAPI document is served (to anyone: it holds nothing secret).
const OPENAPI_PATH: &str = "/openapi.json";

/// The endpoints callers authenticate for, by the path's segments after the leading `/`.
enum Endpoint {
    Anchors,
    Batches,
    RevokeBatchEntry(String),
    BatchReceipt(String),
    Submission(String),
    Certificate(String),
    CertificateAction(String, &'static str),
}

fn endpoint(path: &str) -> Option<Endpoint> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["v1", "anchors"] => Endpoint::Anchors,
        ["v1", "batches"] => Endpoint::Batches,
        ["v1", "batches", id, "revoke-entry"] => Endpoint::RevokeBatchEntry(id.to_string()),
        ["v1", "batches", id, "receipt"] => Endpoint::BatchReceipt(id.to_string()),
        ["v1", "submissions", id] => Endpoint::Submission(id.to_string()),
        ["v1", "certificates", id] => Endpoint::Certificate(id.to_string()),
        ["v1", "certificates", id, action] => {
            let action = match *action {
                "revoke" => "revoke",
                "approve" => "approve",
                "supersede" => "supersede",
                "events" => "events",
                "receipt" => "receipt",
                "history" => "history",
                _ => return None,
            };
            Endpoint::CertificateAction(id.to_string(), action)
        }
        _ => return None,
    })
}

/// The method an endpoint takes (for a 405's `Allow`).
fn allowed(path: &str) -> Option<&'static str> {
    if path == OPENAPI_PATH {
        return Some("GET");
    }
    Some(match endpoint(path)? {
        Endpoint::Submission(_)
        | Endpoint::Certificate(_)
        | Endpoint::CertificateAction(_, "receipt" | "history") => "GET",
        Endpoint::Anchors
        | Endpoint::Batches
        | Endpoint::RevokeBatchEntry(_)
        | Endpoint::BatchReceipt(_)
        | Endpoint::CertificateAction(..) => "POST",
    })
}

async fn route(
    gateway: &Gateway,
    request: Request<Incoming>,
    outcome: &mut Outcome,
) -> Result<(StatusCode, Value), Failure> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    match allowed(&path) {
        None => return Err(Failure::not_found(&path)),
        Some(allowed) if allowed != method.as_str() => {
            return Err(Failure::method_not_allowed(method.as_str(), &path));
        }
        Some(_) => {}
    }
    if path == OPENAPI_PATH {
        let document = serde_json::from_str(OPENAPI)
            .map_err(|e| Failure::internal(format!("the OpenAPI document: {e}")))?;
        return Ok((StatusCode::OK, document));
    }
    let Some(endpoint) = endpoint(&path) else {
        return Err(Failure::not_found(&path));
    };
    let caller = bearer(&request)
        .and_then(|token| gateway.config.caller(token))
        .ok_or_else(Failure::unauthorized)?;
    outcome.caller = Some(caller.name.clone());
    if method == http::Method::POST {
        // Logged before anything is signed: a write the log cannot hold is not made.
        let received = Entry {
            time_ms: now_ms(),
            phase: Phase::Received,
            caller: outcome.caller.clone(),
            method: method.to_string(),
            path: path.clone(),
            ..Entry::default()
        };
        gateway.audit.record(&received).map_err(|e| {
            warn!(error = %e, "the audit log cannot be written; refusing the call");
            Failure::internal("the audit log cannot be written")
        })?;
    }
    let agency = &gateway.agency;
    let accepted = |v: Value| (StatusCode::ACCEPTED, v);
    let ok = |v: Value| (StatusCode::OK, v);
    match endpoint {
        Endpoint::Anchors => {
            let body: AnchorRequest = body(request).await?;
            let answer = agency.anchor(body, None).await?;
            outcome.certificate = answer["certificate"].as_str().map(str::to_string);
            Ok(accepted(answer))
        }
        Endpoint::Batches => {
            let body: BatchRequest = body(request).await?;
            Ok(accepted(agency.batch(body).await?))
        }
        Endpoint::RevokeBatchEntry(id) => {
            let id = cachet_chain::tx::BatchId(hash(&id, "batch id")?);
            let body: RevokeEntryRequest = body(request).await?;
            Ok(accepted(agency.revoke_entry(id, body).await?))
        }
        Endpoint::BatchReceipt(id) => {
            let id = cachet_chain::tx::BatchId(hash(&id, "batch id")?);
            let body: EntryRequest = body(request).await?;
            Ok(ok(agency.batch_receipt(id, body).await?))
        }
        Endpoint::Submission(id) => {
            let id = TxId(hash(&id, "submission id")?);
            Ok(ok(agency.submission(&id).await?))
        }
        Endpoint::Certificate(id) => {
            let id = certificate(&id, outcome)?;
            Ok(ok(agency.certificate(&id).await?))
        }
        Endpoint::CertificateAction(id, action) => {
            let id = certificate(&id, outcome)?;
            match action {
                "revoke" => {
                    let body: RevokeRequest = body(request).await?;
                    Ok(accepted(agency.revoke(id, body).await?))
                }
                "approve" => {
                    empty_body(request).await?;
                    Ok(accepted(agency.approve(id).await?))
                }
                "supersede" => {
                    let body: AnchorRequest = body(request).await?;
                    Ok(accepted(agency.anchor(body, Some(id)).await?))
                }
                "events" => {
                    let body: EventRequest = body(request).await?;
                    Ok(accepted(agency.event(id, body).await?))
                }
                "receipt" => Ok(ok(agency.receipt(&id).await?)),
                _ => Ok(ok(agency.history(&id).await?)),
            }
        }
    }
}

/// The bearer token of `request`, if it has one.
fn bearer(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn hash(text: &str, what: &str) -> Result<Hash32, Failure> {
    text.parse()
        .map_err(|_| Failure::bad_request(format!("{what}: 64 hex digits")))
}

fn certificate(text: &str, outcome: &mut Outcome) -> Result<CertId, Failure> {
    let id = CertId(hash(text, "certificate id")?);
    outcome.certificate = Some(id.to_string());
    Ok(id)
}

async fn bytes_of(request: Request<Incoming>) -> Result<Bytes, Failure> {
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::too_large()),
        Err(e) => Err(Failure::bad_request(format!(
            "the body could not be read: {e}"
        ))),
    }
}

/// The JSON body of `request`, of the endpoint's form.
async fn body<T: serde::de::DeserializeOwned>(request: Request<Incoming>) -> Result<T, Failure> {
    let bytes = bytes_of(request).await?;
    serde_json::from_slice(&bytes).map_err(|e| Failure::bad_request(format!("the body: {e}")))
}

/// A body that must be empty or an empty JSON object.
async fn empty_body(request: Request<Incoming>) -> Result<(), Failure> {
    let bytes = bytes_of(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(fields)) if fields.is_empty() => Ok(()),
        _ => Err(Failure::bad_request("the body: empty, or {}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Caller, token_hash};
    use cachet_client::signer::Signer;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A gateway whose audit log is `/dev/full` (every write fails), serving on a port of its
    /// own; its caller's token is `token`, and its node is the listener returned, which
    /// accepts connections and never answers.
    async fn unloggable(token: &str) -> (String, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let node = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = GatewayConfig {
            listen: addr,
            node: format!("http://{}", node.local_addr().unwrap()),
            key: String::new(),
            key_passphrase_file: None,
            agency: None,
            audit_log: "/dev/full".into(),
            callers: vec![Caller {
                name: "land-system".into(),
                token_sha256: token_hash(token),
            }],
        };
        let signer = Signer {
            agency: "moi-land".parse().unwrap(),
            key: cachet_keys::SigningKey::InMemory(cachet_chain::crypto::SecretKey::generate()),
        };
        let gateway = Arc::new(Gateway {
            agency: Agency::new(cachet_client::Client::new(&config.node).unwrap(), signer),
            audit: AuditLog::open(std::path::Path::new("/dev/full")).unwrap(),
            config,
        });
        tokio::spawn(serve(gateway, listener));
        (addr.to_string(), node)
    }

    async fn call(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let status = text[9..12].parse().unwrap();
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        (status, serde_json::from_str(body).unwrap())
    }

    #[tokio::test]
    async fn nothing_is_done_or_answered_that_the_audit_log_cannot_hold() {
        let (addr, node) = unloggable("the-token").await;
        // A write is refused before it is signed and sent: the node never hears of it.
        let anchor = format!(
            "{{\"kind\":\"land-title\",\"document_sha256\":\"{}\",\"parcel\":\"7-1\"}}",
            "ab".repeat(32)
        );
        let (status, body) = call(&addr, "POST", "/v1/anchors", "the-token", &anchor).await;
        assert_eq!((status, body["code"].as_i64()), (500, Some(4900)), "{body}");
        let contacted = tokio::time::timeout(std::time::Duration::from_millis(300), node.accept());
        assert!(contacted.await.is_err(), "the node was called");
        // A read, or a call by nobody, is not answered either (the node gone, so that the read
        // does not wait for it).
        drop(node);
        let path = format!("/v1/certificates/{}", "cd".repeat(32));
        let (status, body) = call(&addr, "GET", &path, "the-token", "").await;
        assert_eq!((status, body["code"].as_i64()), (500, Some(4900)), "{body}");
        let (status, body) = call(&addr, "GET", &path, "wrong", "").await;
        assert_eq!((status, body["code"].as_i64()), (500, Some(4900)), "{body}");
    }
}
