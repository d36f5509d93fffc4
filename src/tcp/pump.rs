//! A connection's message pump: sends heartbeats from the start, and once subscribed sends
//! messages while the client's in-flight count is below its RDY count, buffering writes up to
//! its output buffer size and flushing when the channel has nothing more, when the output
//! buffer timeout passes, or before waiting. A consumer that IDENTIFYs with a `sample_rate`
//! gets Go's share of the messages; the rest are done for the channel as they are taken.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::broker::client_state;
use crate::protocol::{FRAME_MESSAGE, HEARTBEAT};
use crate::session::Session;

/// Far enough away to mean "not armed" for a reusable timer.
fn never() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

/// Runs until the session ends or a write fails.
///
/// The timers and cancellation futures live across iterations (a fresh one per iteration
/// would register and unregister itself every time round), and the loop goes round once per
/// batch of messages, not once per message.
pub async fn run(session: Arc<Session>) -> std::io::Result<()> {
    let mut settings = session.settings();
    let heartbeat = tokio::time::sleep_until(
        settings
            .heartbeat_interval
            .map_or_else(never, |i| Instant::now() + i),
    );
    tokio::pin!(heartbeat);
    let flush_timer = tokio::time::sleep_until(never());
    tokio::pin!(flush_timer);
    let mut flush_armed = false;
    let exit = session.exit.clone().cancelled_owned();
    tokio::pin!(exit);
    let mut channel_exit = None;
    let mut channel_changes = None;
    loop {
        let subscription = session.subscription.get();
        if channel_changes.is_none() {
            if let Some((_, channel)) = subscription {
                channel_changes = Some(channel.watch_changes());
                channel_exit = Some(Box::pin(channel.exit_token().clone().cancelled_owned()));
            }
        }
        let receiving = subscription.is_some_and(|(_, channel)| {
            !channel.is_paused()
                && session.info.state.load(Ordering::Acquire) == client_state::SUBSCRIBED
                && session.info.is_ready()
        });
        if !receiving && flush_armed {
            session.output.lock().await.flush().await?;
            flush_armed = false;
        }
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
            match channel_exit.as_mut() {
                Some(gone) => gone.await,
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
            _ = &mut exit => return Ok(()),
            _ = channel_gone => {
                session.exit.cancel();
                return Ok(());
            }
            _ = session.changed.notified() => {
                if session.session_settings_changed(&mut settings) {
                    let next = settings.heartbeat_interval.map_or_else(never, |i| Instant::now() + i);
                    heartbeat.as_mut().reset(next);
                }
            }
            _ = session.info.wake.notified() => {}
            _ = channel_changed => {}
            _ = &mut heartbeat, if settings.heartbeat_interval.is_some() => {
                session.respond(HEARTBEAT).await?;
                let next = settings.heartbeat_interval.map_or_else(never, |i| Instant::now() + i);
                heartbeat.as_mut().reset(next);
            }
            _ = &mut flush_timer, if flush_armed => {
                session.output.lock().await.flush().await?;
                flush_armed = false;
            }
            message = next_message => {
                let (Some(message), Some((_, channel))) = (message, subscription) else { continue };
                let mut output = session.output.lock().await;
                let mut next = Some(message);
                // Messages written but not yet recorded in flight: recorded together (one lock,
                // one clock read), always before the bytes can reach the client.
                let mut sent = Vec::new();
                // Take whatever else is waiting while the client is ready: one flush for many.
                while let Some(mut message) = next.take() {
                    if settings.sample_rate > 0 && !keeps(settings.sample_rate, fastrand::u8(0..100)) {
                        channel.pass_over(&message);
                    } else {
                        message.attempts = message.attempts.saturating_add(1);
                        let buffer = output.buffer_mut();
                        buffer.reserve(8 + message.encoded_len());
                        buffer.extend_from_slice(&(4 + message.encoded_len() as i32).to_be_bytes());
                        buffer.extend_from_slice(&FRAME_MESSAGE.to_be_bytes());
                        message.encode(buffer);
                        session.info.in_flight_count.fetch_add(1, Ordering::AcqRel);
                        session.info.message_count.fetch_add(1, Ordering::Relaxed);
                        sent.push(message);
                        if output.is_full() {
                            channel.start_in_flight(sent.drain(..), session.info.id, settings.msg_timeout);
                            output.flush().await?;
                        }
                    }
                    if session.info.is_ready() && !channel.is_paused() {
                        next = channel.try_next_message();
                    }
                }
                channel.start_in_flight(sent.drain(..), session.info.id, settings.msg_timeout);
                if settings.output_buffer_size <= 1 || channel.depth() == 0 || !session.info.is_ready() {
                    output.flush().await?;
                    flush_armed = false;
                } else if output.is_dirty() && !flush_armed {
                    let timeout = settings.output_buffer_timeout.unwrap_or(Duration::from_millis(250));
                    flush_timer.as_mut().reset(Instant::now() + timeout);
                    flush_armed = true;
                }
            }
        }
    }
}

/// Whether a consumer sampling at `sample_rate` (0: not sampling) keeps a message for which
/// `roll` (uniform in 0..100) came up. Go 1.3.0 skips when `rand.Int31n(100) > sampleRate`,
/// so a rate `r` keeps `r + 1` percent, and 99 keeps everything.
fn keeps(sample_rate: u8, roll: u8) -> bool {
    sample_rate == 0 || roll <= sample_rate
}

impl Session {
    /// Takes the current settings into `settings`; says whether they changed.
    fn session_settings_changed(&self, settings: &mut crate::session::Settings) -> bool {
        let now = self.settings();
        let changed = now != *settings;
        *settings = now;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::keeps;

    #[test]
    fn sampling_keeps_rate_plus_one_percent_as_go() {
        let kept = |rate| (0..100).filter(|&roll| keeps(rate, roll)).count();
        assert_eq!(kept(0), 100, "0 is no sampling");
        assert_eq!(kept(1), 2);
        assert_eq!(kept(24), 25);
        assert_eq!(kept(99), 100);
        assert!(keeps(10, 10) && !keeps(10, 11));
    }
}
