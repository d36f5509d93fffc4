//! rnsq nsqd with rnsq nsqlookupd on loopback: registrations appear in lookupd's HTTP API
//! within a second and follow deletes; a restarted lookupd has everything back within two
//! seconds; a new broker pre-creates the channels lookupd knows; and a real NSQ client that
//! knows only lookupd's HTTP address finds the broker and receives.

mod common;

use std::time::{Duration, Instant};

use common::{base, eventually, get, post};
use rnsq::nsqlookupd::config::NsqlookupdOptions;
use rnsq::nsqlookupd::Nsqlookupd;
use serde_json::Value;

fn lookupd_options(tcp: &str, http: &str) -> NsqlookupdOptions {
    NsqlookupdOptions {
        tcp_address: tcp.into(),
        http_address: http.into(),
        broadcast_address: "127.0.0.1".into(),
        ..NsqlookupdOptions::default()
    }
}

async fn broker(dir: &std::path::Path, lookupd: &Nsqlookupd) -> rnsq::nsqd::Nsqd {
    let mut opts = common::options(dir);
    opts.broadcast_address = "127.0.0.1".into();
    opts.nsqlookupd_tcp_addresses = vec![lookupd.tcp_address().to_string()];
    common::start_with(opts).await
}

async fn json(url: String) -> Option<Value> {
    let reply = get(&url).await;
    (reply.status == 200)
        .then(|| serde_json::from_str(&reply.body).ok())
        .flatten()
}

/// Waits until lookupd at `l` lists exactly `expected` (sorted) as `topic`'s channels.
async fn channels_become(l: &str, topic: &str, expected: &[&str], what: &str) {
    eventually(what, || {
        let url = format!("{l}/channels?topic={topic}");
        async move { json(url).await.filter(|v| names(v, "channels") == expected) }
    })
    .await;
}

