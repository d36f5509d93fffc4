//! Message storage across restarts, over real TCP and HTTP against the broker in-process:
//! a clean restart keeps queued, in-flight and deferred messages (and forgets finished ones);
//! segments roll and consumed ones are deleted; a torn tail is truncated and a damaged record
//! in the middle is skipped (counted once, kept in `.log.bad`), never delivered as garbage;
//! stray temp files are removed; metadata and queue files agree; `--durable` fsyncs every
//! publish.
//!
//! Waits poll with a deadline. The only sleeps are where the assertion is about time itself
//! (a deferred message keeps its original due time across a restart).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rnsq::config::NsqdOptions;
use rnsq::nsqd::Nsqd;
use serde_json::Value;
use tokio::time::Instant;

use common::v2::{dpub_cmd, pub_cmd, subscribe, Client, Msg};
use common::{find_channel, find_topic, stop, wait_channel_stat};

/// How long we listen to check that nothing (more) comes.
const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// Publishing and receiving over protocol V2
// ---------------------------------------------------------------------------------------------

/// Publishes `bodies` to `topic` over one connection, pipelined, waiting for every `OK`.
async fn publish_all(nsqd: &Nsqd, topic: &str, bodies: &[String]) {
    let mut client = Client::connect(nsqd.tcp_address()).await;
    let mut out = Vec::new();
    for body in bodies {
        out.extend_from_slice(&pub_cmd(topic, body.as_bytes()));
    }
    client.send(&out).await;
    for _ in bodies {
        client.expect_ok().await;
    }
}

/// Publishes `body` to `topic` on a new connection; `consumer` gets it (first delivery),
/// FINs it, and nothing more comes.
async fn arrives_alone(nsqd: &Nsqd, consumer: &mut Client, topic: &str, body: &str) {
    Client::connect(nsqd)
        .await
        .publish(topic, body.as_bytes())
        .await;
    let msg = consumer.expect_message().await;
    assert_eq!(
        (msg.text().as_str(), msg.attempts),
        (body, 1),
        "{topic}: a new message"
    );
    consumer.fin(&msg.id).await;
    consumer.expect_quiet(QUIET).await;
}

/// Receives `count` messages, FINs each, and returns them in arrival order.
async fn receive_and_fin(client: &mut Client, count: usize) -> Vec<Msg> {
    let mut got = Vec::with_capacity(count);
    for _ in 0..count {
        let msg = client.expect_message().await;
        client.fin(&msg.id).await;
        got.push(msg);
    }
    got
}

fn now_ms() -> i64 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        / 1_000_000) as i64
}

// ---------------------------------------------------------------------------------------------
// Brokers, HTTP, /stats and files
// ---------------------------------------------------------------------------------------------

/// Starts a broker in this process; it and its HTTP base URL.
async fn start(opts: NsqdOptions) -> (Nsqd, String) {
    let nsqd = common::start_with(opts).await;
    let h = common::base(nsqd.http_address());
    (nsqd, h)
}

/// A new data directory, default options on it, and a broker started with them.
async fn start_fresh() -> (tempfile::TempDir, NsqdOptions, Nsqd, String) {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::options(dir.path());
    let (nsqd, h) = start(opts.clone()).await;
    (dir, opts, nsqd, h)
}

async fn post_ok(base: &str, path: &str) {
    let reply = common::post(&format!("{base}{path}")).await;
    assert_eq!(reply.status, 200, "POST {path}: {}", reply.body);
}

/// Creates `topic` and its `channel` over HTTP.
async fn create(base: &str, topic: &str, channel: &str) {
    post_ok(base, &format!("/topic/create?topic={topic}")).await;
    post_ok(
        base,
        &format!("/channel/create?topic={topic}&channel={channel}"),
    )
    .await;
}

/// Topic `topic`'s `disk` object in /stats.
async fn disk(base: &str, topic: &str) -> Value {
    let stats = common::stats(base).await;
    find_topic(&stats, topic).unwrap_or_else(|| panic!("topic {topic} not in /stats: {stats}"))
        ["disk"]
        .clone()
}

