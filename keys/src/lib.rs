//! `cachet-keys`: where the consortium's signing keys live, and signing with them.
//!
//! What it is: key files, in the clear or sealed under a passphrase ([`file`],
//! `docs/spec/keyfile.md`), and keys held in a PKCS#11 token, an HSM, whose private half never
//! leaves it ([`pkcs11`]). A key is named by a path or by a `pkcs11:` URI; [`SigningKey`] signs
//! with either the same way.
//!
//! What it is not: what a signature means (that is `cachet-chain`'s signing messages and
//! domains) or who may sign what (the rules in `cachet-contracts`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::panic))]

pub mod file;
pub mod pkcs11;

use anyhow::{Context, Result};
use cachet_chain::crypto::{PublicKey, SecretKey, Signature};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::AgencyId;
use std::path::Path;

pub use file::Passphrase;

/// A key that signs: held in memory (read from a key file), or in a token.
pub enum SigningKey {
    /// Read from a key file.
    InMemory(SecretKey),
    /// In a PKCS#11 token.
    Token(pkcs11::TokenKey),
}

impl SigningKey {
    /// Open the key `name` names: a `pkcs11:` URI, or a key file's path (a sealed one opened
    /// with the passphrase `how` says). Returns the agency a key file names, if any.
    pub fn open(name: &str, how: &Passphrase) -> Result<(SigningKey, Option<AgencyId>)> {
        if name.starts_with("pkcs11:") {
            let uri = pkcs11::Uri::parse(name)?;
            return Ok((SigningKey::Token(pkcs11::TokenKey::open(&uri)?), None));
        }
        let (key, agency) = file::read_with(Path::new(name), how)?;
        Ok((SigningKey::InMemory(key), agency))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        match self {
            SigningKey::InMemory(key) => key.public(),
            SigningKey::Token(key) => key.public(),
        }
    }

    /// Sign the signing message `message` (as `cachet-chain`'s `SecretKey::sign` does). A
    /// token's signature is checked against its public key before it is returned.
    pub fn sign(&self, message: &Hash32) -> Result<Signature> {
        match self {
            SigningKey::InMemory(key) => Ok(key.sign(message)),
            SigningKey::Token(key) => {
                let signature = key.sign(message.as_bytes())?;
                key.public()
                    .verify(message, &signature)
                    .context("the token's signature does not verify under its public key")?;
                Ok(signature)
            }
        }
    }
}
