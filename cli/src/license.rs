//! Cultural-content licences, in three steps across three parties:
//!
//! 1. the licensor (an agency accredited for `cultural-license`) writes a *licence request*
//!    for a licence document over a deposited work: `cachet license-request`;
//! 2. each oracle of the kind's policy checks the request and signs an *attestation* of its
//!    statement, valid for a short window: `cachet attest` (the oracle's key never leaves it);
//! 3. the licensor submits the grant with enough attestations: `cachet license`, which writes
//!    the licence's certificate file next to the document, as `cachet anchor` does.
//!
//! A request holds the licence document's fingerprint and salt (the licensor's, to write the
//! certificate file at the grant) and the statement the oracles sign
//! (`docs/spec/transactions.md`, `OracleAttestation`). It is not the rules: how many
//! attestations a grant needs and how long their window may be are the kind's policy.

use crate::issuer::{self, CertificateFile, IssuerArgs};
use anyhow::{Context, Result, bail};
use cachet_chain::document::{CertId, Commitment, Fingerprint, Salt};
use cachet_chain::hash::{Domain, Hash32};
use cachet_chain::ids::{CertKind, ChainId, Timestamp};
use cachet_chain::tx::{
    Action, Attestations, Issuance, LicenseScope, LicenseTerms, OracleAttestation, Terms,
    license_statement,
};
use cachet_client::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The commands this module runs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Licensors: write a licence request for a licence document over a deposited work, for
    /// the oracles to attest (`cachet attest`) before the grant (`cachet license`).
    LicenseRequest {
        /// The node's RPC URL (for the chain id and to check the work).
        #[arg(long)]
        rpc: String,
        /// The deposited work (a cultural-license certificate with work-deposit terms).
        #[arg(long)]
        work: CertId,
        /// The licence document.
        #[arg(long)]
        file: PathBuf,
        /// Who is licensed (a name or registration number; only its hash goes on chain).
        #[arg(long)]
        licensee: String,
        /// Rights granted, comma-separated: reproduce, distribute, adapt, public-display,
        /// commercial.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<Right>,
        /// Validity in days from now (a licence must end).
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
        /// Where to write the request.
        #[arg(long)]
        out: PathBuf,
    },
    /// Oracles: attest a licence request's statement with the oracle's key, for a window
    /// starting a minute ago (the grant must be in a block inside it).
    Attest {
        /// The oracle's key file.
        #[arg(long)]
        key: PathBuf,
        /// The licence request.
        #[arg(long)]
        request: PathBuf,
        /// Length of the window in minutes (the kind's policy bounds it).
        #[arg(long, default_value_t = 10)]
        window_minutes: u64,
        /// Where to write the attestation.
        #[arg(long)]
        out: PathBuf,
    },
    /// Licensors: grant the licence of a request with the oracles' attestations; waits for
    /// finality and writes the licence's certificate file next to its document.
    License {
        #[command(flatten)]
        issuer: IssuerArgs,
        /// The licence request.
        #[arg(long)]
        request: PathBuf,
        /// An oracle's attestation file (repeat for each).
        #[arg(long = "attestation", required = true)]
        attestations: Vec<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A right a licence grants.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Right {
    /// Make copies.
    Reproduce,
    /// Distribute copies.
    Distribute,
    /// Make derivative works.
    Adapt,
    /// Show or perform in public.
    PublicDisplay,
    /// Use commercially.
    Commercial,
}

impl Right {
    fn bit(self) -> u32 {
        match self {
            Right::Reproduce => LicenseScope::REPRODUCE,
            Right::Distribute => LicenseScope::DISTRIBUTE,
            Right::Adapt => LicenseScope::ADAPT,
            Right::PublicDisplay => LicenseScope::PUBLIC_DISPLAY,
            Right::Commercial => LicenseScope::COMMERCIAL,
        }
    }
}

/// A licence request, as written by `cachet license-request`.
#[derive(Serialize, Deserialize)]
struct Request {
    chain_id: ChainId,
    work: CertId,
    /// The licence document's name, for the certificate file's place.
    document: PathBuf,
    fingerprint: Fingerprint,
    salt: Salt,
    commitment: Commitment,
    licensee: Hash32,
    scope: u32,
    valid_from: Option<Timestamp>,
    valid_until: Option<Timestamp>,
    /// What the oracles sign: `license_statement` of the fields above.
    statement: Hash32,
}

impl Request {
    /// The statement the fields make; an oracle signs only a request whose `statement` is it.
    fn expected_statement(&self) -> Hash32 {
        license_statement(
            &self.work,
            &self.commitment,
            &self.licensee,
            self.scope,
            self.valid_from,
            self.valid_until,
        )
    }

    fn read(path: &Path) -> Result<Request> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let request: Request = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a licence request", path.display()))?;
        if request.statement != request.expected_statement() {
            bail!(
                "{}: its statement does not match its terms: attest nothing from it",
                path.display()
            );
        }
        if Commitment::new(&request.fingerprint, &request.salt) != request.commitment {
            bail!(
                "{}: its commitment does not open to its fingerprint",
                path.display()
            );
        }
        Ok(request)
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Run one of this module's commands.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::LicenseRequest {
            rpc,
            work,
            file,
            licensee,
            scope,
            valid_days,
            out,
        } => {
            let client = Client::new(&rpc)?;
            let status = client.status().await?;
            let chain_id: ChainId = status["chain_id"].as_str().unwrap_or_default().parse()?;
            let deposit = client
                .call("cachet_certificate", vec![json!(work.to_string())])
                .await?;
            if deposit["kind"] != "cultural-license" || deposit["terms"] != json!("work_deposit") {
                bail!("{work} is not a deposited work: {}", deposit["terms"]);
            }
            let (fingerprint, salt, commitment) = issuer::commit_to(&file)?;
            let now = issuer::now_ms();
            let mut request = Request {
                chain_id,
                work,
                document: file.clone(),
                fingerprint,
                salt,
                commitment,
                licensee: Domain::Commitment.hash(licensee.as_bytes()),
                scope: scope.iter().fold(0, |bits, r| bits | r.bit()),
                valid_from: Some(Timestamp(now)),
                valid_until: Some(Timestamp(now + valid_days * 86_400_000)),
                statement: Hash32([0; 32]),
            };
            request.statement = request.expected_statement();
            write_json(&out, &request)?;
            println!(
                "{}",
                json!({ "request": out, "statement": request.statement })
            );
            Ok(())
        }
        Command::Attest {
            key,
            request,
            window_minutes,
            out,
        } => {
            let oracle = cachet_keys::file::read(&key)?;
            let request = Request::read(&request)?;
            let not_before = issuer::now_ms().saturating_sub(60_000);
            let mut nonce = [0u8; 8];
            getrandom::fill(&mut nonce).context("the operating system's randomness")?;
            let attestation = OracleAttestation::sign(
                &oracle,
                &request.chain_id,
                request.statement,
                u64::from_le_bytes(nonce),
                Timestamp(not_before),
                Timestamp(not_before + window_minutes * 60_000),
            );
            write_json(&out, &attestation)?;
            println!(
                "{}",
                json!({ "attestation": out, "oracle": attestation.oracle })
            );
            Ok(())
        }
        Command::License {
            issuer: args,
            request,
            attestations,
            json,
        } => {
            let request = Request::read(&request)?;
            let attestations = attestations
                .iter()
                .map(|path| {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not an attestation", path.display()))
                })
                .collect::<Result<Vec<OracleAttestation>>>()?;
            let issuance = Issuance {
                kind: CertKind::CulturalLicense,
                commitment: request.commitment,
                valid_from: request.valid_from,
                valid_until: request.valid_until,
                terms: Terms::License(LicenseTerms {
                    work: request.work,
                    licensee: request.licensee,
                    scope: request.scope,
                    attestations: Attestations::new(attestations)?,
                }),
            };
            let id = issuance.cert_id();
            let (client, signer) = args.connect()?;
            let (tx, height) = signer.send(&client, Action::Issue(issuance)).await?;
            let opening = (request.fingerprint, request.salt, request.commitment);
            let file = CertificateFile::single(
                id,
                CertKind::CulturalLicense,
                &signer,
                opening,
                height,
                tx,
            );
            issuer::write_certificate(&request.document, &file)?;
            if json {
                println!(
                    "{}",
                    json!({ "id": id, "work": request.work, "height": height, "tx": tx })
                );
            } else {
                println!(
                    "licensed {} under {id} at height {height} (tx {tx})",
                    request.work
                );
            }
            Ok(())
        }
    }
}
