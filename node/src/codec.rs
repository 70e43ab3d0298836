//! The wire and WAL encoding of consensus messages: Borsh, as everywhere else in Cachet.
//! Malachite provides Borsh encodings of its own types (its `borsh` features); this adds the
//! validator proof, which has none, and size limits on every decode.

use crate::context::{Address, BlockId, CachetContext, Height, OrdSignature, ProposalPart};
use borsh::{BorshDeserialize, BorshSerialize};
use bytes::Bytes;
use malachite_app::consensus::LivenessMsg;
use malachite_app::types::codec::{Codec, HasEncodedLen};
use malachite_app::types::core::{
    ExtendedCommitCertificate, ExtendedCommitSignature, PolkaCertificate, Round, SignedExtension,
    ValidatorProof,
};
use malachite_app::types::streaming::StreamMessage;
use malachite_app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachite_app::types::{ProposedValue, SignedConsensusMsg};
use malachite_sync::ValueResponse;

/// Largest consensus message accepted from a peer or the WAL (a block's worth of parts).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Borsh for every consensus, sync and WAL message.
#[derive(Clone, Copy, Debug, Default)]
pub struct BorshCodec;

/// A message that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("codec: {0}")]
pub struct CodecError(String);

fn decode<T: BorshDeserialize>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(CodecError(format!(
            "{} bytes is over the limit",
            bytes.len()
        )));
    }
    borsh::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

fn encode<T: BorshSerialize>(value: &T) -> Result<Bytes, CodecError> {
    borsh::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| CodecError(e.to_string()))
}

macro_rules! borsh_codec {
    ($($t:ty),* $(,)?) => {$(
        impl Codec<$t> for BorshCodec {
            type Error = CodecError;
            fn decode(&self, bytes: Bytes) -> Result<$t, CodecError> {
                decode(&bytes)
            }
            fn encode(&self, msg: &$t) -> Result<Bytes, CodecError> {
                encode(msg)
            }
        }
    )*};
}

borsh_codec!(
    ProposalPart,
    SignedConsensusMsg<CachetContext>,
    LivenessMsg<CachetContext>,
    StreamMessage<ProposalPart>,
    ProposedValue<CachetContext>,
    PolkaCertificate<CachetContext>,
    Status<CachetContext>,
    Request<CachetContext>,
);

/// A sync response, spelled out: Malachite has no Borsh encoding for extended certificates.
#[derive(BorshSerialize, BorshDeserialize)]
struct WireResponse {
    start_height: Height,
    values: Vec<WireDecided>,
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireDecided {
    value_bytes: Vec<u8>,
    height: Height,
    round: Round,
    value_id: BlockId,
    signatures: Vec<(
        Address,
        OrdSignature,
        Option<SignedExtension<CachetContext>>,
    )>,
}

fn to_wire(msg: &Response<CachetContext>) -> WireResponse {
    let Response::ValueResponse(r) = msg;
    WireResponse {
        start_height: r.start_height,
        values: r
            .values
            .iter()
            .map(|v| WireDecided {
                value_bytes: v.value_bytes.to_vec(),
                height: v.certificate.height,
                round: v.certificate.round,
                value_id: v.certificate.value_id,
                signatures: v
                    .certificate
                    .commit_signatures
                    .iter()
                    .map(|s| (s.address, s.signature, s.extension.clone()))
                    .collect(),
            })
            .collect(),
    }
}

fn from_wire(w: WireResponse) -> Response<CachetContext> {
    let values = w
        .values
        .into_iter()
        .map(|v| {
            RawDecidedValue::new(
                Bytes::from(v.value_bytes),
                ExtendedCommitCertificate {
                    height: v.height,
                    round: v.round,
                    value_id: v.value_id,
                    commit_signatures: v
                        .signatures
                        .into_iter()
                        .map(|(a, s, e)| ExtendedCommitSignature::new(a, s, e))
                        .collect(),
                },
            )
        })
        .collect();
    Response::ValueResponse(ValueResponse::new(w.start_height, values))
}

impl Codec<Response<CachetContext>> for BorshCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Response<CachetContext>, CodecError> {
        Ok(from_wire(decode(&bytes)?))
    }
    fn encode(&self, msg: &Response<CachetContext>) -> Result<Bytes, CodecError> {
        encode(&to_wire(msg))
    }
}

impl HasEncodedLen<Response<CachetContext>> for BorshCodec {
    fn encoded_len(&self, msg: &Response<CachetContext>) -> Result<usize, CodecError> {
        Ok(encode(&to_wire(msg))?.len())
    }
}

#[derive(BorshSerialize, BorshDeserialize)]
struct WireValidatorProof {
    public_key: Vec<u8>,
    peer_id: Vec<u8>,
    signature: OrdSignature,
}

impl Codec<ValidatorProof<CachetContext>> for BorshCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<CachetContext>, CodecError> {
        let w: WireValidatorProof = decode(&bytes)?;
        Ok(ValidatorProof::new(w.public_key, w.peer_id, w.signature))
    }
    fn encode(&self, msg: &ValidatorProof<CachetContext>) -> Result<Bytes, CodecError> {
        encode(&WireValidatorProof {
            public_key: msg.public_key.clone(),
            peer_id: msg.peer_id.clone(),
            signature: msg.signature,
        })
    }
}
