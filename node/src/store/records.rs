//! The records kept beside the state: committed blocks and their certificates, where each
//! transaction is, the validator sets, proposals not yet decided, and misbehaviour evidence.

use super::Store;
use super::schema::*;
use borsh::BorshDeserialize;
use cachet_chain::block::{Block, BlockHeader};
use cachet_chain::hash::Hash32;
use cachet_chain::state::{ValidatorSet, decode_value};
use cachet_chain::state_tree::StoreError;
use cachet_chain::trust::TrustAnchor;
use cachet_chain::tx::TxId;
use rocksdb::WriteBatch;

impl Store {
    /// Replace the certificate of a committed height (the finalized one may carry more
    /// signatures than the decided one).
    pub fn update_certificate(&self, height: u64, certificate: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_COMMITS), be(height), certificate);
        self.write(batch)
    }

    /// The committed block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))?
            .map(|b| {
                Block::decode(&b).map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))
            })
            .transpose()
    }

    /// The header of the committed block at `height`, without decoding its transactions (a
    /// block's encoding starts with its header).
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))?
            .map(|b| {
                BlockHeader::deserialize(&mut b.as_slice())
                    .map_err(|e| StoreError::Corrupt(format!("header {height}: {e}")))
            })
            .transpose()
    }

    /// The raw committed block at `height`.
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_cf(CF_BLOCKS, &be(height))
    }

    /// The encoded commit certificate of `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_cf(CF_COMMITS, &be(height))
    }

    /// Where a committed transaction is.
    pub fn tx_location(&self, id: &TxId) -> Result<Option<TxLocation>, StoreError> {
        self.get_cf(CF_TXS, id.0.as_bytes())?
            .map(|b| TxLocation::decode(&b))
            .transpose()
    }

    /// Keep a proposed block until its height is decided (survives a crash mid-height).
    pub fn put_undecided(
        &self,
        height: u64,
        round: u32,
        id: &Hash32,
        block: &[u8],
    ) -> Result<(), StoreError> {
        let mut key = be(height).to_vec();
        key.extend_from_slice(&round.to_be_bytes());
        key.extend_from_slice(id.as_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_UNDECIDED), key, block);
        self.write(batch)
    }

    /// Proposed blocks kept for `height`: `(round, block id, block bytes)`.
    pub fn undecided(&self, height: u64) -> Result<Vec<(u32, Hash32, Vec<u8>)>, StoreError> {
        let prefix = be(height);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_UNDECIDED),
            rocksdb::IteratorMode::From(&prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(&prefix) {
                break;
            }
            if k.len() != 8 + 4 + 32 {
                return Err(StoreError::Corrupt("undecided key".into()));
            }
            let round = u32::from_be_bytes(k[8..12].try_into().expect("4 bytes"));
            let id = Hash32(k[12..44].try_into().expect("32 bytes"));
            out.push((round, id, v.to_vec()));
        }
        Ok(out)
    }

    /// Heights whose block changed the validator set, ascending.
    pub fn validator_set_changes(&self) -> Result<Vec<u64>, StoreError> {
        self.heights_under(META_VALSET)
    }

    /// Heights whose checkpoint is kept (each has its trust anchor in `meta`), ascending.
    pub fn checkpoint_heights(&self) -> Result<Vec<u64>, StoreError> {
        self.heights_under(META_CHECKPOINT)
    }

    /// The heights of the `meta` keys `prefix || height:8`, ascending.
    fn heights_under(&self, prefix: &[u8]) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, _) = item.map_err(backend)?;
            let Some(h) = k.strip_prefix(prefix) else {
                break;
            };
            let h: [u8; 8] = h
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("meta key {}", hex(&k))))?;
            out.push(u64::from_be_bytes(h));
        }
        Ok(out)
    }

    /// The validator set in the state after `height`: the one that signs `height + 1`. Read
    /// from the sets recorded at genesis and at every change, so it survives pruning.
    pub fn validators_after(&self, height: u64) -> Result<ValidatorSet, StoreError> {
        let mut key = META_VALIDATORS.to_vec();
        key.extend_from_slice(&be(height));
        let mut iter = self.db.iterator_cf(
            self.cf(CF_META),
            rocksdb::IteratorMode::From(&key, rocksdb::Direction::Reverse),
        );
        let (k, v) = iter
            .next()
            .transpose()
            .map_err(backend)?
            .filter(|(k, _)| k.starts_with(META_VALIDATORS))
            .ok_or_else(|| StoreError::Corrupt("no validator set recorded".into()))?;
        decode_value(&v).map_err(|e| StoreError::Corrupt(format!("validator set {}: {e}", hex(&k))))
    }

    /// Keep the trust anchor of the checkpoint at `anchor.header.height`.
    pub fn put_checkpoint(&self, anchor: &TrustAnchor) -> Result<(), StoreError> {
        let mut key = META_CHECKPOINT.to_vec();
        key.extend_from_slice(&be(anchor.header.height.0));
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key, anchor.encode());
        self.write(batch)
    }

    /// The trust anchor of the latest checkpoint kept at or below `height`.
    pub fn checkpoint_at_or_below(&self, height: u64) -> Result<Option<TrustAnchor>, StoreError> {
        let mut key = META_CHECKPOINT.to_vec();
        key.extend_from_slice(&be(height));
        let mut iter = self.db.iterator_cf(
            self.cf(CF_META),
            rocksdb::IteratorMode::From(&key, rocksdb::Direction::Reverse),
        );
        let Some((k, v)) = iter
            .next()
            .transpose()
            .map_err(backend)?
            .filter(|(k, _)| k.starts_with(META_CHECKPOINT))
        else {
            return Ok(None);
        };
        TrustAnchor::decode(&v)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("checkpoint {}: {e}", hex(&k))))
    }

    /// Record misbehaviour evidence observed at `height` (idempotent per distinct evidence).
    pub fn put_evidence(&self, height: u64, evidence: &[u8]) -> Result<(), StoreError> {
        let mut key = be(height).to_vec();
        key.extend_from_slice(blake3::hash(evidence).as_bytes());
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_EVIDENCE), key, evidence);
        self.write(batch)
    }

    /// All recorded evidence: `(height, encoded evidence)`.
    pub fn evidence(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_EVIDENCE), rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(backend)?;
            let h = u64::from_be_bytes(
                k[..8]
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("evidence key".into()))?,
            );
            out.push((h, v.to_vec()));
        }
        Ok(out)
    }
}
