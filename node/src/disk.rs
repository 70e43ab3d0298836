//! The data directory's free space, and the reserve the node keeps on it.
//!
//! Below the reserve (`[storage] reserve_disk_mb`) the node writes nothing: the host waits
//! before it commits a decided block, keeps a finalized certificate, stores a proposal or
//! takes a synced block, saying so once a minute, and goes on by itself once space is freed
//! (consensus catches it up). RocksDB never sees a write fail for want of space, an error it
//! does not recover from while open. A node does not start below its reserve.
//!
//! It is not readiness: `/readyz` flags a disk below `[health] min_free_disk_mb`, a larger
//! threshold meant to warn before the reserve is reached ([`crate::health`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often a paused node looks at the free space again.
const POLL: Duration = Duration::from_secs(1);
/// How often a paused node says so.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Bytes an unprivileged writer may still use on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// The reserve of free space a node keeps under its data directory.
pub struct Reserve {
    home: PathBuf,
    bytes: u64,
    paused: AtomicBool,
    warned: Mutex<Option<Instant>>,
}

impl Reserve {
    /// Keep `mb` MiB free under `home`.
    pub fn new(home: &Path, mb: u64) -> Reserve {
        Reserve {
            home: home.to_path_buf(),
            bytes: mb.saturating_mul(1 << 20),
            paused: AtomicBool::new(false),
            warned: Mutex::new(None),
        }
    }

    /// At start: refuse to run with less free space than the reserve, saying why.
    pub fn check_at_start(&self) -> eyre::Result<()> {
        let free = free_bytes(&self.home).map_err(|e| {
            eyre::eyre!(
                "cannot read the free space under {}: {e}",
                self.home.display()
            )
        })?;
        if free < self.bytes {
            eyre::bail!(
                "the disk holding {} has {} MiB free, less than the {} MiB this node keeps in \
                 reserve ([storage] reserve_disk_mb): free some space, then start it again",
                self.home.display(),
                free >> 20,
                self.bytes >> 20
            );
        }
        Ok(())
    }

    /// Bytes free under the data directory now, if they can be read.
    pub fn free(&self) -> Option<u64> {
        free_bytes(&self.home).ok()
    }

    /// Is the node waiting for space?
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Return once the free space is at least the reserve; until then, say so once a minute.
    /// A free space that cannot be read counts as enough: the write then says what is wrong.
    pub async fn wait_for_room(&self) {
        loop {
            let free = match free_bytes(&self.home) {
                Ok(free) => free,
                Err(_) => return,
            };
            if free >= self.bytes {
                if self.paused.swap(false, Ordering::Relaxed) {
                    info!(free_mb = free >> 20, "disk space is back: writing again");
                }
                return;
            }
            self.paused.store(true, Ordering::Relaxed);
            let due = {
                let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
                let due = warned.is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if due {
                    *warned = Some(Instant::now());
                }
                due
            };
            if due {
                warn!(
                    free_mb = free >> 20,
                    reserve_mb = self.bytes >> 20,
                    home = %self.home.display(),
                    "the disk is full: {} MiB free under {}, below the {} MiB reserve; this node \
                     commits nothing until space is freed, loses nothing, and catches up by \
                     itself then",
                    free >> 20,
                    self.home.display(),
                    self.bytes >> 20
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
