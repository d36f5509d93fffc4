//! Shutdown and the metadata changes running at the time: every change already running
//! finishes (persisted) before the store closes and the data-path lock is released, even when
//! its caller has gone; a change that arrives after shutdown began is refused with `Exiting`
//! and never runs; and with the built binary, SIGTERM in the middle of many concurrent changes
//! loses none that was answered 200.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rnsq::broker::{BrokerError, ChannelSource};
use rnsq::data_lock::{DataLock, LockError};
use tokio::sync::{watch, Notify};

use common::{find_channel, find_topic, BrokerProcess};

/// How long shutdown must stay blocked behind a running change for us to believe it waits.
const QUIET: Duration = Duration::from_millis(500);

/// A channel source that holds the creation of topic `held` until released (the change is
/// then mid-way: persisted, not finished), and gives it the channel `pre`.
struct HeldSource {
    entered: Arc<Notify>,
    release: watch::Receiver<bool>,
}

impl ChannelSource for HeldSource {
    fn channels_for<'a>(
        &'a self,
        topic: &'a str,
    ) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(async move {
            if topic != "held" {
                return Vec::new();
            }
            self.entered.notify_one();
            let mut release = self.release.clone();
            // An error means the test is gone: nothing to hold for.
            let _ = release.wait_for(|released| *released).await;
            vec!["pre".to_string()]
        })
    }
}

// Regression (rnsq issue 9, item 5): `Broker::run_detached` spawned each metadata change on a
// task nobody owned, so shutdown did not wait for it: a change whose caller had hung up could
// still be running while the store was closed and the data-path lock released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_running_change_whose_caller_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let broker = nsqd.broker().clone();
    let entered = Arc::new(Notify::new());
    let (release, release_rx) = watch::channel(false);
    broker.set_channel_source(Arc::new(HeldSource {
        entered: entered.clone(),
        release: release_rx,
    }));

    // A caller starts creating `held`, and goes away while the change runs.
    let caller = tokio::spawn({
        let broker = broker.clone();
        async move { broker.get_or_create_topic("held").await.map(|_| ()) }
    });
    tokio::time::timeout(common::DEADLINE, entered.notified())
        .await
        .expect("the change reaches the channel source");
    caller.abort();
    assert!(caller.await.is_err_and(|e| e.is_cancelled()));

    let mut stopping = tokio::spawn(nsqd.shutdown());
    // Shutdown has begun once a new change is refused. Each try uses a new name (an existing
    // topic is found, not created); those created before the refusal must survive.
    let mut created = Vec::new();
    let started = std::time::Instant::now();
    let refused = loop {
        let name = format!("late{}", created.len());
        match broker.get_or_create_topic(&name).await {
            Err(BrokerError::Exiting) => break name,
            Ok(_) => created.push(name),
            Err(e) => panic!("creating {name} during shutdown: {e}"),
        }
        assert!(
            started.elapsed() < common::DEADLINE,
            "no change was refused after shutdown began"
        );
        tokio::task::yield_now().await;
    };

    // Shutdown waits for the change still running: it does not finish, and the data path
    // stays locked.
    assert!(
        tokio::time::timeout(QUIET, &mut stopping).await.is_err(),
        "shutdown finished while a metadata change was still running"
    );
    let path = dir.path().to_path_buf();
    let lock = tokio::task::spawn_blocking(move || DataLock::acquire(&path))
        .await
        .unwrap();
    assert!(
        matches!(lock, Err(LockError::Held { .. })),
        "the data-path lock was released while a change was still running: {lock:?}"
    );

    release.send(true).unwrap();
    tokio::time::timeout(common::DEADLINE, stopping)
        .await
        .expect("shutdown finishes once the change has")
        .unwrap();
    drop(broker);

    // The change finished against the open store: `held` and the channel it was given are
    // there after a restart, as is every topic created before the refusal; the refused one
    // is not.
    let nsqd = common::start(dir.path()).await;
    let stats = common::stats(&common::base(nsqd.http_address())).await;
    assert!(
        find_channel(&stats, "held", "pre").is_some(),
        "the change running at shutdown was lost: {stats}"
    );
    for name in &created {
        assert!(find_topic(&stats, name).is_some(), "{name} lost: {stats}");
    }
    assert!(
        find_topic(&stats, &refused).is_none(),
        "{refused} was refused but exists: {stats}"
    );
    common::stop(nsqd).await;
}

/// Client `i`'s loop: creates topic `c{i}_t{n}` and its channel `ch`, one request at a time,
/// until the broker stops answering; returns every (topic, channel) answered 200 (`channel`
/// empty for the topic itself). An answer other than 200 must be 503 `EXITING`.
fn change_until_gone(base: &str, i: usize) -> Vec<(String, String)> {
    let http = reqwest::blocking::Client::builder()
        .timeout(common::DEADLINE)
        .build()
        .unwrap();
    let mut answered = Vec::new();
    for n in 0.. {
        let topic = format!("c{i}_t{n}");
        for (path, channel) in [
            (format!("/topic/create?topic={topic}"), ""),
            (format!("/channel/create?topic={topic}&channel=ch"), "ch"),
        ] {
            let Ok(reply) = http.post(format!("{base}{path}")).send() else {
                return answered;
            };
            let status = reply.status().as_u16();
            let body = reply.text().unwrap_or_default();
            match status {
                200 => answered.push((topic.clone(), channel.to_string())),
                503 if body.contains("EXITING") => return answered,
                _ => panic!("POST {path}: {status} {body}"),
            }
        }
    }
    answered
}

/// `GET /stats?format=json` from the broker at `base`, if it answers.
fn stats_of(base: &str) -> Option<serde_json::Value> {
    let reply = reqwest::blocking::get(format!("{base}/stats?format=json")).ok()?;
    serde_json::from_str(&reply.text().ok()?).ok()
}

/// SIGTERM while four HTTP clients create topics and channels as fast as they can: the
/// process exits 0, and after a restart every change it answered 200 is there.
#[test]
fn sigterm_during_concurrent_changes_keeps_every_change_answered() {
    let dir = tempfile::tempdir().unwrap();
    let process = BrokerProcess::spawn(dir.path(), &[]);
    let base = process.base();
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || change_until_gone(&base, i))
        })
        .collect();
    // Mid-way: once the clients have made some changes.
    common::eventually_blocking("the clients to create 40 topics", || {
        let stats = stats_of(&base)?;
        (stats["topics"].as_array()?.len() >= 40).then_some(())
    });
    assert!(process.terminate(), "rnsq did not exit 0 on SIGTERM");
    let answered: BTreeSet<(String, String)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    assert!(answered.len() >= 40, "only {} answered", answered.len());

    let process = BrokerProcess::spawn(dir.path(), &[]);
    let stats = stats_of(&process.base()).expect("/stats after the restart");
    for (topic, channel) in &answered {
        let found = if channel.is_empty() {
            find_topic(&stats, topic).is_some()
        } else {
            find_channel(&stats, topic, channel).is_some()
        };
        assert!(found, "{topic}/{channel} was answered 200 but is gone");
    }
    assert!(process.terminate());
}
