//! nsqd's TCP protocol V2 over a real socket, byte for byte, against what Go nsqd 1.3.0 sends
//! (`nsqd/protocol_v2.go`, `nsqd/client_v2.go`, `nsqd/channel.go`, `nsqd/tcp.go`): the magic,
//! frames, every error text and whether it closes the connection, client states, IDENTIFY,
//! PUB/MPUB/DPUB, RDY flow control, FIN/REQ/TOUCH, in-flight timeouts, heartbeats, fan-out,
//! and a consumer that never reads.
//!
//! A small raw client reads frames `[4-byte BE size][4-byte BE type][data]` with a timeout on
//! every read, so a missing frame fails the test instead of hanging it. Sleeps appear only
//! where the assertion is about time itself.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::v2::{
    dpub_cmd, identify_cmd, mpub_cmd, pub_cmd, subscribe, with_body, with_size, Client, Next,
    QUIET, UNKNOWN_ID, WAIT,
};
use common::v2_cases::{case, run_cases, Before};
use common::{find_channel, find_topic, stop, wait_channel_stat, wait_topic_count};
use tokio::time::{sleep_until, timeout, Instant};

// ---------------------------------------------------------------------------------------------
// Handshake, NOP, PUB, message frames, FIN
// ---------------------------------------------------------------------------------------------

/// tcp.go: anything but `"  V2"` gets one error frame whose data is exactly `E_BAD_PROTOCOL`
/// (Go logs "bad protocol magic '...'" but does not send it), then the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_magic_gets_one_error_frame_then_close() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    for magic in [&b"XXXX"[..], b"  V1", b" V2 "] {
        let mut client = Client::raw(&nsqd).await;
        client.send(magic).await;
        let frame = client.frame().await;
        assert_eq!(
            frame.raw,
            [&[0, 0, 0, 18, 0, 0, 0, 1][..], b"E_BAD_PROTOCOL"].concat(),
            "magic {magic:?}: got {frame:?}"
        );
        client.expect_closed().await;
    }
    stop(nsqd).await;
}

/// NOP answers nothing: the next frame after NOP + PUB is the PUB's `OK`. A trailing `\r` is
/// stripped from command lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nop_sends_nothing_and_crlf_lines_work() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = Client::connect(&nsqd).await;
    client.line("NOP").await;
    client.line("NOP").await;
    client.send(&pub_cmd("nop_topic", b"after nop")).await;
    client.expect_ok().await;

    client.send(b"NOP\r\n").await;
    client
        .send(&[&b"PUB crlf_topic\r\n"[..], &[0, 0, 0, 2], b"hi"].concat())
        .await;
    client.expect_ok().await;
    client.expect_quiet(Duration::from_millis(100)).await;

    let h = common::base(nsqd.http_address());
    wait_topic_count(&h, "crlf_topic", 1).await;
    stop(nsqd).await;
}

/// channel.go: a FIN for a message in flight to another client of the same channel fails with
/// `client does not own message`, not fatal; the owner's FIN still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_of_another_clients_message_fails_non_fatally() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut owner = subscribe(&nsqd, "owned", "c", 1).await;
    let mut other = subscribe(&nsqd, "owned", "c", 0).await;
    Client::connect(&nsqd).await.publish("owned", b"mine").await;
    let msg = owner.expect_message().await;

    other.line(&format!("FIN {}", msg.id)).await;
    other
        .expect_error(&format!(
            "E_FIN_FAILED FIN {} failed client does not own message",
            msg.id
        ))
        .await;
    other.expect_open().await;
    other.line(&format!("REQ {} 0", msg.id)).await;
    other
        .expect_error(&format!(
            "E_REQ_FAILED REQ {} failed client does not own message",
            msg.id
        ))
        .await;
    other.line(&format!("TOUCH {}", msg.id)).await;
    other
        .expect_error(&format!(
            "E_TOUCH_FAILED TOUCH {} failed client does not own message",
            msg.id
        ))
        .await;
    other.expect_open().await;

    owner.line(&format!("FIN {}", msg.id)).await;
    owner.expect_open().await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Errors: text, and fatal or not
// ---------------------------------------------------------------------------------------------

