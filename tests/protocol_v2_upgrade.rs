//! The transport upgrades after IDENTIFY, byte for byte against Go nsqd 1.3.0
//! (`nsqd/protocol_v2.go` IDENTIFY, `nsqd/client_v2.go` UpgradeSnappy/UpgradeDeflate): the JSON
//! reply in plain text, then `OK` already compressed; commands and messages through the
//! compression both ways, with independent codecs on the client side (the `snap` and `flate2`
//! crates); what real clients send (a snappy stream identifier per message, as pynsq writes);
//! bytes pipelined before the upgrade's `OK`; both compressions refused; bombs bounded; /stats.
//!
//! Each test starts the broker in this process on port 0; the client side is blocking code
//! (`common::layered`) run off the async threads.

mod common;
#[path = "common/layered.rs"]
mod layered;

use common::v2::{identify_cmd, pub_cmd, with_body, with_size};
use layered::{client, client_stats, negotiate, round_trip, Layered, ERROR, OK_FRAME, RESPONSE};

fn bodies() -> Vec<Vec<u8>> {
    vec![
        b"small".to_vec(),
        b"compressible ".repeat(10_000),
        (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    ]
}

/// The masked CRC-32C of snappy's framing format.
fn masked_crc(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_answers_ok_compressed_byte_for_byte_and_carries_commands_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    let base = common::base(nsqd.http_address());
    let (mut c, local) = client(move || {
        let mut c = Layered::connect(address);
        let reply = negotiate(&mut c, r#"{"feature_negotiation":true,"snappy":true}"#);
        assert_eq!(reply["snappy"], true, "{reply}");
        assert_eq!(reply["deflate"], false, "{reply}");
        // golang/snappy's writer: the stream identifier, then the 10-byte OK frame as an
        // uncompressed chunk (too short to compress) with its masked CRC.
        let mut expected = b"\xff\x06\x00\x00sNaPpY\x01\x0e\x00\x00".to_vec();
        expected.extend_from_slice(&masked_crc(OK_FRAME).to_le_bytes());
        expected.extend_from_slice(OK_FRAME);
        assert_eq!(c.read_raw(expected.len()), expected);
        c.snappy(true);
        let local = c.local_addr();
        (c, local)
    })
    .await;
    let c = client(move || {
        round_trip(&mut c, "snappy_t", &bodies());
        c
    })
    .await;
    let seen = client_stats(&base, local).await;
    assert_eq!(seen["snappy"], true, "/stats: {seen}");
    assert_eq!(seen["deflate"], false, "/stats: {seen}");
    drop(c);
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_takes_a_stream_identifier_per_message_as_pynsq_writes() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    client(move || {
        let mut c = Layered::connect(address);
        negotiate(&mut c, r#"{"feature_negotiation":true,"snappy":true}"#);
        c.snappy(false);
        assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
        c.restart_snappy = true;
        round_trip(&mut c, "pynsq_t", &bodies());
    })
    .await;
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_answers_ok_compressed_at_the_clamped_level_and_carries_commands() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    let base = common::base(nsqd.http_address());
    let (mut c, local) = client(move || {
        // Asking for 9 with the default --max-deflate-level 6 gets 6.
        let mut c = Layered::connect(address);
        let reply = negotiate(
            &mut c,
            r#"{"feature_negotiation":true,"deflate":true,"deflate_level":9}"#,
        );
        assert_eq!(reply["deflate"], true, "{reply}");
        assert_eq!(reply["deflate_level"], 6, "{reply}");
        // The OK comes as raw DEFLATE ending in a sync flush (00 00 ff ff).
        let mut raw = Vec::new();
        while !raw.ends_with(&[0, 0, 0xff, 0xff]) {
            raw.extend(c.read_raw(1));
            assert!(raw.len() < 64, "no sync flush after OK: {raw:?}");
        }
        let mut inflated = Vec::new();
        let mut inflate = flate2::Decompress::new(false);
        inflated.reserve(64);
        inflate
            .decompress_vec(&raw, &mut inflated, flate2::FlushDecompress::Sync)
            .expect("raw DEFLATE");
        assert_eq!(inflated, OK_FRAME);
        // Go's level 3 request is honoured too (checked on a second connection).
        let mut three = Layered::connect(address);
        let reply = negotiate(
            &mut three,
            r#"{"feature_negotiation":true,"deflate":true,"deflate_level":3}"#,
        );
        assert_eq!(reply["deflate_level"], 3, "{reply}");
        // Carry on from the first connection with a fresh decoder past the OK.
        c.deflate_after(raw, 6);
        let local = c.local_addr();
        (c, local)
    })
    .await;
    let c = client(move || {
        round_trip(&mut c, "deflate_t", &bodies());
        c
    })
    .await;
    let seen = client_stats(&base, local).await;
    assert_eq!(seen["deflate"], true, "/stats: {seen}");
    assert_eq!(seen["snappy"], false, "/stats: {seen}");
    drop(c);
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_before_the_upgrades_ok_are_decoded_not_dropped() {
    // Go drops what a client sends before it has read the upgrade's OK (its new reader
    // starts on the socket, not on what the old buffer held); rnsq hands it to the decoder.
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    client(move || {
        for compression in ["snappy", "deflate"] {
            let mut c = Layered::connect(address);
            let identify = identify_cmd(&format!(
                r#"{{"feature_negotiation":true,"{compression}":true}}"#
            ));
            // IDENTIFY and, in the same write, a compressed PUB.
            let mut compressed = Vec::new();
            match compression {
                "snappy" => {
                    use std::io::Write;
                    let mut w = snap::write::FrameEncoder::new(&mut compressed);
                    w.write_all(&pub_cmd("piped", b"early")).unwrap();
                    w.flush().unwrap();
                }
                _ => {
                    use std::io::Write;
                    let mut w = flate2::write::DeflateEncoder::new(
                        &mut compressed,
                        flate2::Compression::new(6),
                    );
                    w.write_all(&pub_cmd("piped", b"early")).unwrap();
                    w.flush().unwrap();
                }
            }
            let mut both = identify;
            both.extend_from_slice(&compressed);
            c.send_raw(&both);
            let (kind, _) = c.frame();
            assert_eq!(kind, RESPONSE);
            match compression {
                "snappy" => c.snappy(false),
                _ => c.deflate(6),
            }
            assert_eq!(
                c.frame(),
                (RESPONSE, b"OK".to_vec()),
                "{compression}: upgrade OK"
            );
            assert_eq!(
                c.frame(),
                (RESPONSE, b"OK".to_vec()),
                "{compression}: the PUB"
            );
        }
    })
    .await;
    common::wait_topic_count(&common::base(nsqd.http_address()), "piped", 2).await;
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_compressions_fail_and_disabled_ones_are_answered_false() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    client(move || {
        let mut c = Layered::connect(address);
        c.send(&identify_cmd(
            r#"{"feature_negotiation":true,"snappy":true,"deflate":true}"#,
        ));
        assert_eq!(
            c.frame(),
            (
                ERROR,
                b"E_IDENTIFY_FAILED cannot enable both deflate and snappy compression".to_vec()
            )
        );
        assert!(c.closed(), "the error is fatal");
    })
    .await;
    common::stop(nsqd).await;

    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.snappy = false;
    opts.deflate = false;
    let nsqd = common::start_with(opts).await;
    let address = nsqd.tcp_address();
    client(move || {
        let mut c = Layered::connect(address);
        let reply = negotiate(
            &mut c,
            r#"{"feature_negotiation":true,"snappy":true,"deflate":true,"deflate_level":2}"#,
        );
        assert_eq!(reply["snappy"], false, "{reply}");
        assert_eq!(reply["deflate"], false, "{reply}");
        assert_eq!(reply["deflate_level"], 6, "{reply}");
        // Still plain.
        round_trip(&mut c, "plain_t", &[b"x".to_vec()]);
    })
    .await;
    common::stop(nsqd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_closes_the_connection_and_the_broker_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let address = nsqd.tcp_address();
    client(move || {
        // 64 MiB of zeros as one "command line": a few hundred kilobytes on the wire.
        for compression in ["snappy", "deflate"] {
            let mut c = Layered::connect(address);
            negotiate(
                &mut c,
                &format!(r#"{{"feature_negotiation":true,"{compression}":true}}"#),
            );
            match compression {
                "snappy" => c.snappy(false),
                _ => c.deflate(6),
            }
            assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
            let zeros = vec![0u8; 1 << 20];
            let mut closed = false;
            for _ in 0..64 {
                if c.try_send(&zeros).is_err() {
                    closed = true;
                    break;
                }
            }
            assert!(
                closed || c.closed(),
                "{compression}: a 64 MiB line is refused"
            );
        }
        // A message over --max-msg-size inside the compression is refused as in plain.
        let mut c = Layered::connect(address);
        negotiate(&mut c, r#"{"feature_negotiation":true,"snappy":true}"#);
        c.snappy(false);
        assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
        c.send(&with_size("PUB big", 2 << 20));
        assert_eq!(
            c.frame(),
            (
                ERROR,
                b"E_BAD_MESSAGE PUB message too big 2097152 > 1048576".to_vec()
            )
        );
        // And the broker serves the next client.
        let mut fresh = Layered::connect(address);
        negotiate(&mut fresh, r#"{"feature_negotiation":true,"deflate":true}"#);
        fresh.deflate(6);
        assert_eq!(fresh.frame(), (RESPONSE, b"OK".to_vec()));
        fresh.send(&with_body("PUB after", b"ok"));
        assert_eq!(fresh.frame(), (RESPONSE, b"OK".to_vec()));
    })
    .await;
    common::stop(nsqd).await;
}
