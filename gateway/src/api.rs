//! What each endpoint takes and answers, and what it does with the agency's node: the JSON
//! bodies, the transactions they make, the node's answers passed on, and the errors with their
//! stable codes (`docs/spec/errors.md`, `docs/openapi.json`).
//!
//! It is not HTTP (routing, authentication and the audit log are [`crate::server`]'s): each
//! operation here takes parsed inputs and returns a JSON value or a [`Failure`].

use anyhow::Result;
use cachet_chain::codec::limits::MAX_BATCH_PROOF_LEN;
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{CertKind, EventName};
use cachet_chain::merkle::{BatchProof, MerkleTree};
use cachet_chain::tx::{
    Action, BatchEntry, BatchId, CertEvent, RevocationReason, TxId, batch_leaf,
};
use cachet_client::signer::Signer;
use cachet_client::{Client, ClientError};
use serde::Deserialize;
use serde_json::{Value, json};

/// An error answer: its HTTP status, stable code and name, and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status.
    pub status: u16,
    /// The stable code (`docs/spec/errors.md`): the gateway's own (4001–4099, 4900), or the
    /// node's refusal passed on.
    pub code: i64,
    /// The code's name.
    pub name: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl Failure {
    fn new(status: u16, code: i64, name: &str, message: impl Into<String>) -> Failure {
        Failure {
            status,
            code,
            name: name.into(),
            message: message.into(),
        }
    }

    /// 4001: no token, or one no caller has.
    pub fn unauthorized() -> Failure {
        Failure::new(
            401,
            4001,
            "unauthorized",
            "send the calling system's token as Authorization: Bearer <token>",
        )
    }

    /// 4002: the request is not of the endpoint's form.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(400, 4002, "bad_request", message)
    }

    /// 4003: no such endpoint.
    pub fn not_found(path: &str) -> Failure {
        Failure::new(404, 4003, "not_found", format!("no endpoint at {path}"))
    }

    /// 4004: the endpoint does not take this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Failure {
        Failure::new(
            405,
            4004,
            "method_not_allowed",
            format!("{path} does not take {method}"),
        )
    }

    /// 4005: the body is larger than [`MAX_BODY_BYTES`].
    pub fn too_large() -> Failure {
        Failure::new(
            413,
            4005,
            "body_too_large",
            format!("the body is over {MAX_BODY_BYTES} bytes"),
        )
    }

    /// 4006: the agency's node did not answer, or not in its documented form.
    fn node_unavailable(message: impl Into<String>) -> Failure {
        Failure::new(502, 4006, "node_unavailable", message)
    }

    /// 4900: the gateway failed (its key, its audit log); its log says more.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(500, 4900, "internal", message)
    }

    /// The node's refusal `code`, passed on: an unknown certificate or submission is 404, a
    /// full mempool or a rate limit 503 (retry later), any rule or check 422.
    fn refused(code: i32, name: &str, message: &str) -> Failure {
        let status = match code {
            1301 | 1322 => 404,
            2001 | 2007 => 503,
            _ => 422,
        };
        Failure::new(status, code.into(), name, message)
    }

    /// What a failed call to the node means for the caller.
    fn from_client(e: &ClientError) -> Failure {
        match e.refused() {
            Some(r) => Failure::refused(r.code, &r.name, &r.message),
            None => Failure::node_unavailable(e.to_string()),
        }
    }

    /// What a failed submission means: the node's answer if it gave one, else the gateway's
    /// own failure (its key).
    fn from_submit(e: &anyhow::Error) -> Failure {
        match e.downcast_ref::<ClientError>() {
            Some(e) => Failure::from_client(e),
            None => Failure::internal(format!("{e:#}")),
        }
    }

    /// The JSON body of this answer.
    pub fn body(&self) -> Value {
        json!({ "code": self.code, "name": self.name, "message": self.message })
    }
}

