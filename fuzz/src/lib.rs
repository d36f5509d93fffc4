//! What the fuzz targets share: running a future that reads bytes in memory to its end, and
//! reading a decoder to its end in bounded pieces.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Runs `future` to completion on this thread. Everything the targets run reads from slices
/// and writes to vectors, which are always ready, so a future that stays pending is itself a
/// bug (a reader waiting on input that is all there): it panics, and the fuzzer reports it.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // A cooperative yield wakes at once; a few polls are allowed for one.
    for _ in 0..64 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
    panic!("a future over bytes in memory stayed pending");
}

/// Reads `reader` to its end, `piece` bytes at a time (each read must hand out at most that
/// much), stopping with what it has once `limit` bytes are out. Returns the bytes and how
/// reading ended.
pub fn read_all(
    reader: &mut (impl AsyncRead + Unpin),
    piece: usize,
    limit: usize,
) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; piece];
    loop {
        match block_on(reader.read(&mut buf)) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => {
                assert!(n <= piece, "a read handed out {n} bytes into {piece}");
                out.extend_from_slice(&buf[..n]);
                if out.len() >= limit {
                    return (out, Ok(()));
                }
            }
            Err(e) => return (out, Err(e)),
        }
    }
}
