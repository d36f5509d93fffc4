//! A metadata change that cannot reach the disk answers 500 with the reason and changes
//! nothing: not memory, not the store (after a restart it is still absent), while every change
//! answered 200 before it survives. The disk is a real, small tmpfs filled to the last byte.
//!
//! Messages likewise: with `--durable`, a publish the message log cannot write is refused
//! (TCP `E_PUB_FAILED`/`E_MPUB_FAILED`, HTTP 503 with the reason), `/ping` says `NOK`, every
//! message answered OK is delivered intact, publishing and `/ping` recover by themselves when
//! space returns, and a clean restart loses nothing acknowledged and unfinished.
//!
//! Mounting the tmpfs needs root (CI runs as root). Without it, or when the mount fails, each
//! test FAILS saying it did not run and why; a developer without root sets
//! `RNSQ_SKIP_ROOT_TESTS=1` to get a loud NOT RUN line instead and run the rest of the suite.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{base, post, post_body, stats};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Set to `1` to let a developer without root run the suite: the disk-full tests then report
/// NOT RUN (loudly, past the test harness's capture) instead of failing. Never set in CI.
const SKIP_ROOT_TESTS: &str = "RNSQ_SKIP_ROOT_TESTS";

/// The user ID we run as, if `id -u` says.
fn uid() -> Option<String> {
    let output = Command::new("id").arg("-u").output().ok()?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Mounts a `size` tmpfs at `at`, or says why it cannot.
fn mount_tmpfs(at: &Path, size: &str) -> Result<Mount, String> {
    match uid() {
        Some(uid) if uid == "0" => {}
        Some(uid) => return Err(format!("not running as root (uid {uid})")),
        None => return Err("cannot tell whether this is root (`id -u` failed)".into()),
    }
    std::fs::create_dir_all(at).map_err(|e| format!("cannot create {}: {e}", at.display()))?;
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mounting a tmpfs at {} failed ({}): {}",
            at.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(Mount(at.into()))
}

/// A `size` tmpfs mounted at `<new temporary directory>/mnt`, and the data path inside it.
///
/// Without root, or when the mount fails, the test FAILS saying that it did not run and why:
/// a disk-full test that cannot run must never look like one that passed. Only with
/// [`SKIP_ROOT_TESTS`]`=1` is that a loud NOT RUN line instead, and `None` (the caller
/// returns).
fn tmpfs(size: &str) -> Option<(tempfile::TempDir, Mount, PathBuf, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let why = match mount_tmpfs(&mnt, size) {
        Ok(mount) => {
            let data = mnt.join("data");
            return Some((dir, mount, mnt, data));
        }
        Err(why) => why,
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("a disk-full test")
        .to_string();
    if std::env::var(SKIP_ROOT_TESTS).is_ok_and(|v| v == "1") {
        // Straight to the process's stderr: the harness captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** NOT RUN: {test}: {why}; the disk-full tests need root to mount a tmpfs \
             ({SKIP_ROOT_TESTS}=1 is set, so this is not a failure) ***\n"
        );
        return None;
    }
    panic!(
        "the disk-full test {test} DID NOT RUN: {why}. It needs root to mount a small tmpfs \
         (CI runs as root). To run the rest of the suite without root, set \
         {SKIP_ROOT_TESTS}=1, and this test reports NOT RUN instead of failing."
    );
}

/// Runs this test binary's disk-full test `test` alone, as an unprivileged user (through
/// `setpriv` when we are root), with [`SKIP_ROOT_TESTS`] as given; its exit success and its
/// stdout and stderr together.
fn run_unprivileged(test: &str, skip: Option<&str>) -> (bool, String) {
    let me = std::env::current_exe().unwrap();
    let mut command = if uid().as_deref() == Some("0") {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&me);
        c
    } else {
        Command::new(&me)
    };
    command.args(["--exact", test, "--test-threads=1"]);
    command.env_remove(SKIP_ROOT_TESTS);
    if let Some(value) = skip {
        command.env(SKIP_ROOT_TESTS, value);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} unprivileged: {e}", me.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

// Regression (rnsq issue 9, item 5): without root the disk-full tests printed "SKIPPED" into
// the captured output and reported `ok`, so a run that tested nothing looked green.
#[test]
fn without_root_a_disk_full_test_fails_saying_it_did_not_run() {
    let test = "a_change_the_disk_refuses_answers_500_and_changes_nothing";
    let (passed, text) = run_unprivileged(test, None);
    assert!(!passed, "reported success without root:\n{text}");
    assert!(
        text.contains("DID NOT RUN") && text.contains("not running as root"),
        "the failure does not say the test did not run and why:\n{text}"
    );
    let (passed, text) = run_unprivileged(test, Some("1"));
    assert!(
        passed,
        "{SKIP_ROOT_TESTS}=1 did not let the suite go on:\n{text}"
    );
    assert!(
        text.contains(&format!("*** NOT RUN: {test}: not running as root")),
        "no NOT RUN line:\n{text}"
    );
    // Any other value is not an opt-out.
    let (passed, text) = run_unprivileged(test, Some("yes"));
    assert!(
        !passed,
        "{SKIP_ROOT_TESTS}=yes counted as an opt-out:\n{text}"
    );
}

fn fill(dir: &Path) -> std::fs::File {
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while filler.write_all(&small).is_ok() {}
    let _ = filler.flush();
    filler
}

fn topic_names(stats: &serde_json::Value) -> Vec<String> {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_change_the_disk_refuses_answers_500_and_changes_nothing() {
    let Some((_dir, mount, mnt, data)) = tmpfs("16m") else {
        return;
    };

    let nsqd = common::start(&data).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/topic/create?topic=before")).await.status,
        200
    );
    let filler = fill(&mnt);

    let mut answered = vec!["before".to_string()];
    let mut refused = None;
    for i in 0..50_000 {
        let name = format!("t{i:05}");
        let reply = post(&format!("{h}/topic/create?topic={name}")).await;
        match reply.status {
            200 => answered.push(name),
            500 => {
                refused = Some((name, reply.body));
                break;
            }
            other => panic!("unexpected status {other}: {}", reply.body),
        }
    }
    let (refused, body) = refused.expect("a full disk never refused a change");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    eprintln!(
        "disk full after {} creates answered 200; refused {refused}: {body}",
        answered.len()
    );
    assert_eq!(body["message"], "INTERNAL_ERROR");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "no reason given: {body}"
    );
    let names = topic_names(&stats(&h).await);
    assert!(
        !names.contains(&refused),
        "refused topic {refused} is in memory"
    );
    for name in &answered {
        assert!(names.contains(name), "topic {name} answered 200 is missing");
    }

    drop(filler);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    nsqd.shutdown().await;

    let nsqd = common::start(&data).await;
    let names = topic_names(&stats(&base(nsqd.http_address())).await);
    assert!(
        !names.contains(&refused),
        "refused topic {refused} came back after a restart"
    );
    for name in &answered {
        assert!(names.contains(name), "topic {name} answered 200 was lost");
    }
    nsqd.shutdown().await;
    drop(mount);
}

