//! The TOML config file (`--config`) of nsqd and of nsqlookupd: defaults, then the file's
//! keys, then validation, as both daemons resolve it with no flags given.
//!
//! Asserts: input that is not UTF-8 never gets this far (the file is read as text); a
//! refusal names the file (or the option at fault); accepted nsqd options satisfy every
//! documented bound (node id, positive sizes, deflate level, latency percentiles, listen
//! addresses); resolving the same text again gives the same options.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rnsq::config::NsqdOptions;
use rnsq::nsqlookupd::NsqlookupdOptions;
use rnsq::options::{listen_address, ConfigError};

fn check_refusal(error: &ConfigError) {
    let text = error.to_string();
    match error {
        ConfigError::BadValue {
            origin: "option", ..
        } => {}
        _ => assert!(
            text.contains("fuzz.cfg"),
            "a refusal names the file: {text}"
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.cfg");
    match NsqdOptions::resolve_file_text(text, path) {
        Ok(opts) => {
            assert!((0..1024).contains(&opts.node_id));
            for v in [
                opts.max_msg_size,
                opts.max_body_size,
                opts.max_rdy_count,
                opts.max_output_buffer_size,
                opts.max_bytes_per_file,
                opts.sync_every,
            ] {
                assert!(v > 0);
            }
            assert!(!opts.sync_timeout.is_zero());
            assert!((1..=9).contains(&opts.max_deflate_level));
            assert!(opts.mem_queue_size >= 0 && opts.max_channel_consumers >= 0);
            assert!(opts
                .e2e_processing_latency_percentiles
                .iter()
                .all(|p| *p > 0.0 && *p <= 1.0));
            assert!(listen_address(&opts.tcp_address).is_ok());
            assert!(listen_address(&opts.http_address).is_ok());
            let again = NsqdOptions::resolve_file_text(text, path).expect("same text, same result");
            assert_eq!(again, opts);
        }
        Err(e) => check_refusal(&e),
    }
    match NsqlookupdOptions::resolve_file_text(text, path) {
        Ok(opts) => assert!(listen_address(&opts.tcp_address).is_ok()),
        Err(e) => check_refusal(&e),
    }
});
