//! The JSON-RPC 2.0 envelope as the standard has it, in front of a library that reads it
//! narrowly: every id the standard allows is echoed and its call executed, a notification is
//! executed and answered by nothing, and a body over the limit is refused with 413 however it
//! is sent.
//!
//! The library (jsonrpsee) reads an id only as a string, `null` or an unsigned 64-bit integer,
//! and ignores notifications without running them: a call with the id `-1`, `1.5` or `2^64`
//! was taken as a notification and dropped, with `null` for an answer. Here, before it sees a
//! request over HTTP, such an id is swapped for a string the request does not use, and swapped
//! back in the answer; a notification of a served method is given such an id, and its answer
//! is dropped; a notification of any other method is not passed on at all. An id the standard
//! does not allow (an object, an array, a boolean) is answered here with -32600 and `id: null`.
//! A body that is not JSON, or nests deeper than the JSON reader allows, is answered with
//! -32700.
//!
//! The common request (an unsigned or string id, a call) is read once to find that out and
//! passed on untouched. It is not the method table, nor the WebSocket transport, whose messages
//! do not pass through HTTP middleware.

use crate::web::{BoxError, ResponseFuture};
use http_body_util::BodyExt as _;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Tower middleware normalising the JSON-RPC envelope of HTTP POST requests.
#[derive(Clone)]
pub struct Envelope<S> {
    /// The JSON-RPC service.
    pub inner: S,
    /// The methods served: a notification of another method is not passed on.
    pub methods: Arc<BTreeSet<String>>,
    /// The largest body read.
    pub max_body: usize,
}

/// What the fast path reads of one request: its id as written (`null` included), `None`
/// when it has none.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Can the library take `body` as it is? `Err`: it is not JSON.
fn readable_as_is(body: &[u8]) -> Result<bool, serde_json::Error> {
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let peeked = if batch {
        serde_json::from_slice::<Vec<Peek>>(body)
            .map(|ps| ps.iter().all(|p| p.id.is_some_and(read_as_is)))
    } else {
        serde_json::from_slice::<Peek>(body).map(|p| p.id.is_some_and(read_as_is))
    };
    match peeked {
        // Not a JSON-RPC shape (a batch holding a number, a string): the library answers it,
        // if it is JSON at all (nested no deeper than the reader allows).
        Err(e) if e.is_data() => serde_json::from_slice::<Value>(body).map(|_| true),
        other => other,
    }
}

/// An id the library reads as it is: a string, `null`, or an integer in `0..2^64`.
fn read_as_is(id: &RawValue) -> bool {
    let text = id.get();
    text == "null" || text.starts_with('"') || text.parse::<u64>().is_ok()
}

/// A request's or an answer's members, each as written: an id is echoed byte for byte (a
/// number such as `2^64 + 1` is not rounded through a float).
type Members = HashMap<String, Box<RawValue>>;

/// How the request passed on differs from the one received.
#[derive(Default)]
struct Rewritten {
    /// The placeholder ids given, with the id each stands for (`None`: a notification, whose
    /// answer is dropped).
    ids: HashMap<String, Option<Box<RawValue>>>,
    /// Answers made here (ids the standard does not allow).
    answered: Vec<Box<RawValue>>,
}

/// The error object of `code` with `id: null`.
fn error(code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "error": { "code": code, "message": message }, "id": null })
}

fn raw(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("in-memory JSON cannot fail")
}

fn json_response(
    status: u16,
    body: &impl serde::Serialize,
) -> Result<HttpResponse<HttpBody>, BoxError> {
    HttpResponse::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(HttpBody::from(serde_json::to_string(body)?))
        .map_err(|e| Box::new(e) as BoxError)
}

