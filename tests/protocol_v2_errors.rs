//! The V2 wire itself over a real socket, byte for byte against Go nsqd 1.3.0
//! (`nsqd/tcp.go`, `nsqd/protocol_v2.go`): the magic, NOP and `\r\n` lines, pipelined and
//! split commands, and every error text for a malformed command (bad parameters, bodies,
//! sizes from the options, names, commands in the wrong client state) with whether it closes
//! the connection.
//!
//! Each test starts the broker in this process on port 0 and talks raw TCP through
//! `common::v2`; the error tables run through `common::v2_cases`.

mod common;

use std::time::Duration;

use common::v2::{
    dpub_cmd, identify_cmd, mpub_cmd, pub_cmd, subscribe, with_body, with_size, Client, UNKNOWN_ID,
};
use common::v2_cases::{case, run_cases, Before};
use common::{stop, wait_topic_count};

// ---------------------------------------------------------------------------------------------
// The magic, framing, pipelining
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

// ---------------------------------------------------------------------------------------------
// Names
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
