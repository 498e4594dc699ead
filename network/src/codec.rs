//! The request-response wire codec: every request and response is one frame, a 4-byte
//! big-endian length followed by that many bytes. Each protocol has its own size caps
//! ([`crate::Protocol::max_request`], [`crate::Protocol::max_response`]); a frame that
//! announces more than the cap is refused before a byte of it is buffered, so a hostile
//! peer cannot make us allocate gigabytes (a request so refused reaches the service as
//! [`Request::Oversized`], which penalises its sender). What the bytes mean (SCALE-encoded shard calls,
//! block requests) is the node's business, not the network's.

use crate::protocol::Protocol;
use async_trait::async_trait;
use futures::prelude::*;
use libp2p::StreamProtocol;
use std::io;

/// Length-prefixed byte frames with per-protocol caps.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameCodec;

/// A request as read off the wire, or to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A whole frame's bytes.
    Frame(Vec<u8>),
    /// A frame announcing this many bytes, beyond the protocol's cap: refused unread.
    /// It is a request rather than a read error so that the service learns who sent it
    /// and penalises the peer (request-response reports no failure, and names no peer,
    /// for a request it could not read).
    Oversized(usize),
}

/// Reads a frame's length.
async fn read_len<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<usize> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    Ok(u32::from_be_bytes(len) as usize)
}

/// Reads a frame's `len` bytes.
async fn read_body<T: AsyncRead + Unpin + Send>(io: &mut T, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Vec<u8>> {
    let len = read_len(io).await?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    read_body(io, len).await
}

/// Reads one request frame: [`Request::Oversized`], without reading on, when it
/// announces more than `max` bytes.
pub async fn read_request_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
) -> io::Result<Request> {
    let len = read_len(io).await?;
    if len > max {
        return Ok(Request::Oversized(len));
    }
    Ok(Request::Frame(read_body(io, len).await?))
}

/// Writes one frame, refusing to send more than `max` bytes (the peer would drop it).
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    data: &[u8],
    max: usize,
) -> io::Result<()> {
    if data.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes exceeds the limit of {max}", data.len()),
        ));
    }
    io.write_all(&(data.len() as u32).to_be_bytes()).await?;
    io.write_all(data).await?;
    io.close().await
}

fn protocol_of(name: &StreamProtocol) -> io::Result<Protocol> {
    Protocol::from_name(name.as_ref()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::Unsupported,
            format!("unknown protocol {name}"),
        )
    })
}

#[async_trait]
impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_request_frame(io, protocol_of(p)?.max_request()).await
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, protocol_of(p)?.max_response()).await
    }

    async fn write_request<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            Request::Frame(data) => write_frame(io, &data, protocol_of(p)?.max_request()).await,
            Request::Oversized(len) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a refused frame of {len} bytes is not sent"),
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        p: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res, protocol_of(p)?.max_response()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use futures::io::Cursor;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn frames_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut buf = Cursor::new(Vec::new());
            block_on(write_frame(&mut buf, &data, 4096)).unwrap();
            let mut rd = Cursor::new(buf.into_inner());
            prop_assert_eq!(block_on(read_frame(&mut rd, 4096)).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut rd = Cursor::new(data);
            let _ = block_on(read_frame(&mut rd, 16));
        }
    }

    #[test]
    fn oversized_frames_are_refused_both_ways() {
        let mut buf = Cursor::new(Vec::new());
        assert!(block_on(write_frame(&mut buf, &[0u8; 17], 16)).is_err());
        // A header announcing 4 GiB is refused without allocating.
        let mut rd = Cursor::new(vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let err = block_on(read_frame(&mut rd, 1 << 20)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A truncated frame is an error, not a short read.
        let mut rd = Cursor::new(vec![0, 0, 0, 9, 1, 2]);
        assert!(block_on(read_frame(&mut rd, 16)).is_err());
    }

    #[test]
    fn an_oversized_request_is_refused_unread() {
        // The announced bytes are not there: a reader waiting for them would fail.
        let mut rd = Cursor::new(vec![0x40, 0, 0, 0, 1, 2, 3]);
        let req = block_on(read_request_frame(&mut rd, 1 << 20)).unwrap();
        assert_eq!(req, Request::Oversized(1 << 30));
        assert_eq!(rd.position(), 4, "read past the header");
        let mut rd = Cursor::new(vec![0, 0, 0, 3, 1, 2, 3]);
        let req = block_on(read_request_frame(&mut rd, 16)).unwrap();
        assert_eq!(req, Request::Frame(vec![1, 2, 3]));
    }
}
