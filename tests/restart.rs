//! Clean restarts: topics, channels and both paused flags come back exactly; deletes stay
//! deleted; nsqd.dat is rewritten from the store at boot whatever it held.

mod common;

use common::{base, post, stats};
use serde_json::Value;

/// A topic as (name, paused, [(channel, paused)]).
type Shape = (String, bool, Vec<(String, bool)>);

/// Every topic's shape, in /stats order.
fn shape(stats: &Value) -> Vec<Shape> {
    stats["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let channels = t["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["channel_name"].as_str().unwrap().to_string(),
                        c["paused"].as_bool().unwrap(),
                    )
                })
                .collect();
            (
                t["topic_name"].as_str().unwrap().to_string(),
                t["paused"].as_bool().unwrap(),
                channels,
            )
        })
        .collect()
}

#[tokio::test]
async fn metadata_survives_a_restart_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    for q in [
        "topic/create?topic=plain",
        "topic/create?topic=paused",
        "topic/pause?topic=paused",
        "channel/create?topic=plain&channel=a",
        "channel/create?topic=plain&channel=b",
        "channel/pause?topic=plain&channel=b",
        "channel/create?topic=paused&channel=c",
        "topic/create?topic=gone",
        "channel/create?topic=gone&channel=x",
        "topic/delete?topic=gone",
        "channel/create?topic=plain&channel=dropped",
        "channel/delete?topic=plain&channel=dropped",
        "topic/create?topic=flipped",
        "topic/pause?topic=flipped",
        "topic/unpause?topic=flipped",
        "topic/create?topic=temp%23ephemeral",
        "channel/create?topic=plain&channel=temp%23ephemeral",
    ] {
        assert_eq!(post(&format!("{h}/{q}")).await.status, 200, "{q}");
    }
    let before = shape(&stats(&h).await);
    nsqd.shutdown().await;

    let nsqd = common::start(dir.path()).await;
    let after = shape(&stats(&base(nsqd.http_address())).await);
    let expected: Vec<_> = before
        .into_iter()
        .filter(|(t, _, _)| !t.ends_with("#ephemeral"))
        .map(|(t, p, cs)| {
            (
                t,
                p,
                cs.into_iter()
                    .filter(|(c, _)| !c.ends_with("#ephemeral"))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(after, expected);
    let names: Vec<_> = after.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(names, ["flipped", "paused", "plain"]);
    assert!(nsqd.broker().topics().iter().all(|t| t.is_started()));
    nsqd.shutdown().await;
}

#[tokio::test]
async fn boot_rewrites_a_stale_or_corrupt_nsqd_dat_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let h = base(nsqd.http_address());
    assert_eq!(
        post(&format!("{h}/channel/create?topic=t&channel=c"))
            .await
            .status,
        404
    );
    assert_eq!(post(&format!("{h}/topic/create?topic=t")).await.status, 200);
    assert_eq!(
        post(&format!("{h}/channel/create?topic=t&channel=c"))
            .await
            .status,
        200
    );
    nsqd.shutdown().await;
    let dat = dir.path().join("nsqd.dat");
    let good = std::fs::read_to_string(&dat).unwrap();
    assert_eq!(
        good,
        r#"{"topics":[{"name":"t","paused":false,"channels":[{"name":"c","paused":false}]}],"version":"1.3.0"}"#
    );

    for stale in [
        r#"{"topics":[{"name":"intruder","paused":true,"channels":null}],"version":"1.3.0"}"#,
        "{ this is not json",
        "",
    ] {
        std::fs::write(&dat, stale).unwrap();
        std::fs::write(dir.path().join("nsqd.dat.99.tmp"), "left by a crash").unwrap();
        let nsqd = common::start(dir.path()).await;
        let names: Vec<_> = nsqd
            .broker()
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        assert_eq!(
            names,
            ["t"],
            "boot trusted nsqd.dat {stale:?} over the store"
        );
        assert_eq!(std::fs::read_to_string(&dat).unwrap(), good);
        assert!(
            !dir.path().join("nsqd.dat.99.tmp").exists(),
            "stray temp file left"
        );
        nsqd.shutdown().await;
    }
}

#[tokio::test]
async fn a_broker_on_a_locked_data_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nsqd = common::start(dir.path()).await;
    let live = std::sync::Arc::new(rnsq::config::LiveOptions::new(
        common::options(dir.path()),
        Box::new(|_| {}),
    ));
    let error = match rnsq::nsqd::Nsqd::start(live).await {
        Ok(_) => panic!("a second broker started on a locked data path"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains(&dir.path().display().to_string()), "{error}");
    assert!(
        error.contains(&format!("rnsq pid {}", std::process::id())),
        "{error}"
    );
    nsqd.shutdown().await;
    // Released at shutdown.
    common::start(dir.path()).await.shutdown().await;
}
