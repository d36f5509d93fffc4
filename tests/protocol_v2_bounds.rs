//! IDENTIFY held to the broker's own bounds, byte for byte as Go nsqd 1.3.0
//! (`nsqd/client_v2.go` SetHeartbeatInterval, SetOutputBuffer, SetMsgTimeout): with
//! `--max-heartbeat-interval`, `--max-output-buffer-size`, `--max-output-buffer-timeout`,
//! `--min-output-buffer-timeout` and `--max-msg-timeout` away from their defaults, each bound's
//! last accepted value gets `OK` and the first refused one Go's fatal
//! `E_BAD_BODY IDENTIFY <field> (<v>) is invalid`; `--output-buffer-timeout` is what a client
//! that does not ask gets. (tests/protocol_v2_identify.rs covers the default bounds.)

mod common;

use std::time::Duration;

use common::stop;
use common::v2::{frame_bytes, identify_cmd, Client, RESPONSE};
use common::v2_cases::{case, run_cases, Before};
use serde_json::Value;

/// A broker whose IDENTIFY bounds all differ from Go's defaults. The buffer-timeout maximum
/// has a fraction of a millisecond, which Go's `max / time.Millisecond` drops.
async fn start_bounded(dir: &std::path::Path) -> rnsq::nsqd::Nsqd {
    let mut opts = common::options(dir);
    opts.max_heartbeat_interval = Duration::from_secs(5);
    opts.max_output_buffer_size = 1024;
    opts.max_output_buffer_timeout = Duration::from_micros(2_000_500);
    opts.output_buffer.min_timeout = Duration::from_millis(100);
    opts.output_buffer.timeout = Duration::from_millis(500);
    opts.max_msg_timeout = Duration::from_secs(10);
    common::start_with(opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bound_accepts_its_edge_and_refuses_one_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = start_bounded(dir.path()).await;

    for json in [
        r#"{"heartbeat_interval":1000}"#,
        r#"{"heartbeat_interval":5000}"#,
        r#"{"output_buffer_size":64}"#,
        r#"{"output_buffer_size":1024}"#,
        r#"{"output_buffer_timeout":100}"#,
        r#"{"output_buffer_timeout":2000}"#,
        r#"{"msg_timeout":1000}"#,
        r#"{"msg_timeout":10000}"#,
        // -1 (off) is always allowed, whatever the bounds.
        r#"{"heartbeat_interval":-1,"output_buffer_size":-1,"output_buffer_timeout":-1}"#,
    ] {
        let mut client = Client::connect(&nsqd).await;
        client.send(&identify_cmd(json)).await;
        let frame = client.frame().await;
        assert_eq!(frame.raw, frame_bytes(RESPONSE, b"OK"), "{json}: {frame:?}");
    }

    let bad = |json: &str, text: &str| case(Before::Nothing, identify_cmd(json), text, true);
    run_cases(
        &nsqd,
        vec![
            bad(
                r#"{"heartbeat_interval":999}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid",
            ),
            bad(
                r#"{"heartbeat_interval":5001}"#,
                "E_BAD_BODY IDENTIFY heartbeat interval (5001) is invalid",
            ),
            bad(
                r#"{"output_buffer_size":63}"#,
                "E_BAD_BODY IDENTIFY output buffer size (63) is invalid",
            ),
            bad(
                r#"{"output_buffer_size":1025}"#,
                "E_BAD_BODY IDENTIFY output buffer size (1025) is invalid",
            ),
            bad(
                r#"{"output_buffer_timeout":99}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (99) is invalid",
            ),
            bad(
                r#"{"output_buffer_timeout":25}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (25) is invalid",
            ),
            bad(
                r#"{"output_buffer_timeout":2001}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (2001) is invalid",
            ),
            // Go checks the timeout before the size: both bad names the timeout.
            bad(
                r#"{"output_buffer_size":1025,"output_buffer_timeout":2001}"#,
                "E_BAD_BODY IDENTIFY output buffer timeout (2001) is invalid",
            ),
            bad(
                r#"{"msg_timeout":999}"#,
                "E_BAD_BODY IDENTIFY msg timeout (999) is invalid",
            ),
            bad(
                r#"{"msg_timeout":10001}"#,
                "E_BAD_BODY IDENTIFY msg timeout (10001) is invalid",
            ),
        ],
    )
    .await;
    stop(nsqd).await;
}

/// `--output-buffer-timeout` is the timeout of a client that does not ask (or asks 0), and
/// the negotiation reply says so; one that asks gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_buffer_timeout_is_the_clients_default() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = start_bounded(dir.path()).await;
    for (json, want) in [
        (r#"{"feature_negotiation":true}"#, 500),
        (
            r#"{"feature_negotiation":true,"output_buffer_timeout":0}"#,
            500,
        ),
        (
            r#"{"feature_negotiation":true,"output_buffer_timeout":150}"#,
            150,
        ),
        (
            r#"{"feature_negotiation":true,"output_buffer_timeout":-1}"#,
            0,
        ),
    ] {
        let mut client = Client::connect(&nsqd).await;
        client.send(&identify_cmd(json)).await;
        let frame = client.frame().await;
        assert_eq!(frame.kind, RESPONSE, "{json}: {frame:?}");
        let reply: Value = serde_json::from_slice(&frame.data).expect("JSON reply");
        assert_eq!(reply["output_buffer_timeout"], want, "{json}: {reply}");
        assert_eq!(reply["max_msg_timeout"], 10_000, "{json}: {reply}");
        client.expect_open().await;
    }
    stop(nsqd).await;
}
