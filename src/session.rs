//! One V2 client connection's protocol state: its negotiated settings, its output buffer, its
//! subscription, and the token that ends it. What the connection's bytes travel over is the
//! [`crate::transport`]'s; nothing here knows TCP.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::broker::{Channel, ClientInfo, Topic};
use crate::protocol::{put_frame, FRAME_ERROR, FRAME_RESPONSE};
use crate::transport::{Encoder, Sink};

/// Settings a client negotiates with IDENTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: heartbeats (and the read deadline) are off.
    pub heartbeat_interval: Option<Duration>,
    /// Bytes buffered before a write goes out; 0 writes through.
    pub output_buffer_size: usize,
    /// The longest a buffered message waits; `None`: until the buffer fills or the queue drains.
    pub output_buffer_timeout: Option<Duration>,
    pub msg_timeout: Duration,
    /// 0: every message; else the percentage delivered.
    pub sample_rate: u8,
}

/// The buffered write side of a connection.
pub struct Output {
    sink: Sink,
    /// Compresses each flush once snappy or deflate is negotiated.
    encoder: Option<Encoder>,
    /// The compressed form of a flush (kept to reuse its allocation).
    wire: Vec<u8>,
    buffer: Vec<u8>,
    limit: usize,
    deadline: Option<Duration>,
}

impl Output {
    fn new(sink: Sink) -> Self {
        Output {
            sink,
            encoder: None,
            wire: Vec::new(),
            buffer: Vec::with_capacity(16 * 1024),
            limit: 16 * 1024,
            deadline: None,
        }
    }

    /// Takes the write side out for an upgrade (writes fail until [`Output::set_sink`]).
    /// Anything buffered stays buffered.
    pub fn take_sink(&mut self) -> Sink {
        std::mem::replace(&mut self.sink, Sink::Detached)
    }

    /// Puts the (upgraded) write side back.
    pub fn set_sink(&mut self, sink: Sink) {
        self.sink = sink;
    }

    /// Compresses every later flush with `encoder`. Call with the buffer flushed.
    pub fn set_encoder(&mut self, encoder: Encoder) {
        self.encoder = Some(encoder);
    }

    /// Adds a frame to the buffer, writing out if the buffer is full.
    pub async fn frame(&mut self, frame_type: i32, data: &[u8]) -> std::io::Result<()> {
        put_frame(&mut self.buffer, frame_type, data);
        if self.buffer.len() >= self.limit {
            self.flush().await?;
        }
        Ok(())
    }

    /// Adds raw bytes (an already framed message) to the buffer.
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Whether anything waits in the buffer.
    pub fn is_dirty(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Whether the buffer has reached its size.
    pub fn is_full(&self) -> bool {
        self.buffer.len() >= self.limit
    }

    /// Writes out the buffer, failing if the client does not take it within the deadline.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let bytes = match self.encoder.as_mut() {
            Some(encoder) => {
                self.wire.clear();
                encoder.encode(&self.buffer, &mut self.wire)?;
                &self.wire
            }
            None => &self.buffer,
        };
        let write = self.sink.write_all(bytes);
        match self.deadline {
            Some(limit) => tokio::time::timeout(limit, write).await.map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "client did not read in time")
            })??,
            None => write.await?,
        }
        self.buffer.clear();
        Ok(())
    }

    /// Shuts the write side.
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.sink.shutdown().await;
    }
}

/// A connection's shared state (read by the command task and the message pump).
pub struct Session {
    pub info: Arc<ClientInfo>,
    settings: Mutex<Settings>,
    pub output: tokio::sync::Mutex<Output>,
    pub subscription: OnceLock<(Arc<Topic>, Arc<Channel>)>,
    /// Notified when settings or the subscription change, so the pump looks again.
    pub changed: Notify,
    pub exit: CancellationToken,
    /// AUTH's secret and grant; locked only by the command task (across an auth query).
    pub auth: tokio::sync::Mutex<crate::auth::ConnAuth>,
}

impl Session {
    pub fn new(
        info: Arc<ClientInfo>,
        settings: Settings,
        sink: Sink,
        exit: CancellationToken,
    ) -> Self {
        let mut output = Output::new(sink);
        output.deadline = settings.heartbeat_interval;
        Session {
            info,
            settings: Mutex::new(settings),
            output: tokio::sync::Mutex::new(output),
            subscription: OnceLock::new(),
            changed: Notify::new(),
            exit,
            auth: Default::default(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the settings (IDENTIFY) and applies them to the output buffer.
    pub async fn set_settings(&self, settings: Settings) {
        {
            let mut output = self.output.lock().await;
            output.limit = settings.output_buffer_size.max(1);
            output.deadline = settings.heartbeat_interval;
        }
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
        self.changed.notify_one();
    }

    /// Sends a response frame now.
    pub async fn respond(&self, data: &[u8]) -> std::io::Result<()> {
        let mut output = self.output.lock().await;
        output.frame(FRAME_RESPONSE, data).await?;
        output.flush().await
    }

    /// Sends an error frame now.
    pub async fn send_error(&self, data: &[u8]) -> std::io::Result<()> {
        let mut output = self.output.lock().await;
        output.frame(FRAME_ERROR, data).await?;
        output.flush().await
    }
}
