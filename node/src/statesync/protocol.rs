//! What nodes say to each other about snapshots, on the node's own swarm (beside transaction
//! gossip, with the same consortium allow-list): requests, answers, and their framing.
//!
//! # Format
//!
//! Protocol `/cachet/snapshot/1`, one request and one answer per stream. Each is a 4-byte
//! big-endian length, then that many bytes of Borsh: a [`Request`] (at most
//! [`MAX_REQUEST`] bytes) or a [`Response`] (at most [`MAX_RESPONSE`]). The manifest, the chunk
//! and the history travel as their own canonical encodings inside the answer, so what a node
//! checks is exactly what it was sent.
//!
//! It is not what the answers mean to a joining node ([`super::join`]) nor where a serving node
//! keeps them ([`super::snapshots`]).

use async_trait::async_trait;
use borsh::{BorshDeserialize, BorshSerialize};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// The protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/cachet/snapshot/1");
/// Largest request read.
pub const MAX_REQUEST: usize = 1024;
/// Largest answer read: a chunk at its largest, with room to spare.
pub const MAX_RESPONSE: usize = cachet_chain::snapshot::MAX_CHUNK_BYTES + (1 << 20);

/// A question to a peer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Request {
    /// Which snapshots do you keep?
    Offers,
    /// The blocks a node joining at this height keeps (see [`super::history`]).
    History {
        /// The snapshot's height.
        height: u64,
    },
    /// The manifest of the snapshot at this height.
    Manifest {
        /// The snapshot's height.
        height: u64,
    },
    /// One chunk of the snapshot at this height.
    Chunk {
        /// The snapshot's height.
        height: u64,
        /// Which chunk.
        index: u32,
    },
}

/// A peer's answer.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Response {
    /// The heights of the snapshots it keeps, lowest first.
    Offers(Vec<u64>),
    /// An encoded [`super::history::History`].
    History(Vec<u8>),
    /// An encoded [`cachet_chain::snapshot::Manifest`].
    Manifest(Vec<u8>),
    /// An encoded [`cachet_chain::snapshot::Chunk`].
    Chunk(Vec<u8>),
    /// It does not keep that (any more), or could not read it.
    Unavailable,
}

/// Length-prefixed Borsh framing for [`Request`] and [`Response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotCodec;

async fn read_framed<T, R>(io: &mut R, max: usize) -> io::Result<T>
where
    T: BorshDeserialize,
    R: AsyncRead + Unpin + Send,
{
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes, at most {max} taken"),
        ));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    borsh::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_framed<T, W>(io: &mut W, value: &T) -> io::Result<()>
where
    T: BorshSerialize,
    W: AsyncWrite + Unpin + Send,
{
    let bytes = borsh::to_vec(value)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.close().await
}

#[async_trait]
impl libp2p::request_response::Codec for SnapshotCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io, MAX_REQUEST).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_framed(io, MAX_RESPONSE).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_framed(io, &res).await
    }
}

/// The request-response behaviour both sides run: a chunk may take a while on a slow link.
pub fn behaviour() -> libp2p::request_response::Behaviour<SnapshotCodec> {
    libp2p::request_response::Behaviour::new(
        [(PROTOCOL, libp2p::request_response::ProtocolSupport::Full)],
        libp2p::request_response::Config::default()
            .with_request_timeout(std::time::Duration::from_secs(60))
            .with_max_concurrent_streams(64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_oversized_ones_are_refused() {
        for r in [
            Request::Offers,
            Request::History { height: 7 },
            Request::Manifest { height: 7 },
            Request::Chunk {
                height: 7,
                index: 3,
            },
        ] {
            let mut buf = Vec::new();
            write_framed(&mut futures::io::Cursor::new(&mut buf), &r)
                .await
                .unwrap();
            let back: Request = read_framed(&mut &buf[..], MAX_REQUEST).await.unwrap();
            assert_eq!(back, r);
        }
        let mut buf = Vec::new();
        let big = Response::Chunk(vec![7; 5000]);
        write_framed(&mut futures::io::Cursor::new(&mut buf), &big)
            .await
            .unwrap();
        assert!(
            read_framed::<Response, _>(&mut &buf[..], 4096)
                .await
                .is_err()
        );
        assert_eq!(
            read_framed::<Response, _>(&mut &buf[..], MAX_RESPONSE)
                .await
                .unwrap(),
            big
        );
        // A length that promises more than is there, or junk, is an error, not a hang.
        assert!(
            read_framed::<Request, _>(&mut &[0, 0, 0, 9, 1][..], MAX_REQUEST)
                .await
                .is_err()
        );
        assert!(
            read_framed::<Request, _>(&mut &[0, 0, 0, 1, 9][..], MAX_REQUEST)
                .await
                .is_err()
        );
    }
}
