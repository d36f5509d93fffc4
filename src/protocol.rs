//! NSQ protocol V2's wire pieces shared by every command: frame types and encoding, client
//! errors with NSQ's codes (and whether they close the connection), and reading command lines
//! and the sizes and bodies that follow them.

use bytes::BufMut;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

/// The magic a V2 client sends first.
pub const MAGIC_V2: &[u8; 4] = b"  V2";

/// Frame types.
pub const FRAME_RESPONSE: i32 = 0;
pub const FRAME_ERROR: i32 = 1;
pub const FRAME_MESSAGE: i32 = 2;

/// The response frame body that says yes.
pub const OK: &[u8] = b"OK";
/// The heartbeat response body.
pub const HEARTBEAT: &[u8] = b"_heartbeat_";

/// Appends a frame: `[4-byte size][4-byte type][data]`, size = 4 + data length.
pub fn put_frame(out: &mut impl BufMut, frame_type: i32, data: &[u8]) {
    out.put_i32(4 + data.len() as i32);
    out.put_i32(frame_type);
    out.put_slice(data);
}

/// A command's failure as the client sees it: `"<code> <description>"` in an error frame.
/// Fatal errors close the connection after the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {description}")]
pub struct ClientError {
    pub code: &'static str,
    pub description: String,
    pub fatal: bool,
}

impl ClientError {
    /// An error that closes the connection.
    pub fn fatal(code: &'static str, description: impl Into<String>) -> Self {
        ClientError {
            code,
            description: description.into(),
            fatal: true,
        }
    }

    /// An error after which the connection stays open (FIN, REQ, TOUCH failures).
    pub fn non_fatal(code: &'static str, description: impl Into<String>) -> Self {
        ClientError {
            code,
            description: description.into(),
            fatal: false,
        }
    }

    /// The error frame's data.
    pub fn frame_data(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// The longest command line accepted, its `\n` included.
pub const MAX_LINE: u64 = 64 * 1024;

/// Reads one command line into `line` (cleared first), without its `\n` or a `\r` before it.
/// `Ok(false)`: the stream ended before the line's first byte. A line of more than
/// [`MAX_LINE`] bytes is an `InvalidData` error, one the stream ends inside an
/// `UnexpectedEof` error (the connection closes); at most [`MAX_LINE`] bytes are buffered
/// either way.
pub async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let read = reader.take(MAX_LINE).read_until(b'\n', line).await?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        if read as u64 >= MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "command line too long",
            ));
        }
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the stream ended inside a command line",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(true)
}

/// A command line's parameters: split on every single space, as nsqd splits them (so
/// `PUB  t` has an empty second parameter).
pub fn split_params(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b' ').collect()
}

/// Reads a 4-byte big-endian signed size.
pub async fn read_size(reader: &mut (impl AsyncRead + Unpin)) -> std::io::Result<i32> {
    reader.read_i32().await
}

/// The most of a body's buffer allocated before its bytes arrive.
const BODY_CHUNK: usize = 64 * 1024;

/// Reads exactly `size` bytes (the caller has bounded `size` by its limit). The buffer starts
/// at [`BODY_CHUNK`] and doubles as the bytes arrive, never past `size`, so a client that
/// announces a large body and sends nothing makes us hold 64 KiB, not `size`; the returned
/// buffer's capacity is exactly `size`. On an error (the peer closed, or the read deadline
/// passed) the bytes read so far are dropped.
pub async fn read_body(
    reader: &mut (impl AsyncRead + Unpin),
    size: usize,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    read_body_into(reader, size, &mut body).await?;
    Ok(body)
}

