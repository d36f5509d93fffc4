//! A blocking V2 client that upgrades as real clients do after IDENTIFY: TLS (rustls), then
//! snappy (the `snap` crate's framing) or deflate (`flate2`'s raw DEFLATE) — independent
//! implementations of each layer, so a test proves the broker speaks the formats, not that it
//! agrees with itself. Every read has a timeout, so a missing frame fails instead of hanging.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bottom layer: the socket, or TLS over it. Reads and writes share it.
trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

#[derive(Clone)]
struct Shared(Arc<Mutex<Box<dyn Duplex>>>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().read(buf)
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

/// What the client writes through.
enum Writer {
    Plain(Shared),
    /// A new snappy stream per command when `restart_snappy` (pynsq writes a stream
    /// identifier per message).
    Snappy(Box<snap::write::FrameEncoder<Shared>>),
    Deflate(flate2::write::DeflateEncoder<Shared>),
}

pub struct Layered {
    socket: TcpStream,
    base: Shared,
    reader: Box<dyn Read + Send>,
    writer: Writer,
    /// Start a new snappy stream (with its identifier) for every command.
    pub restart_snappy: bool,
}

impl Layered {
    /// Connects and sends the magic.
    pub fn connect(address: SocketAddr) -> Layered {
        let socket = TcpStream::connect(address).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.set_nodelay(true).unwrap();
        let base = Shared(Arc::new(Mutex::new(Box::new(
            socket.try_clone().expect("clone"),
        ))));
        let mut client = Layered {
            socket,
            reader: Box::new(base.clone()),
            writer: Writer::Plain(base.clone()),
            base,
            restart_snappy: false,
        };
        client.send_raw(b"  V2");
        client
    }

    /// Writes bytes below every compression layer (but inside TLS, once up).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.base.write_all(bytes).expect("write");
        self.base.flush().expect("flush");
    }

    /// This end's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Writes bytes through the negotiated layers, flushed.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).expect("write");
    }

    /// Writes bytes through the negotiated layers, flushed; the error if the server is gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Writer::Plain(w) => {
                w.write_all(bytes)?;
                w.flush()
            }
            Writer::Snappy(w) => {
                w.write_all(bytes)?;
                w.flush()?;
                if self.restart_snappy {
                    self.writer =
                        Writer::Snappy(Box::new(snap::write::FrameEncoder::new(self.base.clone())));
                }
                Ok(())
            }
            // Flushing DEFLATE is a sync flush.
            Writer::Deflate(w) => {
                w.write_all(bytes)?;
                w.flush()
            }
        }
    }

    /// The next frame through the negotiated layers: (type, data).
    pub fn frame(&mut self) -> (u32, Vec<u8>) {
        read_frame(&mut self.reader).expect("a frame")
    }

    /// The next frame, or the error that ended the connection.
    pub fn try_frame(&mut self) -> std::io::Result<(u32, Vec<u8>)> {
        read_frame(&mut self.reader)
    }

    /// Reads exactly `n` bytes below the compression layers.
    pub fn read_raw(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        self.base.read_exact(&mut out).expect("raw bytes");
        out
    }

    /// From now on reads and writes go through snappy. `identifier_read`: the test already
    /// read the server's stream identifier raw (the decoder is given one of its own).
    pub fn snappy(&mut self, identifier_read: bool) {
        let prefix: &'static [u8] = if identifier_read {
            b"\xff\x06\x00\x00sNaPpY"
        } else {
            b""
        };
        self.reader = Box::new(snap::read::FrameDecoder::new(
            prefix.chain(self.base.clone()),
        ));
        self.writer = Writer::Snappy(Box::new(snap::write::FrameEncoder::new(self.base.clone())));
    }

    /// From now on reads and writes go through raw DEFLATE at `level`.
    pub fn deflate(&mut self, level: u32) {
        self.reader = Box::new(Inflater::new(self.base.clone()));
        self.writer = Writer::Deflate(flate2::write::DeflateEncoder::new(
            self.base.clone(),
            flate2::Compression::new(level),
        ));
    }

    /// As [`Layered::deflate`], when the test already read `raw`, the start of the server's
    /// DEFLATE stream: the decoder reads it again first.
    pub fn deflate_after(&mut self, raw: Vec<u8>, level: u32) {
        self.deflate(level);
        let rest = self.base.clone();
        self.reader = Box::new(Inflater::new(std::io::Cursor::new(raw).chain(rest)));
        // Skip the OK the test already checked.
        let (kind, data) = self.frame();
        assert_eq!((kind, &data[..]), (0, &b"OK"[..]), "the OK read again");
    }

    /// From now on everything goes through TLS, handshaking now with `config`.
    pub fn tls(&mut self, config: Arc<tokio_rustls::rustls::ClientConfig>) {
        self.try_tls(config).expect("TLS handshake");
    }

    /// As [`Layered::tls`], the handshake's error if it fails. (Under TLS 1.3 a server that
    /// refuses the client's certificate says so only after the client's side is done: the
    /// refusal shows at the next read.)
    pub fn try_tls(
        &mut self,
        config: Arc<tokio_rustls::rustls::ClientConfig>,
    ) -> std::io::Result<()> {
        use tokio_rustls::rustls;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let connection = rustls::ClientConnection::new(config, name).expect("client");
        let socket = self.socket.try_clone().expect("clone");
        let mut stream = rustls::StreamOwned::new(connection, socket);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        self.base = Shared(Arc::new(Mutex::new(Box::new(stream))));
        self.reader = Box::new(self.base.clone());
        self.writer = Writer::Plain(self.base.clone());
        Ok(())
    }

    /// Whether the server closed the connection (EOF or reset) within the read timeout.
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.reader.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }
}

