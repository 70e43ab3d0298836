//! Commands of agencies beyond issuing: governance proposals and votes (validator agencies),
//! accreditation, revoking one entry of a batch, and lifecycle events (mortgages). Each signs
//! one transaction with the agency's key through [`crate::issuer::Signer::send`], which waits
//! until it is finalized, and prints what was done (`--json`: one object).
//!
//! It is not the rules: whether the chain accepts a change is decided by `cachet-contracts`,
//! and a refusal comes back with its stable code (`docs/spec/errors.md`).

use crate::issuer::{IssuerArgs, Reason};
use anyhow::{Context, Result};
use cachet_chain::crypto::PublicKey;
use cachet_chain::document::CertId;
use cachet_chain::hash::{Domain, Hash32};
use cachet_chain::ids::{AgencyId, EventName, Name};
use cachet_chain::policy::KindPolicy;
use cachet_chain::tx::{
    Action, AgencyRegistration, BatchEntry, CertEvent, GovernanceChange, ProposalId,
};
use cachet_client::Client;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The commands this module runs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Governance (validator agencies): propose a change. The proposal counts as the proposer's
    /// vote; the change is carried out by the vote that brings it to two thirds of the validator
    /// agencies. Prints the proposal id others vote for.
    Propose {
        /// The change.
        #[command(subcommand)]
        change: Change,
    },
    /// Governance (validator agencies): vote for an open proposal.
    Vote {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The proposal id (the proposing transaction's id).
        #[arg(long)]
        proposal: ProposalId,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Accredit an agency to issue a kind (by an accreditor of the kind); with --name and
    /// --pubkey, register a new agency first.
    Accredit {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The kind (a built-in kind's name, or the name a kind was registered under).
        #[arg(long)]
        kind: String,
        /// The agency accredited.
        #[arg(long = "for")]
        target: AgencyId,
        /// A new agency's display name.
        #[arg(long, requires = "pubkey")]
        name: Option<String>,
        /// A new agency's public key (`cachet pubkey --key FILE` prints it).
        #[arg(long, requires = "name")]
        pubkey: Option<PublicKey>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an agency's accreditation for a kind (by an accreditor of the kind).
    Unaccredit {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The kind (a built-in kind's name, or the name a kind was registered under).
        #[arg(long)]
        kind: String,
        /// The agency.
        #[arg(long = "for")]
        target: AgencyId,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one certificate of a batch, from its certificate file (the `.cachet.json` that
    /// `cachet anchor` wrote next to the document).
    RevokeEntry {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The entry's certificate file.
        #[arg(long)]
        certificate: PathBuf,
        /// Why.
        #[arg(long, value_enum, default_value_t = Reason::Other)]
        reason: Reason,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Record one of the named events a registered kind allows (its policy's definition lists
    /// them) on an active certificate of that kind, by its issuer or an accreditor.
    Event {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The certificate.
        #[arg(long)]
        id: CertId,
        /// The event, as the kind's definition names it (e.g. `suspended`).
        #[arg(long)]
        event: EventName,
        /// Its particulars (case number, decision, and a secret of the agency's so that it
        /// cannot be guessed): only their hash goes on chain.
        #[arg(long)]
        particulars: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Record a mortgage set on a land title (抵押權設定), or with --cancel its cancellation
    /// (抵押權塗銷).
    Mortgage {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The land title.
        #[arg(long)]
        id: CertId,
        /// The mortgage registration (creditor, amount, registration number, and a secret
        /// of the land office's so that it cannot be guessed): only its hash goes on chain.
        #[arg(long)]
        registration: String,
        /// Record the mortgage's cancellation instead.
        #[arg(long)]
        cancel: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A governance change, as `cachet propose` takes it.
#[derive(clap::Subcommand)]
pub enum Change {
    /// Register a new agency.
    AddAgency {
        #[command(flatten)]
        tx: TxArgs,
        /// Its id.
        #[arg(long)]
        id: AgencyId,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// Its public key.
        #[arg(long)]
        pubkey: PublicKey,
    },
    /// Remove an agency (it must run no validator): its key stops signing.
    RemoveAgency {
        #[command(flatten)]
        tx: TxArgs,
        /// Its id.
        #[arg(long)]
        id: AgencyId,
    },
    /// Replace an agency's key (the old one stays in its history; transactions signed with it
    /// and not yet in a block are dropped).
    RotateKey {
        #[command(flatten)]
        tx: TxArgs,
        /// The agency.
        #[arg(long = "for")]
        target: AgencyId,
        /// Its new public key.
        #[arg(long)]
        pubkey: PublicKey,
    },
    /// Replace the policy of a kind with the one in a JSON file (the shape of a genesis
    /// file's policies; a registered kind's keeps its `definition` and the name in it).
    SetPolicy {
        #[command(flatten)]
        tx: TxArgs,
        /// The kind (a built-in kind's name, or the name a kind was registered under).
        #[arg(long)]
        kind: String,
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
    },
    /// Register a new certificate kind with the policy in a JSON file, whose `definition` names
    /// it (zh-TW and English titles, whether it may be superseded, its named events); it gets
    /// the next number (`kind-<n>`) when the vote passes.
    AddKind {
        #[command(flatten)]
        tx: TxArgs,
        /// The policy file.
        #[arg(long)]
        policy: PathBuf,
    },
    /// Add a validator run by an agency.
    AddValidator {
        #[command(flatten)]
        tx: TxArgs,
        /// The agency that runs it.
        #[arg(long = "for")]
        target: AgencyId,
        /// Its consensus public key.
        #[arg(long)]
        pubkey: PublicKey,
        /// Its voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
    },
    /// Remove a validator.
    RemoveValidator {
        #[command(flatten)]
        tx: TxArgs,
        /// Its consensus public key.
        #[arg(long)]
        pubkey: PublicKey,
    },
}

/// Who signs, through which node, and how to print.
#[derive(clap::Args)]
pub struct TxArgs {
    #[command(flatten)]
    issuer: IssuerArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn name(text: &str) -> Result<Name> {
    Name::new(text).with_context(|| format!("{text:?} is not a valid agency name"))
}

/// A kind policy from a JSON file.
fn policy_file(path: &std::path::Path) -> Result<KindPolicy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a kind policy", path.display()))
}

impl Change {
    async fn into_parts(self) -> Result<(TxArgs, GovernanceChange)> {
        Ok(match self {
            Change::AddAgency {
                tx,
                id,
                name: n,
                pubkey,
            } => (
                tx,
                GovernanceChange::AddAgency {
                    id,
                    registration: AgencyRegistration {
                        name: name(&n)?,
                        key: pubkey,
                    },
                },
            ),
            Change::RemoveAgency { tx, id } => (tx, GovernanceChange::RemoveAgency { id }),
            Change::RotateKey { tx, target, pubkey } => (
                tx,
                GovernanceChange::RotateAgencyKey {
                    id: target,
                    key: pubkey,
                },
            ),
            Change::SetPolicy { tx, kind, policy } => {
                let kind = Client::new(&tx.issuer.rpc)?.kind(&kind).await?;
                let policy = policy_file(&policy)?;
                (tx, GovernanceChange::SetKindPolicy { kind, policy })
            }
            Change::AddKind { tx, policy } => {
                let policy = policy_file(&policy)?;
                (tx, GovernanceChange::AddKind { policy })
            }
            Change::AddValidator {
                tx,
                target,
                pubkey,
                power,
            } => (
                tx,
                GovernanceChange::AddValidator {
                    agency: target,
                    key: pubkey,
                    power,
                },
            ),
            Change::RemoveValidator { tx, pubkey } => {
                (tx, GovernanceChange::RemoveValidator { key: pubkey })
            }
        })
    }
}

/// Run one of this module's commands.
pub async fn run(command: Command) -> Result<()> {
    let (issuer, json_out, action, what) = match command {
        Command::Propose { change } => {
            let (tx, change) = change.into_parts().await?;
            let what = json!({ "proposed": change });
            (tx.issuer, tx.json, Action::Propose { change }, what)
        }
        Command::Vote {
            issuer,
            proposal,
            json,
        } => (
            issuer,
            json,
            Action::Vote { proposal },
            json!({ "voted": proposal }),
        ),
        Command::Accredit {
            issuer,
            kind,
            target: agency,
            name: n,
            pubkey,
            json,
        } => {
            let kind = Client::new(&issuer.rpc)?.kind(&kind).await?;
            let registration = match (n, pubkey) {
                (Some(n), Some(key)) => Some(AgencyRegistration {
                    name: name(&n)?,
                    key,
                }),
                _ => None,
            };
            let what =
                json!({ "accredited": agency, "kind": kind, "registered": registration.is_some() });
            let action = Action::Accredit {
                kind,
                agency,
                registration,
            };
            (issuer, json, action, what)
        }
        Command::Unaccredit {
            issuer,
            kind,
            target: agency,
            json,
        } => {
            let kind = Client::new(&issuer.rpc)?.kind(&kind).await?;
            let what = json!({ "unaccredited": agency, "kind": kind });
            (issuer, json, Action::Unaccredit { kind, agency }, what)
        }
        Command::RevokeEntry {
            issuer,
            certificate,
            reason,
            json,
        } => {
            let entry = batch_entry(&certificate)?;
            let what = json!({ "revoked_entry": entry.proof.index, "batch": entry.batch });
            let action = Action::RevokeBatchEntry {
                entry,
                reason: reason.into(),
            };
            (issuer, json, action, what)
        }
        Command::Mortgage {
            issuer,
            id,
            registration,
            cancel,
            json,
        } => {
            let mortgage = mortgage_commitment(&registration);
            let event = if cancel {
                CertEvent::MortgageCancelled { mortgage }
            } else {
                CertEvent::MortgageSet { mortgage }
            };
            let what = json!({ "certificate": id, "event": event });
            (issuer, json, Action::RecordEvent { id, event }, what)
        }
        Command::Event {
            issuer,
            id,
            event,
            particulars,
            json,
        } => {
            let event = CertEvent::Named {
                name: event,
                detail: Domain::Commitment.hash(particulars.as_bytes()),
            };
            let what = json!({ "certificate": id, "event": event });
            (issuer, json, Action::RecordEvent { id, event }, what)
        }
    };
    let (client, signer) = issuer.connect()?;
    let (tx, height) = signer.send(&client, action).await?;
    let mut done = what;
    done["tx"] = json!(tx);
    done["height"] = json!(height);
    if json_out {
        println!("{done}");
    } else {
        println!("{}", summary(&done));
    }
    Ok(())
}

/// One line for a person: the fields of `done`, `tx` and `height` last.
fn summary(done: &Value) -> String {
    let Some(fields) = done.as_object() else {
        return done.to_string();
    };
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut parts: Vec<String> = fields
        .iter()
        .filter(|(k, _)| *k != "tx" && *k != "height")
        .map(|(k, v)| format!("{k} {}", shown(v)))
        .collect();
    parts.push(format!(
        "at height {} (tx {})",
        done["height"],
        shown(&done["tx"])
    ));
    parts.join(", ")
}

/// What goes on chain for a mortgage registration: its hash, so that the registration itself
/// stays with the land office.
pub fn mortgage_commitment(registration: &str) -> Hash32 {
    Domain::Commitment.hash(registration.as_bytes())
}

/// The batch entry a certificate file describes.
fn batch_entry(path: &std::path::Path) -> Result<BatchEntry> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let batch = &file["batch"];
    if batch.is_null() {
        anyhow::bail!(
            "{} is the file of a certificate anchored on its own: use `cachet revoke --id {}`",
            path.display(),
            file["id"].as_str().unwrap_or("<id>")
        );
    }
    Ok(BatchEntry {
        batch: serde_json::from_value(batch["batch"].clone()).context("the file's batch id")?,
        commitment: serde_json::from_value(file["commitment"].clone())
            .context("the file's commitment")?,
        proof: serde_json::from_value(batch["proof"].clone())
            .context("the file's inclusion proof")?,
    })
}

/// `cachet history`: a certificate's lineage, oldest first, as the node records it.
pub async fn history(client: &Client, id: CertId, json_out: bool) -> Result<()> {
    let lineage = client
        .call("cachet_history", vec![json!(id.to_string())])
        .await?;
    if json_out {
        println!("{lineage}");
        return Ok(());
    }
    for record in lineage.as_array().into_iter().flatten() {
        let state = record["status"]["state"].as_str().unwrap_or("?");
        println!(
            "{}  {}  issued by {} at height {}  {state}",
            record["id"].as_str().unwrap_or("?"),
            record["kind"].as_str().unwrap_or("?"),
            record["issuer"].as_str().unwrap_or("?"),
            record["issued_at"],
        );
    }
    Ok(())
}

/// `cachet kinds`: every kind the chain knows, with who accredits it and, for a registered
/// kind, its names and events.
pub async fn kinds(client: &Client, json_out: bool) -> Result<()> {
    let kinds = client.call("cachet_kinds", vec![]).await?;
    if json_out {
        println!("{kinds}");
        return Ok(());
    }
    for k in kinds.as_array().into_iter().flatten() {
        let policy = &k["policy"];
        let list = |v: &Value| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        let definition = &policy["definition"];
        let titles = match definition["title_en"].as_str() {
            Some(en) => format!(
                "  {} / {en}",
                definition["title_zh_tw"].as_str().unwrap_or("?")
            ),
            None => String::new(),
        };
        println!(
            "{:<12} {:<32} accreditors {}{titles}",
            k["kind"].as_str().unwrap_or("?"),
            k["name"].as_str().unwrap_or("?"),
            list(&policy["accreditors"]),
        );
        if definition.is_object() {
            println!(
                "{:<12} {:<32} supersedable {}, events {}",
                "",
                "",
                definition["supersedable"],
                list(&definition["events"]),
            );
        }
    }
    Ok(())
}

/// `cachet evidence`: the equivocations a node recorded, decoded: who, at which height and
/// round, which two votes.
pub async fn evidence(client: &Client, json_out: bool) -> Result<()> {
    let recorded = client.call("cachet_evidence", vec![]).await?;
    if json_out {
        println!("{recorded}");
        return Ok(());
    }
    let list = recorded.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no equivocation recorded");
    }
    let block = |v: &Value| match v["block"].as_str() {
        Some(id) => format!("block {id}"),
        None => "nil".to_string(),
    };
    for e in list {
        let [a, b] = [&e["votes"][0], &e["votes"][1]];
        println!(
            "height {}: validator {} ({}) cast two {}s in round {}: {} and {}",
            a["height"],
            e["validator"].as_str().unwrap_or("?"),
            e["agency"].as_str().unwrap_or("agency unknown"),
            a["kind"].as_str().unwrap_or("vote"),
            a["round"],
            block(a),
            block(b),
        );
    }
    Ok(())
}
