//! Process-level tests of the `rnsq` binary: the data-path lock, start-up errors, `--help` and
//! `--version`, Go-style flags, `--config` files, and a clean shutdown on SIGTERM.

mod common;

use std::ffi::OsString;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use serde_json::{json, Value};

use common::{eventually_blocking, rnsq_bin, BrokerProcess};
use rnsq::data_lock;

/// What a finished `rnsq` run printed, and how it exited.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Kills the child if the test ends before it does.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `rnsq args` in `cwd` to completion (failing the test if it runs past the deadline,
/// e.g. because it started a broker instead of answering).
fn run_in(cwd: &Path, args: &[OsString]) -> Run {
    let out = tempfile::tempdir().expect("tempdir");
    let stdout_path = out.path().join("stdout");
    let stderr_path = out.path().join("stderr");
    let child = Command::new(rnsq_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).expect("stdout file"))
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn rnsq");
    let mut child = Reaper(child);
    let what = format!("rnsq {args:?} to exit");
    let status = eventually_blocking(&what, || child.0.try_wait().expect("try_wait"));
    Run {
        status,
        stdout: std::fs::read_to_string(stdout_path).expect("stdout"),
        stderr: std::fs::read_to_string(stderr_path).expect("stderr"),
    }
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn os(path: &Path) -> OsString {
    path.as_os_str().to_owned()
}

/// Starts `rnsq args` and waits until it serves HTTP on `data_path` (as recorded in the
/// data-path lock's holder file); fails with its stderr if it exits instead.
fn start(cwd: &Path, args: &[OsString], data_path: &Path) -> BrokerProcess {
    let name = data_path
        .file_name()
        .expect("data path has a name")
        .to_string_lossy();
    let stderr_path = cwd.join(format!("{name}.stderr"));
    let child = Command::new(rnsq_bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn rnsq");
    // BrokerProcess's Drop kills and reaps the child however this ends; its address is
    // filled in once known.
    let mut broker = BrokerProcess {
        child,
        http: SocketAddr::from(([0, 0, 0, 0], 0)),
        data_path: data_path.into(),
    };
    let pid = broker.child.id();
    broker.http = eventually_blocking("the broker to serve on its data path", || {
        if let Some(status) = broker.child.try_wait().expect("try_wait") {
            panic!(
                "rnsq {args:?} exited with {status} instead of serving: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        data_lock::read_holder(data_path)
            .filter(|h| h.pid == pid)
            .and_then(|h| h.http_address)
    });
    broker
}

fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::blocking::get(format!("http://{address}{path}")).expect("GET");
    let status = response.status().as_u16();
    (status, response.text().expect("body"))
}

fn http_post(address: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{address}{path}"))
        .send()
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.text().expect("body"))
}

/// `GET /config/<opt>` as JSON.
fn config_option(address: SocketAddr, opt: &str) -> Value {
    let (status, body) = http_get(address, &format!("/config/{opt}"));
    assert_eq!(status, 200, "GET /config/{opt}: {body}");
    serde_json::from_str(&body).expect("config option JSON")
}

/// A TOML string literal for `path`.
fn toml_path(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

#[test]
fn second_broker_on_the_same_data_path_is_refused_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let first = BrokerProcess::spawn(&data_path, &[]);
    let first_pid = first.child.id();

    let second = run_in(
        dir.path(),
        &[
            os(Path::new("nsqd")),
            os(Path::new("--data-path")),
            os(&data_path),
            "--tcp-address".into(),
            "127.0.0.1:0".into(),
            "--http-address".into(),
            "127.0.0.1:0".into(),
        ],
    );
    assert_eq!(second.code(), Some(1), "stderr: {}", second.stderr);
    assert!(
        second.stderr.contains(&data_path.display().to_string()),
        "the refusal names the data path: {}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("rnsq pid {first_pid}")),
        "the refusal names the holder's pid {first_pid}: {}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&first.http.to_string()),
        "the refusal says where the holder serves ({}): {}",
        first.http,
        second.stderr
    );

    // The refused process disturbed neither the holder record nor the running broker.
    let holder = data_lock::read_holder(&data_path).expect("holder record");
    assert_eq!(
        holder.pid, first_pid,
        "the holder record still names the first broker"
    );
    assert_eq!(http_get(first.http, "/ping"), (200, "OK".to_string()));
    assert!(first.terminate(), "the first broker exits 0 on SIGTERM");
}

fn unwritable_data_path_run() -> (tempfile::TempDir, PathBuf, Run) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Tests run as root, whom permissions do not stop; a path under a regular file stops
    // everyone.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let data_path = file.join("data");
    let run = run_in(
        dir.path(),
        &[
            os(Path::new("--data-path")),
            os(&data_path),
            "--tcp-address".into(),
            "127.0.0.1:0".into(),
            "--http-address".into(),
            "127.0.0.1:0".into(),
        ],
    );
    (dir, data_path, run)
}

