//! Rewriting a database of an older format (2 or 3) in the current one, in place, when it is
//! opened.

use super::Store;
use super::schema::*;
use cachet_chain::block::BlockHeader;
use cachet_chain::hash::{DigestSet, Hash32};
use cachet_chain::state_tree::{self, Node, NodeKey, Position, StoreError, TreeBatch};
use rocksdb::WriteBatch;

impl Store {
    /// Rewrite a version-2 or -3 database in version 4, in place. Every root still whole
    /// (from the last pruned height to the head) is walked: its nodes are copied under their
    /// [`NodeKey`]s, its leaves' values get the height they were written at, and the head's
    /// entries are indexed by key. Nodes under bare hashes, the values no kept root uses and
    /// the old stale records are then deleted; the kept roots' nodes and values that the head
    /// does not use are recorded stale at the head, so pruning deletes them once the head is
    /// `keep` heights behind. Idempotent until the new format is written last: a crash repeats
    /// it. Memory: about 100 bytes per node of the kept roots, for the walk's visited set.
    pub(super) fn migrate(&self, head: &BlockHeader) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let (nodes, values, keys) = (self.cf(CF_NODES), self.cf(CF_VALUES), self.cf(CF_KEYS));
        let head_height = head.height.0;
        let mut roots = Vec::new();
        for height in self.pruned_upto()?..head_height {
            let header = match height {
                0 => self.genesis()?,
                h => self.header(h)?,
            };
            let header =
                header.ok_or_else(|| StoreError::Corrupt(format!("no header at {height}")))?;
            roots.push(header.state_root);
        }
        // The head's root first: what it reaches is live, the rest of the kept roots stale.
        roots.push(head.state_root);
        roots.reverse();
        let mut visited: DigestSet<NodeKey> = Default::default();
        let mut head_leaves: DigestSet<Hash32> = Default::default();
        let mut stale_leaves: DigestSet<Hash32> = Default::default();
        let mut stale = TreeBatch::default();
        let mut batch = WriteBatch::default();
        for (i, root) in roots.iter().enumerate() {
            let mut pending = vec![(*root, Position::ROOT)];
            while let Some((at, pos)) = pending.pop() {
                let key = NodeKey::new(pos, at);
                if at == state_tree::EMPTY || !visited.insert(key) {
                    continue;
                }
                let missing = || StoreError::Missing {
                    what: "node",
                    hash: at,
                };
                // Under its new key if an interrupted migration got that far.
                let record = match self.get_cf(CF_NODES, &key.to_bytes())? {
                    Some(record) => record,
                    None => self.get_cf(CF_NODES, at.as_bytes())?.ok_or_else(missing)?,
                };
                let (node, written_at) = split_node_record(&at, &record)?;
                batch.put_cf(nodes, key.to_bytes(), &record);
                if i > 0 {
                    stale.stale.push(key);
                }
                match node {
                    Node::Internal { left, right } => {
                        pending.push((left, pos.child(false)));
                        pending.push((right, pos.child(true)));
                    }
                    Node::Leaf { key: entry, value } => {
                        if i == 0 {
                            head_leaves.insert(at);
                            batch.put_cf(keys, entry.as_bytes(), value.as_bytes());
                        } else if !head_leaves.contains(&at) {
                            stale_leaves.insert(at);
                        }
                        let stored =
                            self.get_cf(CF_VALUES, at.as_bytes())?
                                .ok_or(StoreError::Missing {
                                    what: "value",
                                    hash: at,
                                })?;
                        if state_tree::value_hash(&stored) == value {
                            batch.put_cf(values, at.as_bytes(), value_record(&stored, written_at));
                        } else if split_height(&stored)
                            .is_none_or(|(v, _)| state_tree::value_hash(v) != value)
                        {
                            // Neither the old record nor one an interrupted migration wrote.
                            return Err(StoreError::Corrupt(format!("value of leaf {at}")));
                        }
                    }
                }
                if batch.len() >= 100_000 {
                    self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
                }
            }
        }
        self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
        // What no kept root reaches, and the old keys and records, go now.
        let mut deleted = 0usize;
        for (family, keep) in [(CF_NODES, None), (CF_VALUES, Some(&stale_leaves))] {
            let handle = self.cf(family);
            for item in self.db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
                let (k, _) = item.map_err(backend)?;
                let obsolete = match keep {
                    None => k.len() == 32,
                    Some(stale_leaves) => {
                        let leaf =
                            Hash32(k[..].try_into().map_err(|_| {
                                StoreError::Corrupt(format!("value key {}", hex(&k)))
                            })?);
                        !head_leaves.contains(&leaf) && !stale_leaves.contains(&leaf)
                    }
                };
                if obsolete {
                    batch.delete_cf(handle, &k);
                    deleted += 1;
                }
                if batch.len() >= 100_000 {
                    self.db.write(std::mem::take(&mut batch)).map_err(backend)?;
                }
            }
        }
        for item in self
            .db
            .iterator_cf(self.cf(CF_STALE), rocksdb::IteratorMode::Start)
        {
            batch.delete_cf(self.cf(CF_STALE), item.map_err(backend)?.0);
        }
        stale.stale.sort();
        stale.stale_values = stale_leaves.into_iter().collect();
        stale.stale_values.sort();
        if !stale.stale.is_empty() || !stale.stale_values.is_empty() {
            batch.put_cf(
                self.cf(CF_STALE),
                be(head_height),
                stale_record(&stale.stale, &stale.stale_values),
            );
        }
        batch.put_cf(self.cf(CF_META), META_FORMAT, [FORMAT]);
        self.write(batch)?;
        tracing::info!(
            roots = roots.len(),
            nodes = visited.len(),
            deleted,
            seconds = started.elapsed().as_secs_f64(),
            "state store rewritten in format {FORMAT}"
        );
        Ok(())
    }
}
