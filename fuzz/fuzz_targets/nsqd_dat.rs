//! `nsqd.dat` import: Go nsqd's metadata file in both encodings (1.3.0's key order with
//! `null` for an empty list, older releases' alphabetical keys with `[]`).
//!
//! Asserts: only blank input is `Empty`; every name imported is valid and not ephemeral, and
//! each name left out is listed; what was imported renders as Go 1.3.0 writes it, and both
//! that rendering and the older encoding of the same metadata parse back to it exactly, with
//! nothing left out.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rnsq::metadata::Metadata;
use rnsq::names::{is_ephemeral, is_valid_channel_name, is_valid_topic_name};
use rnsq::nsqd_dat::{parse, render, DatError};
use serde_json::json;

/// The metadata as releases before 1.3.0 wrote it: keys in alphabetical order, `[]` for an
/// empty list.
fn render_old(meta: &Metadata) -> Vec<u8> {
    let topics: Vec<_> = meta
        .topics
        .iter()
        .map(|t| {
            let channels: Vec<_> = t
                .channels
                .iter()
                .map(|c| json!({"name": c.name, "paused": c.paused}))
                .collect();
            json!({"channels": channels, "name": t.name, "paused": t.paused})
        })
        .collect();
    serde_json::to_vec(&json!({"topics": topics, "version": "0.3.8"})).expect("JSON")
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("nsqd.dat");
    let parsed = match parse(path, data) {
        Ok(parsed) => parsed,
        Err(DatError::Empty { .. }) => {
            assert!(data.iter().all(u8::is_ascii_whitespace));
            return;
        }
        Err(DatError::Json { line, .. }) => {
            assert!(line >= 1 || data.is_empty());
            return;
        }
        Err(e) => panic!("parsing bytes cannot fail to read: {e}"),
    };
    for topic in &parsed.metadata.topics {
        assert!(is_valid_topic_name(&topic.name) && !is_ephemeral(&topic.name));
        for channel in &topic.channels {
            assert!(is_valid_channel_name(&channel.name) && !is_ephemeral(&channel.name));
        }
    }
    for skipped in &parsed.skipped {
        assert!(skipped.kind == "topic" || skipped.kind == "channel");
    }
    let new = render(&parsed.metadata);
    assert!(new.ends_with(br#""version":"1.3.0"}"#));
    for encoding in [new.clone(), render_old(&parsed.metadata)] {
        let again = parse(path, &encoding).expect("a rendering parses");
        assert!(again.skipped.is_empty());
        assert_eq!(again.metadata, parsed.metadata);
    }
    assert_eq!(render(&parse(path, &new).expect("parses").metadata), new);
});
