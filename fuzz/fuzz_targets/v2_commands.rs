//! The V2 command reader: command lines, size prefixes, bodies, IDENTIFY JSON and its
//! negotiation, MPUB framing, read as the commands read them (the same functions, in the same
//! order) from a client's bytes after the magic. The first byte picks the broker's offer (TLS
//! certificate, AUTH, snappy, deflate); the rest is the stream.
//!
//! Asserts: a line is what came before its `\n` (less one `\r`), at most MAX_LINE bytes; a
//! refused line is one of MAX_LINE bytes without `\n` or the stream's unterminated end; the
//! parameters join back into the line; a body has the size its prefix said, within the limit;
//! MPUB's messages are its framing's slices, each within the limit; IDENTIFY's settings are
//! within nsqd's bounds, its reply is `OK` or JSON saying what was granted, and only what was
//! offered is granted; every error has an NSQ code and is fatal.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rnsq::cmd::{Negotiated, Reply};
use rnsq::config::NsqdOptions;
use rnsq::fuzzing::{
    delay_param, negotiate_settings, negotiate_upgrades, read_identify_body, read_message_body,
    read_mpub_body, split_messages, topic_param, IdentifyData, Offer,
};
use rnsq::protocol::{read_line, split_params, ClientError, MAX_LINE};
use rnsq::session::Settings;
use rnsq::transport::Compression;
use rnsq_fuzz::block_on;

/// Limits small enough for the fuzzer to cross them.
fn options(snappy: bool, deflate: bool) -> NsqdOptions {
    let mut opts = NsqdOptions::default();
    opts.max_msg_size = 300;
    opts.max_body_size = 1200;
    opts.snappy = snappy;
    opts.deflate = deflate;
    opts
}

fn all_options() -> &'static [NsqdOptions; 4] {
    static OPTIONS: OnceLock<[NsqdOptions; 4]> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        [
            options(false, false),
            options(true, false),
            options(false, true),
            options(true, true),
        ]
    })
}

fn check_error(error: &ClientError, codes: &[&str]) {
    assert!(
        codes.contains(&error.code),
        "unexpected code in {error:?} (expected one of {codes:?})"
    );
    assert!(error.fatal, "a body or framing error closes: {error:?}");
    assert!(!error.description.is_empty());
}

fn check_settings(settings: &Settings, opts: &NsqdOptions) {
    if let Some(hb) = settings.heartbeat_interval {
        assert!(
            hb >= Duration::from_secs(1)
                && hb <= opts.max_heartbeat_interval.max(Duration::from_secs(30))
        );
    }
    let size = settings.output_buffer_size as i64;
    assert!(size == 1 || size == 16 * 1024 || (64..=opts.max_output_buffer_size).contains(&size));
    if let Some(t) = settings.output_buffer_timeout {
        assert!(
            t <= opts
                .max_output_buffer_timeout
                .max(opts.output_buffer.timeout)
        );
    }
    assert!(settings.sample_rate <= 99);
    assert!(
        settings.msg_timeout == opts.msg_timeout
            || (settings.msg_timeout >= Duration::from_secs(1)
                && settings.msg_timeout <= opts.max_msg_timeout)
    );
}

