//! IDENTIFY `sample_rate`: a consumer receives about that percentage of the channel's messages
//! (the rest are passed over for it, as in Go).

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn frame(stream: &mut TcpStream, wait: Duration) -> Option<(i32, Vec<u8>)> {
    tokio::time::timeout(wait, async {
        let size = stream.read_i32().await.ok()?;
        let kind = stream.read_i32().await.ok()?;
        let mut data = vec![0; size as usize - 4];
        stream.read_exact(&mut data).await.ok()?;
        Some((kind, data))
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn sample_rate_delivers_about_that_share() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = common::base(nsqd.http_address());

    let mut consumer = TcpStream::connect(nsqd.tcp_address()).await.unwrap();
    let identify = br#"{"sample_rate":10}"#;
    consumer.write_all(b"  V2IDENTIFY\n").await.unwrap();
    consumer
        .write_all(&(identify.len() as i32).to_be_bytes())
        .await
        .unwrap();
    consumer.write_all(identify).await.unwrap();
    assert_eq!(
        frame(&mut consumer, common::DEADLINE).await,
        Some((0, b"OK".to_vec()))
    );
    consumer.write_all(b"SUB t c\nRDY 2500\n").await.unwrap();
    assert_eq!(
        frame(&mut consumer, common::DEADLINE).await,
        Some((0, b"OK".to_vec()))
    );

    let total = 2000;
    let body: Vec<u8> = (0..total)
        .map(|i| format!("m{i}\n"))
        .collect::<String>()
        .into_bytes();
    let reply = reqwest::Client::new()
        .post(format!("{h}/mpub?topic=t"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    common::eventually("the channel to be drained", || {
        let h = h.clone();
        async move {
            let s = common::stats(&h).await;
            (s["topics"][0]["channels"][0]["depth"] == 0 && s["topics"][0]["depth"] == 0)
                .then_some(())
        }
    })
    .await;
    let mut received = 0;
    while let Some((kind, _)) = frame(&mut consumer, Duration::from_millis(300)).await {
        if kind == 2 {
            received += 1;
        }
    }
    // 10% of 2000 is 200; the bounds are far out in the binomial tails.
    assert!(
        (100..=320).contains(&received),
        "received {received} of {total} at sample_rate 10"
    );
    nsqd.shutdown().await;
}
