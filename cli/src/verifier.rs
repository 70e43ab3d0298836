//! Commands of verifiers: `cachet receipt` fetches a receipt; `cachet verify` checks one against
//! a trusted genesis or checkpoint alone (no node needed), optionally with the document itself,
//! or a whole directory of receipts (`--batch`), sharing the checks of receipts from one height;
//! `cachet checkpoint` moves a verifier's trust to the consortium's latest checkpoint.
//!
//! Exit codes of `verify`: 0 valid, 1 invalid proof or error, 2 revoked, 3 superseded,
//! 4 expired, 5 not yet valid, 6 unknown, 7 pending approval, 8 receipt too old.

use anyhow::{Context, Result, bail};
use cachet_chain::checkpoint::Advance;
use cachet_chain::document::{Fingerprint, FingerprintAlg, Salt};
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::hash::Hash32;
use cachet_chain::ids::Timestamp;
use cachet_chain::receipt::{Receipt, ReceiptError, Verifier, verify};
use cachet_chain::state::CertStatus;
use cachet_chain::trust::{Trust, TrustAnchor};
use cachet_chain::verdict::Verdict;
use cachet_client::Client;
use serde_json::{Value, json};
use std::path::Path;

/// What the holder's certificate file says (written by `cachet anchor`).
pub struct CertificateFile {
    json: Value,
}

impl CertificateFile {
    /// Read a `.cachet.json` file.
    pub fn read(path: &Path) -> Result<CertificateFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(CertificateFile {
            json: serde_json::from_str(&text)
                .with_context(|| format!("{} is not a certificate file", path.display()))?,
        })
    }

    /// What a receipt for this file must be about: the certificate id, or for a batch entry
    /// `<batch id>#<index>` (the entry's identity in a receipt).
    fn subject(&self) -> Result<String> {
        let b = &self.json["batch"];
        if b.is_null() {
            return self.json["id"]
                .as_str()
                .map(str::to_string)
                .context("the certificate file has no id");
        }
        let batch = b["batch"]
            .as_str()
            .context("the batch entry has no batch id")?;
        let index = b["proof"]["index"]
            .as_u64()
            .context("the batch entry's proof has no index")?;
        Ok(format!("{batch}#{index}"))
    }

    fn salt(&self) -> Result<(FingerprintAlg, Salt)> {
        let alg: FingerprintAlg = serde_json::from_value(self.json["fingerprint"]["alg"].clone())?;
        let salt: Salt = serde_json::from_value(self.json["salt"].clone())?;
        Ok((alg, salt))
    }
}

/// Fetch a receipt from a node: for a certificate id, or for what a certificate file names
/// (a batch entry needs its file: the node does not know the batch's leaves).
/// `trusted_height` is the height of the verifier's trust root: the receipt carries only the
/// validator-set changes after it; with `lineage`, it carries the certificates it replaced.
pub async fn fetch(
    client: &Client,
    id: Option<&str>,
    file: Option<&CertificateFile>,
    trusted_height: u64,
    lineage: bool,
) -> Result<Vec<u8>> {
    let options = json!({ "trusted_height": trusted_height, "lineage": lineage });
    let v = match (id, file) {
        (_, Some(f)) if !f.json["batch"].is_null() => {
            let b = &f.json["batch"];
            let proof: cachet_chain::merkle::BatchProof =
                serde_json::from_value(b["proof"].clone())?;
            client
                .call(
                    "cachet_batchReceipt",
                    vec![
                        b["batch"].clone(),
                        f.json["commitment"].clone(),
                        json!(hex::encode(cachet_chain::encode(&proof))),
                        options,
                    ],
                )
                .await?
        }
        (_, Some(f)) => {
            client
                .call("cachet_receipt", vec![f.json["id"].clone(), options])
                .await?
        }
        (Some(id), None) => {
            client
                .call("cachet_receipt", vec![json!(id), options])
                .await?
        }
        (None, None) => bail!("name the certificate: --id or --certificate-file"),
    };
    Ok(hex::decode(
        v["receipt"].as_str().context("node returned no receipt")?,
    )?)
}

/// The verifier's clock, as a chain timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

fn exit_code(v: Verdict) -> i32 {
    match v {
        Verdict::Valid => 0,
        Verdict::Revoked => 2,
        Verdict::Superseded => 3,
        Verdict::Expired => 4,
        Verdict::NotYetValid => 5,
        Verdict::Unknown => 6,
        Verdict::Pending => 7,
    }
}