/// Rewrite each request of `requests`: returns those to pass on.
fn rewrite(
    requests: Vec<Box<RawValue>>,
    methods: &BTreeSet<String>,
    taken: &BTreeSet<String>,
    out: &mut Rewritten,
) -> Vec<Box<RawValue>> {
    let mut next = 0usize;
    let mut placeholder = || loop {
        let id = format!("cachet-envelope-{next}");
        next += 1;
        if !taken.contains(&id) {
            return id;
        }
    };
    let mut passed = Vec::with_capacity(requests.len());
    for request in requests {
        let Ok(mut members) = serde_json::from_str::<Members>(request.get()) else {
            passed.push(request); // not an object: the library answers -32600
            continue;
        };
        let id = members.get("id").map(|id| id.get().to_string());
        match id.as_deref() {
            None => {
                let served = members
                    .get("method")
                    .and_then(|m| serde_json::from_str::<String>(m.get()).ok())
                    .is_some_and(|m| methods.contains(&m));
                if served {
                    let id = placeholder();
                    members.insert("id".into(), raw(&id));
                    out.ids.insert(id, None);
                    passed.push(raw(&members));
                }
            }
            Some(text) if text.starts_with(['{', '[', 't', 'f']) => {
                out.answered.push(raw(&error(
                    -32600,
                    "Invalid request: an id must be a string, a number or null",
                )));
            }
            Some(text)
                if !text.starts_with('"') && text != "null" && text.parse::<u64>().is_err() =>
            {
                let id = placeholder();
                let original = members.insert("id".into(), raw(&id));
                out.ids.insert(id, original);
                passed.push(raw(&members));
            }
            Some(_) => passed.push(request),
        }
    }
    passed
}

/// Put the original ids back into `answer` (one answer or a batch of them), drop the answers
/// to notifications, add the answers made here.
fn restore(answer: Option<&RawValue>, single: bool, rewritten: Rewritten) -> Option<Box<RawValue>> {
    let mut answers: Vec<Box<RawValue>> = match answer {
        None => Vec::new(),
        Some(a) if a.get().starts_with('[') => {
            serde_json::from_str(a.get()).unwrap_or_else(|_| vec![a.to_owned()])
        }
        Some(a) => vec![a.to_owned()],
    };
    answers.retain_mut(|a| {
        let Ok(mut members) = serde_json::from_str::<Members>(a.get()) else {
            return true;
        };
        let Some(Ok(id)) = members
            .get("id")
            .map(|id| serde_json::from_str::<String>(id.get()))
        else {
            return true;
        };
        match rewritten.ids.get(&id) {
            None => true,
            Some(None) => false,
            Some(Some(original)) => {
                members.insert("id".into(), original.clone());
                *a = raw(&members);
                true
            }
        }
    });
    answers.extend(rewritten.answered);
    match (single, answers.len()) {
        (_, 0) => None,
        (true, 1) => answers.pop(),
        _ => Some(raw(&answers)),
    }
}

/// Every string id of `requests`, so that a placeholder never takes one.
fn string_ids(requests: &[Box<RawValue>]) -> BTreeSet<String> {
    requests
        .iter()
        .filter_map(|r| {
            let members: Members = serde_json::from_str(r.get()).ok()?;
            serde_json::from_str(members.get("id")?.get()).ok()
        })
        .collect()
}

/// What to do with a request body.
pub enum Plan {
    /// Pass it on as it is.
    AsIs,
    /// Answer -32700: it is not JSON, or nests too deep.
    ParseError,
    /// Pass `body` on (`None`: nothing is left to pass on), then make the answer with
    /// [`Pending::answer`].
    Rewritten {
        /// The requests to pass on, rewritten.
        body: Option<String>,
        /// What to undo in the answer.
        pending: Pending,
    },
}

/// What a rewritten request needs undone in its answer.
pub struct Pending {
    single: bool,
    rewritten: Rewritten,
}

impl Pending {
    /// The answer to send for the library's `answer` (`None`: it was not asked, or said
    /// nothing); `None` when nothing is to be answered (notifications only).
    pub fn answer(self, answer: Option<&RawValue>) -> Option<Box<RawValue>> {
        restore(answer, self.single, self.rewritten)
    }
}

