//! The snapshots a node takes and offers: one at every height that is a multiple of the
//! configured interval, written to disk in the background from a copy of the store taken at
//! that height's commit, the latest few kept.
//!
//! # Layout
//!
//! Under `home/snapshots/`: `<height>/` for each complete snapshot (`height` in decimal, 20
//! digits), holding `manifest` (the encoded [`Manifest`]), `history` (the encoded
//! [`History`](super::history::History)) and `chunk-<index>` for each chunk that holds
//! entries (the encoded [`Chunk`]; an empty chunk has no file). While one is written it is
//! `<height>.partial/`, beside `<height>.db/`, the store's copy it is read from; both are
//! removed when it is done, and at start if a crash cut it short. A snapshot is complete once
//! renamed, so a peer is never offered part of one.
//!
//! It is not the format ([`cachet_chain::snapshot`]) nor the network ([`super::protocol`]).

use super::history;
use super::protocol::{Request, Response};
use crate::store::Store;
use cachet_chain::hash::Hash32;
use cachet_chain::snapshot::{Chunk, ChunkLine, Entry, Manifest, chunk_of, depth_for};
use cachet_chain::state_tree::StoreError;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{info, warn};

/// The snapshots under a node's home.
pub struct Snapshots {
    dir: PathBuf,
    interval: u64,
    keep: usize,
    /// Free space below which no snapshot is taken: a copy flushes the store's memtables, and
    /// the chunks take about the state's size.
    min_free_bytes: u64,
    /// The height being written, if one is: a second is skipped meanwhile.
    writing: Mutex<Option<u64>>,
    /// Heights an operator asked for, beside the interval's.
    scheduled: Mutex<std::collections::BTreeSet<u64>>,
}

fn name(height: u64) -> String {
    format!("{height:020}")
}