/// Every error Go's protocol_v2.go sends for malformed commands on a default broker, each on
/// a fresh connection: all fatal except E_FIN_FAILED, E_REQ_FAILED and E_TOUCH_FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_frames_and_which_close_the_connection() {
    use Before::{Nothing, Sub};
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let long = "a".repeat(65);
    let mpub_raw = |rest: &[u8]| [&b"MPUB t\n"[..], rest].concat();

    let cases = vec![
        case(Nothing, "FOO\n", "E_INVALID invalid command FOO", true),
        case(Nothing, "\n", "E_INVALID invalid command ", true),
        case(Nothing, "pub t\n", "E_INVALID invalid command pub", true),
        // PUB
        case(
            Nothing,
            "PUB\n",
            "E_INVALID PUB insufficient number of parameters",
            true,
        ),
        case(
            Nothing,
            pub_cmd("bad!topic", b"x"),
            "E_BAD_TOPIC PUB topic name \"bad!topic\" is not valid",
            true,
        ),
        case(
            Nothing,
            pub_cmd(&long, b"x"),
            &format!("E_BAD_TOPIC PUB topic name \"{long}\" is not valid"),
            true,
        ),
        case(
            Nothing,
            with_size("PUB t", 0),
            "E_BAD_MESSAGE PUB invalid message body size 0",
            true,
        ),
        case(
            Nothing,
            with_size("PUB t", u32::MAX),
            "E_BAD_MESSAGE PUB invalid message body size -1",
            true,
        ),
        case(
            Nothing,
            with_size("PUB t", 1_048_577),
            "E_BAD_MESSAGE PUB message too big 1048577 > 1048576",
            true,
        ),
        // MPUB (Go repeats the code in the bad-topic description)
        case(
            Nothing,
            "MPUB\n",
            "E_INVALID MPUB insufficient number of parameters",
            true,
        ),
        case(
            Nothing,
            mpub_cmd("bad!topic", &[b"x"]),
            "E_BAD_TOPIC E_BAD_TOPIC MPUB topic name \"bad!topic\" is not valid",
            true,
        ),
        case(
            Nothing,
            with_size("MPUB t", 0),
            "E_BAD_BODY MPUB invalid body size 0",
            true,
        ),
        case(
            Nothing,
            with_size("MPUB t", 5_242_881),
            "E_BAD_BODY MPUB body too big 5242881 > 5242880",
            true,
        ),
        case(
            Nothing,
            with_body("MPUB t", &0u32.to_be_bytes()),
            "E_BAD_BODY MPUB invalid message count 0",
            true,
        ),
        case(
            Nothing,
            mpub_raw(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]),
            "E_BAD_MESSAGE MPUB invalid message(0) body size 0",
            true,
        ),
        case(
            Nothing,
            // The whole body is sent, as a client would.
            mpub_cmd("t", &[&vec![b'x'; 1_048_577]]),
            "E_BAD_MESSAGE MPUB message too big 1048577 > 1048576",
            true,
        ),
        // DPUB
        case(
            Nothing,
            "DPUB t\n",
            "E_INVALID DPUB insufficient number of parameters",
            true,
        ),
        case(
            Nothing,
            dpub_cmd("bad!topic", 10, b"x"),
            "E_BAD_TOPIC DPUB topic name \"bad!topic\" is not valid",
            true,
        ),
        case(
            Nothing,
            with_body("DPUB t abc", b"x"),
            "E_INVALID DPUB could not parse timeout abc",
            true,
        ),
        case(
            Nothing,
            with_body("DPUB t -1", b"x"),
            "E_INVALID DPUB could not parse timeout -1",
            true,
        ),
        case(
            Nothing,
            dpub_cmd("t", 3_600_001, b"x"),
            "E_INVALID DPUB timeout 3600001 out of range 0-3600000",
            true,
        ),
        case(
            Nothing,
            with_size("DPUB t 10", 0),
            "E_BAD_MESSAGE DPUB invalid message body size 0",
            true,
        ),
        case(
            Nothing,
            with_size("DPUB t 10", 1_048_577),
            "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576",
            true,
        ),
        // SUB
        case(
            Nothing,
            "SUB t\n",
            "E_INVALID SUB insufficient number of parameters",
            true,
        ),
        case(
            Nothing,
            "SUB bad!topic c\n",
            "E_BAD_TOPIC SUB topic name \"bad!topic\" is not valid",
            true,
        ),
        case(
            Nothing,
            "SUB t bad!chan\n",
            "E_BAD_CHANNEL SUB channel name \"bad!chan\" is not valid",
            true,
        ),
        case(
            Nothing,
            format!("SUB t {long}\n"),
            &format!("E_BAD_CHANNEL SUB channel name \"{long}\" is not valid"),
            true,
        ),
        // AUTH with no auth server configured
        case(
            Nothing,
            with_body("AUTH x", b"secret"),
            "E_INVALID AUTH invalid number of parameters",
            true,
        ),
        case(
            Nothing,
            with_size("AUTH", 0),
            "E_BAD_BODY AUTH invalid body size 0",
            true,
        ),
        case(
            Nothing,
            with_body("AUTH", b"secret"),
            "E_AUTH_DISABLED AUTH disabled",
            true,
        ),
        // RDY, FIN, REQ, TOUCH once subscribed
        case(
            Sub,
            "RDY abc\n",
            "E_INVALID RDY could not parse count abc",
            true,
        ),
        case(
            Sub,
            "RDY -1\n",
            "E_INVALID RDY could not parse count -1",
            true,
        ),
        case(
            Sub,
            "RDY 2501\n",
            "E_INVALID RDY count 2501 out of range 0-2500",
            true,
        ),
        case(
            Sub,
            "FIN\n",
            "E_INVALID FIN insufficient number of params",
            true,
        ),
        case(Sub, "FIN abc\n", "E_INVALID Invalid Message ID", true),
        case(
            Sub,
            "FIN 0123456789abcdef0\n",
            "E_INVALID Invalid Message ID",
            true,
        ),
        case(
            Sub,
            format!("REQ {UNKNOWN_ID}\n"),
            "E_INVALID REQ insufficient number of params",
            true,
        ),
        case(Sub, "REQ abc 0\n", "E_INVALID Invalid Message ID", true),
        case(
            Sub,
            format!("REQ {UNKNOWN_ID} abc\n"),
            "E_INVALID REQ could not parse timeout abc",
            true,
        ),
        case(
            Sub,
            "TOUCH\n",
            "E_INVALID TOUCH insufficient number of params",
            true,
        ),
        case(Sub, "TOUCH abc\n", "E_INVALID Invalid Message ID", true),
        // the three non-fatal ones
        case(
            Sub,
            format!("FIN {UNKNOWN_ID}\n"),
            "E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight",
            false,
        ),
        case(
            Sub,
            format!("REQ {UNKNOWN_ID} 0\n"),
            "E_REQ_FAILED REQ 0123456789abcdef failed ID not in flight",
            false,
        ),
        case(
            Sub,
            format!("REQ {UNKNOWN_ID} 1000\n"),
            "E_REQ_FAILED REQ 0123456789abcdef failed ID not in flight",
            false,
        ),
        case(
            Sub,
            format!("TOUCH {UNKNOWN_ID}\n"),
            "E_TOUCH_FAILED TOUCH 0123456789abcdef failed ID not in flight",
            false,
        ),
    ];
    run_cases(&nsqd, cases).await;
    stop(nsqd).await;
}