// ---------------------------------------------------------------------------------------------
// Messages on a full disk
// ---------------------------------------------------------------------------------------------

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use rnsq::nsqd::Nsqd;

use common::v2::{mpub_cmd, pub_cmd, subscribe, Client, Frame, Next, ERROR, MESSAGE};

/// How long we listen to check that nothing more comes.
const QUIET: Duration = Duration::from_millis(300);

/// `PUB topic` (or `MPUB topic` for several bodies); the answer frame.
async fn publish(client: &mut Client, topic: &str, bodies: &[Vec<u8>]) -> Frame {
    let command = if bodies.len() == 1 {
        pub_cmd(topic, &bodies[0])
    } else {
        let bodies: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        mpub_cmd(topic, &bodies)
    };
    client.send(&command).await;
    client.frame().await
}

/// Receives messages until every body of `want` has come (each once: a duplicate, or a body
/// not in `want`, fails), FINishing those `fin` selects; then checks that nothing more comes.
/// Returns how many were FINished.
async fn receive(
    client: &mut Client,
    want: &BTreeSet<Vec<u8>>,
    fin: impl Fn(&[u8]) -> bool,
    what: &str,
) -> usize {
    let deadline = Instant::now() + common::DEADLINE;
    let mut got = BTreeSet::new();
    let mut finished = 0;
    while got.len() < want.len() {
        match client.next_until(deadline).await {
            Next::Frame(frame) if frame.kind == MESSAGE => {
                assert!(frame.data.len() >= 26, "short message frame {frame:?}");
                let id = frame.data[10..26].to_vec();
                let body = frame.data[26..].to_vec();
                let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
                assert!(
                    want.contains(&body),
                    "{what}: delivered a message that was never acknowledged \
                     (or is garbage): {shown:?}... ({} bytes)",
                    body.len()
                );
                assert!(
                    got.insert(body.clone()),
                    "{what}: delivered twice: {shown:?}"
                );
                if fin(&body) {
                    let mut command = b"FIN ".to_vec();
                    command.extend_from_slice(&id);
                    command.push(b'\n');
                    client.send(&command).await;
                    finished += 1;
                }
            }
            Next::Frame(frame) if frame.is_heartbeat() => {
                client.line("NOP").await;
            }
            Next::Frame(frame) => panic!("{what}: unexpected frame {frame:?}"),
            Next::Quiet => {
                let missing: Vec<String> = want
                    .difference(&got)
                    .take(5)
                    .map(|b| String::from_utf8_lossy(&b[..b.len().min(24)]).into_owned())
                    .collect();
                panic!(
                    "{what}: only {} of {} acknowledged messages delivered within {:?}; \
                     missing e.g. {missing:?}",
                    got.len(),
                    want.len(),
                    common::DEADLINE
                );
            }
            Next::Closed(why) => panic!("{what}: consumer connection closed ({why})"),
        }
    }
    match client.next_until(Instant::now() + QUIET).await {
        Next::Quiet => {}
        Next::Frame(frame) if frame.kind == MESSAGE => {
            let body = &frame.data[26.min(frame.data.len())..];
            panic!(
                "{what}: delivered a message beyond the acknowledged ones: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
        }
        Next::Frame(frame) => {
            assert!(frame.is_heartbeat(), "{what}: unexpected frame {frame:?}");
            client.line("NOP").await;
        }
        Next::Closed(why) => panic!("{what}: consumer connection closed ({why})"),
    }
    finished
}

/// A body: `<tag>-<n>-` then letters derived from `n`, `len` bytes in all (so that garbage, a
/// cut, or another message's bytes cannot pass for it).
fn body(tag: &str, n: usize, len: usize) -> Vec<u8> {
    let mut out = format!("{tag}-{n:06}-").into_bytes();
    let mut j = 0;
    while out.len() < len {
        out.push(b'a' + ((n * 7 + j) % 26) as u8);
        j += 1;
    }
    out
}

/// Checks a refused HTTP publish: 503 `{"message":"EXITING","reason":"..."}` naming ENOSPC.
fn assert_http_refused(reply: &common::Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    let json: serde_json::Value = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", reply.body));
    assert_eq!(json["message"], "EXITING", "{what}: {json}");
    let reason = json["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("No space left on device"),
        "{what}: the reason does not say the disk is full: {json}"
    );
}

/// `/ping`: (status, body).
async fn ping(h: &str) -> (u16, String) {
    let reply = common::get(&format!("{h}/ping")).await;
    (reply.status, reply.body)
}

/// The sum of `finish_count` over the clients of `topic/channel`.
async fn finished_on(h: &str, topic: &str, channel: &str) -> u64 {
    let stats = stats(h).await;
    let Some(topic) = stats["topics"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["topic_name"] == topic))
    else {
        return 0;
    };
    let Some(channel) = topic["channels"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["channel_name"] == channel))
    else {
        return 0;
    };
    channel["clients"]
        .as_array()
        .map(|clients| {
            clients
                .iter()
                .filter_map(|c| c["finish_count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

fn durable_options(data: &Path) -> rnsq::config::NsqdOptions {
    rnsq::config::NsqdOptions {
        durable: true,
        max_bytes_per_file: 64 * 1024,
        mem_queue_size: 50,
        sync_timeout: Duration::from_millis(100),
        ..common::options(data)
    }
}

/// A `--durable` broker on `data` with topic `t` and its `channels` created: the broker, its
/// HTTP base and its TCP address.
async fn start_durable(data: &Path, channels: &[&str]) -> (Nsqd, String, SocketAddr) {
    let nsqd = common::start_with(durable_options(data)).await;
    let h = base(nsqd.http_address());
    let tcp = nsqd.tcp_address();
    assert_eq!(post(&format!("{h}/topic/create?topic=t")).await.status, 200);
    for channel in channels {
        let reply = post(&format!("{h}/channel/create?topic=t&channel={channel}")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    (nsqd, h, tcp)
}

/// The `--durable` broker on `data` started again, `/ping` OK at once: it and its TCP address.
async fn restart_durable(data: &Path) -> (Nsqd, SocketAddr) {
    let nsqd = common::start_with(durable_options(data)).await;
    let tcp = nsqd.tcp_address();
    assert_eq!(ping(&base(nsqd.http_address())).await, (200, "OK".into()));
    (nsqd, tcp)
}

/// PUBs `body(tag, i, len)` for `i` in `0..tries` until one is refused, adding each answered
/// OK to `acked`. The refusal must be a full disk's `E_PUB_FAILED`, and close the connection.
async fn publish_until_refused(
    publisher: &mut Client,
    acked: &mut BTreeSet<Vec<u8>>,
    (tag, len): (&str, usize),
    tries: usize,
    never: &str,
) {
    let mut refused = None;
    for i in 0..tries {
        let b = body(tag, i, len);
        let frame = publish(publisher, "t", std::slice::from_ref(&b)).await;
        if frame.is_ok() {
            acked.insert(b);
        } else {
            refused = Some(frame);
            break;
        }
    }
    let frame = refused.expect(never);
    eprintln!("TCP PUB refused: {}", String::from_utf8_lossy(&frame.data));
    assert_refused(&frame, "E_PUB_FAILED PUB failed ", "PUB on a full disk");
    publisher.expect_closed().await;
}

/// `frame` is an error frame starting `prefix` that names ENOSPC.
fn assert_refused(frame: &Frame, prefix: &str, what: &str) {
    let text = String::from_utf8_lossy(&frame.data).into_owned();
    assert_eq!(frame.kind, ERROR, "{what}: {frame:?}");
    assert!(
        text.starts_with(prefix) && text.contains("No space left on device"),
        "{what}: {text}"
    );
}

/// Waits until `/ping` answers 200 `OK` again.
async fn wait_ping_ok(h: &str) {
    common::eventually("/ping to answer OK again", move || async move {
        (ping(h).await == (200, "OK".to_string())).then_some(())
    })
    .await;
}

/// Waits until the clients of `t/c` have finished `want` messages in all.
async fn wait_finished(h: &str, want: u64) {
    common::eventually("every FIN sent to be processed", move || async move {
        (finished_on(h, "t", "c").await == want).then_some(())
    })
    .await;
}

/// `--durable`, the disk filled behind the broker's back: the publish that cannot be written
/// is refused (TCP `E_PUB_FAILED`/`E_MPUB_FAILED`, fatal; HTTP 503 with the reason), `/ping`
/// says NOK; every message answered OK is delivered, once, intact, and none refused is; when
/// space returns publishing works again and `/ping` is OK without a restart; and a clean
/// restart loses nothing acknowledged and unfinished (the whole log, read again from disk by a
/// second channel, still holds exactly what was acknowledged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_publishes_refused_on_a_full_disk_lose_nothing_acknowledged() {
    let started = std::time::Instant::now();
    let Some((_dir, mount, mnt, data)) = tmpfs("16m") else {
        return;
    };
    let (nsqd, h, tcp) = start_durable(&data, &["c", "all"]).await;

    // Every message answered OK, in any way.
    let mut acked: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut publisher = Client::connect(tcp).await;
    for i in 0..100 {
        let b = body("http", i, 100 + i * 13);
        let reply = post_body(&format!("{h}/pub?topic=t"), b.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        acked.insert(b);
        let b = body("tcp", i, 100 + i * 17);
        let frame = publish(&mut publisher, "t", std::slice::from_ref(&b)).await;
        assert!(frame.is_ok(), "PUB {i}: {frame:?}");
        acked.insert(b);
    }
    for i in 0..5 {
        let bodies: Vec<Vec<u8>> = (0..5).map(|j| body("hmpub", i * 5 + j, 300)).collect();
        let reply = post_body(&format!("{h}/mpub?topic=t"), bodies.join(&b'\n')).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        acked.extend(bodies);
        let bodies: Vec<Vec<u8>> = (0..5).map(|j| body("tmpub", i * 5 + j, 300)).collect();
        let frame = publish(&mut publisher, "t", &bodies).await;
        assert!(frame.is_ok(), "MPUB {i}: {frame:?}");
        acked.extend(bodies);
    }

    let filler = fill(&mnt);

    // TCP PUB until the log cannot take one (what the last page's slack holds is answered OK).
    let never = "a full disk never refused a TCP PUB";
    publish_until_refused(&mut publisher, &mut acked, ("fulltcp", 3000), 1000, never).await;

    let mut refused_http = None;
    for i in 0..1000 {
        let b = body("fullhttp", i, 3000);
        let reply = post_body(&format!("{h}/pub?topic=t"), b.clone()).await;
        if reply.status == 200 {
            acked.insert(b);
        } else {
            refused_http = Some(reply);
            break;
        }
    }
    let reply = refused_http.expect("a full disk never refused an HTTP /pub");
    eprintln!("HTTP /pub refused: {} {}", reply.status, reply.body);
    assert_http_refused(&reply, "/pub on a full disk");

    let bodies: Vec<Vec<u8>> = (0..4).map(|j| body("fullhmpub", j, 3000)).collect();
    let reply = post_body(&format!("{h}/mpub?topic=t"), bodies.join(&b'\n')).await;
    assert_http_refused(&reply, "/mpub on a full disk");
    let mut publisher = Client::connect(tcp).await;
    let bodies: Vec<Vec<u8>> = (0..4).map(|j| body("fulltmpub", j, 3000)).collect();
    let frame = publish(&mut publisher, "t", &bodies).await;
    assert_refused(&frame, "E_MPUB_FAILED MPUB failed ", "MPUB on a full disk");
    publisher.expect_closed().await;

    let (status, text) = ping(&h).await;
    eprintln!("/ping on a full disk: {status} {text}");
    assert_eq!(status, 500, "{text}");
    assert!(
        text.starts_with("NOK - ") && text.len() > "NOK - ".len(),
        "{text}"
    );

    // Everything acknowledged comes out on c, while the disk is still full.
    let mut consumer = subscribe(tcp, "t", "c", 100).await;
    let mut finished = receive(&mut consumer, &acked, |_| true, "c, disk full").await;
    eprintln!(
        "{} messages acknowledged before and while the disk filled, all delivered",
        acked.len()
    );

    // Space returns: publishing works at once, /ping recovers.
    drop(filler);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let mut after = BTreeSet::new();
    let mut publisher = Client::connect(tcp).await;
    for i in 0..20 {
        let b = body("afterhttp", i, 3000);
        let reply = post_body(&format!("{h}/pub?topic=t"), b.clone()).await;
        assert_eq!(
            reply.status, 200,
            "/pub {i} after space returned: {}",
            reply.body
        );
        after.insert(b);
        let b = body("aftertcp", i, 3000);
        let frame = publish(&mut publisher, "t", std::slice::from_ref(&b)).await;
        assert!(frame.is_ok(), "PUB {i} after space returned: {frame:?}");
        after.insert(b);
    }
    wait_ping_ok(&h).await;
    finished += receive(&mut consumer, &after, |_| true, "c, after space returned").await;
    acked.extend(after);

    // Unfinished at shutdown: some in flight (delivered, not FINished), some never read.
    let tail: BTreeSet<Vec<u8>> = (0..20).map(|i| body("tail", i, 500)).collect();
    for b in &tail {
        let frame = publish(&mut publisher, "t", std::slice::from_ref(b)).await;
        assert!(frame.is_ok(), "{frame:?}");
    }
    let fin_first = |b: &[u8]| b.starts_with(b"tail-00000") && b.len() == 500;
    finished += receive(&mut consumer, &tail, fin_first, "c, tail").await;
    consumer.line("RDY 0").await;
    let unread: BTreeSet<Vec<u8>> = (0..10).map(|i| body("unread", i, 500)).collect();
    for b in &unread {
        let frame = publish(&mut publisher, "t", std::slice::from_ref(b)).await;
        assert!(frame.is_ok(), "{frame:?}");
    }
    acked.extend(tail.iter().cloned());
    acked.extend(unread.iter().cloned());
    let unfinished: BTreeSet<Vec<u8>> = tail
        .iter()
        .filter(|b| !fin_first(b))
        .chain(unread.iter())
        .cloned()
        .collect();
    assert_eq!(unfinished.len(), 20);
    let want = finished as u64;
    wait_finished(&h, want).await;

    common::stop(nsqd).await;
    drop(consumer);
    drop(publisher);

    let (nsqd, tcp) = restart_durable(&data).await;
    let mut consumer = subscribe(tcp, "t", "c", 100).await;
    receive(&mut consumer, &unfinished, |_| true, "c, after a restart").await;
    let mut everything = subscribe(tcp, "t", "all", 200).await;
    receive(&mut everything, &acked, |_| true, "all, after a restart").await;
    eprintln!(
        "after a restart: the {} unfinished on c and all {} acknowledged on a second channel, \
         none refused; {:.1?} in all",
        unfinished.len(),
        acked.len(),
        started.elapsed()
    );
    drop(consumer);
    drop(everything);
    common::stop(nsqd).await;
    drop(mount);
}

/// `df` of the mount and the topic directory's files, for a failure message.
fn describe_disk(mnt: &Path, topic_dir: &Path) -> String {
    let df = Command::new("df")
        .args(["-B1"])
        .arg(mnt)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut files = Vec::new();
    for dir in [topic_dir.to_path_buf(), topic_dir.join("channels")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                files.push(format!("{} ({len} bytes)", entry.path().display()));
            }
        }
    }
    files.sort();
    let shown = if files.len() > 12 {
        let mut shown = files[..4].to_vec();
        shown.push(format!("... {} more ...", files.len() - 8));
        shown.extend_from_slice(&files[files.len() - 4..]);
        shown
    } else {
        files
    };
    format!("{df}{}", shown.join("\n"))
}

fn segment_count(topic_dir: &Path) -> usize {
    std::fs::read_dir(topic_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

/// `--durable`, the disk filled by the messages themselves (no filler to delete): once a
/// consumer has finished them, the flusher deletes their segments, and with that space the
/// broker takes publishes again and `/ping` is OK, without a restart; nothing acknowledged is
/// lost, before or after a clean restart. (With not one free page the cursor cannot be
/// saved: segments go by the in-memory watermark, or the disk would stay full for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_of_messages_recovers_once_they_are_consumed() {
    let started = std::time::Instant::now();
    let Some((_dir, mount, mnt, data)) = tmpfs("4m") else {
        return;
    };
    let (nsqd, h, tcp) = start_durable(&data, &["c"]).await;

    let mut acked: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut publisher = Client::connect(tcp).await;
    let never = "the disk never filled";
    publish_until_refused(&mut publisher, &mut acked, ("m", 1000), 100_000, never).await;
    let reply = post_body(&format!("{h}/pub?topic=t"), body("refused", 0, 1000)).await;
    assert_http_refused(&reply, "/pub on a disk full of messages");
    let (status, text) = ping(&h).await;
    assert_eq!(status, 500, "{text}");
    assert!(text.starts_with("NOK - "), "{text}");
    let topic_dir = data.join("queues").join("t");
    let segments_full = segment_count(&topic_dir);
    eprintln!(
        "disk full of messages: {} acknowledged, {segments_full} segments; refused: {text}",
        acked.len()
    );

    let mut consumer = subscribe(tcp, "t", "c", 500).await;
    receive(&mut consumer, &acked, |_| true, "c, disk full of messages").await;

    // No filler to delete: the space comes back only from the consumed segments.
    let mut attempts = 0;
    let deadline = Instant::now() + common::DEADLINE;
    let probe = loop {
        attempts += 1;
        let b = body("probe", attempts, 1000);
        let reply = post_body(&format!("{h}/pub?topic=t"), b.clone()).await;
        match reply.status {
            200 => break b,
            503 => {}
            other => panic!("unexpected status {other}: {}", reply.body),
        }
        assert!(
            Instant::now() < deadline,
            "publishing never worked again in {:?} ({attempts} attempts) after every message \
             was consumed: the consumed segments were not deleted. Last answer: {}\n{}",
            common::DEADLINE,
            reply.body,
            describe_disk(&mnt, &topic_dir)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut probes = BTreeSet::from([probe]);
    eprintln!(
        "publishing works again after {attempts} attempts; segments {segments_full} -> {}",
        segment_count(&topic_dir)
    );
    wait_ping_ok(&h).await;
    let mut publisher = Client::connect(tcp).await;
    for i in 0..50 {
        let b = body("again", i, 1000);
        let frame = publish(&mut publisher, "t", std::slice::from_ref(&b)).await;
        assert!(frame.is_ok(), "PUB {i} after recovering: {frame:?}");
        probes.insert(b);
    }
    let finished = receive(&mut consumer, &probes, |_| true, "c, after recovering").await;
    let want = (acked.len() + finished) as u64;
    wait_finished(&h, want).await;
    // Unfinished across the restart.
    let kept: BTreeSet<Vec<u8>> = (0..30).map(|i| body("kept", i, 1000)).collect();
    for b in &kept {
        let frame = publish(&mut publisher, "t", std::slice::from_ref(b)).await;
        assert!(frame.is_ok(), "{frame:?}");
    }
    drop(consumer);
    drop(publisher);
    common::stop(nsqd).await;

    let (nsqd, tcp) = restart_durable(&data).await;
    let mut consumer = subscribe(tcp, "t", "c", 100).await;
    receive(&mut consumer, &kept, |_| true, "c, after a restart").await;
    eprintln!("{:.1?} in all", started.elapsed());
    drop(consumer);
    common::stop(nsqd).await;
    drop(mount);
}
