//! Snappy's framing format (as golang/snappy's `NewReader`/`NewWriter` speak it, which nsqd
//! uses): a stream identifier chunk, then chunks of at most 64 KiB of data, compressed or not,
//! each with the masked CRC-32C of its uncompressed bytes.
//!
//! The decoder accepts what real clients send: the stream identifier again mid-stream (pynsq
//! writes one per message), padding and skippable chunks (skipped as they arrive, never
//! buffered whole). Memory is bounded whatever the input: a chunk may not claim more than
//! 64 KiB of data, so a decompression bomb only yields a long stream that the command reader
//! bounds as it bounds a plain one.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// The most uncompressed data one chunk holds.
const MAX_BLOCK: usize = 65536;
const STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_PADDING: u8 = 0xfe;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;

/// The framing format's checksum: CRC-32C, rotated and offset so that checksums of data that
/// holds checksums stay useful.
fn masked_crc(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("snappy stream corrupt: {what}"),
    )
}

/// Writes the framing format. Each [`Encoder::encode`] call ends on a chunk boundary, so the
/// client can decode everything written so far.
pub struct Encoder {
    raw: snap::raw::Encoder,
    started: bool,
    scratch: Vec<u8>,
}

impl Encoder {
    #[allow(clippy::new_without_default)] // a stream's start, not a neutral value
    pub fn new() -> Self {
        Encoder {
            raw: snap::raw::Encoder::new(),
            started: false,
            scratch: vec![0; snap::raw::max_compress_len(MAX_BLOCK)],
        }
    }

    /// Appends `data` as chunks to `out` (after the stream identifier, the first time).
    pub fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.started {
            out.extend_from_slice(STREAM_IDENTIFIER);
            self.started = true;
        }
        for block in data.chunks(MAX_BLOCK) {
            let crc = masked_crc(block);
            // Compression of at most 64 KiB into a buffer of max_compress_len cannot fail;
            // should it, the block goes uncompressed.
            let compressed = self.raw.compress(block, &mut self.scratch).ok();
            // golang/snappy's rule: keep the compressed form only if it saves an eighth.
            let (kind, body) = match compressed {
                Some(n) if n < block.len() - block.len() / 8 => {
                    (CHUNK_COMPRESSED, &self.scratch[..n])
                }
                _ => (CHUNK_UNCOMPRESSED, block),
            };
            let len = (body.len() + 4) as u32;
            out.push(kind);
            out.extend_from_slice(&len.to_le_bytes()[..3]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(body);
        }
    }
}

/// Reads the framing format from `source`.
pub struct Decoder<S> {
    source: S,
    raw: snap::raw::Decoder,
    /// Bytes read from `source` not yet parsed, from `input_at`.
    input: Vec<u8>,
    input_at: usize,
    /// Decoded bytes not yet handed out, from `output_at`.
    output: Vec<u8>,
    output_at: usize,
    /// Bytes of a padding or skippable chunk still to discard.
    skipping: usize,
    seen_identifier: bool,
    /// The source has ended.
    ended: bool,
}

impl<S> Decoder<S> {
    /// A decoder that reads `pending` first, then `source`.
    pub fn new(source: S, pending: Vec<u8>) -> Self {
        Decoder {
            source,
            raw: snap::raw::Decoder::new(),
            input: pending,
            input_at: 0,
            output: Vec::with_capacity(MAX_BLOCK),
            output_at: 0,
            skipping: 0,
            seen_identifier: false,
            ended: false,
        }
    }

    /// Parses the next whole chunk from the input. `Ok(true)`: progress was made (maybe no
    /// output, e.g. a stream identifier); `Ok(false)`: more input is needed.
    fn parse_chunk(&mut self) -> io::Result<bool> {
        let available = &self.input[self.input_at..];
        if self.skipping > 0 {
            let n = self.skipping.min(available.len());
            self.skipping -= n;
            self.input_at += n;
            return Ok(n > 0);
        }
        if available.len() < 4 {
            return Ok(false);
        }
        let kind = available[0];
        let len = u32::from_le_bytes([available[1], available[2], available[3], 0]) as usize;
        match kind {
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED | CHUNK_STREAM_IDENTIFIER => {}
            CHUNK_PADDING | 0x80..=0xfd => {
                if !self.seen_identifier {
                    return Err(corrupt("no stream identifier"));
                }
                self.input_at += 4;
                self.skipping = len;
                return Ok(true);
            }
            _ => return Err(corrupt("reserved unskippable chunk")),
        }
        if kind == CHUNK_STREAM_IDENTIFIER {
            if len != 6 {
                return Err(corrupt("bad stream identifier"));
            }
            if available.len() < 10 {
                return Ok(false);
            }
            if &available[..10] != STREAM_IDENTIFIER {
                return Err(corrupt("bad stream identifier"));
            }
            self.seen_identifier = true;
            self.input_at += 10;
            return Ok(true);
        }
        if !self.seen_identifier {
            return Err(corrupt("no stream identifier"));
        }
        let limit = match kind {
            CHUNK_COMPRESSED => snap::raw::max_compress_len(MAX_BLOCK) + 4,
            _ => MAX_BLOCK + 4,
        };
        if len < 4 || len > limit {
            return Err(corrupt("chunk length out of bounds"));
        }
        if available.len() < 4 + len {
            return Ok(false);
        }
        let crc = u32::from_le_bytes([available[4], available[5], available[6], available[7]]);
        let body = &available[8..4 + len];
        self.output.clear();
        self.output_at = 0;
        if kind == CHUNK_COMPRESSED {
            let size = snap::raw::decompress_len(body).map_err(|_| corrupt("bad block"))?;
            if size > MAX_BLOCK {
                return Err(corrupt("block too large"));
            }
            self.output.resize(size, 0);
            self.raw
                .decompress(body, &mut self.output)
                .map_err(|_| corrupt("bad block"))?;
        } else {
            self.output.extend_from_slice(body);
        }
        if masked_crc(&self.output) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        self.input_at += 4 + len;
        Ok(true)
    }

