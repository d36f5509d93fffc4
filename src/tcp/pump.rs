//! A connection's message pump: sends heartbeats from the start, and once subscribed sends
//! messages while the client's in-flight count is below its RDY count, buffering writes up to
//! its output buffer size and flushing when the channel has nothing more, when the output
//! buffer timeout passes, or before waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::session::Session;
use crate::broker::client_state;
use crate::protocol::{FRAME_MESSAGE, HEARTBEAT};

/// Runs until the session ends or a write fails.
pub async fn run(session: Arc<Session>) -> std::io::Result<()> {
    let mut settings = session.settings();
    let mut next_heartbeat = settings.heartbeat_interval.map(|i| Instant::now() + i);
    let mut flush_by: Option<Instant> = None;
    let mut channel_changes = None;
    loop {
        let subscription = session.subscription.get();
        if channel_changes.is_none() {
            channel_changes = subscription.map(|(_, c)| c.watch_changes());
        }
        let receiving = subscription.is_some_and(|(_, channel)| {
            !channel.is_paused()
                && session.info.state.load(Ordering::Acquire) == client_state::SUBSCRIBED
                && session.info.is_ready()
        });
        if !receiving && flush_by.is_some() {
            session.output.lock().await.flush().await?;
            flush_by = None;
        }
        let heartbeat_at = async {
            match next_heartbeat {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let flush_at = async {
            match flush_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let channel_changed = async {
            match channel_changes.as_mut() {
                Some(changes) => {
                    if changes.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        let channel_gone = async {
            match subscription {
                Some((_, channel)) => channel.exit_token().cancelled().await,
                None => std::future::pending().await,
            }
        };
        let next_message = async {
            match subscription {
                Some((_, channel)) if receiving => channel.next_message().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = session.exit.cancelled() => return Ok(()),
            _ = channel_gone => {
                session.exit.cancel();
                return Ok(());
            }
            _ = session.changed.notified() => {
                let new = session.session_settings_changed(&mut settings);
                if new {
                    next_heartbeat = settings.heartbeat_interval.map(|i| Instant::now() + i);
                }
            }
            _ = session.info.wake.notified() => {}
            _ = channel_changed => {}
            _ = heartbeat_at => {
                session.respond(HEARTBEAT).await?;
                next_heartbeat = settings.heartbeat_interval.map(|i| Instant::now() + i);
            }
            _ = flush_at => {
                session.output.lock().await.flush().await?;
                flush_by = None;
            }
            message = next_message => {
                let (Some(message), Some((_, channel))) = (message, subscription) else { continue };
                let mut output = session.output.lock().await;
                let mut next = Some(message);
                // Take whatever else is waiting while the client is ready: one flush for many.
                while let Some(mut message) = next.take() {
                    if settings.sample_rate == 0 || fastrand::u32(0..100) < u32::from(settings.sample_rate) {
                        message.attempts = message.attempts.saturating_add(1);
                        let buffer = output.buffer_mut();
                        buffer.reserve(8 + message.encoded_len());
                        buffer.extend_from_slice(&(4 + message.encoded_len() as i32).to_be_bytes());
                        buffer.extend_from_slice(&FRAME_MESSAGE.to_be_bytes());
                        message.encode(buffer);
                        session.info.in_flight_count.fetch_add(1, Ordering::AcqRel);
                        session.info.message_count.fetch_add(1, Ordering::Relaxed);
                        channel.start_in_flight(message, session.info.id, settings.msg_timeout);
                        if output.is_full() {
                            output.flush().await?;
                        }
                    }
                    if session.info.is_ready() && !channel.is_paused() {
                        next = channel.try_next_message();
                    }
                }
                if settings.output_buffer_size <= 1 || channel.depth() == 0 || !session.info.is_ready() {
                    output.flush().await?;
                    flush_by = None;
                } else if output.is_dirty() && flush_by.is_none() {
                    let timeout = settings.output_buffer_timeout.unwrap_or(Duration::from_millis(250));
                    flush_by = Some(Instant::now() + timeout);
                }
            }
        }
    }
}

impl Session {
    /// Takes the current settings into `settings`; says whether they changed.
    fn session_settings_changed(&self, settings: &mut super::session::Settings) -> bool {
        let now = self.settings();
        let changed = now != *settings;
        *settings = now;
        changed
    }
}
