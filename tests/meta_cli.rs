//! `rnsq meta export|import|check` through the built binary, with real files and real broker
//! processes; and a broker's first boot on a data path holding only Go nsqd's metadata file.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::BrokerProcess;
use rnsq::meta_store::{SCHEMA_VERSION, STORE_DIR};

/// What both fixtures hold once invalid and ephemeral names are left out, as rnsq renders it
/// (Go nsqd 1.3.0's encoding, sorted).
const FIXTURE_EXPORT: &str = concat!(
    r#"{"topics":["#,
    r#"{"name":"audit","paused":true,"channels":null},"#,
    r#"{"name":"metrics","paused":true,"channels":[{"name":"graphite","paused":true},{"name":"statsd","paused":false}]},"#,
    r#"{"name":"orders","paused":false,"channels":[{"name":"archive","paused":true},{"name":"billing","paused":false},{"name":"fulfil","paused":false}]},"#,
    r#"{"name":"signups","paused":false,"channels":[{"name":"mailer","paused":true}]},"#,
    r#"{"name":"users","paused":false,"channels":null}"#,
    r#"],"version":"1.3.0"}"#
);

/// The fixtures' metadata as `(topic, paused, [(channel, paused)])`.
fn fixture_topics() -> Vec<TopicView> {
    vec![
        view("audit", true, &[]),
        view("metrics", true, &[("graphite", true), ("statsd", false)]),
        view(
            "orders",
            false,
            &[("archive", true), ("billing", false), ("fulfil", false)],
        ),
        view("signups", false, &[("mailer", true)]),
        view("users", false, &[]),
    ]
}

type TopicView = (String, bool, Vec<(String, bool)>);

fn view(name: &str, paused: bool, channels: &[(&str, bool)]) -> TopicView {
    (
        name.into(),
        paused,
        channels.iter().map(|(c, p)| ((*c).into(), *p)).collect(),
    )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const OLD_FIXTURE: &str = "nsqd-0.3.8.dat";
const NEW_FIXTURE: &str = "nsqd-1.3.0.dat";

/// A finished `rnsq` run.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "rnsq failed: {self:#?}");
        self
    }
}

fn rnsq(args: &[&std::ffi::OsStr]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_rnsq"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rnsq");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn export(data: &Path) -> Run {
    rnsq(&[
        os("meta"),
        os("export"),
        os("--data-path"),
        data.as_os_str(),
    ])
}

fn export_to(data: &Path, file: &Path) -> Run {
    rnsq(&[
        os("meta"),
        os("export"),
        os("--data-path"),
        data.as_os_str(),
        os("-o"),
        file.as_os_str(),
    ])
}

fn import(data: &Path, file: &Path, replace: bool) -> Run {
    let mut args = vec![
        os("meta"),
        os("import"),
        file.as_os_str(),
        os("--data-path"),
        data.as_os_str(),
    ];
    if replace {
        args.push(os("--replace"));
    }
    rnsq(&args)
}

fn check(data: &Path) -> Run {
    rnsq(&[os("meta"), os("check"), os("--data-path"), data.as_os_str()])
}

/// Writes `text` to `<dir>/<name>` and returns the path.
fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write file");
    path
}