/// `POST /v1/anchors`, and the successor of `POST /v1/certificates/{id}/supersede`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorRequest {
    /// The kind: a built-in kind's name, `kind-<n>` or the name a kind was registered under
    /// (for a successor: the kind of the certificate it replaces, if given).
    #[serde(default)]
    pub kind: Option<String>,
    /// The SHA-256 of the document, computed by the calling system: the document itself never
    /// leaves the agency.
    pub document_sha256: Hash32,
    /// Days the certificate is valid from now (investment permits: 365 if not given).
    #[serde(default)]
    pub valid_days: Option<u32>,
    /// A land title's parcel reference (section and lot number); only its hash goes on chain.
    #[serde(default)]
    pub parcel: Option<String>,
}

/// The largest request body taken (a batch of 10,000 digests fits).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest validity a request may ask for, in days (a century).
pub const MAX_VALID_DAYS: u32 = 36_500;
/// The longest parcel reference, in characters.
pub const MAX_PARCEL_CHARS: usize = 1024;

/// `POST /v1/batches`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The kind of every certificate in the batch (as [`AnchorRequest::kind`] names it).
    pub kind: String,
    /// The SHA-256 of each document, in the batch's order.
    pub documents_sha256: Vec<Hash32>,
    /// Days every certificate is valid from now.
    #[serde(default)]
    pub valid_days: Option<u32>,
}

/// The most documents one batch request takes.
pub const MAX_BATCH_DOCUMENTS: usize = 10_000;

/// One entry of a batch, as the batch's answer gave it: `POST /v1/batches/{id}/receipt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    /// The entry's commitment.
    pub commitment: Hash32,
    /// Its position in the batch, from 0.
    pub index: u32,
    /// Its inclusion proof's sibling hashes.
    pub siblings: Vec<Hash32>,
}

impl EntryRequest {
    /// The entry of `batch` this names.
    fn entry(self, batch: BatchId) -> Result<BatchEntry, Failure> {
        if self.siblings.len() > MAX_BATCH_PROOF_LEN {
            return Err(Failure::bad_request(format!(
                "siblings: at most {MAX_BATCH_PROOF_LEN}"
            )));
        }
        Ok(BatchEntry {
            batch,
            commitment: Commitment(self.commitment),
            proof: BatchProof {
                index: self.index,
                siblings: self.siblings,
            },
        })
    }
}

/// `POST /v1/batches/{id}/revoke-entry`: the entry, as [`EntryRequest`] names it, and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeEntryRequest {
    /// The entry's commitment.
    pub commitment: Hash32,
    /// Its position in the batch, from 0.
    pub index: u32,
    /// Its inclusion proof's sibling hashes.
    pub siblings: Vec<Hash32>,
    /// Why.
    pub reason: RevocationReason,
}

/// `POST /v1/certificates/{id}/revoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why.
    pub reason: RevocationReason,
}

/// `POST /v1/certificates/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    /// The event: `mortgage-set` or `mortgage-cancelled` on a land title, or one of the named
    /// events a registered kind's definition lists.
    pub event: EventName,
    /// For a mortgage: the SHA-256 of its registration (creditor, amount, registration number).
    #[serde(default)]
    pub mortgage_sha256: Option<Hash32>,
    /// For a registered kind's event: the SHA-256 of its particulars (case, decision).
    #[serde(default)]
    pub particulars_sha256: Option<Hash32>,
}

/// The event names of a land title's mortgages.
const MORTGAGE_SET: &str = "mortgage-set";
const MORTGAGE_CANCELLED: &str = "mortgage-cancelled";

/// The gateway's link to its node: the node's client and the agency's signer. Submissions go
/// one at a time, so that each takes the nonce after the last.
pub struct Agency {
    /// The agency's node.
    pub node: Client,
    /// The agency's key.
    pub signer: Signer,
    submitting: tokio::sync::Mutex<()>,
}

impl Agency {
    /// The agency `signer` signs for, submitting to `node`.
    pub fn new(node: Client, signer: Signer) -> Agency {
        Agency {
            node,
            signer,
            submitting: tokio::sync::Mutex::new(()),
        }
    }

