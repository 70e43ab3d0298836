//! What a node serves over plain HTTP GET beside the JSON-RPC on the same port: the verify page
//! at `/verify` and `/v/<id>` (the target of link QR codes), and the operator's metrics at
//! `/metrics` (OpenMetrics text, for Prometheus).
//!
//! The page is plain HTML, CSS and JS. It calls this node's `cachet_verify` /
//! `cachet_verifyDocument`; a document is hashed in the browser (WebCrypto) and never leaves the
//! device.

use crate::api::NodeApi;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The page.
pub const PAGE: &str = include_str!("../web/verify.html");

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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

/// Tower middleware answering page and metrics requests and passing the rest to the JSON-RPC.
#[derive(Clone)]
pub struct Pages<S> {
    /// The JSON-RPC service.
    pub inner: S,
    /// The node, for its metrics.
    pub api: Arc<dyn NodeApi>,
}

impl<S, B> tower::Service<HttpRequest<B>> for Pages<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse<HttpBody>>,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse<HttpBody>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if is_page(request.method(), request.uri().path()) {
            let response = HttpResponse::builder()
                .status(200)
                .header("content-type", "text/html; charset=utf-8")
                .header("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
                .header("x-content-type-options", "nosniff")
                .body(HttpBody::from(PAGE))
                .map_err(|e| Box::new(e) as BoxError);
            return Box::pin(async move { response });
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
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

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
    }
}
