//! `--e2e-processing-latency-percentile`: /stats reports publish-to-FIN latency percentiles per
//! channel and per topic, in Go's JSON shape and text form.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn frame(stream: &mut TcpStream) -> (i32, Vec<u8>) {
    tokio::time::timeout(common::DEADLINE, async {
        let size = stream.read_i32().await.expect("frame size");
        let kind = stream.read_i32().await.expect("frame type");
        let mut data = vec![0; size as usize - 4];
        stream.read_exact(&mut data).await.expect("frame data");
        (kind, data)
    })
    .await
    .expect("a frame in time")
}

#[tokio::test]
async fn finished_messages_feed_the_latency_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options(dir.path());
    opts.e2e_processing_latency_percentiles = vec![1.0, 0.5];
    opts.e2e_processing_latency_window_time = Duration::from_secs(600);
    let nsqd = common::start_with(opts).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = TcpStream::connect(nsqd.tcp_address()).await.unwrap();
    consumer.write_all(b"  V2SUB t c\nRDY 10\n").await.unwrap();
    assert_eq!(frame(&mut consumer).await, (0, b"OK".to_vec()));
    let mut producer = TcpStream::connect(nsqd.tcp_address()).await.unwrap();
    producer.write_all(b"  V2").await.unwrap();
    for body in [&b"one"[..], b"two", b"three"] {
        producer.write_all(b"PUB t\n").await.unwrap();
        producer
            .write_all(&(body.len() as i32).to_be_bytes())
            .await
            .unwrap();
        producer.write_all(body).await.unwrap();
        assert_eq!(frame(&mut producer).await, (0, b"OK".to_vec()));
    }
    for _ in 0..3 {
        let (kind, data) = frame(&mut consumer).await;
        assert_eq!(kind, 2);
        consumer
            .write_all(&[b"FIN ", &data[10..26], b"\n"].concat())
            .await
            .unwrap();
    }
    let stats = common::eventually("three FINs to be recorded", || {
        let h = h.clone();
        async move {
            let s = common::stats(&h).await;
            (s["topics"][0]["channels"][0]["e2e_processing_latency"]["count"] == 3).then_some(s)
        }
    })
    .await;
    let channel = &stats["topics"][0]["channels"][0]["e2e_processing_latency"];
    let topic = &stats["topics"][0]["e2e_processing_latency"];
    assert_eq!(topic["count"], 3);
    for latency in [channel, topic] {
        let percentiles = latency["percentiles"].as_array().expect("percentiles list");
        assert_eq!(percentiles.len(), 2);
        assert_eq!(percentiles[0]["quantile"], 1.0);
        assert_eq!(percentiles[1]["quantile"], 0.5);
        let max = percentiles[0]["value"].as_f64().unwrap();
        let median = percentiles[1]["value"].as_f64().unwrap();
        assert!(max > 0.0 && median > 0.0 && median <= max, "{latency}");
        assert!(max < 20e9, "latency {max} ns is not plausible");
    }
    let text = common::get(&format!("{h}/stats")).await.body;
    let line = text
        .lines()
        .find(|l| l.contains("[c "))
        .expect("channel line");
    let e2e = line.split("e2e%: ").nth(1).unwrap_or_default();
    assert_eq!(e2e.split(", ").count(), 2, "{line}");
    assert!(e2e.ends_with('s'), "{line}");

    // Without the option, Go's empty result.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = common::start(plain_dir.path()).await;
    let ph = common::base(plain.http_address());
    assert_eq!(
        common::post(&format!("{ph}/topic/create?topic=t"))
            .await
            .status,
        200
    );
    let s = common::stats(&ph).await;
    assert_eq!(
        s["topics"][0]["e2e_processing_latency"],
        serde_json::json!({"count": 0, "percentiles": null})
    );
    plain.shutdown().await;
    nsqd.shutdown().await;
}