/// Waits until topic `topic`'s `disk.<key>` is `want` in /stats; returns its `disk` object.
async fn wait_disk_stat(base: &str, topic: &str, key: &str, want: u64) -> Value {
    let what = format!("/stats {topic} disk.{key} == {want}");
    common::eventually(&what, move || async move {
        let stats = common::stats(base).await;
        let d = find_topic(&stats, topic)?["disk"].clone();
        (d[key].as_u64() == Some(want)).then_some(d)
    })
    .await
}

async fn channel_stat(base: &str, topic: &str, channel: &str, key: &str) -> u64 {
    let stats = common::stats(base).await;
    find_channel(&stats, topic, channel)
        .unwrap_or_else(|| panic!("{topic}/{channel} not in /stats: {stats}"))[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{topic}/{channel} has no numeric {key}: {stats}"))
}

fn topic_dir(data: &Path, topic: &str) -> PathBuf {
    data.join("queues").join(topic)
}

/// The segment files (`*.log`) of a topic directory, in order.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The only segment of a topic directory.
fn only_segment(dir: &Path) -> PathBuf {
    let files = segment_files(dir);
    assert_eq!(
        files.len(),
        1,
        "expected one segment in {}: {files:?}",
        dir.display()
    );
    files[0].clone()
}

/// Where a segment's first record is: after its 16-byte header (`RNSQLOG\0`, version,
/// CRC32C), or at 0 in a segment written before headers.
fn first_record_offset(bytes: &[u8]) -> usize {
    if bytes.starts_with(b"RNSQLOG\0") {
        16
    } else {
        0
    }
}

/// Record boundaries `(offset, total length)` of a segment's bytes (all records whole).
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut offset = first_record_offset(bytes);
    while offset < bytes.len() {
        let len = u32::from_be_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        let total = 8 + len;
        assert!(
            offset + total <= bytes.len(),
            "segment ends inside a record"
        );
        out.push((offset, total));
        offset += total;
    }
    out
}

