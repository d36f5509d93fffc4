//! `rnsq bench pump`: the ceiling for the reader's figure. One process, one loopback
//! connection, no broker: a writer task encodes message frames
//! (`[size][type][8-byte timestamp][2-byte attempts][16-byte ID][body]`) into a buffer and
//! writes it out whenever it holds `buffer_size` bytes (nsqd's default output buffer is
//! 16 KiB), for `runfor`; a reader task reads them and splits them into frames.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::{rate_line, split_frame, BenchError};
use crate::console::say;
use crate::message::HEADER_LEN;
use crate::protocol::FRAME_MESSAGE;

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct PumpBench {
    /// Body bytes per message.
    pub size: usize,
    pub runfor: Duration,
    /// Bytes the writer gathers before each write.
    pub buffer_size: usize,
}

/// Runs the benchmark and prints its result line.
pub async fn run(bench: PumpBench) -> Result<(), BenchError> {
    if bench.size > 1024 * 1024 {
        return Err(BenchError::Invalid(format!(
            "--size {} is over 1 MiB",
            bench.size
        )));
    }
    let frame_len = 8 + HEADER_LEN + bench.size;
    say(format!(
        "bench pump: {frame_len}-byte message frames ({} byte bodies) over one loopback \
         connection, {} byte writes, for {:?}",
        bench.size, bench.buffer_size, bench.runfor
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
    let (sender, receiver) = (connected?, accepted?.0);
    sender.set_nodelay(true)?;
    receiver.set_nodelay(true)?;

    let started = Instant::now();
    let end = started + bench.runfor;
    let writer = tokio::spawn(write_frames(sender, bench.clone(), end));
    let reader = tokio::spawn(read_frames(receiver));
    let written = writer.await??;
    let read = reader.await??;
    let duration = started.elapsed();
    if read != written {
        return Err(BenchError::Protocol(format!(
            "the reader got {read} frames of the {written} written"
        )));
    }
    say(rate_line(duration, read, bench.size));
    Ok(())
}

/// Writes frames until `end`, then closes its side; returns how many it wrote.
async fn write_frames(
    mut stream: TcpStream,
    bench: PumpBench,
    end: Instant,
) -> Result<u64, BenchError> {
    let body = vec![b'a'; bench.size];
    let frame_size = (4 + HEADER_LEN + bench.size) as u32;
    let mut buffer = Vec::with_capacity(bench.buffer_size + 8 + frame_size as usize);
    let mut written = 0u64;
    let mut id = 0u64;
    while Instant::now() < end {
        while buffer.len() < bench.buffer_size.max(1) {
            id += 1;
            buffer.extend_from_slice(&frame_size.to_be_bytes());
            buffer.extend_from_slice(&FRAME_MESSAGE.to_be_bytes());
            buffer.extend_from_slice(&crate::message::now_ns().to_be_bytes());
            buffer.extend_from_slice(&1u16.to_be_bytes());
            buffer.extend_from_slice(&hex_id(id));
            buffer.extend_from_slice(&body);
            written += 1;
        }
        stream.write_all(&buffer).await?;
        buffer.clear();
    }
    stream.shutdown().await?;
    Ok(written)
}

/// `id` as 16 lowercase hex digits, as nsqd's message IDs are.
fn hex_id(id: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Reads frames until the writer closes; returns how many came.
async fn read_frames(mut stream: TcpStream) -> Result<u64, BenchError> {
    let mut input = BytesMut::with_capacity(256 * 1024);
    let mut frames = 0u64;
    loop {
        input.reserve(256 * 1024);
        if stream.read_buf(&mut input).await? == 0 {
            if !input.is_empty() {
                return Err(BenchError::Protocol("the stream ended mid-frame".into()));
            }
            return Ok(frames);
        }
        while let Some((frame_type, data)) = split_frame(&mut input)? {
            if frame_type != FRAME_MESSAGE || data.len() < HEADER_LEN {
                return Err(BenchError::Protocol("the pump sent a bad frame".into()));
            }
            frames += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_ids() {
        assert_eq!(&super::hex_id(0xabc), b"0000000000000abc");
    }
}