/// Size limits come from the options: max-msg-size for PUB/DPUB/each MPUB message,
/// max-body-size for MPUB, IDENTIFY and AUTH bodies; the MPUB count is capped at
/// (max-body-size - 4) / 5. Exactly max-msg-size is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_follow_options() {
    use Before::Nothing;
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_msg_size = 10;
    options.max_body_size = 100;
    let nsqd = common::start_with(options).await;

    let mut client = Client::connect(&nsqd).await;
    client.publish("limits", b"0123456789").await;
    client.send(&dpub_cmd("limits", 10, b"0123456789")).await;
    client.expect_ok().await;
    client
        .send(&mpub_cmd("limits", &[b"0123456789", b"x"]))
        .await;
    client.expect_ok().await;

    let cases = vec![
        case(
            Nothing,
            pub_cmd("limits", b"0123456789a"),
            "E_BAD_MESSAGE PUB message too big 11 > 10",
            true,
        ),
        case(
            Nothing,
            dpub_cmd("limits", 10, b"0123456789a"),
            "E_BAD_MESSAGE DPUB message too big 11 > 10",
            true,
        ),
        case(
            Nothing,
            mpub_cmd("limits", &[b"abc", b"0123456789a"]),
            "E_BAD_MESSAGE MPUB message too big 11 > 10",
            true,
        ),
        case(
            Nothing,
            with_size("MPUB limits", 101),
            "E_BAD_BODY MPUB body too big 101 > 100",
            true,
        ),
        case(
            Nothing,
            with_body("MPUB limits", &20u32.to_be_bytes()),
            "E_BAD_BODY MPUB invalid message count 20",
            true,
        ),
        case(
            Nothing,
            with_size("IDENTIFY", 101),
            "E_BAD_BODY IDENTIFY body too big 101 > 100",
            true,
        ),
        case(
            Nothing,
            with_size("AUTH", 101),
            "E_BAD_BODY AUTH body too big 101 > 100",
            true,
        ),
    ];
    run_cases(&nsqd, cases).await;
    stop(nsqd).await;
}

