//! What every real-client case uses: an nsqd process (the built rnsq, or the binary named by
//! `RNSQ_CLIENTS_NSQD`), a client script (nsqjs or pynsq) run as a child process that holds its
//! connections open until released, the message bodies, and the `/stats` check of what the
//! server says each connection negotiated.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use crate::common::{eventually_blocking, rnsq_bin, stats, DEADLINE};

/// Another nsqd binary to run every case against instead of the built rnsq (e.g. Go's nsqd
/// 1.3.0, or another rnsq build); it is started as `$RNSQ_CLIENTS_NSQD <flags>`, its addresses
/// read from rnsq's lock file in the data directory or else from Go's log.
pub const NSQD_ENV: &str = "RNSQ_CLIENTS_NSQD";
/// Extra nsqd flags (split on whitespace) appended to every case's, e.g. `--snappy=false` to see
/// a case fail when the server does not offer what the client asked for.
pub const EXTRA_FLAGS_ENV: &str = "RNSQ_CLIENTS_EXTRA_FLAGS";
/// The Python interpreter with pynsq installed; default `target/clients-venv/bin/python`.
pub const PYTHON_ENV: &str = "RNSQ_CLIENTS_PYTHON";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An nsqd running as a child process; killed when dropped.
pub struct NsqdProcess {
    child: Child,
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    log: PathBuf,
}

impl NsqdProcess {
    /// Starts nsqd on loopback port 0 with its data in `dir/data`, its stderr in
    /// `dir/nsqd.log` and `flags` after the address flags, and waits until it has bound both
    /// ports. Panics (with the log) if it exits first or takes longer than the deadline.
    pub fn spawn(dir: &Path, flags: &[String]) -> NsqdProcess {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create the data directory");
        let log = dir.join("nsqd.log");
        let other = std::env::var_os(NSQD_ENV);
        let mut command = match &other {
            Some(path) => Command::new(path),
            None => {
                let mut c = Command::new(rnsq_bin());
                c.arg("nsqd");
                c
            }
        };
        let extra: Vec<String> = std::env::var(EXTRA_FLAGS_ENV)
            .map(|s| s.split_whitespace().map(String::from).collect())
            .unwrap_or_default();
        let child = command
            .arg("--data-path")
            .arg(&data)
            .args([
                "--tcp-address",
                "127.0.0.1:0",
                "--http-address",
                "127.0.0.1:0",
            ])
            .args(flags)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the nsqd log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", command.get_program()));
        let mut nsqd = NsqdProcess {
            child,
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            http: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        let pid = nsqd.child.id();
        let (tcp, http) = eventually_blocking("nsqd to listen on TCP and HTTP", || {
            if let Some(status) = nsqd.child.try_wait().expect("poll nsqd") {
                panic!(
                    "nsqd exited at startup ({status}) with flags {flags:?} {extra:?}; \
                     its log:\n{}",
                    nsqd.log_text()
                );
            }
            // rnsq (also another build of it in RNSQ_CLIENTS_NSQD) records its addresses
            // in the data directory; Go's nsqd only logs them.
            let holder = rnsq::data_lock::read_holder(&data).filter(|h| h.pid == pid);
            if let Some(holder) = holder {
                return Some((holder.tcp_address?, holder.http_address?));
            }
            let text = nsqd.log_text();
            Some((
                logged_address(&text, "TCP: listening on ")?,
                logged_address(&text, "HTTP: listening on ")?,
            ))
        });
        nsqd.tcp = tcp;
        nsqd.http = http;
        nsqd
    }

    /// `http://<http address>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }

    /// What nsqd wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NsqdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address after `marker` in a Go nsqd log (`... INFO: TCP: listening on 127.0.0.1:4150`).
fn logged_address(log: &str, marker: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains(marker))?;
    line.split(marker).nth(1)?.trim().parse().ok()
}

/// The message bodies every case sends: binary, compressible text and incompressible bytes,
/// small and large (one over snappy's 64 KiB block, so a body spans several compressed chunks).
pub fn bodies() -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                // xorshift64: deterministic bytes a compressor cannot shrink.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    };
    let mut bodies = Vec::new();
    for i in 0..12usize {
        bodies.push(match i % 3 {
            0 => (0..=255u8).cycle().skip(i).take(100 + i * 37).collect(),
            1 => format!("message {i}: ")
                .into_bytes()
                .into_iter()
                .chain(b"all work and no play ".repeat(200))
                .collect(),
            _ => noise(2000 + i),
        });
    }
    bodies.push(b"a large compressible body ".repeat(4000));
    bodies.push(noise(100_000));
    bodies
}

