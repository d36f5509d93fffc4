//! Descriptor exhaustion (issue 11): the built binary runs under a low `RLIMIT_NOFILE`, more
//! clients connect than it has descriptors for, and the broker must go on serving the
//! connections it has, log the failure once per burst (not once per failed accept), and take
//! the waiting connections by itself once descriptors free up. A regression test, too: the
//! metadata store took a directory it could not open for a failed fsync and refused every
//! change until a restart.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::v2::{identify_cmd, pub_cmd, Client, Next, WAIT};
use common::{eventually_blocking, rnsq_bin};
use rnsq::data_lock;
use tokio::time::Instant;

/// The broker's descriptor limit, soft and hard: it uses about 20 idle, so some 40
/// connections fit.
const LIMIT: u64 = 64;

/// The line `accept` failures open a burst with, and the one that closes it.
const FAILED: &str = "accept failed";
const RECOVERED: &str = "accepting again after failed accepts";

struct Limited {
    child: Child,
    tcp: SocketAddr,
    log: PathBuf,
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Limited {
    /// `rnsq nsqd` with `RLIMIT_NOFILE` at [`LIMIT`] (soft and hard, so raising it to the hard
    /// limit at start-up changes nothing), its log in a file.
    fn spawn(dir: &Path) -> Limited {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let log = dir.join("nsqd.log");
        let stderr = File::create(&log).expect("log file");
        let mut command = Command::new(rnsq_bin());
        command
            .args([
                "nsqd",
                "--tcp-address",
                "127.0.0.1:0",
                "--http-address",
                "127.0.0.1:0",
            ])
            .arg("--data-path")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: LIMIT,
                    rlim_max: LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn rnsq");
        let pid = child.id();
        let tcp = eventually_blocking("the broker to record its TCP address", || {
            data_lock::read_holder(&data)
                .filter(|h| h.pid == pid)
                .and_then(|h| h.tcp_address)
        });
        Limited { child, tcp, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read the log")
    }

    fn count(&self, line: &str) -> usize {
        self.log().matches(line).count()
    }

    /// The `failures=N` of the `n`th (0-based) recovery line.
    fn recovery_failures(&self, n: usize) -> u64 {
        let log = self.log();
        let line = log
            .lines()
            .filter(|l| l.contains(RECOVERED))
            .nth(n)
            .unwrap_or_else(|| panic!("no recovery line {n} in the log:\n{log}"));
        let value = line
            .split("failures=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok());
        value.unwrap_or_else(|| panic!("no failures=N in {line:?}"))
    }

    /// Opens identified connections one by one until the broker's accept fails for the
    /// `burst`th time (its `burst`th failure line appears); returns those answered and the
    /// one left waiting.
    async fn exhaust(&self, burst: usize) -> (Vec<Client>, Client) {
        let mut answered = Vec::new();
        loop {
            assert!(
                answered.len() < 10 * LIMIT as usize,
                "{} connections answered under a limit of {LIMIT} descriptors",
                answered.len()
            );
            let mut client = Client::connect(self.tcp).await;
            client.send(&identify_cmd("{}")).await;
            let deadline = Instant::now() + WAIT;
            loop {
                match client.next_within(Duration::from_millis(20)).await {
                    Next::Frame(frame) => {
                        assert_eq!(frame.data, b"OK", "IDENTIFY's answer");
                        answered.push(client);
                        break;
                    }
                    Next::Closed(why) => panic!("a connection closed while waiting ({why})"),
                    Next::Quiet if self.count(FAILED) >= burst => return (answered, client),
                    Next::Quiet => assert!(
                        Instant::now() < deadline,
                        "a connection was neither answered nor refused for want of descriptors"
                    ),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_keeps_serving_logs_once_a_burst_and_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Limited::spawn(dir.path());

    let mut producer = Client::connect(broker.tcp).await;
    producer.publish("t", b"before").await;
    let mut consumer = Client::connect(broker.tcp).await;
    consumer.line("SUB t c").await;
    consumer.expect_ok().await;
    consumer.line("RDY 10").await;
    let first = consumer.expect_message().await;
    assert_eq!(first.body, b"before");
    consumer.fin(&first.id).await;

    for burst in 1..=2 {
        let (mut answered, mut waiting) = broker.exhaust(burst).await;
        assert!(
            !answered.is_empty() || burst > 1,
            "no connection fitted at all"
        );
        // More clients arrive while none can be accepted: they wait in the listen queue.
        let mut more = Vec::new();
        for _ in 0..5 {
            let mut client = Client::connect(broker.tcp).await;
            client.send(&identify_cmd("{}")).await;
            more.push(client);
        }

        // The connections the broker has are served as before.
        let body = format!("during burst {burst}");
        producer.publish("t", body.as_bytes()).await;
        let message = consumer.expect_message().await;
        assert_eq!(message.body, body.as_bytes());
        consumer.fin(&message.id).await;
        if let Some(client) = answered.first_mut() {
            client
                .publish("t", b"from a connection taken before the burst")
                .await;
            let message = consumer.expect_message().await;
            consumer.fin(&message.id).await;
        }
        // A new topic needs descriptors the broker may not have now: refusing it is fine
        // (E_PUB_FAILED, fatal as in Go), but it must not break the store for later.
        if let Some(mut client) = answered.pop() {
            client
                .send(&pub_cmd(&format!("new_during_burst_{burst}"), b"x"))
                .await;
            let frame = client.frame().await;
            assert!(
                frame.data == b"OK" || frame.data.starts_with(b"E_PUB_FAILED"),
                "a PUB to a new topic while out of descriptors answered {frame:?}"
            );
        }

        // Descriptors free up: the waiting connections are taken without anyone's help.
        answered.truncate(answered.len().saturating_sub(10));
        waiting.expect_response(b"OK").await;
        for client in &mut more {
            client.expect_response(b"OK").await;
        }
        producer.publish("t", b"after").await;
        let message = consumer.expect_message().await;
        assert_eq!(message.body, b"after");
        consumer.fin(&message.id).await;
        // Regression: the metadata barrier could not open a directory to fsync it while
        // descriptors were out, took that for a failed fsync and refused every metadata
        // change until a restart. A new topic must be created once descriptors are back.
        producer
            .publish(&format!("new_after_burst_{burst}"), b"x")
            .await;

        // One line opened the burst and one closed it, however many accepts failed.
        let deadline = Instant::now() + WAIT;
        while broker.count(RECOVERED) < burst {
            assert!(
                Instant::now() < deadline,
                "no recovery line in:\n{}",
                broker.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(broker.count(FAILED), burst, "log:\n{}", broker.log());
        assert_eq!(broker.count(RECOVERED), burst, "log:\n{}", broker.log());
        assert!(broker.recovery_failures(burst - 1) >= 1);
        drop(answered);
        drop(more);
        drop(waiting);
        if burst == 1 {
            // Not synchronisation: a burst ends only after accepts have gone this long without
            // failing, and the second round must be a burst of its own.
            tokio::time::sleep(rnsq::accept::QUIET + Duration::from_millis(200)).await;
        }
    }
}