/// Every file under `dir`, relative, with its contents.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Waits until `path` exists.
async fn wait_exists(path: &Path) {
    common::eventually(&format!("{} to exist", path.display()), || {
        let exists = path.exists();
        async move { exists.then_some(()) }
    })
    .await;
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap().flatten() {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// A clean restart keeps what was queued, in flight (requeued at shutdown, attempts kept) and
/// deferred (with its original due time); finished messages are not delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_keeps_queued_in_flight_and_deferred() {
    const DEFER_MS: i64 = 3000;
    let (_dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "t", "c").await;

    let bodies: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    publish_all(&nsqd, "t", &bodies).await;
    let mut producer = Client::connect(nsqd.tcp_address()).await;
    let dpub_sent_ms = now_ms();
    producer
        .send(&dpub_cmd("t", DEFER_MS as u64, b"deferred"))
        .await;
    producer.expect_ok().await;
    let dpub_answered = Instant::now();

    // A consumer takes 5, finishes 3, keeps 2 in flight (RDY 0 first: nothing more comes).
    let mut consumer = subscribe(&nsqd, "t", "c", 5).await;
    let mut first = Vec::new();
    for _ in 0..5 {
        first.push(consumer.expect_message().await);
    }
    consumer.line("RDY 0").await;
    for msg in &first {
        assert_eq!(msg.attempts, 1, "first delivery of {msg:?}");
        assert!(bodies.contains(&msg.text()), "unexpected {msg:?}");
    }
    for msg in &first[..3] {
        consumer.fin(&msg.id).await;
    }
    wait_channel_stat(&h, "t", "c", "in_flight_count", 2).await;
    let finished: BTreeSet<String> = first[..3].iter().map(Msg::text).collect();
    let in_flight: BTreeSet<String> = first[3..].iter().map(Msg::text).collect();

    // Shut down with the consumer still connected: its 2 in flight are requeued and saved.
    stop(nsqd).await;
    drop(consumer);
    drop(producer);
    // About time itself: stay down long enough that a broker restarting the defer at boot
    // (instead of keeping the original due time) would deliver it clearly late.
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let (nsqd, h) = start(opts).await;
    let mut consumer = subscribe(&nsqd, "t", "c", 50).await;
    let give_up = dpub_answered + Duration::from_millis(DEFER_MS as u64) + Duration::from_secs(5);
    let mut regular = Vec::new();
    let mut deferred = None;
    while regular.len() < 17 || deferred.is_none() {
        let Some(msg) = consumer.message_until(give_up).await else {
            panic!(
                "after the restart got {} of 17 unfinished messages ({:?}) and deferred {:?}",
                regular.len(),
                regular.iter().map(Msg::text).collect::<Vec<_>>(),
                deferred
            );
        };
        let (arrived, arrived_ms) = (Instant::now(), now_ms());
        consumer.fin(&msg.id).await;
        if msg.body == b"deferred" {
            assert!(deferred.is_none(), "deferred message delivered twice");
            deferred = Some((msg, arrived, arrived_ms));
        } else {
            regular.push(msg);
        }
    }
    consumer.expect_quiet(QUIET).await;

    let got: Vec<String> = regular.iter().map(Msg::text).collect();
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(
        got_set.len(),
        got.len(),
        "a message delivered twice: {got:?}"
    );
    let expected: BTreeSet<String> = bodies
        .iter()
        .filter(|b| !finished.contains(*b))
        .cloned()
        .collect();
    assert_eq!(
        got_set, expected,
        "finished before the restart: {finished:?}"
    );
    for msg in &regular {
        if in_flight.contains(&msg.text()) {
            assert!(
                msg.attempts >= 2,
                "in flight at shutdown, redelivered with attempts {}: {msg:?}",
                msg.attempts
            );
        } else {
            assert_eq!(msg.attempts, 1, "never delivered before: {msg:?}");
        }
    }
    let (msg, arrived, arrived_ms) = deferred.unwrap();
    assert_eq!(msg.attempts, 1, "{msg:?}");
    let due_ms = msg.timestamp / 1_000_000 + DEFER_MS;
    // 5 ms for the broker's millisecond rounding.
    assert!(
        arrived_ms >= due_ms - 5 && arrived_ms >= dpub_sent_ms + DEFER_MS - 5,
        "deferred message arrived {} ms before its due time",
        due_ms.max(dpub_sent_ms + DEFER_MS) - arrived_ms
    );
    let late =
        arrived.saturating_duration_since(dpub_answered + Duration::from_millis(DEFER_MS as u64));
    assert!(
        late <= Duration::from_millis(1500),
        "deferred message arrived {late:?} after its original due time"
    );
    wait_channel_stat(&h, "t", "c", "depth", 0).await;
    stop(nsqd).await;
}

/// Everything read from disk (`--mem-queue-size 0`) across rolling segments; consumed
/// segments are deleted; after a restart nothing is delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_roll_are_deleted_when_consumed_and_nothing_comes_back() {
    const COUNT: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let opts = NsqdOptions {
        mem_queue_size: 0,
        max_bytes_per_file: 1024,
        sync_timeout: Duration::from_millis(50),
        ..common::options(dir.path())
    };
    let (nsqd, h) = start(opts.clone()).await;
    create(&h, "rolling", "c").await;
    let bodies: Vec<String> = (0..COUNT).map(|i| format!("msg-{i:04}")).collect();
    publish_all(&nsqd, "rolling", &bodies).await;
    let tdir = topic_dir(dir.path(), "rolling");
    let rolled = segment_files(&tdir).len();
    assert!(
        rolled >= 10,
        "{COUNT} messages in 1 KiB segments made {rolled} segments"
    );
    assert_eq!(
        channel_stat(&h, "rolling", "c", "depth").await,
        COUNT as u64
    );

    let mut consumer = subscribe(&nsqd, "rolling", "c", 100).await;
    let got = receive_and_fin(&mut consumer, COUNT).await;
    let texts: Vec<String> = got.iter().map(Msg::text).collect();
    assert_eq!(texts, bodies, "delivered in order, each once, intact");
    assert!(got.iter().all(|m| m.attempts == 1));
    consumer.expect_quiet(QUIET).await;
    wait_channel_stat(&h, "rolling", "c", "in_flight_count", 0).await;
    wait_channel_stat(&h, "rolling", "c", "depth", 0).await;
    common::eventually("consumed segments to be deleted", || {
        let left = segment_files(&tdir).len();
        async move { (left == 1).then_some(()) }
    })
    .await;
    drop(consumer);
    stop(nsqd).await;

    let (nsqd, h) = start(opts).await;
    assert_eq!(channel_stat(&h, "rolling", "c", "depth").await, 0);
    let mut consumer = subscribe(&nsqd, "rolling", "c", 10).await;
    consumer.expect_quiet(QUIET).await;
    // The consumer works: a new message arrives, alone.
    arrives_alone(&nsqd, &mut consumer, "rolling", "after").await;
    stop(nsqd).await;
}

