//! Backups of a node's store: taken while the node runs, described by a manifest, checked, and
//! put back in place of a lost store.
//!
//! # Format
//!
//! A backup is a directory holding `db/` (a RocksDB checkpoint of the store: a database in the
//! store's format, see [`crate::store`]) and `backup.json`, written last (a directory without
//! it is an interrupted backup):
//!
//! ```json
//! {"chain_id": "…", "genesis": "<hex hash of the genesis header>", "height": 1234,
//!  "block": "<hex hash of the head's header>", "state_root": "<hex>",
//!  "taken_at_ms": 1765000000000, "node": "<moniker>"}
//! ```
//!
//! The manifest is read from the copy itself, after it is taken: it names the head the copy
//! holds. A backup holds no key: validator and agency keys are the operator's to keep.
//!
//! It is not the consistency check ([`crate::fsck`]) nor the copy itself
//! ([`Store::copy_to`]).

use crate::fsck::{self, Report};
use crate::store::Store;
use cachet_chain::hash::Hash32;
use eyre::{WrapErr, bail, eyre};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "backup.json";

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The chain.
    pub chain_id: String,
    /// The hash of its genesis header.
    pub genesis: Hash32,
    /// The height of the head the copy holds.
    pub height: u64,
    /// The hash of that head's header.
    pub block: Hash32,
    /// Its state root.
    pub state_root: Hash32,
    /// When the copy was taken (the node's clock, ms since the epoch).
    pub taken_at_ms: u64,
    /// The node it was taken from.
    pub node: String,
}

/// Copy the running node's `store` into `dir` (absent, or an empty directory) and describe it.
pub fn take(store: &Store, node: &str, dir: &Path) -> eyre::Result<Manifest> {
    if !dir.is_absolute() {
        bail!(
            "the backup directory must be an absolute path: {}",
            dir.display()
        );
    }
    ensure_empty(dir)?;
    std::fs::create_dir_all(dir).wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    store
        .copy_to(&dir.join("db"))
        .wrap_err_with(|| format!("cannot copy the store into {}", dir.display()))?;
    let copy = Store::open_read_only(&dir.join("db"))?;
    let genesis = copy
        .genesis()?
        .ok_or_else(|| eyre!("the copy has no genesis"))?;
    let head = copy.head()?.ok_or_else(|| eyre!("the copy has no head"))?;
    drop(copy);
    let manifest = Manifest {
        chain_id: head.chain_id.as_str().to_string(),
        genesis: genesis.hash(),
        height: head.height.0,
        block: head.hash(),
        state_root: head.state_root,
        taken_at_ms: crate::clock::now_ms(),
        node: node.to_string(),
    };
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join(MANIFEST))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(manifest)
}

/// The manifest of the backup in `dir`.
pub fn manifest(dir: &Path) -> eyre::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .wrap_err_with(|| format!("{} is not a complete backup (no {MANIFEST})", dir.display()))?;
    serde_json::from_str(&text).wrap_err_with(|| format!("{}", path.display()))
}

/// Check the backup in `from` (its manifest against its copy, and with `check` the whole copy,
/// see [`fsck`]), then put its store in place as `home/db`, which must not hold one. The
/// consortium's genesis hash must be `genesis`. `progress` is told each height checked.
pub fn restore(
    from: &Path,
    home: &Path,
    genesis: &Hash32,
    check: bool,
    progress: impl FnMut(u64, u64),
) -> eyre::Result<(Manifest, Option<Report>)> {
    let manifest = manifest(from)?;
    if manifest.genesis != *genesis {
        bail!(
            "the backup is of another chain: its genesis is {}, this node's is {genesis}",
            manifest.genesis
        );
    }
    let target = home.join("db");
    ensure_empty(&target).wrap_err("stop the node and move its database away first")?;
    let copy = Store::open_read_only(&from.join("db"))?;
    let head = copy
        .head()?
        .ok_or_else(|| eyre!("the backup's store has no head"))?;
    if head.height.0 != manifest.height || head.hash() != manifest.block {
        bail!(
            "the backup's store is at height {} ({}), its manifest says {} ({})",
            head.height.0,
            head.hash(),
            manifest.height,
            manifest.block
        );
    }
    let report = if check {
        let report = fsck::check(&copy, progress)?;
        if let Some(first) = report.problems.first() {
            bail!(
                "the backup is inconsistent{}: {} (run `cachet fsck` on it for every problem)",
                first
                    .height
                    .map_or(String::new(), |h| format!(" at height {h}")),
                first.what
            );
        }
        Some(report)
    } else {
        None
    };
    drop(copy);
    let staging = home.join("db.restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    copy_dir(&from.join("db"), &staging)?;
    std::fs::rename(&staging, &target)?;
    std::fs::File::open(home)?.sync_all()?;
    Ok((manifest, report))
}

/// `dir` may be written into: absent, or an empty directory.
fn ensure_empty(dir: &Path) -> eyre::Result<()> {
    match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(eyre!("cannot read {}: {e}", dir.display())),
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => bail!("{} exists and is not empty", dir.display()),
        },
    }
}

/// Copy the files of `from` (a database: no subdirectories) into a new directory `to`, each
/// synced.
fn copy_dir(from: &Path, to: &Path) -> eyre::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest: PathBuf = to.join(entry.file_name());
        if !entry.file_type()?.is_file() {
            bail!("unexpected entry in a database: {}", entry.path().display());
        }
        std::fs::copy(entry.path(), &dest)
            .wrap_err_with(|| format!("cannot copy {}", entry.path().display()))?;
        std::fs::File::open(&dest)?.sync_all()?;
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}