fn time_text(t: Timestamp) -> String {
    let secs = (t.0 / 1000) as i64;
    // UTC date and time without a calendar dependency (civil-from-days).
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What the verifier asked about (`--id`, or the certificate file's certificate), which a
/// receipt must be about: a node answering for another certificate proves nothing about this
/// one.
pub fn asked_about(id: Option<&str>, file: Option<&CertificateFile>) -> Result<Option<String>> {
    match (id, file) {
        (_, Some(f)) => f.subject().map(Some),
        (Some(id), None) => Ok(Some(id.to_string())),
        (None, None) => Ok(None),
    }
}

/// What a verifier's trust file pins: a genesis file (its root is the genesis hash), or a
/// checkpoint file written by `cachet checkpoint` (`{root, chain_id, height, anchor}`).
pub struct Pinned {
    /// The trust root.
    pub root: Hash32,
    /// What it stands for, checked against it.
    pub trust: Trust,
}

/// Read a trust file (a genesis file or a checkpoint file).
pub fn load_pinned(path: &Path) -> Result<Pinned> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a genesis or checkpoint file", path.display()))?;
    if json.get("anchor").is_none() {
        let anchor = cachet_contracts::anchor(&GenesisDoc::from_json(&text)?)?;
        let root = anchor.root();
        return Ok(Pinned {
            trust: anchor.trust(&root)?,
            root,
        });
    }
    let field = |k: &str| {
        json[k]
            .as_str()
            .with_context(|| format!("{}: no {k}", path.display()))
    };
    let root: Hash32 = field("root")?
        .parse()
        .with_context(|| format!("{}: the root is not 64 hex", path.display()))?;
    let anchor = TrustAnchor::decode(&hex::decode(field("anchor")?)?)?;
    Ok(Pinned {
        trust: anchor
            .trust(&root)
            .with_context(|| format!("{} does not stand for its root", path.display()))?,
        root,
    })
}

/// The latest checkpoint the first of `nodes` that answers offers from `anchor`'s root, checked
/// here: its height and the encoded advance. `None` when no node has a checkpoint past the root
/// (or none answers, or its checkpoint does not verify).
pub async fn latest_advance(anchor: &TrustAnchor, nodes: &[String]) -> Option<(u64, Vec<u8>)> {
    let trust = anchor.trust(&anchor.root()).ok()?;
    for url in nodes {
        let Ok(client) = Client::new(url) else {
            continue;
        };
        let Ok(reply) = client
            .call("cachet_checkpoint", vec![json!(trust.height.0)])
            .await
        else {
            continue;
        };
        let Some(bytes) = reply["advance"].as_str().and_then(|h| hex::decode(h).ok()) else {
            continue;
        };
        if let Some((reached, _)) = Advance::decode(&bytes)
            .ok()
            .and_then(|a| a.verify(&trust).ok())
        {
            return Some((reached.height.0, bytes));
        }
    }
    None
}

/// Move the trust of `from` (a trust file) to the consortium's latest checkpoint, checked here:
/// each validator-set change since the trusted height signed by the set before it, the
/// checkpoint committed by the set they lead to. Writes the checkpoint file to `out`.
pub async fn checkpoint(client: &Client, from: &Path, out: &Path) -> Result<()> {
    let pinned = load_pinned(from)?;
    let reply = client
        .call("cachet_checkpoint", vec![json!(pinned.trust.height.0)])
        .await?;
    let bytes = hex::decode(
        reply["advance"]
            .as_str()
            .context("node returned no checkpoint")?,
    )?;
    let advance = Advance::decode(&bytes)?;
    let (trust, root) = advance
        .verify(&pinned.trust)
        .context("the node's checkpoint does not follow from the trusted one")?;
    let file = json!({
        "root": root.to_string(),
        "chain_id": trust.chain_id.as_str(),
        "height": trust.height.0,
        "anchor": hex::encode(advance.anchor.encode()),
    });
    std::fs::write(out, serde_json::to_string_pretty(&file)? + "\n")
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "checkpoint at height {} (root {root}), reached from height {} through {} validator-set change(s); written to {}",
        trust.height.0,
        pinned.trust.height.0,
        advance.transitions.len(),
        out.display()
    );
    Ok(())
}

