//! A bench run's devnet kept to start later runs from: the directory a run with `--dir` leaves
//! (genesis, keys, every node's database) plus what the bench needs to go on using that chain
//! — the certificates it anchored, to verify them, and the next document and batch numbers, so
//! that nothing it anchors later repeats. Runs started from one saved state measure the same
//! tree, which runs that grow their own state do not (an anchor phase leaves 200k–570k
//! certificates depending on the hour).

use anyhow::{Context, Result, bail};
use cachet_chain::CertId;
use cachet_chain::hash::Hash32;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The bench's own file in a devnet directory.
const STATE_FILE: &str = "bench-state.json";
/// The anchored certificate ids, 32 bytes each, in the order they were offered.
const CERTIFICATES_FILE: &str = "bench-certificates.bin";
/// The running devnet's manifest: a copy must not carry the old one, since the bench waits
/// for the new devnet to write it.
const MANIFEST: &str = "devnet.json";

/// Where the bench's numbering stands on a saved chain, and what it anchored there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Saved {
    /// The last document number used by single anchors.
    pub last_document: u64,
    /// The number of the next Merkle batch.
    pub next_batch: u64,
    /// Certificates known to be anchored (committed) on the chain.
    pub certificates: Vec<CertId>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    last_document: u64,
    next_batch: u64,
    certificates: usize,
}

impl Saved {
    /// The numbering of a fresh chain: batches are numbered far above the documents.
    pub fn fresh() -> Saved {
        Saved {
            last_document: 0,
            next_batch: 1 << 40,
            certificates: Vec::new(),
        }
    }

    /// For a chain that may hold an earlier run's anchors but no record of them (a running
    /// devnet the bench targets): document and batch numbers from ranges of their own, taken
    /// from the clock (4 billion documents and a million batches per second), so that no run
    /// repeats another's commitment.
    pub fn unique() -> Saved {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Saved {
            last_document: seconds << 32,
            next_batch: (1 << 40) + (seconds << 20),
            certificates: Vec::new(),
        }
    }

    /// Write into the devnet directory `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(32 * self.certificates.len());
        for id in &self.certificates {
            bytes.extend_from_slice(&id.0.0);
        }
        std::fs::write(dir.join(CERTIFICATES_FILE), bytes)?;
        let header = Header {
            last_document: self.last_document,
            next_batch: self.next_batch,
            certificates: self.certificates.len(),
        };
        std::fs::write(
            dir.join(STATE_FILE),
            serde_json::to_string_pretty(&header)? + "\n",
        )?;
        Ok(())
    }

    /// Read what a run left in `dir`.
    pub fn read(dir: &Path) -> Result<Saved> {
        let path = dir.join(STATE_FILE);
        let header: Header = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("{} is not a saved bench state", dir.display()))?,
        )
        .with_context(|| format!("cannot read {}", path.display()))?;
        let bytes = std::fs::read(dir.join(CERTIFICATES_FILE))?;
        if bytes.len() != 32 * header.certificates {
            bail!(
                "{} holds {} bytes, not {} certificate ids",
                dir.join(CERTIFICATES_FILE).display(),
                bytes.len(),
                header.certificates
            );
        }
        let certificates = bytes
            .chunks_exact(32)
            .map(|c| CertId(Hash32(c.try_into().expect("32 bytes"))))
            .collect();
        Ok(Saved {
            last_document: header.last_document,
            next_batch: header.next_batch,
            certificates,
        })
    }
}

/// Copy the saved devnet `from` into the empty directory `to`, without its manifest. The
/// copy is a plain one, file by file: the nodes append to their write-ahead logs and logs, so
/// links would change the saved state.
pub fn copy_devnet(from: &Path, to: &Path) -> Result<()> {
    check_apart(from, to)?;
    copy_tree(&from.canonicalize()?, &to.canonicalize()?, true)
}

/// Refuse a saved state `from` that is not one, or that overlaps the working directory `to`
/// (which the bench empties first: checked before that, it cannot cost the saved state).
pub fn check_apart(from: &Path, to: &Path) -> Result<()> {
    Saved::read(from)?;
    let real = |p: &Path| -> Result<std::path::PathBuf> {
        Ok(if p.exists() {
            p.canonicalize()?
        } else {
            std::path::absolute(p)?
        })
    };
    let (from_real, to_real) = (real(from)?, real(to)?);
    if to_real.starts_with(&from_real) || from_real.starts_with(&to_real) {
        bail!(
            "the working directory {} and the saved state {} must not contain each other",
            to.display(),
            from.display()
        );
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if top && entry.file_name() == MANIFEST {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target, false)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cachet-saved-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_saved_state_reads_back_as_written() {
        let dir = temp("roundtrip");
        let saved = Saved {
            last_document: 600_123,
            next_batch: (1 << 40) + 77,
            certificates: (0..1000u32)
                .map(|i| CertId(cachet_chain::hash::Domain::Commitment.hash(&i.to_le_bytes())))
                .collect(),
        };
        saved.write(&dir).unwrap();
        assert_eq!(Saved::read(&dir).unwrap(), saved);
        // A truncated id list is refused, not read as fewer certificates.
        let file = dir.join(CERTIFICATES_FILE);
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Saved::read(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_copy_has_everything_but_the_manifest_and_refuses_overlap() {
        let from = temp("from");
        Saved::fresh().write(&from).unwrap();
        std::fs::create_dir_all(from.join("nodes/a/db")).unwrap();
        std::fs::write(from.join("nodes/a/db/000001.sst"), b"table").unwrap();
        std::fs::write(from.join("genesis.json"), b"{}").unwrap();
        std::fs::write(from.join(MANIFEST), b"{}").unwrap();
        let to = temp("to");
        copy_devnet(&from, &to).unwrap();
        assert_eq!(
            std::fs::read(to.join("nodes/a/db/000001.sst")).unwrap(),
            b"table"
        );
        assert!(to.join("genesis.json").exists());
        assert!(!to.join(MANIFEST).exists());
        assert_eq!(Saved::read(&to).unwrap(), Saved::fresh());
        // Copying a directory into itself (or its parent into it) is refused.
        let inside = from.join("nodes");
        assert!(copy_devnet(&from, &inside).is_err());
        assert!(copy_devnet(&from, &from).is_err());
        // The check holds before the working directory exists, too.
        assert!(check_apart(&from, &from.join("not-yet")).is_err());
        assert!(check_apart(&from, &to.join("not-yet")).is_ok());
        // A directory without a saved state is not one to start from.
        let empty = temp("empty");
        assert!(copy_devnet(&empty, &to).is_err());
        for d in [from, to, empty] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
