//! A benchmark's connection to nsqd as one byte stream, at whatever layer it was upgraded to:
//! TCP, optionally TLS, optionally snappy or deflate on top (nsqd's order after IDENTIFY).
//!
//! [`Conn`] reads and writes the protocol's bytes; below it, `socket::Counted` counts the bytes that
//! really cross the socket, so a run can say what compression (or TLS) did to the traffic.
//! The plain path is what it was before TLS and compression existed: one buffered
//! `TcpStream`, no split, no copy; the only additions are an enum match and two counter
//! updates per system call.

mod socket;

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, BufReader, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

use socket::{Counted, Counters, Stream};

use super::tls_client::TlsClient;
use super::BenchError;
use crate::transport::{deflate, snappy, Compression, Encoder};

/// The read buffer (large: the reader drains whole output buffers of nsqd at once).
const READ_BUFFER: usize = 64 * 1024;

/// A connection's traffic so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Protocol bytes written (above compression and TLS).
    pub sent: u64,
    /// Protocol bytes read (above compression and TLS).
    pub received: u64,
    /// Bytes written to the socket.
    pub wire_sent: u64,
    /// Bytes read from the socket.
    pub wire_received: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        self.sent += other.sent;
        self.received += other.received;
        self.wire_sent += other.wire_sent;
        self.wire_received += other.wire_received;
    }
}

/// The read side's decompressor.
enum Decoded {
    Snappy(snappy::Decoder<ReadHalf<Stream>>),
    Deflate(deflate::Decoder<ReadHalf<Stream>>),
}

impl AsyncRead for Decoded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Decoded::Snappy(d) => Pin::new(d).poll_read(cx, buf),
            Decoded::Deflate(d) => Pin::new(d).poll_read(cx, buf),
        }
    }
}

/// A compressed connection: reads are decoded, each write is encoded whole (and sync-flushed,
/// as a client library compresses each command) and written out before the next one.
struct Compressed {
    reader: BufReader<Decoded>,
    writer: WriteHalf<Stream>,
    encoder: Encoder,
    /// Encoded bytes not yet written, from `out_at`.
    out: Vec<u8>,
    out_at: usize,
}

impl Compressed {
    /// Writes out what is left of the encoded output.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut self.writer).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.out.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }
}

enum Layers {
    /// Plain or TLS, uncompressed.
    Direct(BufReader<Stream>),
    Compressed(Box<Compressed>),
    /// Taken apart by an upgrade that failed: every read and write fails.
    Detached,
}

/// A connection to nsqd. Writes may be buffered until [`AsyncWriteExt::flush`]
/// (`tokio::io::AsyncWriteExt`), so a benchmark flushes after each command it wants answered.
pub struct Conn {
    layers: Layers,
    counters: Arc<Counters>,
    sent: u64,
    received: u64,
}

fn detached() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "connection taken apart by an upgrade",
    )
}

impl Conn {
    /// A plain connection over `stream`.
    pub fn new(stream: TcpStream) -> Conn {
        let counters = Arc::new(Counters::default());
        let counted = Counted::new(stream, counters.clone());
        Conn {
            layers: Layers::Direct(BufReader::with_capacity(
                READ_BUFFER,
                Stream::Plain(counted),
            )),
            counters,
            sent: 0,
            received: 0,
        }
    }