/// Verify receipt bytes against a genesis or checkpoint; print the verdict (and the lineage the
/// receipt carries, verified with it); return the process exit code. With `asked`, a receipt
/// about anything else is invalid.
pub fn run(
    receipt: &[u8],
    trust: &Trust,
    asked: Option<&str>,
    document: Option<&Path>,
    file: Option<&CertificateFile>,
    salt: Option<&str>,
    json_out: bool,
) -> Result<i32> {
    let opening = match (document, file, salt) {
        (Some(path), Some(f), _) => {
            let (alg, salt) = f.salt()?;
            Some((
                Fingerprint::of_reader(alg, std::io::BufReader::new(std::fs::File::open(path)?))?,
                salt,
            ))
        }
        (Some(path), None, Some(s)) => Some((
            Fingerprint::of_reader(
                FingerprintAlg::Sha256,
                std::io::BufReader::new(std::fs::File::open(path)?),
            )?,
            Salt(s.parse().context("salt must be 64 hex characters")?),
        )),
        (Some(_), None, None) => {
            bail!("checking a document needs its salt: --certificate-file or --salt")
        }
        _ => None,
    };
    let result = Receipt::decode(receipt)
        .map_err(|e| ReceiptError::Malformed(e.to_string()))
        .and_then(|r| verify(&r, trust, now(), opening.as_ref().map(|(f, s)| (f, s))));
    // An id as typed (any case) compares as the id it names.
    let asked = asked.map(|a| {
        a.parse::<cachet_chain::CertId>()
            .map_or_else(|_| a.to_string(), |id| id.to_string())
    });
    if let (Ok(v), Some(asked)) = (&result, &asked)
        && v.id != *asked
    {
        let reason = format!(
            "the receipt is about {}, not {asked}: it proves nothing about what was asked",
            v.id
        );
        if json_out {
            println!("{}", json!({ "verdict": "invalid", "reason": reason }));
        } else {
            println!("INVALID proof / 證明無效 — {reason}");
        }
        return Ok(1);
    }
    let v = match result {
        Ok(v) => v,
        Err(e) => {
            let stale = matches!(e, ReceiptError::TooOld { .. });
            if json_out {
                println!(
                    "{}",
                    json!({ "verdict": if stale { "stale" } else { "invalid" }, "reason": e.to_string() })
                );
            } else {
                println!(
                    "{} — {e}",
                    if stale {
                        "STALE receipt / 收據過期"
                    } else {
                        "INVALID proof / 證明無效"
                    }
                );
            }
            return Ok(if stale { 8 } else { 1 });
        }
    };
    let mut code = exit_code(v.verdict);
    if v.document_matches == Some(false) {
        code = 1;
    }
    if json_out {
        let mut out = serde_json::to_value(&v)?;
        out["reason"] = json!(reason(&v));
        out["lineage"] = json!(
            v.lineage
                .iter()
                .map(|(id, r)| json!({
                    "id": id,
                    "issuer": r.issuer,
                    "issued_time": r.issued_time,
                    "reason": record_reason(r),
                }))
                .collect::<Vec<_>>()
        );
        if v.document_matches == Some(false) {
            out["verdict"] = json!("invalid");
        }
        println!("{out}");
        return Ok(code);
    }
    let label = match v.verdict {
        Verdict::Valid => "VALID / 有效",
        Verdict::Revoked => "REVOKED / 已撤銷",
        Verdict::Superseded => "SUPERSEDED / 已被取代",
        Verdict::Expired => "EXPIRED / 已過期",
        Verdict::NotYetValid => "NOT YET VALID / 尚未生效",
        Verdict::Unknown => "UNKNOWN / 查無此證書",
        Verdict::Pending => "PENDING APPROVAL / 待核准",
    };
    let label = if v.document_matches == Some(false) {
        "DOCUMENT DOES NOT MATCH / 文件與證書不符"
    } else {
        label
    };
    println!("{label}");
    println!("  certificate  {}", v.id);
    match (&v.kind_definition, v.kind) {
        (Some(d), Some(k)) => println!(
            "  kind         {} / {} ({}, {k}; named by its policy in the receipt)",
            d.title_zh_tw.as_str(),
            d.title_en.as_str(),
            d.name
        ),
        (_, Some(k)) => println!("  kind         {k}"),
        _ => {}
    }
    if let Some(i) = &v.issuer {
        println!("  issuer       {i}");
    }
    println!("  reason       {}", reason(&v));
    match v.document_matches {
        Some(true) => println!("  document     matches the certificate"),
        Some(false) => println!("  document     DOES NOT match the certificate"),
        None => {}
    }
    for (i, (id, r)) in v.lineage.iter().enumerate() {
        let label = if i == 0 { "lineage" } else { "" };
        println!("  {label:<12} {id} ({})", record_reason(r));
    }
    println!(
        "  as of        height {} ({}), signed by the trusted validators",
        v.height,
        time_text(v.as_of)
    );
    Ok(code)
}

fn reason(v: &cachet_chain::receipt::Verified) -> String {
    if let Some(r) = &v.record {
        return record_reason(r);
    }
    if let Some(b) = &v.batch {
        return match &v.revocation {
            Some(r) => format!(
                "entry of batch {} revoked by {} at height {}",
                b.id(),
                r.by,
                r.at
            ),
            None => format!(
                "entry of a batch of {} issued at height {}; not revoked",
                b.leaf_count, b.issued_at
            ),
        };
    }
    "no certificate with this id exists (proven absent)".into()
}

