//! nsqlookupd's V1 command reader and commands (PING, IDENTIFY with its JSON body, REGISTER,
//! UNREGISTER), run by the server's own command loop over a connection's bytes after the
//! magic, against a fresh in-memory registration DB; then the connection ends.
//!
//! Asserts: the output is whole size-prefixed responses and nothing else; each is `OK`, the
//! JSON IDENTIFY reply, or an error, and an error is the last; no more responses than lines;
//! once the connection has ended its peer is in no registration; every registration held has
//! a valid topic (and channel) name.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rnsq::fuzzing::{lookupd_connection, LOOKUPD_PEER};
use rnsq::names::{is_valid_channel_name, is_valid_topic_name};
use rnsq::nsqlookupd::registration_db::Category;
use rnsq::nsqlookupd::{LookupdState, NsqlookupdOptions};
use rnsq_fuzz::block_on;

fn options() -> &'static NsqlookupdOptions {
    static OPTIONS: OnceLock<NsqlookupdOptions> = OnceLock::new();
    OPTIONS.get_or_init(NsqlookupdOptions::default)
}

fuzz_target!(|data: &[u8]| {
    let address: SocketAddr = ([127, 0, 0, 1], 4160).into();
    let state = Arc::new(LookupdState::new(
        options().clone(),
        address,
        address,
        "fuzz-host".into(),
    ));
    let out = block_on(lookupd_connection(&state, data));

    let lines = data.iter().filter(|b| **b == b'\n').count();
    let mut rest = &out[..];
    let mut responses = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "a torn response");
        let size = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        assert!(rest.len() >= 4 + size, "a response shorter than its size");
        responses.push(&rest[4..4 + size]);
        rest = &rest[4 + size..];
    }
    assert!(responses.len() <= lines);
    for (i, response) in responses.iter().enumerate() {
        if response.starts_with(b"E_") {
            assert_eq!(i, responses.len() - 1, "an error ends the connection");
        } else if *response != b"OK" {
            let reply: serde_json::Value =
                serde_json::from_slice(response).expect("IDENTIFY's reply is JSON");
            assert_eq!(reply["hostname"], "fuzz-host");
            assert_eq!(reply["tcp_port"], 4160);
        }
    }

    let db = state.db();
    assert!(db
        .lookup_registrations(&LOOKUPD_PEER.to_string())
        .is_empty());
    for (registration, _) in db.iter() {
        match registration.category {
            Category::Client => assert!(registration.key.is_empty()),
            Category::Topic => assert!(is_valid_topic_name(&registration.key)),
            Category::Channel => {
                assert!(is_valid_topic_name(&registration.key));
                assert!(is_valid_channel_name(&registration.subkey));
            }
        }
    }
});
