//! A metadata change that cannot reach the disk answers 500 with the reason and changes
//! nothing: not memory, not the store (after a restart it is still absent), while every change
//! answered 200 before it survives. The disk is a real, small tmpfs filled to the last byte.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::{base, post, stats};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

fn mount_tmpfs(at: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(at).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mounting a tmpfs failed (this test needs root, as CI has)"
    );
    Mount(at.into())
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
    if !is_root() {
        eprintln!("SKIPPED: disk-full test needs root to mount a tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let mount = mount_tmpfs(&mnt, "16m");
    let data = mnt.join("data");

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
