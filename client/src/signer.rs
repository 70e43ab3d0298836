//! An agency's signer: its key and id, signing transactions with the agency's next free nonce
//! and submitting them to a node. The CLI's agency commands and the agency gateway both submit
//! through it.
//!
//! It is not where keys live (`cachet-keys`) nor what a transaction means (`cachet-chain`).

use crate::{Client, ClientError};
use anyhow::{Context, Result, bail};
use cachet_chain::crypto::{SignPurpose, signing_message};
use cachet_chain::ids::{AgencyId, ChainId, Height};
use cachet_chain::tx::{Action, Transaction, TxBody, TxId};
use cachet_keys::{Passphrase, SigningKey};
use std::time::Duration;

/// How long [`Signer::send`] waits for finality.
pub const FINALITY_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a submission taken over by another of the agency's submitters signs again.
const NONCE_ATTEMPTS: u32 = 200;
/// The door's refusal of a nonce another transaction holds (`docs/spec/errors.md`).
const NONCE_REPLAYED: i32 = 1106;
/// Heights a transaction may wait before it expires.
const EXPIRES_AFTER: u64 = 200;

/// A random pause of up to `attempt` × 20 ms (at most 1 s), so that submitters who collided
/// do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let most = (u64::from(attempt) * 20).min(1000);
    Duration::from_millis(random % (most + 1))
}

/// An agency's signing identity.
pub struct Signer {
    /// The agency.
    pub agency: AgencyId,
    /// Its key.
    pub key: SigningKey,
}

impl Signer {
    /// Open the key `name` names (a key file, or a pkcs11: URI), a sealed key file with the
    /// passphrase `how` says; `agency` overrides the agency a key file names.
    pub fn open(name: &str, agency: Option<AgencyId>, how: &Passphrase) -> Result<Signer> {
        let (key, named) = SigningKey::open(name, how)?;
        let agency = agency
            .or(named)
            .context("the key names no agency: name the agency too")?;
        Ok(Signer { agency, key })
    }

    /// [`Signer::open`], asking for a sealed key file's passphrase on the terminal.
    pub fn load(name: &str, agency: Option<AgencyId>) -> Result<Signer> {
        Signer::open(name, agency, &Passphrase::Ask)
    }

    /// Sign `body` with the agency's key.
    fn sign(&self, body: TxBody) -> Result<Transaction> {
        let message = signing_message(
            SignPurpose::Transaction,
            &body.chain_id,
            &cachet_chain::codec::encode(&body),
        );
        let signature = self.key.sign(&message)?;
        Ok(Transaction { body, signature })
    }

    /// Sign `action` with the agency's next free nonce and submit it; its id once the node
    /// took it in (not yet finalized).
    ///
    /// Several submitters of one agency (processes of a case system, people at the CLI) may
    /// take the same nonce at once. The node refuses all but the first at its door, using
    /// nothing (`nonce_replayed`): the action is then signed again with the next free nonce.
    pub async fn submit(&self, client: &Client, action: Action) -> Result<TxId> {
        let status = client.status().await?;
        let chain_id: ChainId = status["chain_id"].as_str().unwrap_or_default().parse()?;
        let height = status["height"].as_u64().unwrap_or(0);
        for attempt in 0..NONCE_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let tx = self.sign(TxBody {
                chain_id: chain_id.clone(),
                signer: self.agency.clone(),
                key: self.key.public(),
                nonce: client.next_nonce(&self.agency).await?,
                expires_at: Height(height + EXPIRES_AFTER),
                action: action.clone(),
            })?;
            match client.submit(&tx).await {
                Err(e) if lost_its_nonce(&e) => continue,
                outcome => return Ok(outcome?),
            }
        }
        bail!(
            "{NONCE_ATTEMPTS} attempts were each beaten to their nonce by another submitter of {}",
            self.agency
        )
    }

    /// [`Signer::submit`] `action` and wait for finality: its id and height. A transaction
    /// beaten to its nonce by one submitted to another node is dropped, never carried out:
    /// it is then signed again with the next free nonce.
    pub async fn send(&self, client: &Client, action: Action) -> Result<(TxId, u64)> {
        for _ in 0..NONCE_ATTEMPTS {
            let id = self.submit(client, action.clone()).await?;
            match client.wait_committed(&id, FINALITY_TIMEOUT).await {
                Err(e) if lost_its_nonce(&e) => continue,
                outcome => return Ok((id, outcome?)),
            }
        }
        bail!(
            "{NONCE_ATTEMPTS} attempts were each beaten to their nonce by another submitter of {}",
            self.agency
        )
    }
}

/// Whether `e` says a transaction was beaten to its nonce by another of its agency's, so that
/// nothing of it was carried out and it can be signed again: refused at the door, or dropped
/// once the other took the nonce.
fn lost_its_nonce(e: &ClientError) -> bool {
    match e {
        ClientError::Refused { refused, .. } => refused.code == NONCE_REPLAYED,
        ClientError::NotCarriedOut {
            status, refused, ..
        } => status == "dropped" && refused.code == NONCE_REPLAYED,
        _ => false,
    }
}