#[test]
fn unwritable_data_path_exits_1_naming_the_path() {
    let (_dir, data_path, run) = unwritable_data_path_run();
    assert_eq!(run.code(), Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains(&data_path.display().to_string()),
        "the message names the data path: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("Not a directory"),
        "the message says what is wrong: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked"),
        "an error, not a panic: {}",
        run.stderr
    );
}

/// The message is printed with its cause chain (`{:#}`); a cause must not be printed twice.
#[test]
fn start_up_error_names_its_cause_once() {
    let (_dir, _data_path, run) = unwritable_data_path_run();
    assert_eq!(run.code(), Some(1), "stderr: {}", run.stderr);
    assert_eq!(
        run.stderr.matches("Not a directory").count(),
        1,
        "the OS error appears once: {}",
        run.stderr
    );
}

#[test]
fn help_and_version_work_for_every_command() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let version = env!("CARGO_PKG_VERSION");
    let commands: [(&[&str], &[&str]); 6] = [
        (&[], &["nsqd", "meta", "--data-path", "--config"]),
        (
            &["nsqd"],
            &[
                "--data-path",
                "--config",
                "--tcp-address",
                "--durable",
                "--sync-every",
                "--sync-timeout",
                "--max-bytes-per-file",
            ],
        ),
        (&["meta"], &["export", "import", "check"]),
        (&["meta", "export"], &["--data-path", "--output"]),
        (&["meta", "import"], &["<FILE>", "--replace", "--data-path"]),
        (&["meta", "check"], &["--data-path"]),
    ];
    for (command, expected) in commands {
        let usage = ["rnsq"].iter().chain(command).copied().collect::<Vec<_>>();
        let usage = format!("Usage: {}", usage.join(" "));

        let help = run_in(cwd.path(), &args(&[command, &["--help"]].concat()));
        assert!(help.status.success(), "{command:?} --help: {}", help.stderr);
        assert!(
            help.stdout.contains(&usage),
            "{command:?} --help shows {usage:?}: {}",
            help.stdout
        );
        for word in expected {
            assert!(
                help.stdout.contains(word),
                "{command:?} --help mentions {word}: {}",
                help.stdout
            );
        }

        let shown = run_in(cwd.path(), &args(&[command, &["--version"]].concat()));
        assert!(
            shown.status.success(),
            "{command:?} --version: {}",
            shown.stderr
        );
        assert!(
            shown.stdout.starts_with("rnsq") && shown.stdout.contains(version),
            "{command:?} --version names rnsq {version}: {}",
            shown.stdout
        );
    }
    // Go nsqd's own spelling.
    let go = run_in(cwd.path(), &args(&["-version"]));
    assert!(go.status.success(), "-version: {}", go.stderr);
    assert!(go.stdout.contains(version), "-version: {}", go.stdout);
    // Answering never started a broker on the default ./data.
    assert!(
        !cwd.path().join("data").exists(),
        "--help or --version created ./data"
    );
}

