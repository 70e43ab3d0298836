//! A transaction's envelope: the checks that come before its action, shared by block execution
//! ([`crate::exec`]) and by a node's admission of a transaction into its mempool.
//!
//! The two differ only in the nonce they accept: a block takes exactly the signer's next nonce,
//! a mempool also queues a bounded run of later ones ([`NonceRule`]). The signature is checked by
//! the caller between [`check_signer`] and [`check_nonce`], because only the caller knows whether
//! it verifies one by one, in a batch, or not again (a cached admission).
//!
//! A transaction that fails [`check_signer`], its signature or [`check_nonce`] cannot be in a
//! block. One that passes them but fails [`check_expiry`] or its action's rules can: it is
//! *refused in the block*, which uses its nonce and changes nothing else, so that a signer's
//! later transactions are not held up behind it.
//!
//! It is not the action's rules: who may issue, revoke or vote is [`crate::lifecycle`],
//! [`crate::kinds`] and [`crate::governance`].

use crate::error::TxError;
use cachet_chain::ids::{ChainId, Height};
use cachet_chain::state::AgencyRecord;
use cachet_chain::tx::TxBody;

/// Which nonces an envelope accepts, given the signer's next nonce `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceRule {
    /// Exactly `n`: a transaction going into a block.
    Next,
    /// `n ..= n + ahead - 1`: a transaction queued behind its signer's earlier ones.
    Window {
        /// How many nonces from `n` on are accepted (at least 1).
        ahead: u64,
    },
}

/// The checks that need the signer's record but no signature, in this order: the chain, and
/// that `agency` (the signer's record in the state, if any) exists, is not removed and signs
/// with its current key. Returns the signer's record.
pub fn check_signer<'a>(
    body: &TxBody,
    chain_id: &ChainId,
    agency: Option<&'a AgencyRecord>,
) -> Result<&'a AgencyRecord, TxError> {
    if body.chain_id != *chain_id {
        return Err(TxError::WrongChain {
            expected: chain_id.clone(),
            got: body.chain_id.clone(),
        });
    }
    let agency = agency.ok_or_else(|| TxError::UnknownAgency(body.signer.clone()))?;
    if agency.removed_at.is_some() {
        return Err(TxError::AgencyRemoved(body.signer.clone()));
    }
    if agency.current_key() != Some(&body.key) {
        return Err(TxError::KeyNotAuthorized(body.signer.clone()));
    }
    Ok(agency)
}

/// That `height` (the height of the block the transaction goes into) is not past its expiry.
pub fn check_expiry(body: &TxBody, height: Height) -> Result<(), TxError> {
    if height > body.expires_at {
        return Err(TxError::TxExpired {
            expires_at: body.expires_at,
            height,
        });
    }
    Ok(())
}

/// The nonce against the signer's `next_nonce`, under `rule`.
pub fn check_nonce(body: &TxBody, next_nonce: u64, rule: NonceRule) -> Result<(), TxError> {
    if body.nonce < next_nonce {
        return Err(TxError::NonceReplayed {
            expected: next_nonce,
            got: body.nonce,
        });
    }
    let ahead = match rule {
        NonceRule::Next => 1,
        NonceRule::Window { ahead } => ahead.max(1),
    };
    if body.nonce - next_nonce >= ahead {
        return Err(TxError::NonceTooHigh {
            expected: next_nonce,
            got: body.nonce,
        });
    }
    Ok(())
}
