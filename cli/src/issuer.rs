//! Commands of issuing agencies: anchor (one document or a directory as a Merkle batch),
//! revoke, supersede, approve. Each signs a transaction with the agency's key, submits it to a
//! node and waits until it is finalized.
//!
//! Anchoring writes a *certificate file* next to each document (`<document>.cachet.json`): the
//! certificate id, the salt and, for a batch entry, its inclusion proof. The holder needs it to
//! prove which document the certificate is about; the chain never sees the document or salt.

use anyhow::{Context, Result, bail};
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::{AgencyId, CertKind};
use cachet_chain::merkle::{BatchProof, MerkleTree};
use cachet_chain::tx::{Action, Issuance, RevocationReason, Terms, batch_leaf};
use cachet_client::Client;
pub(crate) use cachet_client::issue::now_ms;
pub use cachet_client::signer::Signer;
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Who signs, and through which node.
#[derive(clap::Args)]
pub struct IssuerArgs {
    /// The node's RPC URL.
    #[arg(long)]
    pub rpc: String,
    /// The agency's key: a key file, or a key in an HSM named by its pkcs11: URI
    /// (`pkcs11:token=…;object=…?module-path=…&pin-source=…`).
    #[arg(long)]
    pub key: String,
    /// The agency id, when the key file does not name it (always, for an HSM key).
    #[arg(long)]
    pub agency: Option<cachet_chain::AgencyId>,
}

impl IssuerArgs {
    /// The node's client and the agency's signer.
    pub fn connect(&self) -> Result<(Client, Signer)> {
        Ok((
            Client::new(&self.rpc)?,
            Signer::load(&self.key, self.agency.clone())?,
        ))
    }
}

/// Why a certificate is revoked, as the command line names it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Reason {
    /// Issued by mistake.
    IssuedInError,
    /// Cancelled by the issuer.
    Cancelled,
    /// Obtained by fraud.
    Fraud,
    /// Ordered by a court.
    CourtOrder,
    /// Any other reason.
    Other,
}

impl From<Reason> for cachet_chain::tx::RevocationReason {
    fn from(r: Reason) -> Self {
        use cachet_chain::tx::RevocationReason as R;
        match r {
            Reason::IssuedInError => R::IssuedInError,
            Reason::Cancelled => R::Cancelled,
            Reason::Fraud => R::Fraud,
            Reason::CourtOrder => R::CourtOrder,
            Reason::Other => R::Other,
        }
    }
}

/// The file a holder keeps with a document.
#[derive(Serialize)]
pub(crate) struct CertificateFile {
    id: CertId,
    kind: CertKind,
    issuer: AgencyId,
    fingerprint: Fingerprint,
    salt: Salt,
    commitment: Commitment,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<BatchEntryFile>,
    height: u64,
    tx: cachet_chain::TxId,
}

impl CertificateFile {
    /// The file of a certificate anchored on its own (not in a batch).
    pub(crate) fn single(
        id: CertId,
        kind: CertKind,
        signer: &Signer,
        (fingerprint, salt, commitment): (Fingerprint, Salt, Commitment),
        height: u64,
        tx: cachet_chain::TxId,
    ) -> CertificateFile {
        CertificateFile {
            id,
            kind,
            issuer: signer.agency.clone(),
            fingerprint,
            salt,
            commitment,
            batch: None,
            height,
            tx,
        }
    }
}

#[derive(Serialize)]
struct BatchEntryFile {
    batch: cachet_chain::tx::BatchId,
    leaf_count: u32,
    proof: BatchProof,
}

/// A document's fingerprint, a fresh salt, and the commitment they make.
pub(crate) type Opening = (Fingerprint, Salt, Commitment);

/// Fingerprint `path` and commit to it with a fresh salt.
pub(crate) fn commit_to(path: &Path) -> Result<Opening> {
    let fp = fingerprint(path)?;
    let salt = Salt::random();
    Ok((fp, salt, Commitment::new(&fp, &salt)))
}

fn fingerprint(path: &Path) -> Result<Fingerprint> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Fingerprint::of_reader(
        FingerprintAlg::Sha256,
        std::io::BufReader::new(f),
    )?)
}

fn certificate_path(doc: &Path) -> PathBuf {
    let mut name = doc.file_name().unwrap_or_default().to_os_string();
    name.push(".cachet.json");
    doc.with_file_name(name)
}