    async fn submit(&self, action: Action) -> Result<TxId, Failure> {
        let _one_at_a_time = self.submitting.lock().await;
        self.signer
            .submit(&self.node, action)
            .await
            .map_err(|e| Failure::from_submit(&e))
    }

    async fn read(&self, method: &str, id: &Hash32) -> Result<Value, Failure> {
        self.node
            .call(method, vec![json!(id.to_string())])
            .await
            .map_err(|e| Failure::from_client(&e))
    }

    /// A new certificate, or (`previous`) the successor of one: its issuance submitted.
    pub async fn anchor(
        &self,
        request: AnchorRequest,
        previous: Option<CertId>,
    ) -> Result<Value, Failure> {
        let kind = match (request.kind, previous) {
            (Some(kind), _) => self.kind(&kind).await?,
            (None, Some(previous)) => self.kind_of(&previous).await?,
            (None, None) => return Err(Failure::bad_request("kind: required")),
        };
        check_valid_days(request.valid_days)?;
        if let Some(parcel) = &request.parcel
            && (parcel.is_empty() || parcel.chars().count() > MAX_PARCEL_CHARS)
        {
            return Err(Failure::bad_request(format!(
                "parcel: from 1 to {MAX_PARCEL_CHARS} characters"
            )));
        }
        let fingerprint = Fingerprint {
            alg: FingerprintAlg::Sha256,
            digest: request.document_sha256,
        };
        let salt = Salt::random();
        let commitment = Commitment::new(&fingerprint, &salt);
        let issuance = cachet_client::issue::issuance(
            kind,
            commitment,
            request.parcel.as_deref(),
            request.valid_days.map(u64::from),
            cachet_client::issue::now_ms(),
        )
        .map_err(Failure::bad_request)?;
        let id = CertId::derive(kind, &commitment);
        let action = match previous {
            None => Action::Issue(issuance),
            Some(previous) => Action::Supersede {
                previous,
                next: issuance,
            },
        };
        let submission = self.submit(action).await?;
        let mut answer = json!({
            "submission": submission,
            "certificate": id,
            "kind": kind,
            "issuer": self.signer.agency,
            "fingerprint": fingerprint,
            "salt": salt,
            "commitment": commitment,
        });
        if let Some(previous) = previous {
            answer["previous"] = json!(previous);
        }
        Ok(answer)
    }

    /// A Merkle batch of certificates: each document committed with a fresh salt, the root
    /// submitted; each entry's salt and inclusion proof answered, for its holder.
    pub async fn batch(&self, request: BatchRequest) -> Result<Value, Failure> {
        let count = request.documents_sha256.len();
        if count == 0 || count > MAX_BATCH_DOCUMENTS {
            return Err(Failure::bad_request(format!(
                "documents_sha256: from 1 to {MAX_BATCH_DOCUMENTS} digests"
            )));
        }
        check_valid_days(request.valid_days)?;
        let kind = self.kind(&request.kind).await?;
        let entries: Vec<(Fingerprint, Salt, Commitment)> = request
            .documents_sha256
            .iter()
            .map(|digest| {
                let fingerprint = Fingerprint {
                    alg: FingerprintAlg::Sha256,
                    digest: *digest,
                };
                let salt = Salt::random();
                (fingerprint, salt, Commitment::new(&fingerprint, &salt))
            })
            .collect();
        let leaves: Vec<Hash32> = entries.iter().map(|(_, _, c)| batch_leaf(c)).collect();
        let tree = MerkleTree::new(&leaves);
        let batch = cachet_client::issue::batch_issuance(
            kind,
            tree.root(),
            count as u32,
            request.valid_days.map(u64::from),
            cachet_client::issue::now_ms(),
        );
        let id = batch.batch_id();
        // The proofs are made before anything is submitted.
        let answer_entries = entries
            .iter()
            .enumerate()
            .map(|(i, (fingerprint, salt, commitment))| {
                let proof = tree
                    .proof(i)
                    .ok_or_else(|| Failure::internal("a batch entry without its proof"))?;
                Ok(json!({
                    "certificate": CertId::derive(kind, commitment),
                    "fingerprint": fingerprint,
                    "salt": salt,
                    "commitment": commitment,
                    "index": proof.index,
                    "siblings": proof.siblings,
                }))
            })
            .collect::<Result<Vec<Value>, Failure>>()?;
        let submission = self.submit(Action::IssueBatch(batch)).await?;
        Ok(json!({
            "submission": submission,
            "batch": id,
            "kind": kind,
            "issuer": self.signer.agency,
            "leaf_count": count,
            "entries": answer_entries,
        }))
    }