/// Read a request `body` for the methods `methods` and say what to do with it.
pub fn plan(body: &[u8], methods: &BTreeSet<String>) -> Plan {
    match readable_as_is(body) {
        Ok(true) => return Plan::AsIs,
        Ok(false) => {}
        Err(_) => return Plan::ParseError,
    }
    // Read whole once: the fast path skipped what it did not need, at any depth.
    if serde_json::from_slice::<Value>(body).is_err() {
        return Plan::ParseError;
    }
    let (requests, single) = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => match serde_json::from_slice::<Vec<Box<RawValue>>>(body) {
            Ok(many) => (many, false),
            Err(_) => return Plan::ParseError,
        },
        _ => match serde_json::from_slice::<Box<RawValue>>(body) {
            Ok(one) => (vec![one], true),
            Err(_) => return Plan::ParseError,
        },
    };
    let taken = string_ids(&requests);
    let mut rewritten = Rewritten::default();
    let passed = rewrite(requests, methods, &taken, &mut rewritten);
    let body = match passed.as_slice() {
        [] => None,
        [one] if single => Some(one.get().to_string()),
        many => Some(serde_json::to_string(many).expect("in-memory JSON cannot fail")),
    };
    Plan::Rewritten {
        body,
        pending: Pending { single, rewritten },
    }
}