/// A torn tail of the last segment (a partial record, a whole last record whose checksum
/// fails, or zeros) is cut off at boot and counted; every whole message is delivered, and the
/// log goes on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_is_truncated_and_counted() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    let bodies: Vec<String> = (0..5).map(|i| format!("whole-{i}")).collect();
    for topic in ["partial", "badcrc", "zeros"] {
        create(&h, topic, "c").await;
        publish_all(&nsqd, topic, &bodies).await;
    }
    stop(nsqd).await;

    // Zeros past the last record: the file's size made durable before its data.
    let zeros_seg = only_segment(&topic_dir(dir.path(), "zeros"));
    let zeros_len = fs::metadata(&zeros_seg).unwrap().len();
    let zeros = vec![0u8; 4096];
    append(&zeros_seg, &zeros);

    // A partial record: a header promising 100 bytes, and 10 of them.
    let partial_seg = only_segment(&topic_dir(dir.path(), "partial"));
    let partial_len = fs::metadata(&partial_seg).unwrap().len();
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0xAB; 4]);
    partial.extend_from_slice(b"GARBAGE!!!");
    append(&partial_seg, &partial);

    // A whole record that decodes as a message, with a checksum that fails.
    let badcrc_seg = only_segment(&topic_dir(dir.path(), "badcrc"));
    let badcrc_len = fs::metadata(&badcrc_seg).unwrap().len();
    let mut payload = Vec::new();
    payload.extend_from_slice(&6u64.to_be_bytes());
    payload.extend_from_slice(&(now_ms() * 1_000_000).to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(b"0123456789abcdef");
    payload.extend_from_slice(b"GARBAGE");
    let mut record = (payload.len() as u32).to_be_bytes().to_vec();
    record.extend_from_slice(&(crc32c::crc32c(&payload) ^ 1).to_be_bytes());
    record.extend_from_slice(&payload);
    append(&badcrc_seg, &record);

    let (nsqd, h) = start(opts).await;
    for (topic, seg, len, appended) in [
        ("partial", &partial_seg, partial_len, partial.len()),
        ("badcrc", &badcrc_seg, badcrc_len, record.len()),
        ("zeros", &zeros_seg, zeros_len, zeros.len()),
    ] {
        // Logs may be opened just after boot, in the background: wait for it.
        let d = wait_disk_stat(&h, topic, "truncated_bytes", appended as u64).await;
        assert_eq!(d["damaged_records"], 0, "{topic}: {d}");
        assert_eq!(
            fs::metadata(seg).unwrap().len(),
            len,
            "{topic}: the segment is cut back to its last whole record"
        );
        let mut consumer = subscribe(&nsqd, topic, "c", 10).await;
        let got = receive_and_fin(&mut consumer, bodies.len()).await;
        let texts: Vec<String> = got.iter().map(Msg::text).collect();
        assert_eq!(texts, bodies, "{topic}");
        consumer.expect_quiet(QUIET).await;
        // The log goes on after the cut.
        arrives_alone(&nsqd, &mut consumer, topic, "after").await;
    }
    stop(nsqd).await;
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// A record damaged in the middle of a segment is skipped by every reader, counted once, its
/// bytes kept in `<segment>.log.bad`; the records around it arrive intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_mid_file_is_skipped_counted_once_and_kept_aside() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "mid", "c1").await;
    post_ok(&h, "/channel/create?topic=mid&channel=c2").await;
    let bodies: Vec<String> = ["first-message", "second-message", "third-message"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    publish_all(&nsqd, "mid", &bodies).await;
    stop(nsqd).await;

    let seg = only_segment(&topic_dir(dir.path(), "mid"));
    let mut bytes = fs::read(&seg).unwrap();
    let recs = records(&bytes);
    assert_eq!(recs.len(), 3, "three records in one segment");
    let (offset, total) = recs[1];
    // The last byte of the middle record's payload (its body): `second-messagd` would be a
    // plausible body, so only the checksum can tell.
    bytes[offset + total - 1] ^= 0x01;
    let damaged = bytes[offset..offset + total].to_vec();
    fs::write(&seg, &bytes).unwrap();

    let (nsqd, h) = start(opts).await;
    assert_eq!(disk(&h, "mid").await["truncated_bytes"], 0);
    for channel in ["c1", "c2"] {
        let mut consumer = subscribe(&nsqd, "mid", channel, 10).await;
        let got = receive_and_fin(&mut consumer, 2).await;
        let texts: Vec<String> = got.iter().map(Msg::text).collect();
        assert_eq!(texts, ["first-message", "third-message"], "{channel}");
        consumer.expect_quiet(QUIET).await;
        wait_channel_stat(&h, "mid", channel, "depth", 0).await;
        wait_channel_stat(&h, "mid", channel, "in_flight_count", 0).await;
    }
    let d = disk(&h, "mid").await;
    assert_eq!(d["damaged_records"], 1, "{d}");
    assert_eq!(d["damaged_bytes"], total as u64, "{d}");
    let bad = seg.with_extension("log.bad");
    assert!(bad.exists(), "{} missing", bad.display());
    assert_eq!(
        fs::read(&bad).unwrap(),
        damaged,
        "{} holds exactly the damaged record",
        bad.display()
    );
    stop(nsqd).await;
}

/// Stray `*.tmp` files in a topic directory and its `channels/` are removed at boot and
/// counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_temp_files_are_removed_at_boot_and_counted() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "tmp", "c").await;
    publish_all(&nsqd, "tmp", &["kept".to_string()]).await;
    stop(nsqd).await;

    let tdir = topic_dir(dir.path(), "tmp");
    let strays = [tdir.join("x.tmp"), tdir.join("channels").join("x.tmp")];
    for stray in &strays {
        fs::write(stray, b"half-written").unwrap();
    }

    let (nsqd, h) = start(opts).await;
    // Logs may be opened just after boot, in the background: wait for it.
    for stray in &strays {
        common::eventually(&format!("{} to be removed", stray.display()), || {
            let gone = !stray.exists();
            async move { gone.then_some(()) }
        })
        .await;
    }
    wait_disk_stat(&h, "tmp", "temp_files_removed", 2).await;
    let mut consumer = subscribe(&nsqd, "tmp", "c", 10).await;
    let got = receive_and_fin(&mut consumer, 1).await;
    assert_eq!(got[0].text(), "kept");
    consumer.expect_quiet(QUIET).await;
    stop(nsqd).await;
}