    /// Revoke one entry of the batch `batch`, proven by its inclusion proof.
    pub async fn revoke_entry(
        &self,
        batch: BatchId,
        request: RevokeEntryRequest,
    ) -> Result<Value, Failure> {
        let entry = EntryRequest {
            commitment: request.commitment,
            index: request.index,
            siblings: request.siblings,
        };
        let action = Action::RevokeBatchEntry {
            entry: entry.entry(batch)?,
            reason: request.reason,
        };
        let submission = self.submit(action).await?;
        Ok(json!({ "submission": submission, "batch": batch }))
    }

    /// The receipt of one entry of the batch `batch`, for its holder to verify offline.
    pub async fn batch_receipt(
        &self,
        batch: BatchId,
        request: EntryRequest,
    ) -> Result<Value, Failure> {
        let entry = request.entry(batch)?;
        let params = vec![
            json!(batch.to_string()),
            json!(entry.commitment.to_string()),
            json!(hex::encode(cachet_chain::codec::encode(&entry.proof))),
        ];
        self.node
            .call("cachet_batchReceipt", params)
            .await
            .map_err(|e| Failure::from_client(&e))
    }

    /// The kind `text` names (a built-in one, `kind-<n>`, or a registered kind's name, which the
    /// node resolves).
    async fn kind(&self, text: &str) -> Result<CertKind, Failure> {
        self.node.kind(text).await.map_err(|e| match e {
            ClientError::UnknownKind(_) => Failure::new(422, 1315, "unknown_kind", e.to_string()),
            e => Failure::from_client(&e),
        })
    }

    /// The kind of the certificate `id`, as the node has it.
    async fn kind_of(&self, id: &CertId) -> Result<CertKind, Failure> {
        let record = self.certificate(id).await?;
        serde_json::from_value(record["kind"].clone())
            .map_err(|_| Failure::node_unavailable("the node's certificate has no kind"))
    }

    /// Revoke `id`.
    pub async fn revoke(&self, id: CertId, request: RevokeRequest) -> Result<Value, Failure> {
        let action = Action::Revoke {
            id,
            reason: request.reason,
        };
        self.submitted(id, action).await
    }

    /// Approve `id`.
    pub async fn approve(&self, id: CertId) -> Result<Value, Failure> {
        self.submitted(id, Action::Approve { id }).await
    }

    /// Record a lifecycle event on `id`.
    pub async fn event(&self, id: CertId, request: EventRequest) -> Result<Value, Failure> {
        let mortgage =
            request.event.as_str() == MORTGAGE_SET || request.event.as_str() == MORTGAGE_CANCELLED;
        let event = match (
            mortgage,
            request.mortgage_sha256,
            request.particulars_sha256,
        ) {
            (true, Some(mortgage), None) if request.event.as_str() == MORTGAGE_SET => {
                CertEvent::MortgageSet { mortgage }
            }
            (true, Some(mortgage), None) => CertEvent::MortgageCancelled { mortgage },
            (true, ..) => {
                return Err(Failure::bad_request(
                    "a mortgage event takes mortgage_sha256 and no particulars_sha256",
                ));
            }
            (false, None, Some(detail)) => CertEvent::Named {
                name: request.event,
                detail,
            },
            (false, ..) => {
                return Err(Failure::bad_request(
                    "a registered kind's event takes particulars_sha256 and no mortgage_sha256",
                ));
            }
        };
        self.submitted(id, Action::RecordEvent { id, event }).await
    }