fn record_reason(r: &cachet_chain::state::CertificateRecord) -> String {
    let mut s = match &r.status {
        CertStatus::Active => format!(
            "issued at height {} ({})",
            r.issued_at,
            time_text(r.issued_time)
        ),
        CertStatus::Pending => format!("waiting for approvals ({} so far)", r.approvals.len()),
        CertStatus::Revoked {
            at,
            time,
            by,
            reason,
        } => format!(
            "revoked by {by} at height {at} ({}), reason {reason:?}",
            time_text(*time)
        ),
        CertStatus::Superseded { by, at, time } => {
            format!("superseded by {by} at height {at} ({})", time_text(*time))
        }
    };
    if let Some(prev) = r.supersedes {
        s.push_str(&format!("; supersedes {prev}"));
    }
    if let Some(u) = r.valid_until {
        s.push_str(&format!("; valid until {}", time_text(u)));
    }
    if !r.mortgages.is_empty() {
        s.push_str(&format!("; {} active mortgage(s)", r.mortgages.len()));
    }
    s
}

/// One receipt of a bulk check.
pub struct Named {
    /// Its file's name, or the id it was fetched for.
    name: String,
    /// What it must be about, when known.
    asked: Option<String>,
    /// The encoded receipt.
    bytes: Vec<u8>,
}

/// The receipts of a bulk check: every `*.receipt` file in a directory, by file name.
pub fn receipts_in(dir: &Path) -> Result<Vec<Named>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "receipt"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            Ok(Named {
                name: name.into_owned(),
                asked: None,
                bytes,
            })
        })
        .collect()
}

/// The receipts of a bulk check through a node: one for each certificate id listed in `list`
/// (one a line; blank lines and `#` comments skipped), named by its id, which it must be about.
pub async fn receipts_for(client: &Client, list: &Path, trusted_height: u64) -> Result<Vec<Named>> {
    let text =
        std::fs::read_to_string(list).with_context(|| format!("cannot read {}", list.display()))?;
    let mut out = Vec::new();
    for id in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let asked = asked_about(Some(id), None)?.unwrap_or_default();
        let bytes = fetch(client, Some(id), None, trusted_height, false).await?;
        out.push(Named {
            name: id.to_string(),
            asked: Some(asked),
            bytes,
        });
    }
    Ok(out)
}

/// Verify receipts (named — a file name or a listed id — each with what it must be about if
/// known) against a genesis, each block head once; print one line (or JSON object) per receipt
/// and a summary; exit 0 only when every one is valid.
pub fn run_batch(receipts: &[Named], trust: &Trust, json_out: bool) -> Result<i32> {
    let mut verifier = Verifier::new(trust);
    let now = now();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for Named { name, asked, bytes } in receipts {
        let asked = asked.as_deref().map(|a| {
            a.parse::<cachet_chain::CertId>()
                .map_or_else(|_| a.to_string(), |id| id.to_string())
        });
        let result = Receipt::decode(bytes)
            .map_err(|e| ReceiptError::Malformed(e.to_string()))
            .and_then(|r| verifier.verify(&r, now, None))
            .and_then(|v| match &asked {
                Some(a) if *a != v.id => Err(ReceiptError::Malformed(format!(
                    "the receipt is about {}, not {a}",
                    v.id
                ))),
                _ => Ok(v),
            });
        let (verdict, line) = match &result {
            Ok(v) => (
                v.verdict.to_string(),
                json!({ "name": name, "verdict": v.verdict, "id": v.id, "kind": v.kind,
                        "kind_name": v.kind_definition.as_ref().map(|d| &d.name),
                        "issuer": v.issuer, "height": v.height, "reason": reason(v) }),
            ),
            Err(e) => {
                let verdict = if matches!(e, ReceiptError::TooOld { .. }) {
                    "stale"
                } else {
                    "invalid"
                };
                (
                    verdict.to_string(),
                    json!({ "name": name, "verdict": verdict, "reason": e.to_string() }),
                )
            }
        };
        if json_out {
            println!("{line}");
        } else {
            println!(
                "{verdict:<14} {}  {name}",
                line["id"].as_str().unwrap_or("-")
            );
        }
        *counts.entry(verdict).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    eprintln!(
        "{} receipts, {} block heads checked: {}",
        receipts.len(),
        verifier.heads_checked(),
        summary.join(", ")
    );
    let all_valid = !receipts.is_empty() && counts.keys().all(|v| v == "valid");
    Ok(if all_valid { 0 } else { 1 })
}
