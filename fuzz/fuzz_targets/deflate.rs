//! The raw DEFLATE decoder a V2 connection reads through after IDENTIFY grants deflate. The
//! first byte picks the mode: arbitrary bytes to decode, or data to encode (at a level and
//! in pieces from the input, each sync-flushed as the output buffer flushes) and decode
//! again. The decoder is fed as an upgrade feeds it: some bytes buffered, the rest streamed.
//!
//! Asserts: what the encoder writes decodes to exactly the data, every flush on its own
//! decodes to all the data flushed so far, and flate2's own decoder agrees; arbitrary bytes
//! never panic, each read hands out at most the caller's buffer, and the output is bounded
//! by DEFLATE's largest ratio (1032:1). (The runner's `-malloc_limit_mb` fails any single
//! large allocation.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnsq::transport::deflate::{Decoder, Encoder};
use rnsq_fuzz::read_all;

/// Output read from arbitrary bytes before the decoder is let be (a bomb can go on for long).
const LIMIT: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let split = usize::from(mode >> 1).min(data.len());
    if mode & 1 == 0 {
        let mut decoder = Decoder::new(&data[split..], data[..split].to_vec());
        // From 16 bytes (smaller than most chunks and blocks) to 2 KiB.
        let piece = 16 << (mode >> 5);
        let (out, _) = read_all(&mut decoder, piece, LIMIT);
        assert!(out.len() <= data.len() * 1032 + 64, "bounded output");
        return;
    }
    let mut encoder = Encoder::new(u32::from(mode >> 4) % 10);
    let mut wire = Vec::new();
    encoder.encode(&data[..split], &mut wire).expect("encode");
    let first_flush = wire.len();
    encoder.encode(&data[split..], &mut wire).expect("encode");

    let (first, ended) = read_all(
        &mut Decoder::new(&b""[..], wire[..first_flush].to_vec()),
        4096,
        usize::MAX,
    );
    ended.expect("a flush decodes on its own");
    assert_eq!(first, &data[..split]);

    let at = usize::from(mode) % (wire.len() + 1);
    let mut decoder = Decoder::new(&wire[at..], wire[..at].to_vec());
    let (out, ended) = read_all(&mut decoder, 4096, usize::MAX);
    ended.expect("what the encoder writes decodes");
    assert_eq!(out, data);

    let mut theirs = Vec::new();
    let _ = std::io::Read::read_to_end(
        &mut flate2::read::DeflateDecoder::new(&wire[..]),
        &mut theirs,
    );
    assert_eq!(theirs, data, "flate2 reads a sync-flushed stream");
});