/// Write `file` next to the document `doc` (`<doc>.cachet.json`).
pub(crate) fn write_certificate(doc: &Path, file: &CertificateFile) -> Result<()> {
    let path = certificate_path(doc);
    std::fs::write(&path, serde_json::to_string_pretty(file)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Options that shape an issuance.
pub struct IssueOptions {
    /// Land titles: the parcel reference (hashed; defaults to the file name).
    pub parcel: Option<String>,
    /// Validity in days from now (required for investment permits; default 365 there).
    pub valid_days: Option<u64>,
}

fn issuance(
    kind: CertKind,
    commitment: Commitment,
    doc: &Path,
    opts: &IssueOptions,
) -> Result<Issuance> {
    let parcel = opts.parcel.clone().unwrap_or_else(|| {
        doc.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    cachet_client::issue::issuance(kind, commitment, Some(&parcel), opts.valid_days, now_ms())
        .map_err(anyhow::Error::msg)
}

/// `cachet anchor`: one document, or every file of a directory as one batch.
pub async fn anchor(
    client: &Client,
    signer: &Signer,
    kind: CertKind,
    path: &Path,
    opts: &IssueOptions,
    json_out: bool,
) -> Result<()> {
    if path.is_dir() {
        return anchor_batch(client, signer, kind, path, opts, json_out).await;
    }
    let (fp, salt, commitment) = commit_to(path)?;
    let issue = issuance(kind, commitment, path, opts)?;
    let id = issue.cert_id();
    let (tx, height) = signer.send(client, Action::Issue(issue)).await?;
    write_certificate(
        path,
        &CertificateFile::single(id, kind, signer, (fp, salt, commitment), height, tx),
    )?;
    if json_out {
        println!(
            "{}",
            json!({ "id": id, "height": height, "tx": tx, "kind": kind, "certificate_file": certificate_path(path) })
        );
    } else {
        println!("anchored {kind} {id} at height {height} (tx {tx})");
        println!("certificate file: {}", certificate_path(path).display());
    }
    Ok(())
}

async fn anchor_batch(
    client: &Client,
    signer: &Signer,
    kind: CertKind,
    dir: &Path,
    opts: &IssueOptions,
    json_out: bool,
) -> Result<()> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.to_string_lossy().ends_with(".cachet.json"))
        .collect();
    docs.sort();
    if docs.is_empty() {
        bail!("{} holds no documents", dir.display());
    }
    let mut entries = Vec::with_capacity(docs.len());
    let progress = |done: usize, total: usize, what: &str| {
        if !json_out {
            eprint!("\r{what} {done}/{total}");
            let _ = std::io::stderr().flush();
        }
    };
    for (i, doc) in docs.iter().enumerate() {
        entries.push(commit_to(doc)?);
        if i % 100 == 0 || i + 1 == docs.len() {
            progress(i + 1, docs.len(), "hashing");
        }
    }
    if !json_out {
        eprintln!();
    }
    let leaves: Vec<Hash32> = entries.iter().map(|(_, _, c)| batch_leaf(c)).collect();
    let tree = MerkleTree::new(&leaves);
    let batch = cachet_client::issue::batch_issuance(
        kind,
        tree.root(),
        leaves.len() as u32,
        opts.valid_days,
        now_ms(),
    );
    let batch_id = batch.batch_id();
    let (tx, height) = signer
        .send(client, Action::IssueBatch(batch.clone()))
        .await?;
    for (i, (doc, (fp, salt, c))) in docs.iter().zip(&entries).enumerate() {
        write_certificate(
            doc,
            &CertificateFile {
                id: CertId::derive(kind, c),
                kind,
                issuer: signer.agency.clone(),
                fingerprint: *fp,
                salt: *salt,
                commitment: *c,
                batch: Some(BatchEntryFile {
                    batch: batch_id,
                    leaf_count: batch.leaf_count,
                    proof: tree.proof(i).context("index in range")?,
                }),
                height,
                tx,
            },
        )?;
        if i % 100 == 0 || i + 1 == docs.len() {
            progress(i + 1, docs.len(), "certificate files");
        }
    }
    if json_out {
        println!(
            "{}",
            json!({ "id": batch_id, "height": height, "tx": tx, "kind": kind, "count": docs.len(), "root": tree.root() })
        );
    } else {
        eprintln!();
        println!(
            "anchored a batch of {} {kind} certificates: batch {batch_id} at height {height} (tx {tx})",
            docs.len()
        );
    }
    Ok(())
}

/// `cachet revoke`.
pub async fn revoke(
    client: &Client,
    signer: &Signer,
    id: CertId,
    reason: RevocationReason,
    json_out: bool,
) -> Result<()> {
    let (tx, height) = signer.send(client, Action::Revoke { id, reason }).await?;
    report(json_out, "revoked", id, height, tx);
    Ok(())
}

/// `cachet approve`.
pub async fn approve(client: &Client, signer: &Signer, id: CertId, json_out: bool) -> Result<()> {
    let (tx, height) = signer.send(client, Action::Approve { id }).await?;
    report(json_out, "approved", id, height, tx);
    Ok(())
}

/// `cachet supersede`: replace a certificate with a new document's.
pub async fn supersede(
    client: &Client,
    signer: &Signer,
    previous: CertId,
    path: &Path,
    opts: &IssueOptions,
    json_out: bool,
) -> Result<()> {
    let record = client
        .call("cachet_certificate", vec![json!(previous.to_string())])
        .await?;
    let kind: CertKind =
        serde_json::from_value(record["kind"].clone()).context("certificate record has no kind")?;
    let (fp, salt, commitment) = commit_to(path)?;
    let mut next = issuance(kind, commitment, path, opts)?;
    // A successor keeps kind-specific terms the rules require to stay (the land parcel).
    if let (CertKind::LandTitle, None) = (kind, &opts.parcel)
        && let Some(parcel) = record["terms"]["land_title"]["parcel"].as_str()
    {
        next.terms = Terms::LandTitle {
            parcel: parcel.parse()?,
        };
    }
    let id = next.cert_id();
    let (tx, height) = signer
        .send(client, Action::Supersede { previous, next })
        .await?;
    write_certificate(
        path,
        &CertificateFile::single(id, kind, signer, (fp, salt, commitment), height, tx),
    )?;
    if json_out {
        println!(
            "{}",
            json!({ "id": id, "previous": previous, "height": height, "tx": tx })
        );
    } else {
        println!("superseded {previous} by {id} at height {height} (tx {tx})");
    }
    Ok(())
}

fn report(json_out: bool, what: &str, id: CertId, height: u64, tx: cachet_chain::TxId) {
    if json_out {
        println!("{}", json!({ "id": id, "height": height, "tx": tx }));
    } else {
        println!("{what} {id} at height {height} (tx {tx})");
    }
}