#[test]
fn go_style_single_dash_flags_start_and_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let broker = start(
        dir.path(),
        &[
            format!("-data-path={}", data_path.display()).into(),
            "-http-address=127.0.0.1:0".into(),
            "-tcp-address=127.0.0.1:0".into(),
        ],
        &data_path,
    );
    assert_eq!(http_get(broker.http, "/ping"), (200, "OK".to_string()));
    assert_eq!(
        config_option(broker.http, "data_path"),
        json!(data_path.display().to_string())
    );
    assert!(broker.terminate(), "exits 0 on SIGTERM");

    // The space-separated form, after the nsqd subcommand.
    let other = dir.path().join("other");
    let broker = start(
        dir.path(),
        &[
            "nsqd".into(),
            "-data-path".into(),
            os(&other),
            "-http-address".into(),
            "127.0.0.1:0".into(),
            "-tcp-address".into(),
            "127.0.0.1:0".into(),
            "-max-rdy-count".into(),
            "7".into(),
        ],
        &other,
    );
    assert_eq!(http_get(broker.http, "/ping"), (200, "OK".to_string()));
    assert_eq!(config_option(broker.http, "max_rdy_count"), json!(7));
    assert!(broker.terminate(), "exits 0 on SIGTERM");
}

#[test]
fn diskqueue_flags_are_honoured_in_both_spellings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let broker = start(
        dir.path(),
        &[
            format!("-data-path={}", data_path.display()).into(),
            "-http-address=127.0.0.1:0".into(),
            "-tcp-address=127.0.0.1:0".into(),
            "-max-bytes-per-file".into(),
            "1048576".into(),
            "-sync-every=10".into(),
            "--sync-timeout".into(),
            "250ms".into(),
            "--durable".into(),
        ],
        &data_path,
    );
    assert_eq!(
        config_option(broker.http, "max_bytes_per_file"),
        json!(1_048_576)
    );
    assert_eq!(config_option(broker.http, "sync_every"), json!(10));
    assert_eq!(
        config_option(broker.http, "sync_timeout"),
        json!(250_000_000u64)
    );
    assert_eq!(config_option(broker.http, "durable"), json!(true));
    assert!(broker.terminate(), "exits 0 on SIGTERM");

    // The defaults, as Go nsqd answers them (durable is rnsq's own, off by default).
    let other = dir.path().join("other");
    let broker = BrokerProcess::spawn(&other, &[]);
    assert_eq!(
        config_option(broker.http, "max_bytes_per_file"),
        json!(104_857_600)
    );
    assert_eq!(config_option(broker.http, "sync_every"), json!(2500));
    assert_eq!(
        config_option(broker.http, "sync_timeout"),
        json!(2_000_000_000u64)
    );
    assert_eq!(config_option(broker.http, "durable"), json!(false));
    assert!(broker.terminate(), "exits 0 on SIGTERM");
}

#[test]
fn bad_diskqueue_flags_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let base = [
        "--data-path".into(),
        os(&data_path),
        "--tcp-address".into(),
        "127.0.0.1:0".into(),
        "--http-address".into(),
        "127.0.0.1:0".into(),
    ];
    let cases: [(&[&str], &str); 5] = [
        (&["--sync-timeout", "abc"], "--sync-timeout"),
        (&["-sync-timeout=abc"], "--sync-timeout"),
        (&["--sync-every", "0"], "sync-every"),
        (&["-max-bytes-per-file=0"], "max-bytes-per-file"),
        (&["--max-bytes-per-file=-5"], "max-bytes-per-file"),
    ];
    for (flags, expected) in cases {
        let mut command = base.to_vec();
        command.extend(args(flags));
        let run = run_in(dir.path(), &command);
        assert!(
            !run.status.success(),
            "{flags:?} is refused: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(expected),
            "{flags:?}: the message names {expected}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("panicked"),
            "{flags:?}: an error, not a panic: {}",
            run.stderr
        );
    }
    assert!(!data_path.exists(), "nothing was started on the data path");
}