/// The topics, flags and channels a broker reports in `/stats?format=json`.
async fn broker_topics(base: &str) -> Vec<TopicView> {
    let stats = common::stats(base).await;
    stats["topics"]
        .as_array()
        .expect("topics array")
        .iter()
        .map(|t| {
            (
                t["topic_name"].as_str().expect("topic_name").to_string(),
                t["paused"].as_bool().expect("topic paused"),
                t["channels"]
                    .as_array()
                    .expect("channels array")
                    .iter()
                    .map(|c| {
                        (
                            c["channel_name"].as_str().expect("channel_name").into(),
                            c["paused"].as_bool().expect("channel paused"),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

async fn post_ok(url: &str) {
    let reply = common::post(url).await;
    assert_eq!(reply.status, 200, "POST {url}: {}", reply.body);
}

#[test]
fn imports_go_nsqd_dat_in_both_encodings() {
    let dir = tempfile::tempdir().unwrap();
    for name in [OLD_FIXTURE, NEW_FIXTURE] {
        let file = fixture(name);
        let data = dir.path().join(format!("data-{name}"));
        let run = import(&data, &file, false);
        run.assert_ok();
        assert_eq!(
            run.stdout.trim_end(),
            format!(
                "imported {}: 5 topics and 6 channels in the file; 5 topics and 6 channels \
                 created, 0 topics and 0 channels removed, 3 names skipped",
                file.display()
            ),
            "{name}"
        );
        for skipped in [
            format!("skipped topic {:?}: invalid name", "bad topic!"),
            format!("skipped topic {:?}: ephemeral", "scratch#ephemeral"),
            format!("skipped channel {:?}: ephemeral", "signups/tail#ephemeral"),
        ] {
            assert!(
                run.stderr.contains(&skipped),
                "{name}: stderr lacks {skipped:?}: {}",
                run.stderr
            );
        }
        assert!(run.stderr.contains(&file.display().to_string()));

        let exported = export(&data);
        exported.assert_ok();
        assert_eq!(exported.stdout, format!("{FIXTURE_EXPORT}\n"), "{name}");
        for absent in ["bad topic", "#ephemeral"] {
            assert!(!exported.stdout.contains(absent), "{name}: {absent}");
        }
    }
}

#[test]
fn malformed_json_is_refused_with_its_position_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    import(&data, &fixture(OLD_FIXTURE), false).assert_ok();
    let before = export(&data);
    before.assert_ok();

    let bad = write_file(
        dir.path(),
        "broken.dat",
        "{\"topics\": [\n  {\"name\": \"new\", \"paused\": }\n]}",
    );
    for replace in [false, true] {
        let run = import(&data, &bad, replace);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(
            run.stderr.contains(&bad.display().to_string()),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("line 2"), "{}", run.stderr);
        assert!(run.stderr.contains("column 29"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        let after = export(&data);
        after.assert_ok();
        assert_eq!(after.stdout, before.stdout);
    }

    // On a fresh data path a refused import creates no store.
    let fresh = dir.path().join("fresh");
    let run = import(&fresh, &bad, false);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(!fresh.join(STORE_DIR).exists());
    let run = export(&fresh);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("no metadata store"), "{}", run.stderr);
}

#[test]
fn import_merges_by_default_and_replace_removes_what_the_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let update = write_file(
        dir.path(),
        "update.dat",
        r#"{"topics":[{"name":"orders","paused":true,"channels":[{"name":"billing","paused":true}]},{"name":"fresh","paused":false,"channels":null}],"version":"1.3.0"}"#,
    );

    let merged = dir.path().join("merged");
    import(&merged, &fixture(NEW_FIXTURE), false).assert_ok();
    let run = import(&merged, &update, false);
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "2 topics and 1 channels in the file; 1 topics and 0 channels created, \
             0 topics and 0 channels removed, 0 names skipped"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        export(&merged).assert_ok().stdout,
        concat!(
            r#"{"topics":["#,
            r#"{"name":"audit","paused":true,"channels":null},"#,
            r#"{"name":"fresh","paused":false,"channels":null},"#,
            r#"{"name":"metrics","paused":true,"channels":[{"name":"graphite","paused":true},{"name":"statsd","paused":false}]},"#,
            r#"{"name":"orders","paused":true,"channels":[{"name":"archive","paused":true},{"name":"billing","paused":true},{"name":"fulfil","paused":false}]},"#,
            r#"{"name":"signups","paused":false,"channels":[{"name":"mailer","paused":true}]},"#,
            r#"{"name":"users","paused":false,"channels":null}"#,
            "],\"version\":\"1.3.0\"}\n"
        )
    );

    let replaced = dir.path().join("replaced");
    import(&replaced, &fixture(NEW_FIXTURE), false).assert_ok();
    let run = import(&replaced, &update, true);
    run.assert_ok();
    assert!(
        run.stdout.contains(
            "2 topics and 1 channels in the file; 1 topics and 0 channels created, \
             4 topics and 5 channels removed, 0 names skipped"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        export(&replaced).assert_ok().stdout,
        concat!(
            r#"{"topics":["#,
            r#"{"name":"fresh","paused":false,"channels":null},"#,
            r#"{"name":"orders","paused":true,"channels":[{"name":"billing","paused":true}]}"#,
            "],\"version\":\"1.3.0\"}\n"
        )
    );
}

#[test]
fn export_then_import_into_a_fresh_path_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    import(&first, &fixture(OLD_FIXTURE), false).assert_ok();
    let extra = write_file(
        dir.path(),
        "extra.dat",
        r#"{"topics":[{"name":"zeta","paused":true,"channels":[{"name":"z1","paused":false},{"name":"z0","paused":true}]}]}"#,
    );
    import(&first, &extra, false).assert_ok();

    let exported = export(&first);
    exported.assert_ok();
    let file = write_file(dir.path(), "exported.dat", &exported.stdout);

    let second = dir.path().join("second");
    let run = import(&second, &file, false);
    run.assert_ok();
    assert!(run.stdout.contains("0 names skipped"), "{}", run.stdout);
    let again = export(&second);
    again.assert_ok();
    assert_eq!(again.stdout.as_bytes(), exported.stdout.as_bytes());
    assert!(again.stdout.contains(r#"{"name":"z0","paused":true}"#));

    // `-o` writes the same JSON (without the terminal's newline) to the file.
    let out = dir.path().join("out.dat");
    let run = export_to(&second, &out);
    run.assert_ok();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        exported.stdout.trim_end()
    );
}

#[tokio::test]
async fn export_asks_the_running_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::spawn(&data, &[]);
    let base = broker.base();
    for path in [
        "/topic/create?topic=t2",
        "/topic/create?topic=t1",
        "/topic/create?topic=scratch%23ephemeral",
        "/channel/create?topic=t1&channel=c1",
        "/channel/create?topic=t1&channel=c2",
        "/channel/create?topic=t1&channel=tail%23ephemeral",
        "/channel/pause?topic=t1&channel=c2",
        "/topic/pause?topic=t2",
    ] {
        post_ok(&format!("{base}{path}")).await;
    }
    let expected = concat!(
        r#"{"topics":["#,
        r#"{"name":"t1","paused":false,"channels":[{"name":"c1","paused":false},{"name":"c2","paused":true}]},"#,
        r#"{"name":"t2","paused":true,"channels":null}"#,
        r#"],"version":"1.3.0"}"#
    );
    let run = export(&data);
    run.assert_ok();
    assert_eq!(run.stdout, format!("{expected}\n"));

    // A later change shows at once: the broker answers from its store.
    post_ok(&format!("{base}/channel/unpause?topic=t1&channel=c2")).await;
    post_ok(&format!("{base}/topic/delete?topic=t2")).await;
    let out = dir.path().join("export.dat");
    let run = export_to(&data, &out);
    run.assert_ok();
    assert_eq!(
        fs::read_to_string(&out).unwrap(),
        concat!(
            r#"{"topics":["#,
            r#"{"name":"t1","paused":false,"channels":[{"name":"c1","paused":false},{"name":"c2","paused":false}]}"#,
            r#"],"version":"1.3.0"}"#
        )
    );
    assert!(broker.terminate(), "the broker did not exit cleanly");
}

#[tokio::test]
async fn import_and_check_refuse_while_a_broker_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::spawn(&data, &[]);
    post_ok(&format!("{}/topic/create?topic=live", broker.base())).await;
    let holder = format!("rnsq pid {}", broker.child.id());

    for (what, run) in [
        ("import", import(&data, &fixture(NEW_FIXTURE), false)),
        (
            "import --replace",
            import(&data, &fixture(NEW_FIXTURE), true),
        ),
        ("check", check(&data)),
    ] {
        assert_eq!(run.code, Some(1), "{what}: {run:#?}");
        assert!(run.stderr.contains("in use"), "{what}: {}", run.stderr);
        assert!(run.stderr.contains(&holder), "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains(&data.display().to_string()),
            "{what}: {}",
            run.stderr
        );
    }
    assert_eq!(
        broker_topics(&broker.base()).await,
        vec![view("live", false, &[])]
    );
    assert!(broker.terminate(), "the broker did not exit cleanly");

    // Nothing was imported behind the broker's back.
    assert_eq!(
        export(&data).assert_ok().stdout,
        "{\"topics\":[{\"name\":\"live\",\"paused\":false,\"channels\":null}],\"version\":\"1.3.0\"}\n"
    );
    // With the broker gone, check takes the path, and the nsqd.dat it left matches the store.
    let run = check(&data);
    run.assert_ok();
    assert!(
        run.stdout.contains("nsqd.dat: matches the store"),
        "{}",
        run.stdout
    );
}

#[test]
fn check_prints_the_schema_version_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let run = check(&data);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("no metadata store"), "{}", run.stderr);

    import(&data, &fixture(OLD_FIXTURE), false).assert_ok();
    let run = check(&data);
    run.assert_ok();
    assert!(
        run.stdout.contains(&format!(
            "schema version {SCHEMA_VERSION}, 5 topics (2 paused), 6 channels (3 paused)"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no problems found"), "{}", run.stdout);
    assert!(!run.stdout.contains("problem:"), "{}", run.stdout);

    // A record sled holds but rnsq cannot decode is a problem: exit 1, and it is named.
    {
        let db = common::open_sled(data.join(STORE_DIR));
        db.open_tree("topics")
            .unwrap()
            .insert(b"wrecked", &b"\xff\xff"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let run = check(&data);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout.contains("problem: topic \"wrecked\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("5 topics (2 paused), 6 channels (3 paused)"),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn first_boot_imports_go_nsqd_dat() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::copy(fixture(OLD_FIXTURE), data.join("nsqd.dat")).unwrap();

    let broker = BrokerProcess::spawn(&data, &[]);
    assert_eq!(broker_topics(&broker.base()).await, fixture_topics());
    // The Go file is rewritten from the store, in 1.3.0's encoding.
    assert_eq!(
        fs::read_to_string(data.join("nsqd.dat")).unwrap(),
        FIXTURE_EXPORT
    );
    assert!(broker.terminate(), "the broker did not exit cleanly");

    // The import happened once: a second start keeps the store even if the file changes.
    fs::write(
        data.join("nsqd.dat"),
        r#"{"topics":[{"name":"intruder","paused":false,"channels":null}],"version":"1.3.0"}"#,
    )
    .unwrap();
    let broker = BrokerProcess::spawn(&data, &[]);
    assert_eq!(broker_topics(&broker.base()).await, fixture_topics());
    assert!(broker.terminate(), "the broker did not exit cleanly");
}

#[tokio::test]
async fn first_boot_imports_a_legacy_node_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    fs::copy(fixture(NEW_FIXTURE), data.join("nsqd.5.dat")).unwrap();

    let broker = BrokerProcess::spawn(&data, &["--node-id", "5"]);
    assert_eq!(broker_topics(&broker.base()).await, fixture_topics());
    assert_eq!(
        fs::read_to_string(data.join("nsqd.dat")).unwrap(),
        FIXTURE_EXPORT
    );
    assert!(broker.terminate(), "the broker did not exit cleanly");
}

#[tokio::test]
async fn a_cli_import_before_first_boot_is_not_overwritten_by_nsqd_dat() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    import(&data, &fixture(NEW_FIXTURE), false).assert_ok();
    fs::write(
        data.join("nsqd.dat"),
        r#"{"topics":[{"name":"intruder","paused":false,"channels":null}],"version":"1.3.0"}"#,
    )
    .unwrap();

    let broker = BrokerProcess::spawn(&data, &[]);
    assert_eq!(broker_topics(&broker.base()).await, fixture_topics());
    assert_eq!(
        fs::read_to_string(data.join("nsqd.dat")).unwrap(),
        FIXTURE_EXPORT
    );
    assert!(broker.terminate(), "the broker did not exit cleanly");
}

#[tokio::test]
async fn a_corrupt_nsqd_dat_beside_a_store_is_rewritten_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::spawn(&data, &[]);
    let base = broker.base();
    for path in [
        "/topic/create?topic=kept",
        "/channel/create?topic=kept&channel=ch",
        "/channel/pause?topic=kept&channel=ch",
        "/topic/create?topic=other",
        "/topic/pause?topic=other",
    ] {
        post_ok(&format!("{base}{path}")).await;
    }
    assert!(broker.terminate(), "the broker did not exit cleanly");
    let expected = concat!(
        r#"{"topics":["#,
        r#"{"name":"kept","paused":false,"channels":[{"name":"ch","paused":true}]},"#,
        r#"{"name":"other","paused":true,"channels":null}"#,
        r#"],"version":"1.3.0"}"#
    );
    assert_eq!(fs::read_to_string(data.join("nsqd.dat")).unwrap(), expected);

    fs::write(data.join("nsqd.dat"), b"\x00\xffnot json at all{{{").unwrap();
    let broker = BrokerProcess::spawn(&data, &[]);
    assert_eq!(
        broker_topics(&broker.base()).await,
        vec![
            view("kept", false, &[("ch", true)]),
            view("other", true, &[])
        ]
    );
    assert_eq!(fs::read_to_string(data.join("nsqd.dat")).unwrap(), expected);
    assert!(broker.terminate(), "the broker did not exit cleanly");
}

#[test]
fn export_and_check_do_not_create_a_missing_data_path() {
    let dir = tempfile::tempdir().unwrap();
    for (what, data, run) in [
        (
            "export",
            dir.path().join("typo1"),
            export as fn(&Path) -> Run,
        ),
        ("check", dir.path().join("typo2"), check),
    ] {
        let result = run(&data);
        assert_eq!(result.code, Some(1), "{what}: {result:#?}");
        assert!(
            result.stderr.contains("no metadata store"),
            "{what}: {}",
            result.stderr
        );
        assert!(
            !data.exists(),
            "`rnsq meta {what}` created the missing data path {}",
            data.display()
        );
    }
}