async fn run(data: &[u8]) {
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let opts = &all_options()[usize::from(choice & 3)];
    let offer = Offer {
        tls_available: choice & 4 != 0,
        transport: Negotiated {
            tls: choice & 8 != 0,
            compressed: choice & 16 != 0,
        },
        auth_required: choice & 32 != 0,
    };
    let mut settings = Settings {
        heartbeat_interval: Some(Duration::from_secs(30)),
        output_buffer_size: 16 * 1024,
        output_buffer_timeout: Some(opts.output_buffer.timeout),
        msg_timeout: opts.msg_timeout,
        sample_rate: 0,
    };
    let mut rest: &[u8] = stream;
    let mut line = Vec::new();
    loop {
        let before = rest;
        let read = read_line(&mut rest, &mut line).await;
        let consumed = &before[..before.len() - rest.len()];
        match read {
            Ok(false) => {
                assert!(before.is_empty() && consumed.is_empty());
                return;
            }
            Err(e) => {
                assert!(!consumed.contains(&b'\n'));
                // Too long exactly at the limit; otherwise the input ended inside the line.
                if consumed.len() as u64 == MAX_LINE {
                    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                } else {
                    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                    assert!(rest.is_empty());
                }
                return;
            }
            Ok(true) => {}
        }
        assert!(consumed.len() as u64 <= MAX_LINE);
        let mut expected = line.clone();
        if consumed.len() == line.len() + 2 {
            expected.push(b'\r');
        }
        expected.push(b'\n');
        assert_eq!(
            consumed,
            &expected[..],
            "a line is what came before its newline"
        );
        assert!(!line.contains(&b'\n'));
        let params = split_params(&line);
        assert_eq!(params.join(&b' '), line);
        let name = params[0];
        match name {
            b"IDENTIFY" => {
                let body = match read_identify_body(&mut rest, opts.max_body_size).await {
                    Ok(body) => body,
                    Err(e) => return check_error(&e, &["E_BAD_BODY"]),
                };
                assert!(!body.is_empty() && body.len() as i64 <= opts.max_body_size);
                let data = match IdentifyData::parse(&body) {
                    Ok(data) => data,
                    Err(e) => return check_error(&e, &["E_BAD_BODY"]),
                };
                // Well-formed JSON, though a field nobody reads may hold what no value could:
                // invalid UTF-8 in a string, a number out of range (Go lets both pass too).
                let lossy = String::from_utf8_lossy(&body);
                assert!(serde_json::from_str::<serde::de::IgnoredAny>(&lossy).is_ok());
                settings = match negotiate_settings(&data, settings.clone(), opts) {
                    Ok(settings) => settings,
                    Err(e) => return check_error(&e, &["E_BAD_BODY"]),
                };
                check_settings(&settings, opts);
                match negotiate_upgrades(&data, &settings, opts, offer) {
                    Ok(Reply::Response(response)) => {
                        if response != b"OK" {
                            let reply: serde_json::Value =
                                serde_json::from_slice(&response).expect("reply is JSON");
                            assert_eq!(reply["tls_v1"], false);
                            assert_eq!(reply["snappy"], false);
                            assert_eq!(reply["deflate"], false);
                            assert_eq!(reply["auth_required"], offer.auth_required);
                        }
                    }
                    Ok(Reply::Upgrade {
                        response,
                        tls,
                        compression,
                    }) => {
                        let reply: serde_json::Value =
                            serde_json::from_slice(&response).expect("reply is JSON");
                        assert_eq!(reply["tls_v1"], tls);
                        assert!(tls || compression.is_some());
                        if tls {
                            assert!(offer.tls_available && !offer.transport.tls);
                        }
                        match compression {
                            Some(Compression::Snappy) => {
                                assert!(opts.snappy && !offer.transport.compressed);
                                assert_eq!(reply["snappy"], true);
                            }
                            Some(Compression::Deflate(level)) => {
                                assert!(opts.deflate && !offer.transport.compressed);
                                assert!((1..=9).contains(&level));
                                assert!(i64::from(level) <= opts.max_deflate_level);
                                assert_eq!(reply["deflate"], true);
                            }
                            None => {}
                        }
                        // The rest of the stream is in the new transport's encoding.
                        return;
                    }
                    Ok(Reply::Nothing) => panic!("IDENTIFY always answers"),
                    Err(e) => return check_error(&e, &["E_IDENTIFY_FAILED"]),
                }
            }
            b"PUB" | b"DPUB" => {
                let command = if name == b"PUB" { "PUB" } else { "DPUB" };
                let needed = if name == b"PUB" { 2 } else { 3 };
                let topic = match topic_param(command, &params, needed) {
                    Ok(topic) => topic,
                    Err(e) => return check_error(&e, &["E_INVALID", "E_BAD_TOPIC"]),
                };
                assert!(rnsq::names::is_valid_topic_name(topic));
                if name == b"DPUB" {
                    let max = opts.max_req_timeout.as_millis() as u64;
                    match delay_param(params[2], max) {
                        Ok(ms) => assert!(ms <= max),
                        Err(e) => return check_error(&e, &["E_INVALID"]),
                    }
                }
                match read_message_body(&mut rest, command, opts.max_msg_size).await {
                    Ok(body) => assert!(!body.is_empty() && body.len() as i64 <= opts.max_msg_size),
                    Err(e) => return check_error(&e, &["E_BAD_MESSAGE"]),
                }
            }
            b"MPUB" => {
                if let Err(e) = topic_param("MPUB", &params, 2) {
                    return check_error(&e, &["E_INVALID", "E_BAD_TOPIC"]);
                }
                let body =
                    match read_mpub_body(&mut rest, opts.max_body_size, opts.max_msg_size).await {
                        Ok(body) => body,
                        // A body cut short names the piece it stopped at, as Go's streaming reader.
                        Err(e) => return check_error(&e, &["E_BAD_BODY", "E_BAD_MESSAGE"]),
                    };
                assert!(!body.is_empty() && body.len() as i64 <= opts.max_body_size);
                check_mpub(Bytes::from(body), opts.max_msg_size);
            }
            _ => {}
        }
    }
}

/// MPUB's messages are exactly the framing's slices of the body.
fn check_mpub(body: Bytes, max_msg_size: i64) {
    match split_messages(body.clone(), max_msg_size) {
        Ok(messages) => {
            let count = i32::from_be_bytes(body[..4].try_into().expect("4 bytes"));
            assert_eq!(messages.len(), count as usize);
            let mut framed = body[..4].to_vec();
            for m in &messages {
                assert!(!m.is_empty() && m.len() as i64 <= max_msg_size);
                framed.extend_from_slice(&(m.len() as u32).to_be_bytes());
                framed.extend_from_slice(m);
            }
            assert!(body.starts_with(&framed), "messages re-frame into the body");
        }
        Err(e) => check_error(&e, &["E_BAD_BODY", "E_BAD_MESSAGE"]),
    }
}

fuzz_target!(|data: &[u8]| block_on(run(data)));