fn names(value: &Value, key: &str) -> Vec<String> {
    let mut names: Vec<String> = value[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn registrations_follow_creates_and_deletes() {
    let lookupd = Nsqlookupd::start(lookupd_options("127.0.0.1:0", "127.0.0.1:0"))
        .await
        .unwrap();
    let l = base(lookupd.http_address());
    let dir = tempfile::tempdir().unwrap();
    let nsqd = broker(dir.path(), &lookupd).await;
    let h = base(nsqd.http_address());

    let started = Instant::now();
    assert_eq!(
        post(&format!("{h}/topic/create?topic=orders")).await.status,
        200
    );
    let found = eventually("/lookup to list the topic", || {
        json(format!("{l}/lookup?topic=orders"))
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "listed after {:?}",
        started.elapsed()
    );
    let producer = &found["producers"][0];
    assert_eq!(producer["tcp_port"], nsqd.tcp_address().port());
    assert_eq!(producer["http_port"], nsqd.http_address().port());
    assert_eq!(producer["broadcast_address"], "127.0.0.1");

    // A topic made by PUB registers too.
    let reply = reqwest::Client::new()
        .post(format!("{h}/pub?topic=events"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    eventually("/topics to list both", || {
        let l = l.clone();
        async move {
            json(format!("{l}/topics"))
                .await
                .filter(|v| names(v, "topics") == ["events", "orders"])
        }
    })
    .await;

    for q in [
        "channel/create?topic=orders&channel=billing",
        "channel/create?topic=orders&channel=tail%23ephemeral",
    ] {
        assert_eq!(post(&format!("{h}/{q}")).await.status, 200);
    }
    channels_become(
        &l,
        "orders",
        &["billing", "tail#ephemeral"],
        "/channels to list both channels",
    )
    .await;
    assert_eq!(
        post(&format!(
            "{h}/channel/delete?topic=orders&channel=tail%23ephemeral"
        ))
        .await
        .status,
        200
    );
    channels_become(
        &l,
        "orders",
        &["billing"],
        "the ephemeral channel to vanish",
    )
    .await;
    assert_eq!(
        post(&format!("{h}/topic/delete?topic=events")).await.status,
        200
    );
    eventually("the deleted topic to have no producer", || {
        let l = l.clone();
        async move {
            match json(format!("{l}/lookup?topic=events")).await {
                None => Some(()),
                Some(v) => v["producers"]
                    .as_array()
                    .is_some_and(|p| p.is_empty())
                    .then_some(()),
            }
        }
    })
    .await;
    nsqd.shutdown().await;
    lookupd.shutdown().await;
}

#[tokio::test]
async fn a_restarted_lookupd_learns_everything_again_within_two_seconds() {
    let lookupd = Nsqlookupd::start(lookupd_options("127.0.0.1:0", "127.0.0.1:0"))
        .await
        .unwrap();
    let (tcp, http) = (
        lookupd.tcp_address().to_string(),
        lookupd.http_address().to_string(),
    );
    let dir = tempfile::tempdir().unwrap();
    let nsqd = broker(dir.path(), &lookupd).await;
    let h = base(nsqd.http_address());
    assert_eq!(post(&format!("{h}/topic/create?topic=t")).await.status, 200);
    assert_eq!(
        post(&format!("{h}/channel/create?topic=t&channel=c"))
            .await
            .status,
        200
    );
    let l = format!("http://{http}");
    eventually("the first registration", || {
        json(format!("{l}/channels?topic=t"))
    })
    .await;

    lookupd.shutdown().await;
    let restarted = Instant::now();
    let lookupd = eventually("lookupd to restart on its ports", || {
        let (tcp, http) = (tcp.clone(), http.clone());
        async move { Nsqlookupd::start(lookupd_options(&tcp, &http)).await.ok() }
    })
    .await;
    channels_become(&l, "t", &["c"], "everything to be registered again").await;
    let healed = restarted.elapsed();
    eprintln!("rnsq nsqlookupd restart healed in {healed:?}");
    assert!(healed < Duration::from_secs(2), "healed after {healed:?}");
    nsqd.shutdown().await;
    lookupd.shutdown().await;
}

#[tokio::test]
async fn a_new_broker_pre_creates_the_channels_lookupd_knows() {
    let lookupd = Nsqlookupd::start(lookupd_options("127.0.0.1:0", "127.0.0.1:0"))
        .await
        .unwrap();
    let l = base(lookupd.http_address());
    let dir_a = tempfile::tempdir().unwrap();
    let a = broker(dir_a.path(), &lookupd).await;
    assert_eq!(
        post(&format!(
            "{}/topic/create?topic=orders",
            base(a.http_address())
        ))
        .await
        .status,
        200
    );
    assert_eq!(
        post(&format!(
            "{}/channel/create?topic=orders&channel=billing",
            base(a.http_address())
        ))
        .await
        .status,
        200
    );
    channels_become(&l, "orders", &["billing"], "lookupd to know the channel").await;

    let dir_b = tempfile::tempdir().unwrap();
    let b = broker(dir_b.path(), &lookupd).await;
    let hb = base(b.http_address());
    // B has connected to lookupd once it has announced (it has nothing yet: wait for IDENTIFY).
    eventually("B to be known to lookupd", || {
        let l = l.clone();
        async move {
            json(format!("{l}/nodes"))
                .await
                .filter(|v| v["producers"].as_array().is_some_and(|p| p.len() == 2))
        }
    })
    .await;
    // The first message to B's new topic is not lost to the channel that exists elsewhere.
    let reply = reqwest::Client::new()
        .post(format!("{hb}/pub?topic=orders"))
        .body("first")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let stats = common::stats(&hb).await;
    let channels = &stats["topics"][0]["channels"];
    assert_eq!(channels[0]["channel_name"], "billing", "{stats}");
    eventually("the message to reach the pre-created channel", || {
        let hb = hb.clone();
        async move { (common::stats(&hb).await["topics"][0]["channels"][0]["depth"] == 1).then_some(()) }
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
    lookupd.shutdown().await;
}

#[tokio::test]
async fn a_client_that_knows_only_lookupd_finds_the_broker_and_receives() {
    use tokio_nsq::{
        NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQConsumerLookupConfig, NSQTopic,
    };
    let lookupd = Nsqlookupd::start(lookupd_options("127.0.0.1:0", "127.0.0.1:0"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let nsqd = broker(dir.path(), &lookupd).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/topic/create?topic=found")).await.status,
        200
    );
    let l = base(lookupd.http_address());
    eventually("the topic in lookupd", || {
        json(format!("{l}/lookup?topic=found"))
    })
    .await;

    let topic = NSQTopic::new("found").unwrap();
    let lookup = NSQConsumerLookupConfig::new()
        .set_addresses([l.clone()].into_iter().collect())
        .set_poll_interval(Duration::from_millis(200));
    let mut consumer = NSQConsumerConfig::new(topic, NSQChannel::new("reader").unwrap())
        .set_max_in_flight(10)
        .set_sources(NSQConsumerConfigSources::Lookup(lookup))
        .build();
    let reply = reqwest::Client::new()
        .post(format!("{h}/pub?topic=found"))
        .body("via lookupd")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let message = tokio::time::timeout(common::DEADLINE, consumer.consume_filtered())
        .await
        .expect("a message within the deadline")
        .expect("the consumer stream is open");
    assert_eq!(&message.body[..], b"via lookupd");
    message.finish().await;
    nsqd.shutdown().await;
    lookupd.shutdown().await;
}