/// Compressible text bodies only, from a few bytes to 100 KiB, for tokio-nsq's deflate: its
/// deflate writer (tokio-nsq 0.14, async-compression 0.3) stops flushing once a few KiB of
/// incompressible bytes went through it, against Go's nsqd 1.3.0 as well — a client bug, not a
/// server one; nsqjs carries the incompressible bodies over deflate.
pub fn compressible_bodies() -> Vec<Vec<u8>> {
    (0..14usize)
        .map(|i| {
            let line = format!("compressible message {i}, said again and again. ");
            line.repeat(1 + i * i * 40).into_bytes()
        })
        .collect()
}

/// Asserts `received` holds exactly the `sent` bodies, each once, in any order.
pub fn assert_same_bodies(sent: &[Vec<u8>], received: &[Vec<u8>], who: &str) {
    let (mut sent, mut received) = (sent.to_vec(), received.to_vec());
    sent.sort();
    received.sort();
    assert_eq!(
        sent.len(),
        received.len(),
        "{who}: sent {} bodies, received {}",
        sent.len(),
        received.len()
    );
    for (i, (s, r)) in sent.iter().zip(&received).enumerate() {
        assert!(
            s == r,
            "{who}: body {i} (sorted) differs: sent {} bytes, got {}",
            s.len(),
            r.len()
        );
    }
}

/// Which client library a script drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// `tests/clients/js/pubsub.js` with nsqjs from `tests/clients/js/node_modules`.
    Nsqjs,
    /// `tests/clients/py/pubsub.py` with pynsq from the venv in [`PYTHON_ENV`]'s default.
    Pynsq,
}

/// What a client script is asked to negotiate.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    pub tls: bool,
    /// CA file to verify the server with (TLS only).
    pub ca: Option<PathBuf>,
    /// Client certificate and key (TLS only).
    pub cert: Option<(PathBuf, PathBuf)>,
    pub snappy: bool,
    pub deflate: bool,
    pub deflate_level: Option<u8>,
    pub auth_secret: Option<String>,
}

impl ClientOptions {
    fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let path = |p: &PathBuf| p.display().to_string();
        if self.tls {
            args.push("--tls".into());
        }
        if let Some(ca) = &self.ca {
            args.extend(["--ca".into(), path(ca)]);
        }
        if let Some((cert, key)) = &self.cert {
            args.extend(["--cert".into(), path(cert), "--key".into(), path(key)]);
        }
        if self.snappy {
            args.push("--snappy".into());
        }
        if self.deflate {
            args.push("--deflate".into());
        }
        if let Some(level) = self.deflate_level {
            args.extend(["--deflate-level".into(), level.to_string()]);
        }
        if let Some(secret) = &self.auth_secret {
            args.extend(["--auth-secret".into(), secret.clone()]);
        }
        args
    }
}

/// Runs `program args` and returns its status and output, failing the test after the deadline.
async fn output(program: &Path, args: &[&str]) -> Option<std::process::Output> {
    let run = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    tokio::time::timeout(DEADLINE, run).await.ok()?.ok()
}

