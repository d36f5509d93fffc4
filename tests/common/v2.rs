//! A raw nsqd TCP protocol V2 client for tests: the magic `"  V2"`, commands as bytes, and
//! frames `[4-byte BE size][4-byte BE type][data]` read with a timeout on every read, so a
//! missing frame fails the test instead of hanging it. Message frames decode as
//! `[8-byte timestamp][2-byte attempts][16-byte hex ID][body]`.

use std::net::SocketAddr;
use std::time::Duration;

use rnsq::nsqd::Nsqd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

/// How long a frame that must come (or a connect, or a write) may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// How long a test listens to check that nothing comes.
pub const QUIET: Duration = Duration::from_millis(300);

/// A well-formed message ID that is never in flight.
pub const UNKNOWN_ID: &str = "0123456789abcdef";

pub const RESPONSE: u32 = 0;
pub const ERROR: u32 = 1;
pub const MESSAGE: u32 = 2;

/// Where a client connects: a broker in this process, or an address.
pub trait Target {
    fn tcp(self) -> SocketAddr;
}

impl Target for &Nsqd {
    fn tcp(self) -> SocketAddr {
        self.tcp_address()
    }
}

impl Target for SocketAddr {
    fn tcp(self) -> SocketAddr {
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

/// One frame as read off the socket.
pub struct Frame {
    pub kind: u32,
    pub data: Vec<u8>,
    /// The whole frame, size and type included.
    pub raw: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.data[..self.data.len().min(200)];
        write!(
            f,
            "Frame {{ type: {}, {} bytes: {:?} }}",
            self.kind,
            self.data.len(),
            String::from_utf8_lossy(shown)
        )
    }
}

/// A decoded message frame.
#[derive(Debug, Clone)]
pub struct Msg {
    pub timestamp: i64,
    pub attempts: u16,
    pub id: String,
    pub body: Vec<u8>,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Frame {
    /// Decodes a message frame; panics unless it is one, with a 16-byte lowercase hex ID.
    pub fn message(&self) -> Msg {
        assert_eq!(self.kind, MESSAGE, "expected a message frame, got {self:?}");
        assert!(
            self.data.len() >= 26,
            "message frame too short for its header: {self:?}"
        );
        let timestamp = i64::from_be_bytes(self.data[0..8].try_into().unwrap());
        let attempts = u16::from_be_bytes(self.data[8..10].try_into().unwrap());
        let id_bytes = &self.data[10..26];
        assert!(
            id_bytes
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)),
            "message ID is not 16 bytes of lowercase hex: {id_bytes:?}"
        );
        Msg {
            timestamp,
            attempts,
            id: String::from_utf8(id_bytes.to_vec()).unwrap(),
            body: self.data[26..].to_vec(),
        }
    }

    /// Exactly the response frame `OK`.
    pub fn is_ok(&self) -> bool {
        self.kind == RESPONSE && self.data == b"OK"
    }

    /// A heartbeat.
    pub fn is_heartbeat(&self) -> bool {
        self.kind == RESPONSE && self.data == b"_heartbeat_"
    }
}

