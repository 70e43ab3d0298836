//! Key files: a small JSON object holding an ed25519 key, readable only by its owner, with the
//! secret either in the clear (development keys, a key an HSM will replace) or sealed under a
//! passphrase: Argon2id derives a key from it and XChaCha20-Poly1305 encrypts the seed, bound to
//! the file's public key and agency. The format is specified in `docs/spec/keyfile.md`.
//!
//! The passphrase of a sealed file comes from the file named by `CACHET_PASSPHRASE_FILE` (a
//! service's credential), or from the terminal when there is one. It is not key management: a
//! key is created, sealed and read here; rotating one is a governance transaction.

use anyhow::{Context, Result, bail};
use cachet_chain::crypto::{PublicKey, SecretKey};
use cachet_chain::ids::AgencyId;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The environment variable naming the file that holds a sealed key file's passphrase.
pub const PASSPHRASE_FILE_ENV: &str = "CACHET_PASSPHRASE_FILE";

/// The shortest passphrase a new sealed file takes.
pub const MIN_PASSPHRASE: usize = 12;

/// Argon2id's cost for new files: 64 MiB and 3 passes (about a quarter of a second here).
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 3;
const PARALLELISM: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    algorithm: String,
    public: PublicKey,
    /// The seed in hex, for a file in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// The seed sealed under a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agency: Option<AgencyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// A seed sealed under a passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    /// `argon2id` (version 0x13).
    pub kdf: String,
    /// Argon2's memory, in KiB.
    pub memory_kib: u32,
    /// Argon2's passes.
    pub iterations: u32,
    /// Argon2's lanes.
    pub parallelism: u32,
    /// 16 random bytes, hex.
    pub salt: String,
    /// `xchacha20poly1305`.
    pub cipher: String,
    /// 24 random bytes, hex.
    pub nonce: String,
    /// The 32-byte seed encrypted, then the 16-byte tag, hex.
    pub ciphertext: String,
}

/// What a sealed seed is bound to: its file's public key and agency.
fn associated_data(public: &PublicKey, agency: Option<&AgencyId>) -> Vec<u8> {
    let mut aad = b"cachet key file v1\0".to_vec();
    aad.extend_from_slice(public.to_string().as_bytes());
    aad.push(0);
    aad.extend_from_slice(agency.map(AgencyId::as_str).unwrap_or("").as_bytes());
    aad
}

fn derive(
    passphrase: &str,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(32))
        .map_err(|e| anyhow::anyhow!("key file's Argon2 parameters: {e}"))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| anyhow::anyhow!("deriving the key file's key: {e}"))?;
    Ok(key)
}

/// Seal `seed` under `passphrase` with the given salt and nonce (fresh random ones for a
/// new file; fixed ones only for the specification's vector).
pub fn seal_with(
    seed: &[u8; 32],
    passphrase: &str,
    public: &PublicKey,
    agency: Option<&AgencyId>,
    (memory_kib, iterations, parallelism): (u32, u32, u32),
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Sealed> {
    let key = derive(passphrase, &salt, memory_kib, iterations, parallelism)?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = associated_data(public, agency);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: seed,
                aad: &aad,
            },
        )
        .map_err(|_| anyhow::anyhow!("sealing the key"))?;
    Ok(Sealed {
        kdf: "argon2id".into(),
        memory_kib,
        iterations,
        parallelism,
        salt: hex::encode(salt),
        cipher: "xchacha20poly1305".into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(ciphertext),
    })
}

/// Open a sealed seed with `passphrase`; a wrong passphrase and a file whose public key,
/// agency or ciphertext was changed are refused alike.
pub fn open(
    sealed: &Sealed,
    passphrase: &str,
    public: &PublicKey,
    agency: Option<&AgencyId>,
) -> Result<Zeroizing<[u8; 32]>> {
    if sealed.kdf != "argon2id" || sealed.cipher != "xchacha20poly1305" {
        bail!("unsupported sealing {} / {}", sealed.kdf, sealed.cipher);
    }
    // Bounds, so that a crafted file cannot ask for all the memory or hours of work.
    if sealed.memory_kib > 4 * 1024 * 1024 || sealed.iterations > 64 || sealed.parallelism > 16 {
        bail!("the file's Argon2 cost is beyond what is accepted");
    }
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 24];
    hex::decode_to_slice(&sealed.salt, &mut salt).context("the salt is not 16 bytes of hex")?;
    hex::decode_to_slice(&sealed.nonce, &mut nonce).context("the nonce is not 24 bytes of hex")?;
    let ciphertext = hex::decode(&sealed.ciphertext).context("the ciphertext is not hex")?;
    let key = derive(
        passphrase,
        &salt,
        sealed.memory_kib,
        sealed.iterations,
        sealed.parallelism,
    )?;
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = associated_data(public, agency);
    let plain = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| anyhow::anyhow!("wrong passphrase, or the file was altered"))?,
    );
    let seed: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("the sealed secret is not 32 bytes"))?;
    Ok(Zeroizing::new(seed))
}