/// [`read_body`] into `body` (emptied first); on an error `body` holds the bytes that did
/// arrive, for a caller whose error depends on how far the body got (MPUB).
pub async fn read_body_into(
    reader: &mut (impl AsyncRead + Unpin),
    size: usize,
    body: &mut Vec<u8>,
) -> std::io::Result<()> {
    body.clear();
    while body.len() < size {
        let have = body.len();
        if have == body.capacity() {
            body.reserve_exact((size - have).min(have.max(BODY_CHUNK)));
        }
        let remaining = (size - have) as u64;
        if (&mut *reader).take(remaining).read_buf(body).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// Parses a decimal count the way nsqd does (digits only; empty is 0).
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    text.iter().try_fold(0u64, |n, c| {
        c.is_ascii_digit()
            .then(|| n.saturating_mul(10).saturating_add(u64::from(c - b'0')))
    })
}

/// Quotes bytes as Go's `%q` does (nsqd's error descriptions use it): printable characters as
/// they are, `\n`-style escapes, `\xNN` for other control bytes and invalid UTF-8.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() && (c as u32) <= 0xffff => {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote(b"a b"), r#""a b""#);
        assert_eq!(go_quote(b"a\x01b"), r#""a\x01b""#);
        assert_eq!(go_quote(b"a\xffb"), r#""a\xffb""#);
        assert_eq!(go_quote(b"t\"q\\\n"), r#""t\"q\\\n""#);
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }

    #[tokio::test]
    async fn reads_lines_as_nsqd_does_and_refuses_long_or_unterminated_ones() {
        let mut line = Vec::new();
        let mut input: &[u8] = b"PUB t\r\nNOP\n\nlast";
        assert!(read_line(&mut input, &mut line).await.unwrap());
        assert_eq!(line, b"PUB t");
        assert_eq!(split_params(&line), [&b"PUB"[..], b"t"]);
        assert!(read_line(&mut input, &mut line).await.unwrap());
        assert_eq!(line, b"NOP");
        assert!(read_line(&mut input, &mut line).await.unwrap());
        assert_eq!(line, b"");
        assert_eq!(split_params(&line), [&b""[..]]);
        let unterminated = read_line(&mut input, &mut line).await.unwrap_err();
        assert_eq!(unterminated.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(!read_line(&mut input, &mut line).await.unwrap(), "the end");

        // A line of MAX_LINE bytes with its newline is the longest taken; one byte more is
        // refused once MAX_LINE bytes are read, whatever follows.
        let mut longest = vec![b'x'; MAX_LINE as usize - 1];
        longest.push(b'\n');
        let mut input = &longest[..];
        assert!(read_line(&mut input, &mut line).await.unwrap());
        assert_eq!(line.len() as u64, MAX_LINE - 1);
        let mut too_long = vec![b'x'; MAX_LINE as usize];
        too_long.extend_from_slice(b"\nNOP\n");
        let mut input = &too_long[..];
        let error = read_line(&mut input, &mut line).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(input, b"\nNOP\n", "no more than MAX_LINE bytes were taken");
        assert_eq!(split_params(b"PUB  t"), [&b"PUB"[..], b"", b"t"]);
    }

    #[test]
    fn frames_and_errors() {
        let mut out = Vec::new();
        put_frame(&mut out, FRAME_ERROR, b"E_INVALID x");
        assert_eq!(&out[..8], &[0, 0, 0, 15, 0, 0, 0, 1]);
        assert_eq!(&out[8..], b"E_INVALID x");
        let e = ClientError::fatal("E_INVALID", "invalid command FOO");
        assert_eq!(e.frame_data(), b"E_INVALID invalid command FOO");
        assert_eq!(parse_decimal(b"2500"), Some(2500));
        assert_eq!(parse_decimal(b""), Some(0));
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"1x"), None);
    }

    #[tokio::test]
    async fn a_body_grows_as_it_arrives_to_exactly_its_size() {
        let size = 5 * BODY_CHUNK + 7;
        let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let body = read_body(&mut &bytes[..], size).await.unwrap();
        assert_eq!(body, bytes);
        assert_eq!(body.capacity(), size);
        let short = read_body(&mut &bytes[..10], 11).await.unwrap_err();
        assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(read_body(&mut &b""[..], 0).await.unwrap().is_empty());
        let mut partial = Vec::new();
        assert!(read_body_into(&mut &bytes[..10], 11, &mut partial)
            .await
            .is_err());
        assert_eq!(partial, bytes[..10]);
    }
}