impl Snapshots {
    /// The snapshots under `home`, taken every `interval` heights (0: none), `keep` kept. What
    /// a crash left half-written is removed.
    pub fn new(
        home: &Path,
        interval: u64,
        keep: usize,
        min_free_bytes: u64,
    ) -> eyre::Result<Snapshots> {
        let dir = home.join("snapshots");
        if dir.exists() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                let leftover = path
                    .extension()
                    .is_some_and(|e| e == "partial" || e == "db");
                if leftover {
                    std::fs::remove_dir_all(&path)?;
                }
            }
        }
        Ok(Snapshots {
            dir,
            interval,
            keep: keep.max(1),
            min_free_bytes,
            writing: Mutex::new(None),
            scheduled: Mutex::default(),
        })
    }

    /// Take a snapshot when `height` is committed, whatever the interval (an operator's
    /// request: the same height asked of every node lets a joining node fetch from them all).
    pub fn schedule(&self, height: u64) {
        self.scheduled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(height);
    }

    /// The heights of the complete snapshots kept, lowest first.
    pub fn heights(&self) -> Vec<u64> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut heights: Vec<u64> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        heights.sort_unstable();
        heights
    }

    /// The lowest height of a snapshot kept or being written: the blocks after it are what a
    /// node joining from it asks for.
    pub fn oldest(&self) -> Option<u64> {
        let writing = *self.writing.lock().unwrap_or_else(|p| p.into_inner());
        self.heights().into_iter().chain(writing).min()
    }

    /// After `height` is committed to `store`: at a snapshot height, copy the store now (its
    /// head is `height` until this returns) and write the snapshot from the copy in the
    /// background. A snapshot still being written when the next is due makes this one skip,
    /// and so does less free space (`free` reads it, if it can, only then) than the node's
    /// warning level.
    pub fn after_commit(
        self: &std::sync::Arc<Self>,
        store: &Store,
        height: u64,
        free: impl FnOnce() -> Option<u64>,
    ) {
        let asked = {
            let mut scheduled = self.scheduled.lock().unwrap_or_else(|p| p.into_inner());
            let asked = scheduled.remove(&height);
            // Heights passed by (a node that was behind) are not taken late.
            scheduled.retain(|h| *h > height);
            asked
        };
        let due = self.interval > 0 && height.is_multiple_of(self.interval);
        if height == 0 || !(due || asked) {
            return;
        }
        if let Some(free) = free().filter(|f| *f < self.min_free_bytes) {
            warn!(height, free, "snapshot skipped: the disk is nearly full");
            return;
        }
        let mut writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(busy) = *writing {
            warn!(
                height,
                busy, "snapshot skipped: the previous one is still being written"
            );
            return;
        }
        let copy = self.dir.join(format!("{}.db", name(height)));
        let started = std::time::Instant::now();
        if let Err(e) = std::fs::create_dir_all(&self.dir)
            .map_err(|e| StoreError::Backend(e.to_string()))
            .and_then(|()| store.copy_to(&copy))
        {
            warn!(height, error = %e, "snapshot not taken: the store could not be copied");
            let _ = std::fs::remove_dir_all(&copy);
            return;
        }
        info!(
            height,
            copy_ms = started.elapsed().as_millis() as u64,
            "taking a snapshot"
        );
        *writing = Some(height);
        let me = self.clone();
        std::thread::spawn(move || {
            let result = me.write(height, &copy);
            let _ = std::fs::remove_dir_all(&copy);
            match result {
                Ok((entries, bytes)) => {
                    info!(
                        height,
                        entries,
                        bytes,
                        seconds = started.elapsed().as_secs_f64(),
                        "snapshot taken"
                    );
                    me.prune();
                }
                Err(e) => {
                    let _ =
                        std::fs::remove_dir_all(me.dir.join(format!("{}.partial", name(height))));
                    warn!(height, error = %e, "snapshot failed");
                }
            }
            *me.writing.lock().unwrap_or_else(|p| p.into_inner()) = None;
        });
    }

    /// Write the snapshot of the copy under `copy` (whose head is `height`); its entries and
    /// bytes.
    fn write(&self, height: u64, copy: &Path) -> eyre::Result<(u64, u64)> {
        let store = Store::open_read_only(copy)?;
        let head = store
            .head()?
            .ok_or_else(|| eyre::eyre!("the copy has no head"))?;
        eyre::ensure!(
            head.height.0 == height,
            "the copy is at height {}",
            head.height.0
        );
        let partial = self.dir.join(format!("{}.partial", name(height)));
        std::fs::create_dir_all(&partial)?;
        let count = store.key_count()?;
        let depth = depth_for(count);
        let mut lines = vec![
            ChunkLine {
                root: cachet_chain::state_tree::EMPTY,
                entries: 0
            };
            1 << depth
        ];
        let mut bytes = 0u64;
        let mut current: Option<u32> = None;
        let mut chunk = Chunk::default();
        let mut hashed: Vec<(Hash32, Hash32)> = Vec::new();
        let mut flush = |index: u32, chunk: &mut Chunk, hashed: &mut Vec<(Hash32, Hash32)>| {
            lines[index as usize] = ChunkLine::of(depth, index, hashed);
            let encoded = std::mem::take(chunk).encode();
            bytes += encoded.len() as u64;
            hashed.clear();
            std::fs::write(partial.join(format!("chunk-{index}")), encoded)
                .map_err(|e| StoreError::Backend(e.to_string()))
        };
        store.state_entries(|key, value_hash, value| {
            let index = chunk_of(&key, depth);
            if let Some(open) = current
                && open != index
            {
                flush(open, &mut chunk, &mut hashed)?;
            }
            current = Some(index);
            chunk.entries.push(Entry { key, value });
            hashed.push((key, value_hash));
            Ok(())
        })?;
        if let Some(open) = current {
            flush(open, &mut chunk, &mut hashed)?;
        }
        let manifest = Manifest {
            height,
            depth,
            chunks: lines,
        };
        // The copy's state must be its head's: a snapshot nobody can use is not offered.
        manifest.verify(&head.state_root)?;
        let history = borsh::to_vec(&history::collect(&store)?)?;
        std::fs::write(partial.join("history"), history)?;
        std::fs::write(partial.join("manifest"), manifest.encode())?;
        std::fs::rename(&partial, self.dir.join(name(height)))?;
        Ok((count, bytes))
    }

    /// Remove all but the latest `keep` snapshots.
    fn prune(&self) {
        let heights = self.heights();
        for h in &heights[..heights.len().saturating_sub(self.keep)] {
            if let Err(e) = std::fs::remove_dir_all(self.dir.join(name(*h))) {
                warn!(height = h, error = %e, "old snapshot not removed");
            }
        }
    }

    /// Answer a peer's request from the snapshots kept.
    pub fn serve(&self, request: Request) -> Response {
        let read = |height: u64, file: &str| std::fs::read(self.dir.join(name(height)).join(file));
        match request {
            Request::Offers => Response::Offers(self.heights()),
            Request::History { height } => {
                read(height, "history").map_or(Response::Unavailable, Response::History)
            }
            Request::Manifest { height } => {
                read(height, "manifest").map_or(Response::Unavailable, Response::Manifest)
            }
            Request::Chunk { height, index } => match read(height, &format!("chunk-{index}")) {
                Ok(bytes) => Response::Chunk(bytes),
                // An empty chunk has no file; a snapshot that is gone has no manifest.
                Err(_) if self.dir.join(name(height)).join("manifest").exists() => {
                    Response::Chunk(Chunk::default().encode())
                }
                Err(_) => Response::Unavailable,
            },
        }
    }
}