    /// The traffic so far, above and below compression and TLS.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            sent: self.sent,
            received: self.received,
            wire_sent: self.counters.sent.load(Ordering::Relaxed),
            wire_received: self.counters.received.load(Ordering::Relaxed),
        }
    }

    /// Performs the TLS handshake as `server_name` on a plain, uncompressed connection. Fails
    /// if the connection is already upgraded, if nsqd sent bytes before the handshake (it must
    /// not), or if the handshake fails; after a failure the connection is unusable.
    pub async fn start_tls(
        &mut self,
        tls: &TlsClient,
        server_name: ServerName<'static>,
    ) -> Result<(), BenchError> {
        let reader = match std::mem::replace(&mut self.layers, Layers::Detached) {
            Layers::Direct(reader) => reader,
            other => {
                self.layers = other;
                return Err(BenchError::Protocol("TLS after compression".into()));
            }
        };
        if !reader.buffer().is_empty() {
            return Err(BenchError::Protocol(
                "nsqd sent data before the TLS handshake".into(),
            ));
        }
        let Stream::Plain(counted) = reader.into_inner() else {
            return Err(BenchError::Protocol("TLS twice".into()));
        };
        let stream = tls
            .connector
            .connect(server_name, counted)
            .await
            .map_err(|e| BenchError::Protocol(format!("TLS handshake with nsqd failed: {e}")))?;
        self.layers = Layers::Direct(BufReader::with_capacity(
            READ_BUFFER,
            Stream::Tls(Box::new(stream)),
        ));
        Ok(())
    }

    /// Puts `compression` on the connection: what nsqd sent after its IDENTIFY response that
    /// is already buffered is the decoder's first input. Fails if it is already compressed
    /// (the connection stays as it was).
    pub fn compress(&mut self, compression: Compression) -> Result<(), BenchError> {
        let reader = match std::mem::replace(&mut self.layers, Layers::Detached) {
            Layers::Direct(reader) => reader,
            other => {
                self.layers = other;
                return Err(BenchError::Protocol("compressed twice".into()));
            }
        };
        let pending = reader.buffer().to_vec();
        let (read, write) = tokio::io::split(reader.into_inner());
        let decoded = match compression {
            Compression::Snappy => Decoded::Snappy(snappy::Decoder::new(read, pending)),
            Compression::Deflate(_) => Decoded::Deflate(deflate::Decoder::new(read, pending)),
        };
        self.layers = Layers::Compressed(Box::new(Compressed {
            reader: BufReader::with_capacity(READ_BUFFER, decoded),
            writer: write,
            encoder: Encoder::new(compression),
            out: Vec::new(),
            out_at: 0,
        }));
        Ok(())
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match &mut this.layers {
            Layers::Direct(r) => ready!(Pin::new(r).poll_read(cx, buf))?,
            Layers::Compressed(c) => ready!(Pin::new(&mut c.reader).poll_read(cx, buf))?,
            Layers::Detached => return Poll::Ready(Err(detached())),
        }
        this.received += (buf.filled().len() - before) as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = match &mut this.layers {
            Layers::Direct(w) => ready!(Pin::new(w).poll_write(cx, buf))?,
            Layers::Compressed(c) => {
                ready!(c.drain(cx))?;
                c.encoder.encode(buf, &mut c.out)?;
                // Start writing now; what does not fit is written by the next write or flush.
                if let Poll::Ready(Err(e)) = c.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                buf.len()
            }
            Layers::Detached => return Poll::Ready(Err(detached())),
        };
        this.sent += n as u64;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().layers {
            Layers::Direct(w) => Pin::new(w).poll_flush(cx),
            Layers::Compressed(c) => {
                ready!(c.drain(cx))?;
                Pin::new(&mut c.writer).poll_flush(cx)
            }
            Layers::Detached => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().layers {
            Layers::Direct(w) => Pin::new(w).poll_shutdown(cx),
            Layers::Compressed(c) => {
                ready!(c.drain(cx))?;
                Pin::new(&mut c.writer).poll_shutdown(cx)
            }
            Layers::Detached => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Each write of a compressed connection is one sync-flushed piece the server's decoder
    /// (transport's own) reads back whole, and both layers' byte counts add up.
    #[tokio::test]
    async fn compressed_writes_decode_on_the_other_side_and_are_counted() {
        for compression in [Compression::Snappy, Compression::Deflate(6)] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
            let mut conn = Conn::new(client.expect("connect"));
            let (server, _) = server.expect("accept");
            conn.compress(compression).expect("compress");
            let body = b"PUB t\n".repeat(1000);
            conn.write_all(&body).await.expect("write");
            conn.flush().await.expect("flush");
            conn.shutdown().await.expect("shutdown");
            let mut decoded = Vec::new();
            match compression {
                Compression::Snappy => snappy::Decoder::new(server, Vec::new())
                    .read_to_end(&mut decoded)
                    .await
                    .expect("snappy"),
                Compression::Deflate(_) => deflate::Decoder::new(server, Vec::new())
                    .read_to_end(&mut decoded)
                    .await
                    .expect("deflate"),
            };
            assert_eq!(decoded, body, "{compression:?}");
            let traffic = conn.traffic();
            assert_eq!(traffic.sent, body.len() as u64);
            assert!(
                traffic.wire_sent > 0 && traffic.wire_sent < traffic.sent / 10,
                "{compression:?}: {traffic:?}"
            );
        }
    }
}
