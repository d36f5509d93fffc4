//! The accept loop every listener shares (nsqd's V2, nsqlookupd's V1, and the HTTP and HTTPS
//! ports through `http_serve`): accept until shutdown,
//! run each connection on a task the loop owns, and return only when every connection has
//! ended.
//!
//! When `accept` fails for want of resources (out of descriptors, most often), the connections
//! already open go on being served; the loop backs off (5 ms doubling to 100 ms) and tries
//! again, so it takes the waiting connections by itself as soon as descriptors free up. It
//! logs the first failure of such a burst and, at the first accept that succeeds again, one
//! line saying how many failures there had been and for how long: two lines a burst, not one a
//! failure (Go's nsqd logs every failure, thousands a second). A burst ends when accepts have
//! gone [`QUIET`] without failing; until then single accepts let through by a freed
//! descriptor do not end it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first pause after a failed accept.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);

/// The longest pause between retries: how late, at most, the loop notices descriptors freed.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts until `shutdown`, running `connection(stream, remote)` for each; then waits for
/// every connection task (they watch `shutdown` themselves).
pub async fn serve<F, Fut>(listener: TcpListener, shutdown: CancellationToken, mut connection: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = TaskTracker::new();
    let local = listener.local_addr().ok();
    let mut burst = Burst::default();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                burst.succeeded(local);
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, remote));
            }
            // The peer gave up between its handshake and our accept: nothing to wait for.
            Err(e) if is_peer_gone(&e) => {
                tracing::debug!(error = %e, "a connection was gone before it was accepted");
            }
            Err(e) => {
                let pause = burst.failed(&e, local);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A run of failed accepts: it ends once [`QUIET`] passes without a failure. Descriptors freed
/// one at a time let single accepts through in the middle of a burst; those do not end it.
#[derive(Debug, Default)]
struct Burst {
    open: Option<OpenBurst>,
}

#[derive(Debug)]
struct OpenBurst {
    began: Instant,
    last_failure: Instant,
    failures: u64,
    /// The pause before the next try.
    pause: Duration,
    /// Whether an accept succeeded since the last failure.
    resumed: bool,
    /// Whether the line saying accepts succeed again was logged (once a burst).
    announced: bool,
}

/// How long accepts must go without failing for the next failure to open a new burst.
pub const QUIET: Duration = Duration::from_secs(1);

impl Burst {
    /// Counts a failure (logging it if it opens a burst); returns how long to pause.
    fn failed(&mut self, error: &io::Error, local: Option<SocketAddr>) -> Duration {
        let now = Instant::now();
        match &mut self.open {
            Some(burst) if now.duration_since(burst.last_failure) < QUIET => {
                burst.failures += 1;
                burst.last_failure = now;
                if burst.resumed {
                    // Accepts went through since the last failure: start the backoff afresh.
                    burst.resumed = false;
                    burst.pause = FIRST_BACKOFF;
                } else {
                    burst.pause = (burst.pause * 2).min(MAX_BACKOFF);
                }
                burst.pause
            }
            _ => {
                tracing::warn!(
                    %error,
                    listener = ?local,
                    "accept failed; the open connections are still served, and the waiting ones \
                     will be taken as soon as it succeeds again (no further failure is logged \
                     until accepts have gone 1 s without one)"
                );
                self.open = Some(OpenBurst {
                    began: now,
                    last_failure: now,
                    failures: 1,
                    pause: FIRST_BACKOFF,
                    resumed: false,
                    announced: false,
                });
                FIRST_BACKOFF
            }
        }
    }

    /// An accept succeeded: the first time in a burst, says so in one line.
    fn succeeded(&mut self, local: Option<SocketAddr>) {
        let Some(burst) = &mut self.open else {
            return;
        };
        if burst.resumed {
            return;
        }
        burst.resumed = true;
        if !burst.announced {
            burst.announced = true;
            tracing::warn!(
                failures = burst.failures,
                lasted_ms = burst.began.elapsed().as_millis() as u64,
                listener = ?local,
                "accepting again after failed accepts"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_backs_off_to_its_cap_and_afresh_after_an_accept_went_through() {
        let error = io::Error::from_raw_os_error(24);
        let mut burst = Burst::default();
        let pauses: Vec<_> = (0..8).map(|_| burst.failed(&error, None)).collect();
        assert_eq!(pauses[0], FIRST_BACKOFF);
        assert_eq!(pauses[1], FIRST_BACKOFF * 2);
        assert_eq!(*pauses.last().expect("pauses"), MAX_BACKOFF);
        burst.succeeded(None);
        burst.succeeded(None);
        let open = burst.open.as_ref().expect("still one burst");
        assert!(open.announced && open.resumed);
        assert_eq!(open.failures, 8);
        // A failure right after: the same burst (no new line), the backoff from the start.
        assert_eq!(burst.failed(&error, None), FIRST_BACKOFF);
        let open = burst.open.as_ref().expect("still one burst");
        assert_eq!(open.failures, 9);
        assert!(open.announced && !open.resumed);
    }
}