/// Inflates raw DEFLATE from a blocking reader, handing out each sync flush as soon as it
/// arrives (flate2's own `read::DeflateDecoder` can wait for input past a flush).
struct Inflater<R> {
    inner: R,
    inflate: flate2::Decompress,
    input: Vec<u8>,
    at: usize,
}

impl<R: Read> Inflater<R> {
    fn new(inner: R) -> Self {
        Inflater {
            inner,
            inflate: flate2::Decompress::new(false),
            input: Vec::new(),
            at: 0,
        }
    }
}

impl<R: Read> Read for Inflater<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            self.inflate
                .decompress(&self.input[self.at..], buf, flate2::FlushDecompress::None)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            self.at += (self.inflate.total_in() - before_in) as usize;
            let produced = (self.inflate.total_out() - before_out) as usize;
            if produced > 0 || buf.is_empty() {
                return Ok(produced);
            }
            if self.at < self.input.len() && self.inflate.total_in() > before_in {
                continue;
            }
            self.input.drain(..self.at);
            self.at = 0;
            let mut chunk = [0u8; 16 * 1024];
            let n = self.inner.read(&mut chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }
}

fn read_frame(reader: &mut dyn Read) -> std::io::Result<(u32, Vec<u8>)> {
    let mut head = [0u8; 8];
    reader.read_exact(&mut head)?;
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let mut data = vec![0u8; size.saturating_sub(4)];
    reader.read_exact(&mut data)?;
    Ok((kind, data))
}

// ---------------------------------------------------------------------------------------------
// What the upgrade tests share
// ---------------------------------------------------------------------------------------------

pub const RESPONSE: u32 = 0;
pub const ERROR: u32 = 1;
pub const MESSAGE: u32 = 2;

/// The OK response frame, whole.
pub const OK_FRAME: &[u8] = b"\x00\x00\x00\x06\x00\x00\x00\x00OK";

/// Runs blocking client code beside the in-process broker.
pub async fn client<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("client code")
}

/// Sends IDENTIFY and reads the plain JSON reply.
pub fn negotiate(c: &mut Layered, json: &str) -> serde_json::Value {
    c.send(&crate::common::v2::identify_cmd(json));
    let (kind, data) = c.frame();
    assert_eq!(kind, RESPONSE, "{}", String::from_utf8_lossy(&data));
    serde_json::from_slice(&data).expect("JSON reply")
}

/// Publishes `bodies` to `topic` and consumes them on channel `ch` through `c`'s layers;
/// the client stays subscribed.
pub fn round_trip(c: &mut Layered, topic: &str, bodies: &[Vec<u8>]) {
    for body in bodies {
        c.send(&crate::common::v2::pub_cmd(topic, body));
        assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
    }
    c.send(format!("SUB {topic} ch\n").as_bytes());
    assert_eq!(c.frame(), (RESPONSE, b"OK".to_vec()));
    c.send(b"RDY 1000\n");
    for body in bodies {
        let (kind, data) = c.frame();
        assert_eq!(kind, MESSAGE);
        assert_eq!(&data[26..], &body[..], "message body intact");
        let id = String::from_utf8(data[10..26].to_vec()).unwrap();
        c.send(format!("FIN {id}\n").as_bytes());
    }
}

/// The /stats entry of the client connected from `local` (a producer or a consumer).
pub async fn client_stats(base: &str, local: SocketAddr) -> serde_json::Value {
    let stats = crate::common::stats(base).await;
    let me = local.to_string();
    stats["producers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            stats["topics"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| t["channels"].as_array().into_iter().flatten())
                .flat_map(|ch| ch["clients"].as_array().into_iter().flatten()),
        )
        .find(|c| c["remote_address"] == me.as_str())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}
