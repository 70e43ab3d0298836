//! What a node serves over plain HTTP GET beside the JSON-RPC on the same port: the verify page
//! at `/verify` and `/v/<id>` (the target of link QR codes), the operator's metrics at
//! `/metrics` (OpenMetrics text, for Prometheus), and the probes `/healthz` (the process
//! answers) and `/readyz` (it follows the chain, reaches the consortium, has disk: 200 or 503,
//! with each check in JSON).
//!
//! The page is plain HTML, CSS and JS with the receipt verifier (`web/verifier/`) and the
//! consortium's trust root and anchor inlined, so the same page works when an agency copies it
//! to its own web site (`cachet verify-page`) or a citizen saves it. It fetches receipts from a
//! node and verifies them in the browser; a document is hashed in the browser and never leaves
//! the device.

use crate::api::NodeApi;
use cachet_chain::trust::TrustAnchor;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The error type of the HTTP middleware.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What an HTTP middleware's call returns.
pub(crate) type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<HttpResponse<HttpBody>, BoxError>> + Send + 'static>>;

const TEMPLATE: &str = include_str!("../web/verify.html");

/// The receipt verifier's parts, in the order each uses the ones before it.
pub const VERIFIER: [&str; 5] = [
    include_str!("../web/verifier/hash.js"),
    include_str!("../web/verifier/ed25519.js"),
    include_str!("../web/verifier/encoding.js"),
    include_str!("../web/verifier/receipt.js"),
    include_str!("../web/verifier/trust.js"),
];

/// The verify page trusting `anchor`'s root, fetching receipts from `nodes` (JSON-RPC URLs; when
/// empty, from the node that served the page). `advance`, an encoded
/// [`Advance`](cachet_chain::checkpoint::Advance) from that root, takes the page to a checkpoint
/// with no node to ask (the page checks it; it also asks its nodes for a newer one).
pub fn page(anchor: &TrustAnchor, nodes: &[String], advance: Option<&[u8]>) -> String {
    let config = serde_json::json!({
        "root": anchor.root().to_string(),
        "anchor": hex::encode(anchor.encode()),
        "nodes": nodes,
        "advance": advance.map(hex::encode),
    });
    // Inside a <script>, "</" could end it: JSON allows the escape.
    let config = format!(
        "const CONFIG = {};",
        config.to_string().replace('<', "\\u003c")
    );
    TEMPLATE
        .replacen("/*{{VERIFIER}}*/", &VERIFIER.concat(), 1)
        .replacen("/*{{CONFIG}}*/", &config, 1)
}

/// Is this a request for the verify page?
pub fn is_page(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET
        && (path == "/verify"
            || path
                .strip_prefix("/v/")
                .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())))
}

/// The content type of the metrics text.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Is this a request for the metrics?
pub fn is_metrics(method: &http::Method, path: &str) -> bool {
    method == http::Method::GET && path == "/metrics"
}

/// A liveness or readiness probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `GET /healthz`: the process answers.
    Live,
    /// `GET /readyz`: the node is fit to serve.
    Ready,
}

/// Is this a probe, and which?
pub fn probe(method: &http::Method, path: &str) -> Option<Probe> {
    if method != http::Method::GET {
        return None;
    }
    match path {
        "/healthz" => Some(Probe::Live),
        "/readyz" => Some(Probe::Ready),
        _ => None,
    }
}

fn json_response(status: u16, body: String) -> Result<HttpResponse<HttpBody>, BoxError> {
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(HttpBody::from(body))
        .map_err(|e| Box::new(e) as BoxError)
}

/// Tower middleware answering page, metrics and probe requests and passing the rest to the
/// JSON-RPC.
#[derive(Clone)]
pub struct Pages<S> {
    /// The JSON-RPC service.
    pub inner: S,
    /// The node, for its metrics.
    pub api: Arc<dyn NodeApi>,
    /// The verify page, built once.
    pub page: Arc<str>,
    /// The node's operator token, if it has one.
    pub token: Option<Arc<str>>,
}

