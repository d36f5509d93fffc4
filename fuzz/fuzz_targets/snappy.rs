//! The snappy framing-format decoder a V2 connection reads through after IDENTIFY grants
//! snappy. The first byte picks the mode: arbitrary bytes to decode, or data to encode (in
//! pieces whose sizes come from the input) and decode again. Either way the decoder is fed
//! the way an upgrade feeds it: some bytes already buffered, the rest from the stream.
//!
//! Asserts: what the encoder writes decodes to exactly the data, and the snap crate's own
//! framing decoder reads it too; arbitrary bytes never panic, each read hands out at most
//! the caller's buffer, the output is bounded by what the input's chunks can claim (64 KiB
//! per chunk), and where both this decoder and snap's accept the bytes they agree. (The
//! runner's `-malloc_limit_mb` fails any single large allocation.)
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use rnsq::transport::snappy::{Decoder, Encoder};
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
        let (out, ended) = read_all(&mut decoder, piece, LIMIT);
        assert!(out.len() <= (data.len() / 8 + 1) * 65536, "bounded output");
        if ended.is_ok() && out.len() < LIMIT {
            let mut theirs = Vec::new();
            if snap::read::FrameDecoder::new(data)
                .read_to_end(&mut theirs)
                .is_ok()
            {
                assert_eq!(out, theirs, "agrees with snap where both accept");
            }
        }
        return;
    }
    let mut encoder = Encoder::new();
    let mut wire = Vec::new();
    let cut = split.min(data.len());
    encoder.encode(&data[..cut], &mut wire);
    encoder.encode(&data[cut..], &mut wire);
    let at = usize::from(mode) % (wire.len() + 1);
    let mut decoder = Decoder::new(&wire[at..], wire[..at].to_vec());
    let (out, ended) = read_all(&mut decoder, 4096, usize::MAX);
    ended.expect("what the encoder writes decodes");
    assert_eq!(out, data);
    let mut theirs = Vec::new();
    snap::read::FrameDecoder::new(&wire[..])
        .read_to_end(&mut theirs)
        .expect("snap reads it");
    assert_eq!(theirs, data);
});
