//! `cachet`: the command line for issuing agencies, verifiers and operators.
//!
//! Today it holds the key, genesis and fingerprint tools and `cachet demo`, which runs the
//! example consortium's rules and proofs in one process. The node commands (`devnet`, `start`,
//! `anchor`, ...) arrive with the consortium node.

mod demo;
mod keyfile;

use anyhow::{Context, Result};
use cachet_chain::crypto::SecretKey;
use cachet_chain::document::{CertId, Commitment, Fingerprint, FingerprintAlg, Salt};
use cachet_chain::genesis::GenesisDoc;
use cachet_chain::ids::CertKind;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cachet",
    version,
    about = "Cachet: a permissioned notarization chain for digital certificates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the example consortium in one process: anchor one certificate of each kind, a
    /// batch of 1,000 reward orders, a transfer, a revocation; then verify each from proofs.
    Demo {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a new signing key file (mode 0600).
    Keygen {
        /// Where to write it; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
        /// Derive a development key from this public name instead (INSECURE: anyone can
        /// recompute it).
        #[arg(long)]
        dev: Option<String>,
    },
    /// Print the public key of a key file (and check the file).
    Pubkey {
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Genesis documents.
    #[command(subcommand)]
    Genesis(GenesisCommand),
    /// Fingerprint a document, and with --salt its commitment and certificate id.
    Fingerprint {
        /// The document.
        #[arg(long)]
        file: PathBuf,
        /// Hash function.
        #[arg(long, value_enum, default_value_t = Alg::Sha256)]
        alg: Alg,
        /// The certificate's salt (64 hex characters).
        #[arg(long)]
        salt: Option<String>,
        /// The certificate kind (for the id).
        #[arg(long, default_value = "land-title")]
        kind: CertKind,
    },
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Print the example consortium's genesis (development keys).
    Example,
    /// Check a genesis file and print its summary and height-0 state root.
    Check {
        /// The genesis file.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Alg {
    Sha256,
    Blake3,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo { json } => demo::run(json),
        Command::Keygen { out, dev } => {
            let (key, note) = match dev {
                Some(name) => (
                    SecretKey::dev(&name),
                    Some(format!(
                        "development key derived from the name {name:?}: INSECURE"
                    )),
                ),
                None => (SecretKey::generate(), None),
            };
            keyfile::write(&out, &key, note)?;
            println!("{}", key.public());
            Ok(())
        }
        Command::Pubkey { key } => {
            println!("{}", keyfile::read(&key)?.public());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Example) => {
            println!("{}", cachet_contracts::example::genesis().to_json());
            Ok(())
        }
        Command::Genesis(GenesisCommand::Check { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let doc = GenesisDoc::from_json(&text)?;
            let (header, _) = cachet_contracts::genesis_state(&doc)?;
            println!("chain id     {}", doc.chain_id);
            println!("agencies     {}", doc.agencies.len());
            println!("validators   {}", doc.validators.len());
            println!("state root   {}", header.state_root);
            println!("genesis hash {}", header.hash());
            Ok(())
        }
        Command::Fingerprint {
            file,
            alg,
            salt,
            kind,
        } => {
            let alg = match alg {
                Alg::Sha256 => FingerprintAlg::Sha256,
                Alg::Blake3 => FingerprintAlg::Blake3,
            };
            let f = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let fp = Fingerprint::of_reader(alg, std::io::BufReader::new(f))?;
            println!("fingerprint {}", fp.digest);
            if let Some(salt) = salt {
                let salt = Salt(salt.parse().context("salt must be 64 hex characters")?);
                let c = Commitment::new(&fp, &salt);
                println!("commitment  {}", c.0);
                println!("id          {}", CertId::derive(kind, &c));
            }
            Ok(())
        }
    }
}