impl<S, B> tower::Service<HttpRequest<B>> for Pages<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse<HttpBody>>,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse<HttpBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: HttpRequest<B>) -> Self::Future {
        let from_page = request.headers().contains_key(http::header::ORIGIN);
        if from_page && request.method() == http::Method::OPTIONS {
            // A preflight: a page on another site (an agency's copy of the verify page) may
            // call the JSON-RPC; operator methods refuse such calls (see `FromWebPage`).
            let response = HttpResponse::builder()
                .status(204)
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-methods", "POST, GET")
                .header("access-control-allow-headers", "content-type")
                .header("access-control-max-age", "86400")
                .body(HttpBody::empty())
                .map_err(|e| Box::new(e) as BoxError);
            return Box::pin(async move { response });
        }
        if from_page {
            request.extensions_mut().insert(FromWebPage);
        }
        if let Some(token) = &self.token
            && bearer_matches(request.headers(), token)
        {
            request.extensions_mut().insert(OperatorToken);
        }
        if is_page(request.method(), request.uri().path()) {
            let response = HttpResponse::builder()
                .status(200)
                .header("content-type", "text/html; charset=utf-8")
                .header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
                .header("x-content-type-options", "nosniff")
                .body(HttpBody::from(self.page.to_string()))
                .map_err(|e| Box::new(e) as BoxError);
            return Box::pin(async move { response });
        }
        match probe(request.method(), request.uri().path()) {
            Some(Probe::Live) => {
                return Box::pin(async { json_response(200, r#"{"status":"up"}"#.into()) });
            }
            Some(Probe::Ready) => {
                let api = self.api.clone();
                // The disk check is a system call: off the async threads.
                return Box::pin(async move {
                    let ready = tokio::task::spawn_blocking(move || api.readiness()).await?;
                    let body = serde_json::to_string(&ready)?;
                    json_response(if ready.ready { 200 } else { 503 }, body)
                });
            }
            None => {}
        }
        if is_metrics(request.method(), request.uri().path()) {
            let api = self.api.clone();
            // A scrape reads RocksDB properties and /proc: off the async threads.
            return Box::pin(async move {
                let text = tokio::task::spawn_blocking(move || api.metrics()).await?;
                HttpResponse::builder()
                    .status(200)
                    .header("content-type", METRICS_CONTENT_TYPE)
                    .body(HttpBody::from(text))
                    .map_err(|e| Box::new(e) as BoxError)
            });
        }
        let fut = self.inner.call(request);
        Box::pin(async move {
            let mut response = fut.await.map_err(Into::into)?;
            if from_page {
                response.headers_mut().insert(
                    "access-control-allow-origin",
                    http::HeaderValue::from_static("*"),
                );
            }
            Ok(response)
        })
    }
}

/// Marks a JSON-RPC call that carried the node's operator token.
#[derive(Clone, Copy, Debug)]
pub struct OperatorToken;

/// Does the request carry `Authorization: Bearer <token>`? Compared in constant time.
fn bearer_matches(headers: &http::HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
    else {
        return false;
    };
    let token = token.as_bytes();
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Marks a JSON-RPC call that came from a web page (its request carried an `Origin` header):
/// any page on any site may read, but operator methods refuse it, so a page an operator
/// happens to open cannot reach the node's loopback listener.
#[derive(Clone, Copy, Debug)]
pub struct FromWebPage;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths() {
        let get = http::Method::GET;
        assert!(is_page(&get, "/verify"));
        assert!(is_page(&get, &format!("/v/{}", "ab".repeat(32))));
        assert!(!is_page(&get, "/v/xyz"));
        assert!(!is_page(&get, "/"));
        assert!(!is_page(&http::Method::POST, "/verify"));
        assert!(!is_page(&get, "/metrics"));
        assert!(is_metrics(&get, "/metrics"));
        assert!(!is_metrics(&http::Method::POST, "/metrics"));
        assert!(!is_metrics(&get, "/metrics/x"));
        assert_eq!(probe(&get, "/healthz"), Some(Probe::Live));
        assert_eq!(probe(&get, "/readyz"), Some(Probe::Ready));
        assert_eq!(probe(&http::Method::POST, "/readyz"), None);
        assert_eq!(probe(&get, "/readyz/"), None);
    }
}