/// `node` with nsqjs 0.13 installed, or a panic saying what to install.
async fn nsqjs_command(script_dir: &Path) -> tokio::process::Command {
    let node = PathBuf::from("node");
    let version = output(&node, &["--version"])
        .await
        .filter(|o| o.status.success());
    let Some(version) = version else {
        panic!(
            "nsqjs cases need Node.js (`node` on PATH): install it (Debian: `apt-get install \
             nodejs npm`), then `npm ci` in tests/clients/js; .ci/run does both"
        );
    };
    let package = script_dir.join("node_modules/nsqjs/package.json");
    let installed: Option<Value> = std::fs::read(&package)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let installed = installed.as_ref().and_then(|p| p["version"].as_str());
    assert!(
        installed.is_some_and(|v| v.starts_with("0.13.")),
        "nsqjs 0.13 is not installed in {} (found {installed:?}; node {}): run `npm ci` in \
         tests/clients/js (.ci/run does)",
        script_dir.display(),
        String::from_utf8_lossy(&version.stdout).trim()
    );
    let mut command = tokio::process::Command::new(node);
    command.arg(script_dir.join("pubsub.js"));
    command
}

/// The venv's python with pynsq 0.9 and tornado 6, or a panic saying what to install.
async fn pynsq_command(script_dir: &Path) -> tokio::process::Command {
    let python = std::env::var_os(PYTHON_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/clients-venv/bin/python"));
    let check = "import nsq, tornado; print(nsq.__version__, tornado.version)";
    let found = output(&python, &["-c", check]).await;
    let versions = found
        .as_ref()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let ok = versions.as_deref().is_some_and(|v| {
        let mut parts = v.split(' ');
        parts.next().is_some_and(|n| n.starts_with("0.9."))
            && parts.next().is_some_and(|t| t.starts_with("6."))
    });
    assert!(
        ok,
        "pynsq cases need pynsq 0.9 and tornado 6 for {} (found {versions:?}{}): run \
         `python3 -m venv target/clients-venv && target/clients-venv/bin/pip install -r \
         tests/clients/py/requirements.txt` (.ci/run does), or point {PYTHON_ENV} at a python \
         that has them",
        python.display(),
        found
            .map(|o| format!("; stderr: {}", String::from_utf8_lossy(&o.stderr).trim()))
            .unwrap_or_default()
    );
    let mut command = tokio::process::Command::new(python);
    // -u: unbuffered, so each JSON line arrives when printed.
    command.arg("-u").arg(script_dir.join("pubsub.py"));
    command
}

/// A client script that has published and consumed every body and holds both connections
/// open; killed if dropped without [`Holding::release`].
pub struct Holding {
    pub received: Vec<Vec<u8>>,
    child: tokio::process::Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: PathBuf,
    what: String,
}

/// Where a case runs: the topic and channel a client script uses, and a directory for files.
pub struct Target<'a> {
    pub nsqd: &'a NsqdProcess,
    pub dir: &'a Path,
    pub topic: &'a str,
    pub channel: &'a str,
}

/// Runs `script` against `target` with `options`: it publishes `bodies` to the topic and
/// consumes them from the channel. Returns once it says it holds; panics (with the script's
/// stderr and nsqd's log) if it reports an error, exits, or takes longer than the deadline.
pub async fn run_script(
    script: Script,
    target: &Target<'_>,
    bodies: &[Vec<u8>],
    options: &ClientOptions,
) -> Holding {
    let mut holding = spawn_script(script, target, bodies, options).await;
    let line = holding.next_event(target.nsqd).await;
    if line["event"] != "holding" {
        holding.fail(
            target.nsqd,
            &format!("expected a holding event, got {line}"),
        );
    }
    holding.received = line["received"]
        .as_array()
        .expect("received is an array")
        .iter()
        .map(|b| unhex(b.as_str().expect("received holds strings")))
        .collect();
    holding
}

