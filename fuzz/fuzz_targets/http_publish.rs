//! HTTP `/pub` and `/mpub` (text and `binary=true`): the query string and the body, parsed as
//! the handlers parse them. The first byte is the query's length; the query follows (as text,
//! as axum hands it over), then the body.
//!
//! Asserts: `/pub` accepts only a non-empty body, a valid topic (the query's first `topic`)
//! and a delay within the limit, and every refusal is a 400 with one of Go's codes; `/mpub`
//! text messages are exactly the body's non-empty lines, binary ones exactly its framing's
//! slices, each within the message limit, and every refusal is a 413 with one of Go's codes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rnsq::fuzzing::{is_binary, mpub_bodies, pub_request, Params};
use rnsq::names::is_valid_topic_name;

const MAX_MSG: i64 = 200;
const MAX_BODY: usize = 2000;
const MAX_DEFER: i64 = 3_600_000;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let len = usize::from(len).min(rest.len());
    let query = String::from_utf8_lossy(&rest[..len]).into_owned();
    let body = &rest[len..];
    let query = (!query.is_empty()).then_some(query.as_str());
    let params = Params::parse(query);

    if body.len() as i64 <= MAX_MSG {
        match pub_request(query, body, MAX_DEFER) {
            Ok((topic, deferred)) => {
                assert!(!body.is_empty());
                assert!(is_valid_topic_name(&topic));
                assert_eq!(params.get("topic"), Some(topic.as_str()));
                assert!(i64::from(deferred) <= MAX_DEFER);
                if params.get("defer").is_none() {
                    assert_eq!(deferred, 0);
                }
            }
            Err(e) => {
                assert_eq!(e.status.as_u16(), 400);
                assert!(
                    [
                        "MSG_EMPTY",
                        "MISSING_ARG_TOPIC",
                        "INVALID_TOPIC",
                        "INVALID_DEFER"
                    ]
                    .contains(&e.message),
                    "{e:?}"
                );
                if e.message == "MSG_EMPTY" {
                    assert!(body.is_empty());
                }
            }
        }
    }

    if body.len() > MAX_BODY {
        return;
    }
    let binary = is_binary(&params);
    let shared = Bytes::copy_from_slice(body);
    match mpub_bodies(shared.clone(), binary, MAX_MSG) {
        Ok(messages) => {
            for m in &messages {
                assert!(!m.is_empty() && m.len() as i64 <= MAX_MSG);
                // Shared with the body, not copied.
                let start = m.as_ptr() as usize - shared.as_ptr() as usize;
                assert_eq!(&shared[start..start + m.len()], &m[..]);
            }
            if binary {
                let mut framed = body[..4].to_vec();
                for m in &messages {
                    framed.extend_from_slice(&(m.len() as u32).to_be_bytes());
                    framed.extend_from_slice(m);
                }
                assert!(body.starts_with(&framed));
            } else {
                let lines: Vec<&[u8]> = body
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .collect();
                assert_eq!(lines.len(), messages.len());
                for (line, m) in lines.iter().zip(&messages) {
                    assert_eq!(*line, &m[..]);
                }
            }
        }
        Err(e) => {
            assert_eq!(e.status.as_u16(), 413);
            let codes: &[&str] = if binary {
                &["BAD_BODY", "BAD_MESSAGE"]
            } else {
                &["MSG_TOO_BIG"]
            };
            assert!(codes.contains(&e.message), "{e:?}");
        }
    }
});