/// channel.go AddClient: beyond max-channel-consumers SUB fails with
/// `E_SUB_FAILED SUB failed consumers for <topic>:<channel> exceeds limit of <n>`, fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_beyond_max_channel_consumers_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_channel_consumers = 1;
    let nsqd = common::start_with(options).await;

    let mut first = subscribe(&nsqd, "crowd", "c", 0).await;
    let mut second = Client::connect(&nsqd).await;
    second.line("SUB crowd c").await;
    second
        .expect_error("E_SUB_FAILED SUB failed consumers for crowd:c exceeds limit of 1")
        .await;
    second.expect_closed().await;
    // Another channel of the same topic has its own limit.
    subscribe(&nsqd, "crowd", "d", 0).await.expect_open().await;
    first.expect_open().await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Client states
// ---------------------------------------------------------------------------------------------

/// init: RDY/FIN/REQ/TOUCH/CLS are refused. subscribed: IDENTIFY/SUB/AUTH are refused. All
/// fatal `E_INVALID cannot <CMD> in current state`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_the_wrong_state_are_fatal() {
    use Before::{Nothing, Sub};
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let cases = vec![
        case(
            Nothing,
            "RDY 1\n",
            "E_INVALID cannot RDY in current state",
            true,
        ),
        case(
            Nothing,
            format!("FIN {UNKNOWN_ID}\n"),
            "E_INVALID cannot FIN in current state",
            true,
        ),
        case(
            Nothing,
            format!("REQ {UNKNOWN_ID} 0\n"),
            "E_INVALID cannot REQ in current state",
            true,
        ),
        case(
            Nothing,
            format!("TOUCH {UNKNOWN_ID}\n"),
            "E_INVALID cannot TOUCH in current state",
            true,
        ),
        case(
            Nothing,
            "CLS\n",
            "E_INVALID cannot CLS in current state",
            true,
        ),
        case(
            Sub,
            identify_cmd("{}"),
            "E_INVALID cannot IDENTIFY in current state",
            true,
        ),
        case(
            Sub,
            "SUB errors c\n",
            "E_INVALID cannot SUB in current state",
            true,
        ),
        case(
            Sub,
            "SUB other d\n",
            "E_INVALID cannot SUB in current state",
            true,
        ),
        case(
            Sub,
            with_body("AUTH", b"secret"),
            "E_INVALID cannot AUTH in current state",
            true,
        ),
    ];
    run_cases(&nsqd, cases).await;

    // PUB, MPUB, DPUB and NOP work in every state.
    let mut client = subscribe(&nsqd, "states", "c", 0).await;
    client.line("NOP").await;
    client.expect_open().await;
    client.send(&mpub_cmd("probe", &[b"a", b"b"])).await;
    client.expect_ok().await;
    client.send(&dpub_cmd("probe", 10, b"a")).await;
    client.expect_ok().await;
    stop(nsqd).await;
}

/// CLS → `CLOSE_WAIT`; then RDY is ignored (no error, nothing delivered); FIN still allowed
/// (non-fatal E_FIN_FAILED for an unknown ID); a second CLS is fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cls_answers_close_wait_then_rdy_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut client = subscribe(&nsqd, "closing", "c", 0).await;
    client.line("CLS").await;
    client.expect_response(b"CLOSE_WAIT").await;
    client.line("RDY 5").await;
    client.expect_open().await;

    Client::connect(&nsqd)
        .await
        .publish("closing", b"not for you")
        .await;
    client.expect_quiet(QUIET).await;

    client.line(&format!("FIN {UNKNOWN_ID}")).await;
    client
        .expect_error("E_FIN_FAILED FIN 0123456789abcdef failed ID not in flight")
        .await;
    client.expect_open().await;

    client.line("CLS").await;
    client
        .expect_error("E_INVALID cannot CLS in current state")
        .await;
    client.expect_closed().await;

    // The message stays for the next consumer.
    let mut next = subscribe(&nsqd, "closing", "c", 1).await;
    assert_eq!(next.expect_message().await.body, b"not for you");
    stop(nsqd).await;
}

/// CLS with a message in flight: it can still be FINed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fin_after_cls_finishes_in_flight_message() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut client = subscribe(&nsqd, "drain", "c", 1).await;
    Client::connect(&nsqd).await.publish("drain", b"m").await;
    let msg = client.expect_message().await;
    client.line("CLS").await;
    client.expect_response(b"CLOSE_WAIT").await;
    client.line(&format!("FIN {}", msg.id)).await;
    client.expect_open().await;
    wait_channel_stat(&h, "drain", "c", "in_flight_count", 0).await;
    wait_channel_stat(&h, "drain", "c", "depth", 0).await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// REQ, TOUCH, in-flight timeouts