/// Runs `script` like [`run_script`] where the server must refuse it: returns the error the
/// script reported, after it exited unsuccessfully. Panics if it got as far as holding, or
/// took longer than the deadline.
pub async fn run_script_refused(
    script: Script,
    target: &Target<'_>,
    bodies: &[Vec<u8>],
    options: &ClientOptions,
) -> String {
    let mut running = spawn_script(script, target, bodies, options).await;
    let line = match tokio::time::timeout(DEADLINE, running.stdout.next_line()).await {
        Ok(Ok(Some(line))) => line,
        other => running.fail(
            target.nsqd,
            &format!("expected an error event, got {other:?}"),
        ),
    };
    let value: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    if value["event"] != "error" {
        running.fail(
            target.nsqd,
            &format!("the server did not refuse it: {line}"),
        );
    }
    let status = tokio::time::timeout(DEADLINE, running.child.wait())
        .await
        .unwrap_or_else(|_| running.fail(target.nsqd, "it did not exit after its error"))
        .expect("wait for the script");
    assert!(
        !status.success(),
        "{}: exit {status} after an error",
        running.what
    );
    value["message"].as_str().unwrap_or_default().to_string()
}

/// Starts `script` with its arguments, stdin and stdout piped, stderr to a file in the case's
/// directory; checks nothing of its output.
async fn spawn_script(
    script: Script,
    target: &Target<'_>,
    bodies: &[Vec<u8>],
    options: &ClientOptions,
) -> Holding {
    let clients = manifest_dir().join("tests/clients");
    let mut command = match script {
        Script::Nsqjs => nsqjs_command(&clients.join("js")).await,
        Script::Pynsq => pynsq_command(&clients.join("py")).await,
    };
    let messages = target.dir.join(format!("{script:?}-messages.json"));
    let encoded: Vec<String> = bodies.iter().map(|b| hex(b)).collect();
    std::fs::write(&messages, serde_json::to_vec(&encoded).expect("JSON")).expect("write bodies");
    let stderr = target.dir.join(format!("{script:?}-stderr.log"));
    let what = format!("{script:?} {}", options.args().join(" "));
    let mut child = command
        .args(["--nsqd", &target.nsqd.tcp.to_string()])
        .args(["--topic", target.topic, "--channel", target.channel])
        .arg("--messages")
        .arg(&messages)
        .args(options.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("create the script's stderr log"))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    Holding {
        received: Vec::new(),
        child,
        stdin,
        stdout,
        stderr,
        what,
    }
}

impl Holding {
    /// The script's next JSON line; panics if it ends, sends an error or takes too long.
    async fn next_event(&mut self, nsqd: &NsqdProcess) -> Value {
        let line = match tokio::time::timeout(DEADLINE, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = self.child.wait().await.ok();
                self.fail(nsqd, &format!("it ended its output (exit {status:?})"))
            }
            Ok(Err(e)) => self.fail(nsqd, &format!("reading its output: {e}")),
            Err(_) => self.fail(nsqd, &format!("no output within {DEADLINE:?}")),
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| self.fail(nsqd, &format!("not a JSON line: {line:?}")));
        if value["event"] == "error" {
            self.fail(nsqd, &format!("it reported {}", value["message"]));
        }
        value
    }

    /// Tells the script to close its connections and waits for it to exit 0.
    pub async fn release(mut self, nsqd: &NsqdProcess) {
        self.stdin
            .write_all(b"close\n")
            .await
            .expect("write to the script");
        self.stdin.flush().await.expect("flush the script's stdin");
        let line = self.next_event(nsqd).await;
        if line["event"] != "done" {
            self.fail(nsqd, &format!("expected a done event, got {line}"));
        }
        let status: ExitStatus = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .unwrap_or_else(|_| self.fail(nsqd, "it did not exit after done"))
            .expect("wait for the script");
        if !status.success() {
            self.fail(nsqd, &format!("it exited with {status}"));
        }
    }

    fn fail(&self, nsqd: &NsqdProcess, why: &str) -> ! {
        panic!(
            "client script `{}` failed: {why}\n--- its stderr:\n{}\n--- nsqd's log:\n{}",
            self.what,
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            nsqd.log_text()
        );
    }
}