#[test]
fn config_file_with_diskqueue_keys_is_honoured_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let config = dir.path().join("nsqd.toml");
    let common = format!(
        "data_path = {}\nhttp_address = \"127.0.0.1:0\"\ntcp_address = \"127.0.0.1:0\"\n",
        toml_path(&data_path)
    );
    std::fs::write(
        &config,
        format!(
            "{common}max_bytes_per_file = 2097152\nsync_every = 5\nsync_timeout = \"1s\"\n\
             durable = true\n"
        ),
    )
    .expect("write config");
    let broker = start(dir.path(), &["--config".into(), os(&config)], &data_path);
    assert_eq!(
        config_option(broker.http, "max_bytes_per_file"),
        json!(2_097_152)
    );
    assert_eq!(config_option(broker.http, "sync_every"), json!(5));
    assert_eq!(
        config_option(broker.http, "sync_timeout"),
        json!(1_000_000_000u64)
    );
    assert_eq!(config_option(broker.http, "durable"), json!(true));
    assert!(broker.terminate(), "exits 0 on SIGTERM");
    std::fs::remove_dir_all(&data_path).expect("remove data path");

    for (line, key) in [
        ("sync_every = 0", "sync_every"),
        ("max_bytes_per_file = 0", "max_bytes_per_file"),
        ("sync_timeout = \"abc\"", "sync_timeout"),
        ("durable = \"yes\"", "durable"),
    ] {
        std::fs::write(&config, format!("{common}{line}\n")).expect("write config");
        let run = run_in(dir.path(), &["--config".into(), os(&config)]);
        assert_eq!(run.code(), Some(1), "{line}: stderr: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("`{key}`")),
            "{line}: the message names the key: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("does not support"),
            "{line}: the key is supported now: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&config.display().to_string()),
            "{line}: the message names the file: {}",
            run.stderr
        );
        assert!(!data_path.exists(), "{line}: nothing was started");
    }
}

#[test]
fn config_file_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("from-file");
    let config = dir.path().join("nsqd.toml");
    std::fs::write(
        &config,
        format!(
            "data_path = {}\nhttp_address = \"127.0.0.1:0\"\ntcp_address = \"127.0.0.1:0\"\n\
             max_rdy_count = 10\nmsg_timeout = \"90s\"\n",
            toml_path(&data_path)
        ),
    )
    .expect("write config");
    let broker = start(dir.path(), &["--config".into(), os(&config)], &data_path);
    assert_eq!(http_get(broker.http, "/ping"), (200, "OK".to_string()));
    assert_eq!(
        config_option(broker.http, "data_path"),
        json!(data_path.display().to_string())
    );
    assert_eq!(config_option(broker.http, "max_rdy_count"), json!(10));
    assert_eq!(
        config_option(broker.http, "msg_timeout"),
        json!(90_000_000_000u64)
    );
    assert!(
        data_path.join("meta.sled").is_dir(),
        "the store lives in the file's data path"
    );
    assert!(broker.terminate(), "exits 0 on SIGTERM");
    assert!(
        !dir.path().join("data").exists(),
        "the default ./data was not used"
    );
}

#[test]
fn config_file_with_an_unknown_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let config = dir.path().join("nsqd.toml");
    std::fs::write(
        &config,
        format!(
            "data_path = {}\nhttp_address = \"127.0.0.1:0\"\ntcp_address = \"127.0.0.1:0\"\n\
             no_such_option = 1\n",
            toml_path(&data_path)
        ),
    )
    .expect("write config");
    let run = run_in(dir.path(), &["--config".into(), os(&config)]);
    assert_eq!(run.code(), Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("no_such_option"),
        "the message names the key: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&config.display().to_string()),
        "the message names the file: {}",
        run.stderr
    );
    assert!(!data_path.exists(), "nothing was started on the data path");
}

#[test]
fn config_file_with_a_bad_value_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let config = dir.path().join("nsqd.toml");
    std::fs::write(
        &config,
        format!(
            "data_path = {}\nhttp_address = \"127.0.0.1:0\"\ntcp_address = \"127.0.0.1:0\"\n\
             max_rdy_count = \"x\"\n",
            toml_path(&data_path)
        ),
    )
    .expect("write config");
    let run = run_in(dir.path(), &["nsqd".into(), "--config".into(), os(&config)]);
    assert_eq!(run.code(), Some(1), "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains("max_rdy_count"),
        "the message names the key: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&config.display().to_string()),
        "the message names the file: {}",
        run.stderr
    );
    assert!(!data_path.exists(), "nothing was started on the data path");
}