impl<S, B> tower::Service<HttpRequest<B>> for Envelope<S>
where
    S: tower::Service<HttpRequest<HttpBody>, Response = HttpResponse<HttpBody>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = HttpResponse<HttpBody>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        // The service polled ready is the one called; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        if parts.method != http::Method::POST {
            return Box::pin(async move {
                inner
                    .call(HttpRequest::from_parts(parts, HttpBody::new(body)))
                    .await
                    .map_err(Into::into)
            });
        }
        let methods = self.methods.clone();
        let max_body = self.max_body;
        Box::pin(async move {
            let bytes = match http_body_util::Limited::new(body, max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return json_response(
                        413,
                        &error(
                            -32007,
                            &format!("Request is too big (over {max_body} bytes)"),
                        ),
                    );
                }
                Err(e) => return Err(e),
            };
            let (body, pending) = match plan(&bytes, &methods) {
                Plan::AsIs => {
                    let body = HttpBody::new(http_body_util::Full::new(bytes));
                    let request = HttpRequest::from_parts(parts, body);
                    return inner.call(request).await.map_err(Into::into);
                }
                Plan::ParseError => return json_response(200, &error(-32700, "Parse error")),
                Plan::Rewritten { body, pending } => (body, pending),
            };
            let answer: Option<Box<RawValue>> = match body {
                None => None,
                Some(body) => {
                    let mut parts = parts;
                    parts.headers.remove(http::header::CONTENT_LENGTH);
                    let request = HttpRequest::from_parts(parts, HttpBody::from(body));
                    let response = inner.call(request).await.map_err(Into::into)?;
                    let (head, body) = response.into_parts();
                    let body = body.collect().await?.to_bytes();
                    match serde_json::from_slice::<Box<RawValue>>(&body) {
                        Ok(v) => Some(v),
                        // Not JSON (an HTTP-level refusal): passed on as it is.
                        Err(_) => {
                            return Ok(HttpResponse::from_parts(
                                head,
                                HttpBody::from(body.to_vec()),
                            ));
                        }
                    }
                }
            };
            match pending.answer(answer.as_deref()) {
                Some(v) => json_response(200, &v),
                // Notifications only: no answer.
                None => HttpResponse::builder()
                    .status(204)
                    .body(HttpBody::empty())
                    .map_err(|e| Box::new(e) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods() -> BTreeSet<String> {
        ["cachet_status".to_string()].into_iter().collect()
    }

    #[test]
    fn only_odd_ids_notifications_and_broken_json_leave_the_fast_path() {
        let ok = |b: &str| readable_as_is(b.as_bytes()).unwrap();
        assert!(ok(
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":[[1,{"id":-1}]]}"#
        ));
        assert!(ok(r#" [{"id":"a","method":"m"},{"id":null,"method":"m"}]"#));
        assert!(ok("[1, 2]"));
        assert!(!ok(r#"{"id":-1,"method":"m"}"#));
        assert!(!ok(r#"{"method":"m"}"#));
        assert!(!ok(r#"[{"id":1,"method":"m"},{"method":"m"}]"#));
        assert!(readable_as_is(b"{not json").is_err());
        let deep = format!(r#"["x",{}{}]"#, "[".repeat(50_000), "]".repeat(50_000));
        assert!(readable_as_is(deep.as_bytes()).is_err());
    }

    #[test]
    fn ids_the_library_reads_pass_as_they_are() {
        for id in ["1", "0", "18446744073709551615", "\"x\"", "null"] {
            assert!(
                read_as_is(&RawValue::from_string(id.into()).unwrap()),
                "{id}"
            );
        }
        for id in [
            "-1",
            "1.5",
            "18446744073709551616",
            "1e3",
            "{}",
            "[]",
            "true",
        ] {
            assert!(
                !read_as_is(&RawValue::from_string(id.into()).unwrap()),
                "{id}"
            );
        }
    }

    #[test]
    fn odd_ids_and_notifications_are_rewritten_and_restored() {
        let requests: Vec<Box<RawValue>> = [
            r#"{"jsonrpc": "2.0", "id": -1, "method": "cachet_status"}"#,
            r#"{"jsonrpc": "2.0", "id": 18446744073709551617, "method": "cachet_status"}"#,
            r#"{"jsonrpc": "2.0", "method": "cachet_status"}"#,
            r#"{"jsonrpc": "2.0", "method": "cachet_nothing"}"#,
            r#"{"jsonrpc": "2.0", "id": {"a": 1}, "method": "cachet_status"}"#,
            r#"{"jsonrpc": "2.0", "id": "cachet-envelope-0", "method": "cachet_status"}"#,
            "7",
        ]
        .iter()
        .map(|r| RawValue::from_string(r.to_string()).unwrap())
        .collect();
        let taken = string_ids(&requests);
        let mut rewritten = Rewritten::default();
        let passed = rewrite(requests, &methods(), &taken, &mut rewritten);
        // The unknown notification and the object id are not passed on.
        assert_eq!(passed.len(), 5);
        let ids: Vec<Value> = passed
            .iter()
            .map(|r| serde_json::from_str::<Value>(r.get()).unwrap()["id"].clone())
            .collect();
        // A placeholder never takes a client's string id.
        assert_eq!(
            ids,
            [
                json!("cachet-envelope-1"),
                json!("cachet-envelope-2"),
                json!("cachet-envelope-3"),
                json!("cachet-envelope-0"),
                Value::Null,
            ]
        );
        let answer = raw(&ids
            .iter()
            .map(|id| json!({"jsonrpc": "2.0", "result": 7, "id": id}))
            .collect::<Vec<_>>());
        let restored = restore(Some(&answer), false, rewritten).unwrap();
        // Byte for byte: the large id is not rounded.
        assert!(
            restored.get().contains("18446744073709551617"),
            "{restored}"
        );
        let restored: Value = serde_json::from_str(restored.get()).unwrap();
        let ids: Vec<Value> = restored
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        assert_eq!(ids[0], json!(-1));
        assert_eq!(
            ids[2..],
            [json!("cachet-envelope-0"), Value::Null, Value::Null]
        );
        assert_eq!(restored[4]["error"]["code"], -32600);
    }

    #[test]
    fn a_lone_notification_gets_no_answer() {
        let mut rewritten = Rewritten::default();
        let passed = rewrite(
            vec![
                RawValue::from_string(r#"{"jsonrpc":"2.0","method":"cachet_status"}"#.into())
                    .unwrap(),
            ],
            &methods(),
            &BTreeSet::new(),
            &mut rewritten,
        );
        let id = serde_json::from_str::<Value>(passed[0].get()).unwrap()["id"].clone();
        let answer = raw(&json!({"jsonrpc": "2.0", "result": 1, "id": id}));
        assert!(restore(Some(&answer), true, rewritten).is_none());
    }

    /// An id as a client may write it, or none (a notification).
    fn id_strategy() -> impl proptest::strategy::Strategy<Value = Option<String>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(None),
            any::<u64>().prop_map(|n| Some(n.to_string())),
            any::<i64>().prop_map(|n| Some(n.to_string())),
            (0u32..1000, 1u32..100).prop_map(|(a, b)| Some(format!("{a}.{b}"))),
            Just(Some("18446744073709551617".into())),
            (0u8..4).prop_map(|n| Some(format!("\"cachet-envelope-{n}\""))),
            "[a-z]{0,3}".prop_map(|s| Some(format!("\"{s}\""))),
            Just(Some("null".into())),
            Just(Some("{}".into())),
            Just(Some("[1]".into())),
            Just(Some("true".into())),
        ]
    }

    proptest::proptest! {
        /// Whatever the ids: every call gets exactly one answer with its own id as written
        /// (an id the standard does not allow: one -32600 with `id: null`), and notifications
        /// none.
        #[test]
        fn every_call_gets_its_own_id_back(
            calls in proptest::collection::vec((id_strategy(), proptest::bool::ANY), 1..12),
            batch in proptest::bool::ANY,
        ) {
            let batch = batch || calls.len() > 1;
            let requests: Vec<String> = calls
                .iter()
                .map(|(id, served)| {
                    let method = if *served { "cachet_status" } else { "cachet_nothing" };
                    match id {
                        Some(id) => format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}"}}"#),
                        None => format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#),
                    }
                })
                .collect();
            let body = if batch { format!("[{}]", requests.join(",")) } else { requests[0].clone() };
            let mut expected: Vec<String> = calls
                .iter()
                .filter_map(|(id, _)| id.clone())
                .map(|id| if id.starts_with(['{', '[', 't']) { "null".into() } else { id })
                .collect();
            expected.sort();
            let (passed, pending) = match plan(body.as_bytes(), &methods()) {
                // Every id is one the library reads, and every request a call: it answers.
                Plan::AsIs => {
                    proptest::prop_assert!(calls.iter().all(|(id, _)| id.as_deref().is_some_and(|i| read_as_is(&RawValue::from_string(i.into()).unwrap()))));
                    return Ok(());
                }
                Plan::ParseError => panic!("valid JSON refused: {body}"),
                Plan::Rewritten { body, pending } => (body, pending),
            };
            // The library answers each request passed on, by its id, all of which it reads.
            let answer = passed.map(|passed| {
                let requests: Vec<Value> = match serde_json::from_str::<Value>(&passed).unwrap() {
                    Value::Array(many) => many,
                    one => vec![one],
                };
                let answers: Vec<Value> = requests
                    .iter()
                    .map(|r| {
                        let id = r.get("id").expect("every request passed on has an id");
                        proptest::prop_assert!(read_as_is(&raw(id)), "{id}");
                        Ok(json!({"jsonrpc": "2.0", "result": 1, "id": id}))
                    })
                    .collect::<Result<_, _>>()?;
                Ok::<_, proptest::test_runner::TestCaseError>(if batch { raw(&answers) } else { raw(&answers[0]) })
            }).transpose()?;
            let mut got: Vec<String> = match pending.answer(answer.as_deref()) {
                None => Vec::new(),
                Some(a) => {
                    let answers: Vec<Box<RawValue>> = if a.get().starts_with('[') {
                        serde_json::from_str(a.get()).unwrap()
                    } else {
                        vec![a]
                    };
                    answers
                        .iter()
                        .map(|a| serde_json::from_str::<Members>(a.get()).unwrap()["id"].get().to_string())
                        .collect()
                }
            };
            got.sort();
            proptest::prop_assert_eq!(got, expected, "{}", body);
        }
    }
}