/// What the server must report for every connection of a case.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    pub tls: bool,
    /// The exact `tls_version` when the client pins one (pynsq asks for TLS 1.2 only).
    pub tls_version: Option<&'static str>,
    pub snappy: bool,
    pub deflate: bool,
    /// `Some((auth_identity, auth_identity_url))` when the connection must be authed.
    pub auth: Option<(&'static str, &'static str)>,
}

/// Waits until `/stats` shows the producer of `topic` and the consumer on `topic/channel`
/// (one each), then asserts what each negotiated. A client that fell back (asked for TLS or
/// compression and quietly went on without it) fails here.
pub async fn assert_negotiated(nsqd: &NsqdProcess, topic: &str, channel: &str, expect: Expect) {
    let base = nsqd.base();
    let started = Instant::now();
    let (producers, consumers) = loop {
        let stats = stats(&base).await;
        let producers: Vec<Value> = stats["producers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["pub_counts"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["topic"] == topic))
            })
            .cloned()
            .collect();
        let consumers: Vec<Value> = crate::common::find_channel(&stats, topic, channel)
            .and_then(|c| c["clients"].as_array().cloned())
            .unwrap_or_default();
        if !producers.is_empty() && !consumers.is_empty() {
            break (producers, consumers);
        }
        assert!(
            started.elapsed() < DEADLINE,
            "timed out waiting for /stats to show the producer of {topic} and the consumer on \
             {topic}/{channel}; the last /stats:\n{stats:#}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        producers.len(),
        1,
        "one producer of {topic}: {producers:#?}"
    );
    assert_eq!(
        consumers.len(),
        1,
        "one consumer on {topic}/{channel}: {consumers:#?}"
    );
    for (role, client) in [("producer", &producers[0]), ("consumer", &consumers[0])] {
        assert_client(role, client, expect);
    }
}

fn assert_client(role: &str, client: &Value, expect: Expect) {
    let field = |name: &str| client.get(name).cloned().unwrap_or(Value::Null);
    let flag = |name: &str| field(name).as_bool().unwrap_or(false);
    let text = |name: &str| field(name).as_str().unwrap_or("").to_string();
    let got = BTreeMap::from([
        ("tls", flag("tls")),
        ("snappy", flag("snappy")),
        ("deflate", flag("deflate")),
        ("authed", flag("authed")),
    ]);
    let want = BTreeMap::from([
        ("tls", expect.tls),
        ("snappy", expect.snappy),
        ("deflate", expect.deflate),
        ("authed", expect.auth.is_some()),
    ]);
    assert_eq!(
        got, want,
        "the {role}'s negotiated features in /stats: {client:#}"
    );
    if expect.tls {
        let version = text("tls_version");
        assert!(
            ["TLS1.2", "TLS1.3"].contains(&version.as_str()),
            "the {role}'s tls_version {version:?} is not TLS1.2 or TLS1.3: {client:#}"
        );
        if let Some(want) = expect.tls_version {
            assert_eq!(version, want, "the {role}'s tls_version: {client:#}");
        }
        assert!(
            !text("tls_cipher_suite").is_empty(),
            "the {role} has no tls_cipher_suite: {client:#}"
        );
    }
    if let Some((identity, url)) = expect.auth {
        assert_eq!(
            (text("auth_identity"), text("auth_identity_url")),
            (identity.to_string(), url.to_string()),
            "the {role}'s auth identity in /stats: {client:#}"
        );
    }
}

/// Lowercase hex (what Node's `Buffer.from(s, 'hex')` and Python's `bytes.fromhex` read).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes [`hex`]'s output; panics on anything else.
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd-length hex: {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16).unwrap_or_else(|_| panic!("not hex: {text:?}"))
        })
        .collect()
}

/// How long a tokio-nsq client waits before flushing what it buffered (its default is 250 ms).
pub const TOKIO_NSQ_FLUSH: Duration = Duration::from_millis(5);

#[test]
fn hex_round_trips() {
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(unhex(&hex(&bytes)), bytes);
    assert_eq!(hex(b"\x00\xffA"), "00ff41");
}