// ---------------------------------------------------------------------------------------------

/// REQ 0 → redelivered at once with attempts 2 (same ID, body, timestamp); REQ 800 → deferred
/// (deferred_count 1), redelivered no sooner; a REQ timeout over max-req-timeout is clamped to
/// it, not refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn req_requeues_now_or_deferred_and_clamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_req_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "retry", "c", 1).await;
    Client::connect(&nsqd)
        .await
        .publish("retry", b"again")
        .await;
    let first = consumer.expect_message().await;
    assert_eq!(first.attempts, 1);

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 0", first.id)).await;
    let second = consumer.expect_message().await;
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "REQ 0 redelivered only after {:?}",
        sent.elapsed()
    );
    assert_eq!(second.attempts, 2);
    assert_eq!(
        (&second.id, &second.body, second.timestamp),
        (&first.id, &first.body, first.timestamp)
    );

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 800", second.id)).await;
    wait_channel_stat(&h, "retry", "c", "deferred_count", 1).await;
    let third = consumer.expect_message().await;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800),
        "REQ 800 redelivered after {elapsed:?}"
    );
    assert_eq!((third.id.as_str(), third.attempts), (first.id.as_str(), 3));

    let sent = Instant::now();
    consumer.line(&format!("REQ {} 3600000", third.id)).await;
    // Clamped to max-req-timeout (1 s): no error...
    consumer.expect_open().await;
    // ...and redelivered after about 1 s, not an hour.
    let fourth = consumer.expect_message().await;
    let elapsed = sent.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1000),
        "clamped REQ redelivered after {elapsed:?}"
    );
    assert_eq!(
        (fourth.id.as_str(), fourth.attempts),
        (first.id.as_str(), 4)
    );

    consumer.line(&format!("FIN {}", fourth.id)).await;
    consumer.expect_open().await;
    wait_channel_stat(&h, "retry", "c", "requeue_count", 3).await;
    wait_channel_stat(&h, "retry", "c", "in_flight_count", 0).await;
    wait_channel_stat(&h, "retry", "c", "deferred_count", 0).await;
    stop(nsqd).await;
}

/// With msg-timeout 1 s, a message not FINed is redelivered after ~1 s with attempts 2 and
/// timeout_count 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_message_times_out_and_is_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "slow", "c", 1).await;
    Client::connect(&nsqd).await.publish("slow", b"work").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();
    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950),
        "redelivered after {elapsed:?}, before msg-timeout"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    assert_eq!(again.body, b"work");
    wait_channel_stat(&h, "slow", "c", "timeout_count", 1).await;

    consumer.line(&format!("FIN {}", again.id)).await;
    consumer.expect_open().await;
    wait_channel_stat(&h, "slow", "c", "in_flight_count", 0).await;
    stop(nsqd).await;
}

/// TOUCH at ~600 ms of a 1 s timeout pushes the deadline to ~1.6 s: nothing is redelivered
/// before 1.2 s (the original deadline passed), and the redelivery comes after 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_extends_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    let nsqd = common::start_with(options).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "touchy", "c", 1).await;
    Client::connect(&nsqd).await.publish("touchy", b"t").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();

    sleep_until(delivered + Duration::from_millis(600)).await;
    consumer.line(&format!("TOUCH {}", first.id)).await;
    consumer
        .expect_quiet_until(delivered + Duration::from_millis(1200))
        .await;

    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "redelivered after {elapsed:?} despite TOUCH at 600 ms"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    wait_channel_stat(&h, "touchy", "c", "timeout_count", 1).await;
    stop(nsqd).await;
}

/// channel.go TouchMessage: a TOUCH never pushes the deadline past delivery +
/// max-msg-timeout (here 1.2 s, while TOUCH at 0.7 s + msg-timeout 1 s would give 1.7 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touch_is_capped_at_max_msg_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.msg_timeout = Duration::from_secs(1);
    options.max_msg_timeout = Duration::from_millis(1200);
    let nsqd = common::start_with(options).await;

    let mut consumer = subscribe(&nsqd, "capped", "c", 1).await;
    Client::connect(&nsqd).await.publish("capped", b"t").await;
    let first = consumer.expect_message().await;
    let delivered = Instant::now();
    sleep_until(delivered + Duration::from_millis(700)).await;
    consumer.line(&format!("TOUCH {}", first.id)).await;
    let again = consumer.expect_message().await;
    let elapsed = delivered.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1100) && elapsed < Duration::from_millis(1550),
        "redelivered after {elapsed:?}; Go caps the TOUCHed deadline at delivery + 1.2 s"
    );
    assert_eq!((again.id.as_str(), again.attempts), (first.id.as_str(), 2));
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// RDY flow control
// ---------------------------------------------------------------------------------------------