/// How many channels or topics the delete tests delete.
const ROUNDS: usize = 10;

/// Options whose topics save their channels' cursors (and the topic cursor) every 10 ms, so
/// that saves overlap the deletes.
fn frequent_saves(data_path: &Path) -> NsqdOptions {
    NsqdOptions {
        sync_timeout: Duration::from_millis(10),
        ..common::options(data_path)
    }
}

/// Deleting a channel removes its state file, and no save brings it back. Each channel has
/// just changed (a message taken and finished, not yet saved) when it is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_channel_removes_its_state_file_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let (nsqd, h) = start(frequent_saves(dir.path())).await;
    create(&h, "chans", "c").await;
    for i in 0..ROUNDS {
        post_ok(&h, &format!("/channel/create?topic=chans&channel=gone{i}")).await;
    }
    publish_all(&nsqd, "chans", &["x".to_string()]).await;
    let cdir = topic_dir(dir.path(), "chans").join("channels");
    let kept_state = cdir.join("c.state");
    let states: Vec<PathBuf> = (0..ROUNDS)
        .map(|i| cdir.join(format!("gone{i}.state")))
        .collect();
    for state in &states {
        wait_exists(state).await;
    }
    for (i, state) in states.iter().enumerate() {
        let mut consumer = subscribe(&nsqd, "chans", &format!("gone{i}"), 1).await;
        let got = receive_and_fin(&mut consumer, 1).await;
        assert_eq!(got[0].text(), "x");
        post_ok(&h, &format!("/channel/delete?topic=chans&channel=gone{i}")).await;
        assert!(
            !state.exists(),
            "{} exists once the delete answered",
            state.display()
        );
    }
    stop(nsqd).await;
    assert!(kept_state.exists(), "the other channel's state file stays");
    let back: Vec<String> = states
        .iter()
        .filter(|s| s.exists())
        .map(|s| s.display().to_string())
        .collect();
    assert!(
        back.is_empty(),
        "deleted channels' state files came back: {back:?}"
    );
    let nsqd = common::start_with(frequent_saves(dir.path())).await;
    let stats = common::stats(&common::base(nsqd.http_address())).await;
    let channels = find_topic(&stats, "chans").unwrap()["channels"].clone();
    assert_eq!(channels.as_array().unwrap().len(), 1, "{channels}");
    stop(nsqd).await;
}

