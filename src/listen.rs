//! Binding the daemons' listening sockets with the accept queue the system allows.
//!
//! A broker restart makes every client reconnect at once. Tokio's `TcpListener::bind` asks
//! for a backlog of 1024; a burst beyond that overflows the accept queue, and the kernel drops
//! the extra SYNs, which clients retry only after a second or more. Go's listeners ask for the
//! system's `net.core.somaxconn` (4096 on current kernels); so do these.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Where Linux says how long an accept queue may be.
const SOMAXCONN_PATH: &str = "/proc/sys/net/core/somaxconn";

/// The backlog to ask for when the system does not say (Linux's default since 5.4).
const DEFAULT_BACKLOG: u32 = 4096;

/// The accept queue length the system allows: `net.core.somaxconn`, or 4096 when it cannot
/// be read. (The kernel caps a larger request at it anyway.)
pub async fn system_backlog() -> u32 {
    match tokio::fs::read_to_string(SOMAXCONN_PATH).await {
        Ok(text) => parse_backlog(&text).unwrap_or(DEFAULT_BACKLOG),
        Err(_) => DEFAULT_BACKLOG,
    }
}

fn parse_backlog(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|n| *n > 0)
}

/// Binds `address` with `SO_REUSEADDR` (as Go and tokio do, so a restart does not wait out
/// TIME_WAIT) and the system's backlog.
///
/// # Errors
/// The bind or listen failure (address in use, no permission, an address not on this host).
pub async fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let backlog = system_backlog().await;
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_somaxconn_and_refuses_nonsense() {
        assert_eq!(parse_backlog("4096\n"), Some(4096));
        assert_eq!(parse_backlog("0\n"), None);
        assert_eq!(parse_backlog("lots"), None);
    }

    // Regression (issue 11, reconnect storms): the listener asked for tokio's backlog of 1024,
    // so a burst of connections beyond it waited seconds for SYN retransmits. Here more
    // connections than 1024 complete their handshake while nothing accepts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_beyond_1024_completes_without_accepting() {
        let backlog = system_backlog().await;
        if backlog <= 1100 {
            panic!(
                "net.core.somaxconn is {backlog}: this test needs it above 1100 to show \
                 anything (sysctl -w net.core.somaxconn=4096); it did NOT run"
            );
        }
        let burst = (backlog as usize - 64).min(2000);
        // The burst holds two descriptors a connection.
        crate::fd_limit::raise_to(2 * burst as u64 + 256).expect("setrlimit");
        let listener = bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let connects: Vec<_> = (0..burst)
            .map(|_| tokio::spawn(tokio::net::TcpStream::connect(address)))
            .collect();
        let mut streams = Vec::with_capacity(burst);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        for connect in connects {
            // A dropped SYN is retried after 1 s, 3 s, 7 s...: the whole burst must be in
            // well before the third retry, with nothing accepted.
            let stream = tokio::time::timeout_at(deadline, connect)
                .await
                .expect("connected before the deadline")
                .expect("task")
                .expect("connect");
            streams.push(stream);
        }
        assert_eq!(streams.len(), burst);
        drop(listener);
    }
}
