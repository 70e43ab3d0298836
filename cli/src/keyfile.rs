//! Key files: a small JSON object holding an ed25519 seed and its public key, readable only by
//! its owner.

use anyhow::{Context, Result, bail};
use cachet_chain::crypto::{PublicKey, SecretKey};
use cachet_chain::ids::AgencyId;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    algorithm: String,
    public: PublicKey,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agency: Option<AgencyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// Write `key` to `path` (mode 0600), refusing to overwrite.
pub fn write(
    path: &Path,
    key: &SecretKey,
    agency: Option<AgencyId>,
    note: Option<String>,
) -> Result<()> {
    let file = KeyFile {
        algorithm: "ed25519".into(),
        public: key.public(),
        secret: hex::encode(key.seed()),
        agency,
        note,
    };
    let text = serde_json::to_string_pretty(&file)? + "\n";
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("cannot create key file {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    Ok(())
}

/// Read a key file and check that its public key matches its secret.
pub fn read(path: &Path) -> Result<SecretKey> {
    Ok(read_with_agency(path)?.0)
}

/// Read a key file, with the agency it belongs to when the file names one.
pub fn read_with_agency(path: &Path) -> Result<(SecretKey, Option<AgencyId>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a cachet key file", path.display()))?;
    if file.algorithm != "ed25519" {
        bail!(
            "{}: unsupported algorithm {}",
            path.display(),
            file.algorithm
        );
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(&file.secret, &mut seed)
        .with_context(|| format!("{}: secret is not 64 hex characters", path.display()))?;
    let key = SecretKey::from_seed(&seed);
    if key.public() != file.public {
        bail!("{}: public key does not match the secret", path.display());
    }
    Ok((key, file.agency))
}