    async fn submitted(&self, id: CertId, action: Action) -> Result<Value, Failure> {
        let submission = self.submit(action).await?;
        Ok(json!({ "submission": submission, "certificate": id }))
    }

    /// Where a submission stands, as the node says.
    pub async fn submission(&self, id: &TxId) -> Result<Value, Failure> {
        self.read("cachet_transaction", &id.0).await
    }

    /// The certificate's record, as the node has it.
    pub async fn certificate(&self, id: &CertId) -> Result<Value, Failure> {
        self.read("cachet_certificate", &id.0).await
    }

    /// The certificate's receipt, for its holder to verify on their own device.
    pub async fn receipt(&self, id: &CertId) -> Result<Value, Failure> {
        self.read("cachet_receipt", &id.0).await
    }

    /// The certificate's lineage, as the node has it.
    pub async fn history(&self, id: &CertId) -> Result<Value, Failure> {
        self.read("cachet_history", &id.0).await
    }
}

fn check_valid_days(days: Option<u32>) -> Result<(), Failure> {
    if days == Some(0) || days > Some(MAX_VALID_DAYS) {
        return Err(Failure::bad_request(format!(
            "valid_days: from 1 to {MAX_VALID_DAYS}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_of_another_form_are_refused() {
        let digest = "ab".repeat(32);
        let ok: AnchorRequest = serde_json::from_value(
            json!({"kind": "reward-order", "document_sha256": digest, "valid_days": 30}),
        )
        .unwrap();
        // Any kind name is taken here; the node says which are known.
        assert_eq!(ok.kind.as_deref(), Some("reward-order"));
        for bad in [
            json!({"kind": "reward-order"}),
            json!({"kind": 3, "document_sha256": digest}),
            json!({"kind": "reward-order", "document_sha256": "abc"}),
            json!({"kind": "reward-order", "document_sha256": digest, "extra": 1}),
            json!({"kind": "reward-order", "document_sha256": digest, "valid_days": -1}),
        ] {
            assert!(
                serde_json::from_value::<AnchorRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<RevokeRequest>(json!({"reason": "fraud"})).is_ok());
        assert!(serde_json::from_value::<RevokeRequest>(json!({"reason": "bored"})).is_err());
        let event = |v: Value| serde_json::from_value::<EventRequest>(v);
        assert!(event(json!({"event": "mortgage-set", "mortgage_sha256": digest})).is_ok());
        assert!(event(json!({"event": "suspended", "particulars_sha256": digest})).is_ok());
        assert!(event(json!({"event": "Suspended!", "particulars_sha256": digest})).is_err());
    }

    #[test]
    fn every_code_of_the_gateway_is_documented() {
        let errors = include_str!("../../docs/spec/errors.md");
        let openapi = include_str!("../../docs/openapi.json");
        for f in [
            Failure::unauthorized(),
            Failure::bad_request(""),
            Failure::not_found(""),
            Failure::method_not_allowed("", ""),
            Failure::too_large(),
            Failure::node_unavailable(""),
            Failure::internal(""),
        ] {
            let row = format!("| {} | {} | `{}` |", f.code, f.status, f.name);
            assert!(errors.contains(&row), "errors.md lacks {row}");
            let named = format!("{} `{}`", f.code, f.name);
            assert!(openapi.contains(&named), "openapi.json lacks {named}");
        }
    }

    #[test]
    fn the_nodes_refusals_keep_their_code_under_an_http_status() {
        assert_eq!(
            Failure::refused(1301, "unknown_certificate", "").status,
            404
        );
        assert_eq!(Failure::refused(2001, "mempool_full", "").status, 503);
        let rule = Failure::refused(1201, "not_accredited", "no");
        assert_eq!((rule.status, rule.code), (422, 1201));
        assert_eq!(rule.body()["name"], "not_accredited");
    }
}