#[test]
fn a_flag_overrides_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_data_path = dir.path().join("from-file");
    let flag_data_path = dir.path().join("from-flag");
    let config = dir.path().join("nsqd.toml");
    std::fs::write(
        &config,
        format!(
            "data_path = {}\nhttp_address = \"127.0.0.1:0\"\ntcp_address = \"127.0.0.1:0\"\n\
             max_rdy_count = 10\nmsg_timeout = \"90s\"\n",
            toml_path(&file_data_path)
        ),
    )
    .expect("write config");
    let broker = start(
        dir.path(),
        &[
            "nsqd".into(),
            "--config".into(),
            os(&config),
            "--data-path".into(),
            os(&flag_data_path),
            "--max-rdy-count".into(),
            "20".into(),
        ],
        &flag_data_path,
    );
    assert_eq!(
        config_option(broker.http, "data_path"),
        json!(flag_data_path.display().to_string())
    );
    assert_eq!(config_option(broker.http, "max_rdy_count"), json!(20));
    // What no flag overrides still comes from the file.
    assert_eq!(
        config_option(broker.http, "msg_timeout"),
        json!(90_000_000_000u64)
    );
    assert!(
        !file_data_path.exists(),
        "the file's data path was not used"
    );
    assert!(broker.terminate(), "exits 0 on SIGTERM");
}

#[test]
fn sigterm_exits_0_and_leaves_a_current_nsqd_dat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_path = dir.path().join("data");
    let broker = BrokerProcess::spawn(&data_path, &[]);
    for path in [
        "/topic/create?topic=t",
        "/topic/create?topic=u",
        "/channel/create?topic=u&channel=c",
        "/channel/create?topic=u&channel=d",
        "/channel/pause?topic=u&channel=c",
        "/topic/pause?topic=u",
        "/topic/create?topic=gone",
        "/topic/delete?topic=gone",
    ] {
        assert_eq!(http_post(broker.http, path).0, 200, "POST {path}");
    }
    assert!(broker.terminate(), "the broker exits 0 on SIGTERM");

    let dat_path = data_path.join("nsqd.dat");
    let text = std::fs::read_to_string(&dat_path).expect("nsqd.dat exists");
    let dat: Value = serde_json::from_str(&text).expect("nsqd.dat parses");
    assert_eq!(
        dat,
        json!({
            "topics": [
                {"name": "t", "paused": false, "channels": null},
                {"name": "u", "paused": true, "channels": [
                    {"name": "c", "paused": true},
                    {"name": "d", "paused": false},
                ]},
            ],
            "version": "1.3.0",
        }),
        "nsqd.dat: {text}"
    );
    assert!(
        !data_path.join(data_lock::HOLDER_FILE).exists(),
        "a clean stop removes the holder record"
    );

    // The stopped data path is free for the offline tools, which agree with the file.
    let check = run_in(
        dir.path(),
        &[
            "meta".into(),
            "check".into(),
            "--data-path".into(),
            os(&data_path),
        ],
    );
    assert!(
        check.status.success(),
        "meta check: {}{}",
        check.stdout,
        check.stderr
    );
    assert!(
        check
            .stdout
            .contains("2 topics (1 paused), 2 channels (1 paused)"),
        "meta check counts: {}",
        check.stdout
    );
    assert!(
        check.stdout.contains("matches the store"),
        "meta check compares nsqd.dat: {}",
        check.stdout
    );
    let export = run_in(
        dir.path(),
        &[
            "meta".into(),
            "export".into(),
            "--data-path".into(),
            os(&data_path),
        ],
    );
    assert!(export.status.success(), "meta export: {}", export.stderr);
    let exported: Value = serde_json::from_str(&export.stdout).expect("export is JSON");
    assert_eq!(exported, dat, "meta export agrees with nsqd.dat");
}
