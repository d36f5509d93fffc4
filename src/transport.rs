//! A V2 connection's byte stream, upgradable in one place: plain TCP, then optionally TLS, then
//! optionally snappy or deflate on top (nsqd's order after IDENTIFY).
//!
//! The connection owns both halves: [`Inbound`] (buffered, decoded bytes the command reader
//! parses) and [`Sink`] (where the output buffer is written, through an optional
//! [`Encoder`]). An upgrade takes the halves apart and puts them back together with the new
//! layer; bytes the client sent before the upgrade that are already buffered are handed to the
//! new layer first (the start of a TLS handshake, or the first compressed command), never
//! dropped.

pub mod deflate;
mod prefixed;
pub mod snappy;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub use prefixed::Prefixed;

/// The TLS stream a connection upgrades to.
pub type TlsStream = tokio_rustls::server::TlsStream<Prefixed<TcpStream>>;

/// The size of the command reader's buffer (Go's `defaultBufferSize`).
pub const READ_BUFFER: usize = 16 * 1024;

/// The read side the command reader parses: buffered, already decrypted and decompressed.
pub type Inbound = BufReader<Source>;

/// Wraps a read side in the command reader's buffer.
pub fn inbound(source: Source) -> Inbound {
    BufReader::with_capacity(READ_BUFFER, source)
}

/// The read side of a connection, at whatever layer it was upgraded to.
pub enum Source {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream>),
    Snappy(Box<snappy::Decoder<Source>>),
    Deflate(Box<deflate::Decoder<Source>>),
}

/// The write side of a connection, below any compression (compression is the [`Encoder`]'s,
/// applied to whole output buffers).
pub enum Sink {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream>),
    /// Taken apart for an upgrade that failed: every write fails.
    Detached,
}

/// Compresses what the output buffer writes, one flush at a time.
pub enum Encoder {
    Snappy(Box<snappy::Encoder>),
    Deflate(deflate::Encoder),
}

/// A compression a client may negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Snappy,
    /// Raw DEFLATE at this level (1..=9).
    Deflate(u32),
}

impl Encoder {
    /// Starts a compressed stream.
    pub fn new(compression: Compression) -> Self {
        match compression {
            Compression::Snappy => Encoder::Snappy(Box::new(snappy::Encoder::new())),
            Compression::Deflate(level) => Encoder::Deflate(deflate::Encoder::new(level)),
        }
    }

    /// Appends the compressed form of `data` to `out`, flushed so that the client can decode
    /// every byte of `data` from what was appended so far.
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Encoder::Snappy(e) => {
                e.encode(data, out);
                Ok(())
            }
            Encoder::Deflate(e) => e.encode(data, out),
        }
    }
}

/// Puts a decoder for `compression` on top of `inbound`: the bytes it had buffered but not
/// yet handed out are the first the decoder reads.
pub fn compress_inbound(reader: Inbound, compression: Compression) -> Inbound {
    let pending = reader.buffer().to_vec();
    let source = reader.into_inner();
    let decoder = match compression {
        Compression::Snappy => Source::Snappy(Box::new(snappy::Decoder::new(source, pending))),
        Compression::Deflate(_) => {
            Source::Deflate(Box::new(deflate::Decoder::new(source, pending)))
        }
    };
    inbound(decoder)
}

/// Why a connection cannot be upgraded to TLS.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("the connection is not plain TCP any more")]
    NotPlain,
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
}

/// Takes a plain connection's halves back into one TCP stream, with the bytes the command
/// reader had buffered in front (the client may have sent its TLS hello with IDENTIFY).
pub fn reunite(inbound: Inbound, sink: Sink) -> Result<Prefixed<TcpStream>, UpgradeError> {
    let pending = inbound.buffer().to_vec();
    let (Source::Plain(read), Sink::Plain(write)) = (inbound.into_inner(), sink) else {
        return Err(UpgradeError::NotPlain);
    };
    let stream = read.reunite(write).map_err(|_| UpgradeError::NotPlain)?;
    Ok(Prefixed::new(pending, stream))
}

/// Splits an established TLS stream into the connection's halves.
pub fn split_tls(stream: TlsStream) -> (Inbound, Sink) {
    let (read, write) = tokio::io::split(stream);
    (inbound(Source::Tls(read)), Sink::Tls(write))
}

impl AsyncRead for Source {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Source::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Source::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Source::Snappy(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Source::Deflate(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

/// Reads what `source` has onto the end of `input` (up to 16 KiB at a time), for the
/// decoders. `Ready(Ok(true))`: the source has ended.
fn poll_fill<S: AsyncRead + Unpin>(
    source: &mut S,
    cx: &mut Context<'_>,
    input: &mut Vec<u8>,
) -> Poll<io::Result<bool>> {
    let start = input.len();
    input.resize(start + 16 * 1024, 0);
    let mut read = ReadBuf::new(&mut input[start..]);
    let polled = Pin::new(source).poll_read(cx, &mut read);
    let n = read.filled().len();
    input.truncate(start + n);
    polled.map_ok(|()| n == 0)
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection taken apart")
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Sink::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Sink::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Sink::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sink::Plain(s) => Pin::new(s).poll_flush(cx),
            Sink::Tls(s) => Pin::new(s).poll_flush(cx),
            Sink::Detached => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Sink::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Sink::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Sink::Detached => Poll::Ready(Ok(())),
        }
    }
}