/// RDY 2 with 5 published: exactly 2 arrive until one is FINed; RDY 0 stops delivery; RDY
/// with no count means 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdy_limits_messages_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = subscribe(&nsqd, "flow", "c", 0).await;
    let mut producer = Client::connect(&nsqd).await;
    for i in 0..5 {
        producer.publish("flow", format!("m{i}").as_bytes()).await;
    }
    // RDY 0 after SUB: nothing yet.
    consumer.expect_quiet(QUIET).await;

    consumer.line("RDY 2").await;
    let mut seen = BTreeSet::new();
    let a = consumer.expect_message().await;
    let b = consumer.expect_message().await;
    consumer.expect_quiet(QUIET).await;
    wait_channel_stat(&h, "flow", "c", "in_flight_count", 2).await;

    consumer.line(&format!("FIN {}", a.id)).await;
    let c = consumer.expect_message().await;
    consumer.expect_quiet(QUIET).await;
    for msg in [&a, &b, &c] {
        seen.insert(String::from_utf8(msg.body.clone()).unwrap());
    }

    consumer.line(&format!("FIN {}", b.id)).await;
    consumer.line(&format!("FIN {}", c.id)).await;
    let d = consumer.expect_message().await;
    let e = consumer.expect_message().await;
    for msg in [&d, &e] {
        seen.insert(String::from_utf8(msg.body.clone()).unwrap());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3", "m4"]
    );

    // RDY 0 stops delivery (the probe's OK proves RDY 0 was processed first).
    consumer.line("RDY 0").await;
    consumer.expect_open().await;
    consumer.line(&format!("FIN {}", d.id)).await;
    consumer.line(&format!("FIN {}", e.id)).await;
    producer.publish("flow", b"held").await;
    consumer.expect_quiet(QUIET).await;

    // RDY with no count is RDY 1.
    consumer.line("RDY").await;
    let held = consumer.expect_message().await;
    assert_eq!(held.body, b"held");
    producer.publish("flow", b"next").await;
    consumer.expect_quiet(QUIET).await;
    consumer.line(&format!("FIN {}", held.id)).await;
    assert_eq!(consumer.expect_message().await.body, b"next");
    stop(nsqd).await;
}

/// max-rdy-count comes from the options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdy_range_follows_max_rdy_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = common::options(dir.path());
    options.max_rdy_count = 5;
    let nsqd = common::start_with(options).await;

    let mut ok = subscribe(&nsqd, "r", "c", 5).await;
    ok.expect_open().await;
    let mut bad = subscribe(&nsqd, "r", "c", 6).await;
    bad.expect_error("E_INVALID RDY count 6 out of range 0-5")
        .await;
    bad.expect_closed().await;
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Fan-out and sharing
// ---------------------------------------------------------------------------------------------

/// Two channels each get every message; two consumers of one channel share its messages,
/// each delivered once in total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_fan_out_and_consumers_share() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let mut first = subscribe(&nsqd, "fan", "one", 20).await;
    let mut second = subscribe(&nsqd, "fan", "two", 20).await;
    let mut share_a = subscribe(&nsqd, "fan", "shared", 20).await;
    let mut share_b = subscribe(&nsqd, "fan", "shared", 20).await;

    let mut producer = Client::connect(&nsqd).await;
    let expected: BTreeSet<String> = (0..10).map(|i| format!("m{i}")).collect();
    for body in &expected {
        producer.publish("fan", body.as_bytes()).await;
    }

    // Each channel gets every message, with the topic's ID and timestamp (topic.go copies
    // the message per channel keeping both).
    let mut copies = Vec::new();
    for consumer in [&mut first, &mut second] {
        let mut got = std::collections::BTreeMap::new();
        for _ in 0..10 {
            let msg = consumer.expect_message().await;
            consumer.line(&format!("FIN {}", msg.id)).await;
            let body = String::from_utf8(msg.body).unwrap();
            assert!(got.insert(body, (msg.id, msg.timestamp)).is_none());
        }
        assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), expected);
        consumer.expect_quiet(QUIET).await;
        copies.push(got);
    }
    assert_eq!(
        copies[0], copies[1],
        "channels got different IDs or timestamps"
    );

    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "shared channel delivered only {got:?}"
        );
        for consumer in [&mut share_a, &mut share_b] {
            if let Next::Frame(frame) = consumer.next_within(Duration::from_millis(20)).await {
                let msg = frame.message();
                assert_eq!(msg.attempts, 1);
                consumer.line(&format!("FIN {}", msg.id)).await;
                got.push(String::from_utf8(msg.body).unwrap());
            }
        }
    }
    share_a.expect_quiet(QUIET).await;
    share_b.expect_quiet(Duration::from_millis(50)).await;
    got.sort();
    assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Names, pause, delete, ephemeral channels
