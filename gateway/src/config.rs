//! The gateway's configuration file (TOML): where it listens, which node it submits to, the
//! agency key it signs with, where it writes its audit log, and the calling systems it lets in,
//! each by the SHA-256 of its token (the tokens themselves are never stored).
//!
//! It is not the node's configuration: the gateway runs beside the agency's node, as its own
//! process, so that the agency's key is held by the agency's gateway and not by the node.

use anyhow::{Context, Result, bail};
use cachet_chain::hash::Hash32;
use cachet_chain::ids::AgencyId;
use serde::Deserialize;
use sha2::Digest;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A calling system and the SHA-256 of its token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Its name, as the audit log records it (`land-registration-system`, say).
    pub name: String,
    /// The SHA-256 of its token, in hex (`cachet gateway token` makes both).
    pub token_sha256: Hash32,
}

/// The gateway's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where it listens (`127.0.0.1:8650`, say; behind the agency's TLS proxy when the case
    /// systems reach it over a network).
    pub listen: SocketAddr,
    /// The agency's node's JSON-RPC URL.
    pub node: String,
    /// The agency's key: a key file (sealed ones are opened with the passphrase file
    /// `key_passphrase_file` names) or a key in an HSM, named by its `pkcs11:` URI.
    pub key: String,
    /// The passphrase of a sealed key file, in a file readable by the gateway only.
    #[serde(default)]
    pub key_passphrase_file: Option<PathBuf>,
    /// The agency, when the key does not name it (always, for an HSM key).
    #[serde(default)]
    pub agency: Option<AgencyId>,
    /// The audit log: one JSON line per call, appended and synced before the answer.
    pub audit_log: PathBuf,
    /// The calling systems let in.
    #[serde(default)]
    pub callers: Vec<Caller>,
}

impl GatewayConfig {
    /// Read the configuration at `path`; relative paths in it are taken from its directory.
    pub fn load(path: &Path) -> Result<GatewayConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut config: GatewayConfig =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.audit_log = dir.join(&config.audit_log);
        if let Some(file) = &config.key_passphrase_file {
            config.key_passphrase_file = Some(dir.join(file));
        }
        if !config.key.starts_with("pkcs11:") {
            config.key = dir.join(&config.key).to_string_lossy().into_owned();
        }
        let mut names: Vec<&str> = config.callers.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("{}: the caller {} is listed twice", path.display(), w[0]);
        }
        Ok(config)
    }

    /// The caller whose token is `token`, if one is let in.
    pub fn caller(&self, token: &str) -> Option<&Caller> {
        let hash = token_hash(token);
        self.callers.iter().find(|c| c.token_sha256 == hash)
    }
}

/// The SHA-256 of `token`, as a caller's entry holds it.
pub fn token_hash(token: &str) -> Hash32 {
    Hash32(sha2::Sha256::digest(token.as_bytes()).into())
}

/// A new random token (32 bytes, in hex) and its SHA-256.
pub fn new_token() -> Result<(String, Hash32)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let token = hex::encode(bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_is_found_by_its_token_and_paths_are_taken_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (token, hash) = new_token().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:8650\"\nnode = \"http://127.0.0.1:8645\"\n\
                 key = \"keys/land.key\"\naudit_log = \"audit.jsonl\"\n\
                 [[callers]]\nname = \"land-system\"\ntoken_sha256 = \"{hash}\"\n"
            ),
        )
        .unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        assert_eq!(config.caller(&token).unwrap().name, "land-system");
        assert!(config.caller("not-the-token").is_none());
        assert_eq!(config.audit_log, dir.path().join("audit.jsonl"));
        assert_eq!(
            config.key,
            dir.path().join("keys/land.key").to_string_lossy()
        );
        // The same name twice is refused.
        let twice = std::fs::read_to_string(&path).unwrap()
            + &format!("[[callers]]\nname = \"land-system\"\ntoken_sha256 = \"{hash}\"\n");
        std::fs::write(&path, twice).unwrap();
        let e = GatewayConfig::load(&path).unwrap_err();
        assert!(format!("{e:#}").contains("listed twice"), "{e:#}");
    }
}
