//! Raw DEFLATE (RFC 1951, no zlib or gzip wrapper), as nsqd's `compress/flate` speaks it: the
//! server's writer sync-flushes on every flush of the output buffer, so each one can be
//! decoded at once.
//!
//! The decoder inflates into the caller's buffer only, so memory stays bounded whatever the
//! input: a decompression bomb only yields a long stream that the command reader bounds as it
//! bounds a plain one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, ReadBuf};

/// Compresses each flush of the output buffer.
pub struct Encoder {
    compress: Compress,
}

impl Encoder {
    /// A raw DEFLATE stream at `level` (clamped to 0..=9).
    pub fn new(level: u32) -> Self {
        Encoder {
            compress: Compress::new(flate2::Compression::new(level.min(9)), false),
        }
    }

    /// Appends `data`, compressed and sync-flushed, to `out`.
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut consumed = 0;
        loop {
            // Room for the worst case of what is left plus the flush marker.
            out.reserve(data.len() - consumed + 64);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(&data[consumed..], out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("deflate failed: {e}")))?;
            consumed += (self.compress.total_in() - before) as usize;
            // The flush is complete when everything was taken and the output had room left.
            if consumed == data.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// Reads raw DEFLATE from `source`.
pub struct Decoder<S> {
    source: S,
    inflate: Decompress,
    /// Bytes read from `source` not yet inflated, from `input_at`.
    input: Vec<u8>,
    input_at: usize,
    ended: bool,
    finished: bool,
}

impl<S> Decoder<S> {
    /// A decoder that reads `pending` first, then `source`.
    pub fn new(source: S, pending: Vec<u8>) -> Self {
        Decoder {
            source,
            inflate: Decompress::new(false),
            input: pending,
            input_at: 0,
            ended: false,
            finished: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Decoder<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.finished {
                return Poll::Ready(Ok(()));
            }
            let (before_in, before_out) = (this.inflate.total_in(), this.inflate.total_out());
            let status = this
                .inflate
                .decompress(
                    &this.input[this.input_at..],
                    buf.initialize_unfilled(),
                    FlushDecompress::None,
                )
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("deflate stream corrupt: {e}"),
                    )
                })?;
            let taken = (this.inflate.total_in() - before_in) as usize;
            let produced = (this.inflate.total_out() - before_out) as usize;
            this.input_at += taken;
            buf.advance(produced);
            if status == Status::StreamEnd {
                this.finished = true;
            }
            if produced > 0 {
                return Poll::Ready(Ok(()));
            }
            if taken > 0 && this.input_at < this.input.len() {
                continue;
            }
            if this.ended {
                return Poll::Ready(if this.finished || this.input_at == this.input.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "deflate stream ended early",
                    ))
                });
            }
            if this.input_at == this.input.len() {
                this.input.clear();
                this.input_at = 0;
            }
            match super::poll_fill(&mut this.source, cx, &mut this.input) {
                Poll::Ready(Ok(ended)) => this.ended = ended,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn each_flush_decodes_at_once_and_the_whole_round_trips() {
        let mut encoder = Encoder::new(6);
        let mut wire = Vec::new();
        encoder.encode(b"first", &mut wire).expect("encode");
        // A sync flush ends with an empty stored block: 00 00 ff ff.
        assert!(wire.ends_with(&[0, 0, 0xff, 0xff]));
        let first_len = wire.len();
        let mut decoder = Decoder::new(&b""[..], wire[..first_len].to_vec());
        let mut out = [0u8; 5];
        decoder
            .read_exact(&mut out)
            .await
            .expect("first flush alone");
        assert_eq!(&out, b"first");

        let big: Vec<u8> = b"MPUB t\n".repeat(50_000);
        encoder.encode(&big, &mut wire).expect("encode");
        let mut all = Vec::new();
        Decoder::new(&b""[..], wire)
            .read_to_end(&mut all)
            .await
            .expect("decode");
        assert_eq!(&all[..5], b"first");
        assert_eq!(&all[5..], &big[..]);
    }

    #[tokio::test]
    async fn agrees_with_flate2s_own_raw_deflate() {
        use std::io::{Read, Write};
        let data = b"hello deflate ".repeat(500);
        let mut theirs =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(3));
        theirs.write_all(&data).expect("write");
        let wire = theirs.finish().expect("finish");
        let mut out = Vec::new();
        Decoder::new(&b""[..], wire)
            .read_to_end(&mut out)
            .await
            .expect("decode");
        assert_eq!(out, data);

        let mut ours = Vec::new();
        Encoder::new(1).encode(&data, &mut ours).expect("encode");
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&ours[..])
            .read_to_end(&mut back)
            .ok();
        assert_eq!(
            back, data,
            "flate2 reads a sync-flushed stream up to its flush"
        );
    }

    #[tokio::test]
    async fn garbage_is_an_error_and_a_bomb_comes_out_a_buffer_at_a_time() {
        let mut out = Vec::new();
        let garbage = Decoder::new(&b""[..], vec![0xff; 64])
            .read_to_end(&mut out)
            .await;
        assert!(garbage.is_err());

        let mut wire = Vec::new();
        Encoder::new(9)
            .encode(&vec![0u8; 8 << 20], &mut wire)
            .expect("encode");
        assert!(
            wire.len() < 64 * 1024,
            "8 MiB of zeros is a bomb: {}",
            wire.len()
        );
        // The decoder has no output buffer of its own: it inflates into the reader's buffer,
        // so each read hands out at most that much, however much the input expands.
        let mut decoder = Decoder::new(&b""[..], wire.to_vec());
        let mut buf = vec![0u8; 4096];
        let mut total = 0;
        loop {
            let n = decoder.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            assert!(n <= 4096);
            total += n;
        }
        assert_eq!(total, 8 << 20);
    }
}