/// How a file's passphrase is asked for.
#[derive(Clone, Debug, Default)]
pub enum Passphrase {
    /// From the file named by [`PASSPHRASE_FILE_ENV`], else from the terminal.
    #[default]
    Ask,
    /// From this file (a node's `validator_key_passphrase_file`).
    File(PathBuf),
}

impl Passphrase {
    /// The passphrase, for the key file at `path` (named in the prompt). `confirm` asks twice
    /// at a terminal (a new file).
    fn get(&self, path: &Path, confirm: bool) -> Result<Zeroizing<String>> {
        let from_file = match self {
            Passphrase::File(f) => Some(f.clone()),
            Passphrase::Ask => std::env::var_os(PASSPHRASE_FILE_ENV).map(PathBuf::from),
        };
        if let Some(file) = from_file {
            let text =
                Zeroizing::new(std::fs::read_to_string(&file).with_context(|| {
                    format!("cannot read the passphrase file {}", file.display())
                })?);
            return Ok(Zeroizing::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            ));
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "{} is sealed under a passphrase: name the file that holds it in {PASSPHRASE_FILE_ENV}",
                path.display()
            );
        }
        let first = Zeroizing::new(rpassword::prompt_password(format!(
            "passphrase for {}: ",
            path.display()
        ))?);
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password("the same passphrase again: ")?);
            if *again != *first {
                bail!("the two passphrases differ");
            }
        }
        Ok(first)
    }
}

/// Write `key` to `path` (mode 0600), refusing to overwrite; sealed under a passphrase when
/// `seal` says how to get one.
pub fn write(
    path: &Path,
    key: &SecretKey,
    agency: Option<AgencyId>,
    note: Option<String>,
    seal: Option<&Passphrase>,
) -> Result<()> {
    let file = file_of(path, key, agency, note, seal)?;
    create(path, &file, false)
}

fn file_of(
    path: &Path,
    key: &SecretKey,
    agency: Option<AgencyId>,
    note: Option<String>,
    seal: Option<&Passphrase>,
) -> Result<KeyFile> {
    let public = key.public();
    let (secret, sealed) = match seal {
        None => (Some(hex::encode(key.seed())), None),
        Some(how) => {
            let passphrase = how.get(path, true)?;
            if passphrase.chars().count() < MIN_PASSPHRASE {
                bail!("a passphrase needs at least {MIN_PASSPHRASE} characters");
            }
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 24];
            getrandom::fill(&mut salt).context("the operating system's randomness")?;
            getrandom::fill(&mut nonce).context("the operating system's randomness")?;
            let sealed = seal_with(
                &key.seed(),
                &passphrase,
                &public,
                agency.as_ref(),
                (MEMORY_KIB, ITERATIONS, PARALLELISM),
                salt,
                nonce,
            )?;
            (None, Some(sealed))
        }
    };
    Ok(KeyFile {
        algorithm: "ed25519".into(),
        public,
        secret,
        sealed,
        agency,
        note,
    })
}