    /// Drops parsed input, so the buffer holds at most one chunk and one read.
    fn compact(&mut self) {
        if self.input_at > 0 {
            self.input.drain(..self.input_at);
            self.input_at = 0;
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
        loop {
            if this.output_at < this.output.len() {
                let rest = &this.output[this.output_at..];
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.output_at += n;
                return Poll::Ready(Ok(()));
            }
            if this.parse_chunk()? {
                continue;
            }
            if this.ended {
                let partial = this.input.len() > this.input_at || this.skipping > 0;
                return Poll::Ready(if partial {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "snappy stream ended inside a chunk",
                    ))
                } else {
                    Ok(())
                });
            }
            this.compact();
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

    async fn decode(bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut decoder = Decoder::new(&b""[..], bytes);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn what_it_encodes_it_decodes_across_block_boundaries() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut encoder = Encoder::new();
        let mut wire = Vec::new();
        encoder.encode(&data[..100], &mut wire);
        encoder.encode(&data[100..], &mut wire);
        assert!(wire.starts_with(STREAM_IDENTIFIER));
        assert!(wire.len() < data.len() / 2, "compressible data compresses");
        assert_eq!(decode(wire).await.expect("decode"), data);
    }

    #[tokio::test]
    async fn agrees_with_the_snap_crates_own_framing() {
        use std::io::Write;
        let data = b"PUB topic\n\x00\x00\x00\x05hello".repeat(1000);
        let mut writer = snap::write::FrameEncoder::new(Vec::new());
        writer.write_all(&data).expect("write");
        let wire = writer.into_inner().expect("flush");
        assert_eq!(decode(wire).await.expect("decode"), data);

        let mut encoder = Encoder::new();
        let mut ours = Vec::new();
        encoder.encode(&data, &mut ours);
        let mut theirs = Vec::new();
        std::io::Read::read_to_end(&mut snap::read::FrameDecoder::new(&ours[..]), &mut theirs)
            .expect("snap reads ours");
        assert_eq!(theirs, data);
    }

    #[tokio::test]
    async fn a_stream_identifier_mid_stream_and_padding_are_accepted() {
        let mut wire = Vec::new();
        Encoder::new().encode(b"one ", &mut wire);
        wire.extend_from_slice(&[CHUNK_PADDING, 3, 0, 0, 9, 9, 9]);
        Encoder::new().encode(b"two", &mut wire);
        assert_eq!(decode(wire).await.expect("decode"), b"one two");
    }

    #[tokio::test]
    async fn corruption_is_an_error_not_a_panic() {
        let mut wire = Vec::new();
        Encoder::new().encode(b"hello world", &mut wire);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        assert!(decode(wire).await.is_err(), "checksum");
        assert!(
            decode(b"\x00\x05\x00\x00abcde".to_vec()).await.is_err(),
            "no identifier"
        );
        let mut reserved = STREAM_IDENTIFIER.to_vec();
        reserved.extend_from_slice(&[0x02, 0, 0, 0]);
        assert!(decode(reserved).await.is_err(), "reserved chunk");
        let mut huge = STREAM_IDENTIFIER.to_vec();
        huge.extend_from_slice(&[CHUNK_UNCOMPRESSED, 0xff, 0xff, 0xff]);
        assert!(decode(huge).await.is_err(), "a chunk claiming 16 MiB");
        let mut torn = Vec::new();
        Encoder::new().encode(b"hello world", &mut torn);
        torn.pop();
        assert!(decode(torn).await.is_err(), "ends inside a chunk");
    }

    #[tokio::test]
    async fn a_bomb_is_handed_out_in_bounded_pieces() {
        // 64 KiB of zeros compress to a few bytes; many such chunks decode to a long stream
        // that is read a buffer at a time.
        let mut wire = Vec::new();
        let mut encoder = Encoder::new();
        for _ in 0..64 {
            encoder.encode(&[0u8; MAX_BLOCK], &mut wire);
        }
        assert!(wire.len() < 64 * 4096);
        let mut decoder = Decoder::new(&b""[..], wire);
        let mut buf = [0u8; 1024];
        let n = decoder.read(&mut buf).await.expect("read");
        assert_eq!(n, 1024);
        assert!(decoder.output.capacity() <= 2 * MAX_BLOCK);
    }
}
