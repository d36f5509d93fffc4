//! HTTP `PUT /config/:opt`: the option's value, parsed as the handler parses it. The first
//! byte picks the option (`nsqlookupd_tcp_addresses`, `log_level`, or one that cannot be
//! changed); the rest is the body.
//!
//! Asserts: an empty or oversized body is 413 `INVALID_VALUE`; an accepted address list is
//! the body's JSON array of strings, each a valid `host:port`, and an accepted log level
//! prints as a name that parses back to it; other refusals are 400 with Go's codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rnsq::fuzzing::{parse_value, OptionChange};
use rnsq::options::{validate_host_port, LogLevel};

const LIMIT: i64 = 512;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let opt = match choice % 3 {
        0 => "nsqlookupd_tcp_addresses",
        1 => "log_level",
        _ => "max_msg_size",
    };
    match parse_value(opt, body, LIMIT) {
        Ok(OptionChange::LookupdTcpAddresses(addresses)) => {
            assert_eq!(opt, "nsqlookupd_tcp_addresses");
            let json: Vec<String> = serde_json::from_slice(body).expect("accepted JSON");
            assert_eq!(json, addresses);
            for a in &addresses {
                assert!(validate_host_port(a).is_ok());
            }
        }
        Ok(OptionChange::LogLevel(level)) => {
            assert_eq!(opt, "log_level");
            let again: LogLevel = level.to_string().parse().expect("a level's name parses");
            assert_eq!(again, level);
        }
        Err(e) => {
            if body.is_empty() || body.len() as i64 > LIMIT {
                assert_eq!((e.status.as_u16(), e.message), (413, "INVALID_VALUE"));
            } else if opt == "max_msg_size" {
                assert_eq!((e.status.as_u16(), e.message), (400, "INVALID_OPTION"));
            } else {
                assert_eq!((e.status.as_u16(), e.message), (400, "INVALID_VALUE"));
            }
        }
    }
});