/// Deleting a topic removes its queue directory, and no save brings it back. Each topic has a
/// message, so its flusher runs (and saves) while it is deleted, and its channels have just
/// changed (the message taken and finished, not yet saved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_removes_its_queue_directory_for_good() {
    /// Channels of each topic.
    const CHANNELS: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let (nsqd, h) = start(frequent_saves(dir.path())).await;
    let doomed: Vec<PathBuf> = (0..ROUNDS)
        .map(|i| topic_dir(dir.path(), &format!("doomed{i}")))
        .collect();
    let mut early = Vec::new();
    for (i, ddir) in doomed.iter().enumerate() {
        let topic = format!("doomed{i}");
        post_ok(&h, &format!("/topic/create?topic={topic}")).await;
        for c in 0..CHANNELS {
            post_ok(&h, &format!("/channel/create?topic={topic}&channel=c{c}")).await;
        }
        publish_all(&nsqd, &topic, &["x".to_string()]).await;
        let mut consumers = Vec::new();
        for c in 0..CHANNELS {
            wait_exists(&ddir.join("channels").join(format!("c{c}.state"))).await;
            let mut consumer = subscribe(&nsqd, &topic, &format!("c{c}"), 1).await;
            let got = receive_and_fin(&mut consumer, 1).await;
            assert_eq!(got[0].text(), "x");
            consumers.push(consumer);
        }
        post_ok(&h, &format!("/topic/delete?topic={topic}")).await;
        if ddir.exists() {
            early.push(format!(
                "{} holding {:?}",
                ddir.display(),
                tree(ddir).keys().collect::<Vec<_>>()
            ));
        }
    }
    stop(nsqd).await;
    let back: Vec<String> = doomed
        .iter()
        .filter(|d| d.exists())
        .map(|d| {
            format!(
                "{} holding {:?}",
                d.display(),
                tree(d).keys().collect::<Vec<_>>()
            )
        })
        .collect();
    assert!(
        early.is_empty() && back.is_empty(),
        "deleted topics' queue directories exist: once the delete answered {early:?}; \
         after shutdown {back:?}"
    );
    let nsqd = common::start_with(frequent_saves(dir.path())).await;
    let report = nsqd.load_report().clone();
    assert!(report.orphan_queues.is_empty(), "{report:?}");
    stop(nsqd).await;
}

