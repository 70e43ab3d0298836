//! Per-client limits on the RPC: how many connections one IP address may hold open
//! ([`crate::listen`] enforces it) and how many read calls it may make per second, a token
//! bucket per address shared by all its connections (HTTP and WebSocket), enforced here as a
//! JSON-RPC middleware. A call past the rate waits its turn, up to [`MAX_WAIT`]: a client that
//! asks too fast is slowed to its rate, so that the node spends on it no more than its share,
//! however many calls it keeps in flight. A call that would wait longer gets error 2007
//! `rate_limited` at once, with the milliseconds after which it would be served; other clients
//! are not slowed.
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
use std::time::{Duration, Instant};

/// The remote address of the connection a request came on, put in its extensions by
/// [`crate::listen`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer(pub IpAddr);

/// The error code of a call past its client's rate.
pub const RATE_LIMITED: i32 = 2007;

/// The longest a call past its client's rate waits its turn before it is refused instead.
pub const MAX_WAIT: Duration = Duration::from_secs(1);

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

    /// Take a call from `ip`'s bucket: `Ok` with how long the call must wait its turn (zero
    /// when the bucket had a token; the bucket goes into debt for it), or, when that would be
    /// longer than [`MAX_WAIT`], the milliseconds after which it would be served (and nothing
    /// is taken).
    fn take(&self, ip: IpAddr, now: Instant) -> Result<Duration, u64> {
        let rate = f64::from(self.limits.reads_per_second);
        if rate == 0.0 {
            return Ok(Duration::ZERO);
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
        // `at` may be ahead of `now` for calls taken at one instant out of order.
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(size);
        bucket.at = bucket.at.max(now);
        let owed = 1.0 - bucket.tokens;
        if owed <= 0.0 {
            bucket.tokens -= 1.0;
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64(owed / rate);
        if wait > MAX_WAIT {
            return Err((wait.as_secs_f64() * 1000.0).ceil() as u64);
        }
        bucket.tokens -= 1.0;
        Ok(wait)
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
        let turn = match peer {
            Some(Peer(ip)) if counted(request.method_name()) => {
                self.buckets.take(ip, Instant::now())
            }
            _ => Ok(Duration::ZERO),
        };
        match turn {
            Err(wait) => Either::Left(std::future::ready(MethodResponse::error(
                request.id().into_owned(),
                limited(wait),
            ))),
            Ok(wait) if wait.is_zero() => Either::Right(Either::Left(self.inner.call(request))),
            Ok(wait) => {
                let call = self.inner.call(request);
                Either::Right(Either::Right(async move {
                    tokio::time::sleep(wait).await;
                    call.await
                }))
            }
        }
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let peer = batch.extensions().get::<Peer>().copied();
        // The batch waits for the turn of its last call that is served.
        let mut longest = Duration::ZERO;
        if let Some(Peer(ip)) = peer {
            let now = Instant::now();
            for entry in batch.iter_mut() {
                let Ok(BatchEntry::Call(call)) = entry else {
                    continue;
                };
                if !counted(call.method_name()) {
                    continue;
                }
                match self.buckets.take(ip, now) {
                    Ok(wait) => longest = longest.max(wait),
                    Err(wait) => {
                        let id = call.id().into_owned();
                        *entry = Err(BatchEntryErr::new(id, limited(wait)));
                    }
                }
            }
        }
        let served = self.inner.batch(batch);
        async move {
            if !longest.is_zero() {
                tokio::time::sleep(longest).await;
            }
            served.await
        }
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

    #[test]
    fn past_its_burst_a_client_waits_its_turn_then_is_refused() {
        let buckets = Buckets::new(Limits {
            connections_per_client: 1,
            reads_per_second: 10,
            read_burst: 20,
        });
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(buckets.take(a, t0), Ok(Duration::ZERO), "the burst");
        }
        // Past it, calls queue at the rate: 100 ms apart, up to a second of waiting.
        for i in 1..=10 {
            assert_eq!(buckets.take(a, t0), Ok(ms(100 * i)));
        }
        assert_eq!(
            buckets.take(a, t0),
            Err(1100),
            "more than a second: refused"
        );
        assert_eq!(
            buckets.take(b, t0),
            Ok(Duration::ZERO),
            "another client is not slowed"
        );
        // Its debt paid after a second, it queues again from there.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(buckets.take(a, later), Ok(ms(100)));
        // Idle long enough, it has its whole burst again, and no more.
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..20 {
            assert_eq!(buckets.take(a, much_later), Ok(Duration::ZERO));
        }
        assert_eq!(buckets.take(a, much_later), Ok(ms(100)));
    }

    #[test]
    fn no_rate_means_no_limit_and_submissions_are_never_counted() {
        let buckets = Buckets::new(Limits::default());
        let ip = "127.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert_eq!(buckets.take(ip, Instant::now()), Ok(Duration::ZERO));
        }
        assert!(!counted("cachet_submit") && !counted("cachet_admin_backup"));
        assert!(counted("cachet_receipt") && counted("cachet_verify"));
    }
}
