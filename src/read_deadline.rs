//! A read deadline for a connection's command reader: one timer per connection, re-armed per
//! command, that fails every read of that command (its line and every body after it) once it
//! has passed. Side-neutral: nsqd's V2 reader and nsqlookupd's V1 reader both use it.
//!
//! This is Go's `conn.SetReadDeadline` before each command: the deadline is absolute, so a
//! client cannot stretch it by trickling bytes, and a size prefix followed by nothing fails
//! the body read as surely as a line without its newline. The timer is one
//! [`tokio::time::Sleep`] allocated once and [`Sleep::reset`] per command, not a new timer per
//! read, so a command costs no timer registration of its own.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The error a read returns once the deadline has passed: [`io::ErrorKind::TimedOut`].
pub fn expired() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "read deadline passed")
}

/// When the current command's reads must be done; disarmed, reads wait for ever.
pub struct ReadDeadline {
    sleep: Pin<Box<Sleep>>,
    armed: bool,
}

impl Default for ReadDeadline {
    fn default() -> Self {
        Self::new()
    }
}

impl ReadDeadline {
    /// A disarmed deadline. (The timer is only registered when first polled.)
    pub fn new() -> Self {
        ReadDeadline {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    /// Sets the deadline to `limit` from now, or disarms it (`None`: no deadline, Go's zero
    /// deadline). Call once per command, before reading its line.
    pub fn arm(&mut self, limit: Option<Duration>) {
        match limit {
            Some(limit) => {
                self.sleep.as_mut().reset(Instant::now() + limit);
                self.armed = true;
            }
            None => self.armed = false,
        }
    }

    /// Whether the deadline has passed; when not, the task is woken when it does.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.armed && self.sleep.as_mut().poll(cx).is_ready()
    }

    /// Puts `inner` behind this deadline.
    pub fn wrap<R>(self, inner: R) -> Timed<R> {
        Timed {
            inner,
            deadline: self,
        }
    }
}

/// A reader whose reads fail with [`expired`] once its [`ReadDeadline`] has passed. A read
/// that finds bytes ready returns them even after the deadline (the client is sending, not
/// stalling); only a read that would wait fails. After a failure the connection is meant to
/// close; nothing is consumed by the failing read.
pub struct Timed<R> {
    inner: R,
    deadline: ReadDeadline,
}

impl<R> Timed<R> {
    /// The deadline, to re-arm per command.
    pub fn deadline_mut(&mut self) -> &mut ReadDeadline {
        &mut self.deadline
    }

    /// Takes the reader and its deadline apart (to upgrade the reader and wrap it again).
    pub fn into_parts(self) -> (R, ReadDeadline) {
        (self.inner, self.deadline)
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Timed<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.deadline.poll_passed(cx) => Poll::Ready(Err(expired())),
            polled => polled,
        }
    }
}

impl<R: AsyncBufRead + Unpin> AsyncBufRead for Timed<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        // The borrow of `inner` returned on `Ready` is disjoint from `deadline`, which is all
        // the `Pending` path touches.
        if let Poll::Ready(filled) = Pin::new(&mut this.inner).poll_fill_buf(cx) {
            return Poll::Ready(filled);
        }
        if this.deadline.poll_passed(cx) {
            return Poll::Ready(Err(expired()));
        }
        Poll::Pending
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.get_mut().inner).consume(amt)
    }
}

#[cfg(test)]
mod tests {
    //! Real time, scaled down: a 400 ms deadline, and bounds loose enough for a busy machine
    //! (a timer never fires early; it may fire late).
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    const LIMIT: Duration = Duration::from_millis(400);

    #[tokio::test]
    async fn one_deadline_covers_the_line_and_the_body_after_it() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = ReadDeadline::new().wrap(BufReader::new(server));
        let armed = Instant::now();
        reader.deadline_mut().arm(Some(LIMIT));
        client.write_all(b"PUB t\n").await.unwrap();
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line).await.unwrap();
        assert_eq!(line, b"PUB t\n");
        // The size arrives 300 ms later: still inside the command's 400 ms.
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(&[0, 0, 0, 9]).await.unwrap();
        assert_eq!(reader.read_i32().await.unwrap(), 9);
        // The body never does: the read fails 400 ms after the arming, not after the size.
        let mut body = [0u8; 9];
        let error = reader.read_exact(&mut body).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let elapsed = armed.elapsed();
        assert!(
            elapsed >= LIMIT && elapsed < LIMIT + Duration::from_millis(250),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn rearming_gives_the_next_command_its_own_time_and_none_disarms() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = ReadDeadline::new().wrap(BufReader::new(server));
        // Three commands, each 300 ms apart: 900 ms in all, but never 400 ms in one command.
        for _ in 0..3 {
            reader.deadline_mut().arm(Some(LIMIT));
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.write_all(b"NOP\n").await.unwrap();
            let mut line = Vec::new();
            reader.read_until(b'\n', &mut line).await.unwrap();
            assert_eq!(line, b"NOP\n");
        }
        reader.deadline_mut().arm(None);
        let mut line = Vec::new();
        let read = tokio::time::timeout(LIMIT * 2, reader.read_until(b'\n', &mut line));
        assert!(read.await.is_err(), "a disarmed deadline must never fire");
    }

    #[tokio::test]
    async fn a_trickle_does_not_stretch_the_deadline() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = ReadDeadline::new().wrap(BufReader::new(server));
        let armed = Instant::now();
        reader.deadline_mut().arm(Some(LIMIT));
        let trickle = async move {
            loop {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if client.write_all(b"a").await.is_err() {
                    return;
                }
            }
        };
        let mut line = Vec::new();
        let read = tokio::select! {
            read = reader.read_until(b'\n', &mut line) => read,
            () = trickle => unreachable!("the trickle ends only when the reader is gone"),
        };
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
        let elapsed = armed.elapsed();
        assert!(
            elapsed >= LIMIT && elapsed < LIMIT + Duration::from_millis(250),
            "{elapsed:?}"
        );
        assert!(line.len() >= 3, "the trickled bytes were read: {line:?}");
    }
}
