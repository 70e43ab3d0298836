//! Per-client limits on the RPC: how many connections one IP address may hold open
//! ([`crate::listen`] enforces it) and how many read calls it may make per second, a token
//! bucket per address shared by all its connections (HTTP and WebSocket), enforced here as a
//! JSON-RPC middleware. A call past the rate gets error 2007 `rate_limited`, with the
//! milliseconds to wait; other clients are not slowed.
//!
//! Submissions (`cachet_submit`, `cachet_submitMany`) are bounded by the mempool instead, and
//! operator methods by their token: neither is counted here. It is not authentication: an
//! address is who a client is, as far as this layer knows.

use futures_util::future::Either;
use jsonrpsee::MethodResponse;
use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, Notification, RpcServiceT};
use jsonrpsee::types::{ErrorObject, Request};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The remote address of the connection a request came on, put in its extensions by
/// [`crate::listen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// The error code of a call past its client's rate.
pub const RATE_LIMITED: i32 = 2007;

/// How much one client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections one IP address may hold open at once.
    pub connections_per_client: usize,
    /// Read calls one IP address may make per second, on average; 0 for no limit.
    pub reads_per_second: u32,
    /// Read calls it may make at once after a pause (the bucket's size).
    pub read_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_per_client: 64,
            reads_per_second: 0,
            read_burst: 0,
        }
    }
}

/// Calls that are not counted: submissions and operator methods.
fn counted(method: &str) -> bool {
    !(method == "cachet_submit"
        || method == "cachet_submitMany"
        || method.starts_with("cachet_admin_"))
}

/// One client's bucket.
#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every client's bucket.
pub(crate) struct Buckets {
    limits: Limits,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Buckets {
    pub(crate) fn new(limits: Limits) -> Arc<Buckets> {
        Arc::new(Buckets {
            limits,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// Take `n` calls from `ip`'s bucket: `Ok` if it had them, or the milliseconds until it
    /// will.
    fn take(&self, ip: IpAddr, n: u32, now: Instant) -> Result<(), u64> {
        let rate = f64::from(self.limits.reads_per_second);
        if rate == 0.0 || n == 0 {
            return Ok(());
        }
        let size = f64::from(self.limits.read_burst.max(self.limits.reads_per_second));
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() > 100_000 {
            // Forget the clients whose buckets are full again: they owe nothing.
            clients.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < size);
        }
        let bucket = clients.entry(ip).or_insert(Bucket {
            tokens: size,
            at: now,
        });
        let refilled = bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = refilled.min(size);
        bucket.at = now;
        let need = f64::from(n);
        if bucket.tokens >= need {
            bucket.tokens -= need;
            Ok(())
        } else {
            Err((((need - bucket.tokens) / rate) * 1000.0).ceil() as u64)
        }
    }
}

fn limited(wait_ms: u64) -> ErrorObject<'static> {
    ErrorObject::owned(
        RATE_LIMITED,
        format!("too many calls from this client: retry in {wait_ms} ms"),
        Some(serde_json::json!({ "name": "rate_limited", "retry_after_ms": wait_ms })),
    )
}

/// The JSON-RPC middleware that applies [`Buckets`].
#[derive(Clone)]
pub(crate) struct RateLimit<S> {
    pub(crate) inner: S,
    pub(crate) buckets: Arc<Buckets>,
}

impl<S> RpcServiceT for RateLimit<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let peer = request.extensions().get::<Peer>().copied();
        let refused = match peer {
            Some(Peer(ip)) if counted(request.method_name()) => {
                self.buckets.take(ip, 1, Instant::now()).err()
            }
            _ => None,
        };
        match refused {
            Some(wait) => Either::Left(std::future::ready(MethodResponse::error(
                request.id().into_owned(),
                limited(wait),
            ))),
            None => Either::Right(self.inner.call(request)),
        }
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let peer = batch.extensions().get::<Peer>().copied();
        if let Some(Peer(ip)) = peer {
            let now = Instant::now();
            for entry in batch.iter_mut() {
                let Ok(BatchEntry::Call(call)) = entry else {
                    continue;
                };
                if !counted(call.method_name()) {
                    continue;
                }
                if let Err(wait) = self.buckets.take(ip, 1, now) {
                    let id = call.id().into_owned();
                    *entry = Err(BatchEntryErr::new(id, limited(wait)));
                }
            }
        }
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_the_rate_and_holds_a_burst() {
        let buckets = Buckets::new(Limits {
            connections_per_client: 1,
            reads_per_second: 10,
            read_burst: 20,
        });
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(buckets.take(a, 1, t0), Ok(()));
        }
        assert_eq!(
            buckets.take(a, 1, t0),
            Err(100),
            "empty: one call in 100 ms"
        );
        assert_eq!(
            buckets.take(b, 1, t0),
            Ok(()),
            "another client is not slowed"
        );
        let later = t0 + Duration::from_millis(500);
        for _ in 0..5 {
            assert_eq!(buckets.take(a, 1, later), Ok(()));
        }
        assert!(buckets.take(a, 1, later).is_err());
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert_eq!(
                buckets.take(a, 1, much_later),
                Ok(()),
                "never more than the burst"
            );
        }
        assert!(buckets.take(a, 1, much_later).is_err());
    }

    #[test]
    fn no_rate_means_no_limit_and_submissions_are_never_counted() {
        let buckets = Buckets::new(Limits::default());
        let ip = "127.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert_eq!(buckets.take(ip, 1, Instant::now()), Ok(()));
        }
        assert!(!counted("cachet_submit") && !counted("cachet_admin_backup"));
        assert!(counted("cachet_receipt") && counted("cachet_verify"));
    }
}