/// A stored topic whose queue directory vanished while stopped starts empty and is reported;
/// a queue directory with no stored topic is reported, not loaded, and kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_starts_empty_and_an_orphan_queue_is_kept() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "kept", "c").await;
    publish_all(&nsqd, "kept", &["one".to_string(), "two".to_string()]).await;
    stop(nsqd).await;

    let kdir = topic_dir(dir.path(), "kept");
    let ghost = topic_dir(dir.path(), "ghost");
    copy_dir(&kdir, &ghost);
    let ghost_files = tree(&ghost);
    assert!(!ghost_files.is_empty());
    fs::remove_dir_all(&kdir).unwrap();

    let (nsqd, h) = start(opts).await;
    let report = nsqd.load_report().clone();
    assert_eq!(
        report.missing_queues,
        vec!["kept".to_string()],
        "{report:?}"
    );
    assert_eq!(
        report.orphan_queues,
        vec!["ghost".to_string()],
        "{report:?}"
    );
    assert!(ghost.exists(), "the orphan queue directory is kept");
    assert_eq!(
        tree(&ghost),
        ghost_files,
        "the orphan queue files are untouched"
    );

    let stats = common::stats(&h).await;
    assert!(
        find_topic(&stats, "ghost").is_none(),
        "orphans are not loaded: {stats}"
    );
    assert_eq!(
        channel_stat(&h, "kept", "c", "depth").await,
        0,
        "kept starts empty"
    );
    let mut consumer = subscribe(&nsqd, "kept", "c", 10).await;
    consumer.expect_quiet(QUIET).await;
    arrives_alone(&nsqd, &mut consumer, "kept", "fresh").await;
    stop(nsqd).await;
    assert!(
        ghost.exists(),
        "the orphan queue directory survives a shutdown too"
    );
    assert_eq!(tree(&ghost), ghost_files);
}

/// `--durable`: every acknowledged publish was fsynced, and /stats says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_publishes_are_fsynced() {
    const N: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let opts = NsqdOptions {
        durable: true,
        ..common::options(dir.path())
    };
    let (nsqd, h) = start(opts).await;
    create(&h, "durable", "c").await;
    let mut producer = Client::connect(nsqd.tcp_address()).await;
    for i in 0..N {
        producer
            .publish("durable", format!("d{i}").as_bytes())
            .await;
    }
    let d = disk(&h, "durable").await;
    assert_eq!(d["durable"], true, "{d}");
    assert_eq!(d["on_disk"], true, "{d}");
    let fsyncs = d["fsyncs"].as_u64().unwrap();
    assert!((1..=N).contains(&fsyncs), "{d}");
    assert_eq!(d["fsynced_messages"], N, "{d}");
    stop(nsqd).await;
}

/// A message record as the module docs of `topic_log` and `segment_log` give it, for a
/// segment written by an earlier release (no header: records from offset 0).
fn old_record(seq: u64, body: &str) -> Vec<u8> {
    let mut payload = seq.to_be_bytes().to_vec();
    payload.extend_from_slice(&(now_ms() * 1_000_000).to_be_bytes());
    payload.extend_from_slice(&0u16.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(format!("{seq:016x}").as_bytes());
    payload.extend_from_slice(body.as_bytes());
    let mut record = (payload.len() as u32).to_be_bytes().to_vec();
    record.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    record.extend_from_slice(&payload);
    record
}

/// A topic log left by a release before segment headers is served: its messages arrive, new
/// ones follow, and its segment keeps its format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headerless_log_of_an_earlier_release_is_served() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "old", "c").await;
    stop(nsqd).await;
    let tdir = topic_dir(dir.path(), "old");
    assert!(segment_files(&tdir).is_empty(), "nothing published yet");
    let bodies = ["old-1", "old-2", "old-3"];
    let bytes: Vec<u8> = (1u64..)
        .zip(bodies)
        .flat_map(|(seq, body)| old_record(seq, body))
        .collect();
    let seg = tdir.join(format!("{:020}.log", 0));
    fs::write(&seg, &bytes).unwrap();

    let (nsqd, _h) = start(opts).await;
    let mut consumer = subscribe(&nsqd, "old", "c", 10).await;
    let got = receive_and_fin(&mut consumer, 3).await;
    let texts: Vec<String> = got.iter().map(Msg::text).collect();
    assert_eq!(texts, bodies);
    consumer.expect_quiet(QUIET).await;
    arrives_alone(&nsqd, &mut consumer, "old", "new").await;
    stop(nsqd).await;
    let after = fs::read(&seg).unwrap();
    assert!(after.starts_with(&bytes), "the old records are untouched");
    assert_eq!(first_record_offset(&after), 0, "still headerless");
    assert_eq!(
        records(&after).len(),
        4,
        "the new message appended in its format"
    );
}

