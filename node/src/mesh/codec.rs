//! Length-prefixed frames for the request-response protocols.
//!
//! A request or response is a `u32` (big-endian) frame count, then each frame
//! as a `u32` length and its bytes. A message over [`MAX_MESSAGE_BYTES`] in
//! total, or with more than [`MAX_FRAMES`] frames, is refused while reading,
//! before its bytes are buffered.

use std::io;

use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// Largest request or response, frames and prefixes included.
pub(crate) const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Most frames in one request or response.
pub(crate) const MAX_FRAMES: usize = 65_536;

/// The protocol carrying `crdt::sync::Message`s, one per frame.
pub(crate) const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/votemesh/sync/1");
/// The protocol exchanging poll definitions: a request lists poll ids, the
/// response carries the signed polls the requester lacks.
pub(crate) const POLLS_PROTOCOL: StreamProtocol = StreamProtocol::new("/votemesh/polls/1");

/// The frames of one request or response.
pub(crate) type Frames = Vec<Vec<u8>>;

/// Total encoded size of `frames`.
pub(crate) fn encoded_len(frames: &Frames) -> usize {
    4 + frames.iter().map(|f| 4 + f.len()).sum::<usize>()
}

/// A request as the codec read it.
///
/// libp2p's request-response does not report a request whose reading
/// failed, so a request over the limits is not a read error: it arrives as
/// `Refused`, and the node logs it and counts it against the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// A request within the limits.
    Frames(Frames),
    /// A request refused from its prefixes, its body left unread.
    Refused(String),
}

/// The codec of both protocols.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FramesCodec;

impl libp2p::request_response::Codec for FramesCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Frames;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frames(io).await {
            Ok(frames) => Ok(Request::Frames(frames)),
            Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                Ok(Request::Refused(error.to_string()))
            }
            Err(error) => Err(error),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frames>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frames(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Request::Frames(frames) => write_frames(io, &frames).await,
            Request::Refused(reason) => Err(invalid(reason)),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frames: Frames,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frames(io, &frames).await
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

async fn read_u32<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<usize> {
    let mut word = [0u8; 4];
    io.read_exact(&mut word).await?;
    Ok(u32::from_be_bytes(word) as usize)
}

/// Reads one message, refusing it as soon as its prefixes announce more than
/// the limits allow.
pub(crate) async fn read_frames<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Frames> {
    let count = read_u32(io).await?;
    if count > MAX_FRAMES {
        return Err(invalid(format!(
            "{count} frames exceed the limit of {MAX_FRAMES}"
        )));
    }

    let mut budget = MAX_MESSAGE_BYTES - 4;
    let mut frames = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let len = read_u32(io).await?;
        budget = budget
            .checked_sub(4 + len)
            .ok_or_else(|| invalid(format!("message exceeds {MAX_MESSAGE_BYTES} bytes")))?;
        let mut frame = vec![0u8; len];
        io.read_exact(&mut frame).await?;
        frames.push(frame);
    }
    Ok(frames)
}

/// Writes one message and closes the stream. Refuses to send what the peer
/// would refuse to read.
pub(crate) async fn write_frames<T: AsyncWrite + Unpin>(
    io: &mut T,
    frames: &Frames,
) -> io::Result<()> {
    let len = encoded_len(frames);
    if frames.len() > MAX_FRAMES || len > MAX_MESSAGE_BYTES {
        return Err(invalid(format!(
            "message of {} frames, {len} bytes exceeds the limits",
            frames.len()
        )));
    }

    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&(frames.len() as u32).to_be_bytes());
    for frame in frames {
        bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        bytes.extend_from_slice(frame);
    }
    io.write_all(&bytes).await?;
    io.close().await
}

#[cfg(test)]
mod tests {
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;

    use super::*;

    #[test]
    fn frames_round_trip() {
        let frames = vec![b"one".to_vec(), Vec::new(), vec![7; 1000]];
        let mut wire = Cursor::new(Vec::new());

        block_on(write_frames(&mut wire, &frames)).unwrap();
        let read = block_on(read_frames(&mut Cursor::new(wire.into_inner()))).unwrap();

        assert_eq!(read, frames);
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut wire = 1u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&u32::MAX.to_be_bytes());

        let error = block_on(read_frames(&mut Cursor::new(wire))).unwrap_err();

        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_oversized_request_arrives_refused_so_the_node_can_count_it() {
        use libp2p::request_response::Codec as _;
        let mut wire = 1u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&(40u32 << 20).to_be_bytes());

        let mut codec = FramesCodec;
        let mut io = Cursor::new(wire);
        let request = block_on(codec.read_request(&SYNC_PROTOCOL, &mut io)).unwrap();

        assert!(matches!(request, Request::Refused(_)), "{request:?}");
    }

    #[test]
    fn a_truncated_message_is_an_error() {
        let mut wire = 2u32.to_be_bytes().to_vec();
        wire.extend_from_slice(&3u32.to_be_bytes());
        wire.extend_from_slice(b"ab");

        assert!(block_on(read_frames(&mut Cursor::new(wire))).is_err());
    }
}
