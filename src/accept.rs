//! The accept loop both TCP servers (nsqd's V2, nsqlookupd's V1) share: accept until shutdown,
//! run each connection on a task the loop owns, and return only when every connection has
//! ended.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Accepts until `shutdown`, running `connection(stream, remote)` for each; then waits for
/// every connection task (they watch `shutdown` themselves).
pub async fn serve<F, Fut>(listener: TcpListener, shutdown: CancellationToken, mut connection: F)
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, remote));
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                // Out of file descriptors and the like: give the system a moment.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}