// ---------------------------------------------------------------------------------------------

/// Names follow `^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1..64 bytes including the suffix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_and_channel_names_follow_nsq_rules() {
    use Before::Nothing;
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;

    let longest = "a".repeat(64);
    let longest_ephemeral = format!("{}#ephemeral", "b".repeat(54));
    let mut client = Client::connect(&nsqd).await;
    for name in [
        "a.b-c_D9",
        longest.as_str(),
        "x#ephemeral",
        &longest_ephemeral,
    ] {
        client.publish(name, b"ok").await;
    }
    let mut consumer = Client::connect(&nsqd).await;
    consumer
        .line(&format!("SUB {longest_ephemeral} {longest_ephemeral}"))
        .await;
    consumer.expect_ok().await;

    let too_long_ephemeral = format!("{}#ephemeral", "b".repeat(55));
    // (raw name bytes, the name as Go's %q prints it)
    let bad_names: Vec<(Vec<u8>, String)> = vec![
        (b"#ephemeral".to_vec(), r##""#ephemeral""##.into()),
        (
            b"a#ephemeral#ephemeral".to_vec(),
            r##""a#ephemeral#ephemeral""##.into(),
        ),
        (b"a#eph".to_vec(), r##""a#eph""##.into()),
        (b"a\tb".to_vec(), r##""a\tb""##.into()),
        (b"a\x01b".to_vec(), r##""a\x01b""##.into()),
        ("ü".as_bytes().to_vec(), r##""ü""##.into()),
        (b"a\xffb".to_vec(), r##""a\xffb""##.into()),
        (b"a\"b".to_vec(), r##""a\"b""##.into()),
        (
            too_long_ephemeral.clone().into_bytes(),
            format!("\"{too_long_ephemeral}\""),
        ),
    ];
    let mut cases = Vec::new();
    for (name, quoted) in bad_names {
        let mut command = [&b"PUB "[..], &name, b"\n"].concat();
        command.extend_from_slice(&[0, 0, 0, 1, b'x']);
        cases.push(case(
            Nothing,
            command,
            &format!("E_BAD_TOPIC PUB topic name {quoted} is not valid"),
            true,
        ));
    }
    cases.push(case(
        Nothing,
        "SUB t c#ephemeral#ephemeral\n",
        "E_BAD_CHANNEL SUB channel name \"c#ephemeral#ephemeral\" is not valid",
        true,
    ));
    run_cases(&nsqd, cases).await;
    stop(nsqd).await;
}

/// A paused channel delivers nothing until unpaused; a paused topic copies nothing to its
/// channels until unpaused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_topic_or_channel_holds_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());
    let mut producer = Client::connect(&nsqd).await;

    let mut consumer = subscribe(&nsqd, "pausing", "c", 10).await;
    let reply = common::post(&format!("{h}/channel/pause?topic=pausing&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    producer.publish("pausing", b"held by channel").await;
    consumer.expect_quiet(QUIET).await;
    let reply = common::post(&format!("{h}/channel/unpause?topic=pausing&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let msg = consumer.expect_message().await;
    assert_eq!(msg.body, b"held by channel");
    consumer.line(&format!("FIN {}", msg.id)).await;

    let reply = common::post(&format!("{h}/topic/pause?topic=pausing")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    producer.publish("pausing", b"held by topic").await;
    consumer.expect_quiet(QUIET).await;
    let reply = common::post(&format!("{h}/topic/unpause?topic=pausing")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(consumer.expect_message().await.body, b"held by topic");
    stop(nsqd).await;
}

/// channel.go exit: deleting a channel (or its topic) closes its consumers' connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_channel_or_topic_disconnects_its_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut on_channel = subscribe(&nsqd, "doomed", "c", 1).await;
    let mut on_other = subscribe(&nsqd, "doomed", "d", 1).await;
    let reply = common::post(&format!("{h}/channel/delete?topic=doomed&channel=c")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    on_channel.expect_closed().await;
    on_other.expect_open().await;

    let reply = common::post(&format!("{h}/topic/delete?topic=doomed")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    on_other.expect_closed().await;
    stop(nsqd).await;
}

/// An ephemeral channel goes when its last consumer leaves; an ephemeral topic goes with its
/// last channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_channel_and_topic_go_with_their_last_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let first = subscribe(&nsqd, "lasting", "c#ephemeral", 0).await;
    let second = subscribe(&nsqd, "lasting", "c#ephemeral", 0).await;
    let only = subscribe(&nsqd, "brief#ephemeral", "c#ephemeral", 0).await;
    let stats = common::stats(&h).await;
    assert!(
        find_channel(&stats, "lasting", "c#ephemeral").is_some(),
        "{stats}"
    );
    assert!(
        find_channel(&stats, "brief#ephemeral", "c#ephemeral").is_some(),
        "{stats}"
    );

    drop(first);
    // One consumer left: the channel stays (checked after the other topic is gone below).
    drop(only);
    let hh = h.as_str();
    common::eventually(
        "ephemeral topic brief#ephemeral removed",
        move || async move {
            find_topic(&common::stats(hh).await, "brief#ephemeral")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stats = common::stats(&h).await;
    assert!(
        find_channel(&stats, "lasting", "c#ephemeral").is_some(),
        "removed while a consumer remains: {stats}"
    );

    drop(second);
    common::eventually(
        "ephemeral channel lasting/c#ephemeral removed",
        move || async move {
            find_channel(&common::stats(hh).await, "lasting", "c#ephemeral")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stats = common::stats(&h).await;
    assert!(
        find_topic(&stats, "lasting").is_some(),
        "a normal topic stays: {stats}"
    );
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// Pipelining and partial writes
// ---------------------------------------------------------------------------------------------

/// Commands written back to back in one write are answered in order; a command split across
/// writes (even inside the size or body) is read whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_split_commands() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut client = Client::connect(&nsqd).await;
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend_from_slice(b"NOP\n");
        batch.extend_from_slice(&pub_cmd("piped", format!("p{i}").as_bytes()));
    }
    batch.extend_from_slice(&mpub_cmd("piped", &[b"m1", b"m2"]));
    batch.extend_from_slice(&dpub_cmd("piped", 0, b"d"));
    client.send(&batch).await;
    for _ in 0..52 {
        client.expect_ok().await;
    }
    wait_topic_count(&h, "piped", 53).await;

    let whole = pub_cmd("split", b"split body");
    for piece in [&whole[..2], &whole[2..8], &whole[8..11], &whole[11..]] {
        client.send(piece).await;
        tokio::task::yield_now().await;
    }
    client.expect_ok().await;
    let mut consumer = subscribe(&nsqd, "split", "c", 1).await;
    assert_eq!(consumer.expect_message().await.body, b"split body");
    stop(nsqd).await;
}

// ---------------------------------------------------------------------------------------------
// A consumer that never reads
// ---------------------------------------------------------------------------------------------

/// A consumer with RDY 2500 that never reads its socket while 20 MB go to its channel does not
/// stall the broker: PUBs, HTTP /ping and other consumers keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_that_never_reads_does_not_stall_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let stuck = subscribe(&nsqd, "flood", "stuck", 2500).await;
    let mut reader = subscribe(&nsqd, "flood", "reader", 100).await;

    let started = Instant::now();
    let mut producer = Client::connect(&nsqd).await;
    let body = vec![b'x'; 1_000_000];
    for _ in 0..20 {
        producer.publish("flood", &body).await;
    }

    let ping = timeout(WAIT, common::get(&format!("{h}/ping")))
        .await
        .expect("/ping answers while a consumer is stuck");
    assert_eq!((ping.status, ping.body.as_str()), (200, "OK"));

    let mut other = Client::connect(&nsqd).await;
    other.publish("flood", b"after the flood").await;
    other.publish("elsewhere", b"unrelated").await;

    let mut big = 0;
    for _ in 0..21 {
        let msg = reader.expect_message().await;
        reader.line(&format!("FIN {}", msg.id)).await;
        if msg.body.len() == body.len() {
            assert!(msg.body == body, "a 1 MB body came back altered");
            big += 1;
        } else {
            assert_eq!(msg.body, b"after the flood");
        }
    }
    assert_eq!(big, 20);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    drop(stuck);
    stop(nsqd).await;
}