/// The bytes of a frame: `[size = 4 + len(data)][type][data]`, big-endian.
pub fn frame_bytes(kind: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&(4 + data.len() as u32).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// What the next read brought.
pub enum Next {
    Frame(Frame),
    /// Nothing arrived in time.
    Quiet,
    /// EOF or a reset.
    Closed(String),
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// A raw protocol client. Reads go through a buffer with cancel-safe `read`, so a timeout
/// never loses half a frame.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects without sending the magic.
    pub async fn raw(target: impl Target) -> Client {
        let stream = timeout(WAIT, TcpStream::connect(target.tcp()))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and sends the magic `"  V2"`.
    pub async fn connect(target: impl Target) -> Client {
        let mut client = Client::raw(target).await;
        client.send(b"  V2").await;
        client
    }

    /// The socket itself, for a test that drives it by hand (bytes already buffered are
    /// dropped).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// Sends `line` and a newline.
    pub async fn line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes()).await;
    }

    pub async fn fin(&mut self, id: &str) {
        self.line(&format!("FIN {id}")).await;
    }

    fn parse_frame(&mut self) -> Option<Frame> {
        if self.buf.len() < 4 {
            return None;
        }
        let size = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
        assert!(size >= 4, "frame size {size} < 4: {:?}", &self.buf[..4]);
        if self.buf.len() < 4 + size {
            return None;
        }
        let raw: Vec<u8> = self.buf.drain(..4 + size).collect();
        let kind = u32::from_be_bytes(raw[4..8].try_into().unwrap());
        Some(Frame {
            kind,
            data: raw[8..].to_vec(),
            raw,
        })
    }

    /// The next frame, or why none came by `deadline`. Closing inside a frame panics.
    pub async fn next_until(&mut self, deadline: Instant) -> Next {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(frame) = self.parse_frame() {
                return Next::Frame(frame);
            }
            match timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Next::Quiet,
                Ok(Ok(0)) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed inside a frame; partial bytes {:?}",
                        &self.buf[..self.buf.len().min(64)]
                    );
                    return Next::Closed("EOF".into());
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection failed ({e}) inside a frame; partial bytes {:?}",
                        &self.buf[..self.buf.len().min(64)]
                    );
                    return Next::Closed(e.to_string());
                }
            }
        }
    }

    pub async fn next_within(&mut self, within: Duration) -> Next {
        self.next_until(Instant::now() + within).await
    }

    /// The next frame, or `None` if nothing came by `deadline`. Panics if the connection
    /// closes.
    pub async fn frame_until(&mut self, deadline: Instant) -> Option<Frame> {
        match self.next_until(deadline).await {
            Next::Frame(frame) => Some(frame),
            Next::Quiet => None,
            Next::Closed(why) => panic!("connection closed ({why}) while waiting for a frame"),
        }
    }

    /// The next frame, which must come within `within`.
    pub async fn frame_within(&mut self, within: Duration) -> Frame {
        match self.next_within(within).await {
            Next::Frame(frame) => frame,
            Next::Quiet => panic!("no frame within {within:?}"),
            Next::Closed(why) => panic!("connection closed ({why}) while waiting for a frame"),
        }
    }

    /// The next frame, which must come within [`WAIT`].
    pub async fn frame(&mut self) -> Frame {
        self.frame_within(WAIT).await
    }

    /// The next frame must be exactly the response frame `data`.
    pub async fn expect_response(&mut self, data: &[u8]) {
        let frame = self.frame().await;
        assert_eq!(
            frame.raw,
            frame_bytes(RESPONSE, data),
            "expected response frame {:?}, got {frame:?}",
            String::from_utf8_lossy(data)
        );
    }

    pub async fn expect_ok(&mut self) {
        self.expect_response(b"OK").await;
    }

    /// The next frame must be exactly the error frame `text`.
    pub async fn expect_error(&mut self, text: &str) {
        let frame = self.frame().await;
        assert_eq!(
            frame.raw,
            frame_bytes(ERROR, text.as_bytes()),
            "expected error frame {text:?}, got {frame:?}"
        );
    }

    /// The next frame must be a message.
    pub async fn expect_message(&mut self) -> Msg {
        self.frame().await.message()
    }

    /// The next message, if one comes by `deadline` (anything else but nothing panics).
    pub async fn message_until(&mut self, deadline: Instant) -> Option<Msg> {
        self.frame_until(deadline).await.map(|f| f.message())
    }

    /// Nothing arrives for `within`, and the connection stays open.
    pub async fn expect_quiet(&mut self, within: Duration) {
        self.expect_quiet_until(Instant::now() + within).await;
    }

    pub async fn expect_quiet_until(&mut self, deadline: Instant) {
        match self.next_until(deadline).await {
            Next::Quiet => {}
            Next::Frame(frame) if frame.kind == MESSAGE => {
                panic!("expected nothing, got {:?}", frame.message())
            }
            Next::Frame(frame) => panic!("expected nothing, got {frame:?}"),
            Next::Closed(why) => panic!("expected nothing, but the connection closed ({why})"),
        }
    }

    /// The server closes the connection with nothing more sent.
    pub async fn expect_closed(&mut self) {
        match self.next_within(WAIT).await {
            Next::Closed(_) => {}
            Next::Frame(frame) => panic!("expected the connection to close, got {frame:?}"),
            Next::Quiet => panic!("connection still open {WAIT:?} after a fatal error"),
        }
    }

    /// The connection still serves commands: a PUB to an unwatched topic answers exactly `OK`
    /// as the very next frame (so nothing else was sent before it).
    pub async fn expect_open(&mut self) {
        self.send(&pub_cmd("probe", b"still open")).await;
        self.expect_ok().await;
    }

    /// `PUB topic`, answered exactly `OK`.
    pub async fn publish(&mut self, topic: &str, body: &[u8]) {
        self.send(&pub_cmd(topic, body)).await;
        self.expect_ok().await;
    }
}

/// A connection subscribed to `topic/channel` with `RDY rdy` (none if 0).
pub async fn subscribe(target: impl Target, topic: &str, channel: &str, rdy: u32) -> Client {
    let mut client = Client::connect(target).await;
    client.line(&format!("SUB {topic} {channel}")).await;
    client.expect_ok().await;
    if rdy > 0 {
        client.line(&format!("RDY {rdy}")).await;
    }
    client
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// `line\n[4-byte size][body]`.
pub fn with_body(line: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{line}\n").into_bytes();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// `line\n[4-byte size]` with no body.
pub fn with_size(line: &str, size: u32) -> Vec<u8> {
    let mut out = format!("{line}\n").into_bytes();
    out.extend_from_slice(&size.to_be_bytes());
    out
}

pub fn pub_cmd(topic: &str, body: &[u8]) -> Vec<u8> {
    with_body(&format!("PUB {topic}"), body)
}

pub fn dpub_cmd(topic: &str, ms: u64, body: &[u8]) -> Vec<u8> {
    with_body(&format!("DPUB {topic} {ms}"), body)
}

/// The MPUB body: `[4-byte count]([4-byte size][bytes])*`.
pub fn mpub_body(bodies: &[&[u8]]) -> Vec<u8> {
    let mut out = (bodies.len() as u32).to_be_bytes().to_vec();
    for body in bodies {
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

pub fn mpub_cmd(topic: &str, bodies: &[&[u8]]) -> Vec<u8> {
    with_body(&format!("MPUB {topic}"), &mpub_body(bodies))
}

pub fn identify_cmd(json: &str) -> Vec<u8> {
    with_body("IDENTIFY", json.as_bytes())
}