/// Write `file` at `path` with mode 0600: a new file, or (`replace`) in place of the one
/// there, through a temporary file renamed over it.
fn create(path: &Path, file: &KeyFile, replace: bool) -> Result<()> {
    let text = serde_json::to_string_pretty(file)? + "\n";
    let target = if replace {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        PathBuf::from(tmp)
    } else {
        path.to_path_buf()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&target)
        .with_context(|| format!("cannot create key file {}", target.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    f.sync_all()?;
    if replace {
        std::fs::rename(&target, path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(())
}

/// Seal the key file at `path` in place under a passphrase (asked as `how` says). A sealed
/// file is refused.
pub fn seal_in_place(path: &Path, how: &Passphrase) -> Result<PublicKey> {
    let file = parse(path)?;
    if file.sealed.is_some() {
        bail!("{} is sealed already", path.display());
    }
    let (key, agency) = read_with(path, how)?;
    let sealed = file_of(path, &key, agency, file.note, Some(how))?;
    create(path, &sealed, true)?;
    Ok(key.public())
}

fn parse(path: &Path) -> Result<KeyFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a cachet key file", path.display()))
}

/// Read a key file and check that its public key matches its secret.
pub fn read(path: &Path) -> Result<SecretKey> {
    Ok(read_with_agency(path)?.0)
}

/// Read a key file, with the agency it belongs to when the file names one.
pub fn read_with_agency(path: &Path) -> Result<(SecretKey, Option<AgencyId>)> {
    read_with(path, &Passphrase::Ask)
}

/// [`read_with_agency`], a sealed file's passphrase asked for as `how` says.
pub fn read_with(path: &Path, how: &Passphrase) -> Result<(SecretKey, Option<AgencyId>)> {
    let file = parse(path)?;
    if file.algorithm != "ed25519" {
        bail!(
            "{}: unsupported algorithm {}",
            path.display(),
            file.algorithm
        );
    }
    let seed = match (&file.secret, &file.sealed) {
        (Some(secret), None) => {
            let mut seed = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(secret, seed.as_mut())
                .with_context(|| format!("{}: secret is not 64 hex characters", path.display()))?;
            seed
        }
        (None, Some(sealed)) => {
            let passphrase = how.get(path, false)?;
            open(sealed, &passphrase, &file.public, file.agency.as_ref())
                .with_context(|| format!("{}", path.display()))?
        }
        _ => bail!(
            "{}: a key file holds either `secret` or `sealed`",
            path.display()
        ),
    };
    let key = SecretKey::from_seed(&seed);
    if key.public() != file.public {
        bail!("{}: public key does not match the secret", path.display());
    }
    Ok((key, file.agency))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's vector (`docs/spec/keyfile.md`): its inputs give its ciphertext,
    /// and the pinned file opens with its passphrase and with no other.
    #[test]
    fn the_pinned_vector_seals_and_opens() {
        let vector: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/spec/vectors/keyfile.json")).unwrap();
        let seed = [7u8; 32];
        let key = SecretKey::from_seed(&seed);
        let agency = AgencyId::new("moi-land").unwrap();
        let sealed = seal_with(
            &seed,
            "correct horse battery staple",
            &key.public(),
            Some(&agency),
            (1024, 1, 1),
            [1; 16],
            [2; 24],
        )
        .unwrap();
        let file: KeyFile = serde_json::from_value(vector["file"].clone()).unwrap();
        if std::env::var_os("CACHET_WRITE_VECTORS").is_some() {
            let file = KeyFile {
                algorithm: "ed25519".into(),
                public: key.public(),
                secret: None,
                sealed: Some(sealed.clone()),
                agency: Some(agency.clone()),
                note: None,
            };
            let text = serde_json::json!({ "file": file });
            std::fs::write(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../docs/spec/vectors/keyfile.json"
                ),
                serde_json::to_string_pretty(&text).unwrap() + "\n",
            )
            .unwrap();
        }
        assert_eq!(
            file.sealed.as_ref(),
            Some(&sealed),
            "the vector changed: a format change"
        );
        let opened = open(
            &sealed,
            "correct horse battery staple",
            &key.public(),
            Some(&agency),
        )
        .unwrap();
        assert_eq!(*opened, seed);
        assert!(
            open(
                &sealed,
                "correct horse battery stapler",
                &key.public(),
                Some(&agency)
            )
            .is_err()
        );
        let other = AgencyId::new("moea-investment").unwrap();
        assert!(
            open(
                &sealed,
                "correct horse battery staple",
                &key.public(),
                Some(&other)
            )
            .is_err(),
            "bound to its agency"
        );
        let mut flipped = sealed.clone();
        flipped.ciphertext.replace_range(
            0..2,
            if &sealed.ciphertext[0..2] == "00" {
                "01"
            } else {
                "00"
            },
        );
        assert!(
            open(
                &flipped,
                "correct horse battery staple",
                &key.public(),
                Some(&agency)
            )
            .is_err()
        );
    }
}