/// A segment written by a newer rnsq (a header naming version 2) is refused, not read: the
/// broker runs on, /stats health names the file and both versions, publishing to that topic
/// fails with that reason, and other topics work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_of_a_newer_format_is_refused_and_reported() {
    let (dir, opts, nsqd, h) = start_fresh().await;
    create(&h, "future", "c").await;
    create(&h, "today", "c").await;
    stop(nsqd).await;
    let seg = topic_dir(dir.path(), "future").join(format!("{:020}.log", 0));
    let mut bytes = b"RNSQLOG\0".to_vec();
    bytes.extend_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&[0x5A; 60]);
    fs::write(&seg, &bytes).unwrap();

    let (nsqd, h) = start(opts).await;
    let seg_name = seg.display().to_string();
    let health = common::eventually("/stats health to report the newer segment", || {
        let h = h.clone();
        async move {
            let health = common::stats(&h).await["health"].as_str()?.to_string();
            health.contains("version 2").then_some(health)
        }
    })
    .await;
    assert!(health.starts_with("NOK"), "{health}");
    assert!(
        health.contains(&seg_name) && health.contains("version 1"),
        "{health}"
    );
    let mut producer = Client::connect(nsqd.tcp_address()).await;
    producer.send(&pub_cmd("future", b"refused")).await;
    let frame = producer.frame().await;
    let text = String::from_utf8_lossy(&frame.data).into_owned();
    assert!(
        text.starts_with("E_PUB_FAILED") && text.contains("version 2"),
        "{frame:?}"
    );
    let mut consumer = subscribe(&nsqd, "today", "c", 10).await;
    arrives_alone(&nsqd, &mut consumer, "today", "still-works").await;
    stop(nsqd).await;
    assert_eq!(
        fs::read(&seg).unwrap(),
        bytes,
        "the newer segment is left as it was"
    );
}

/// A channel state file left empty, torn, zeroed or foreign (what a power cut can leave of a
/// save without fsync) does not stop the broker, and loses nothing: the channel reads from the
/// oldest message kept, so the unfinished messages come back (finished ones may too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_channel_state_file_loses_no_unfinished_message() {
    type Damage = fn(&[u8]) -> Vec<u8>;
    let damages: [(&str, Damage); 4] = [
        ("empty", |_| Vec::new()),
        ("torn", |b| b[..b.len() / 2].to_vec()),
        ("zeroed", |b| vec![0; b.len()]),
        ("foreign", |_| b"not a cursor file at all".to_vec()),
    ];
    let (dir, opts, nsqd, h) = start_fresh().await;
    let bodies: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
    for (topic, _) in &damages {
        create(&h, topic, "c").await;
        publish_all(&nsqd, topic, &bodies).await;
        let mut consumer = subscribe(&nsqd, topic, "c", 10).await;
        // Two finished, two left in flight (requeued at shutdown, saved as unfinished).
        let got = receive_and_fin(&mut consumer, 2).await;
        assert_eq!(got.len(), 2);
        for _ in 0..2 {
            consumer.expect_message().await;
        }
    }
    stop(nsqd).await;
    for (topic, damage) in &damages {
        let state = topic_dir(dir.path(), topic)
            .join("channels")
            .join("c.state");
        let bytes = fs::read(&state).unwrap();
        fs::write(&state, damage(&bytes)).unwrap();
    }

    let (nsqd, h) = start(opts).await;
    for (topic, _) in &damages {
        let mut consumer = subscribe(&nsqd, topic, "c", 10).await;
        let got = receive_and_fin(&mut consumer, bodies.len()).await;
        let texts: Vec<String> = got.iter().map(Msg::text).collect();
        assert_eq!(
            texts, bodies,
            "{topic}: every kept message, the unfinished included"
        );
        consumer.expect_quiet(QUIET).await;
    }
    assert_eq!(common::stats(&h).await["health"], "OK");
    stop(nsqd).await;
}
