//! The nsqd ↔ nsqlookupd TCP protocol V1's wire pieces, shared by both sides: the magic, the
//! commands an nsqd sends (each a small constructor, so no caller formats bytes), the IDENTIFY
//! bodies, and the size-prefixed responses.
//!
//! Requests are lines (`PING\n`, `REGISTER <topic> [<channel>]\n`, `UNREGISTER …\n`, and
//! `IDENTIFY\n[4-byte size][JSON]`); responses are `[4-byte BE size][data]`, `OK` or an error
//! `"<CODE> <description>"`.

use serde::{Deserialize, Serialize};

/// The magic an nsqd sends first.
pub const MAGIC_V1: &[u8; 4] = b"  V1";

/// The response that says yes.
pub const OK: &[u8] = b"OK";

/// What an nsqd says about itself in IDENTIFY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub broadcast_address: String,
    pub hostname: String,
    pub tcp_port: u16,
    pub http_port: u16,
    pub version: String,
}

/// What nsqlookupd answers to IDENTIFY: its own identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupdInfo {
    pub tcp_port: u16,
    pub http_port: u16,
    pub version: String,
    pub broadcast_address: String,
    pub hostname: String,
}

/// One request from nsqd to nsqlookupd, ready to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command(Vec<u8>);

impl Command {
    /// `IDENTIFY` with `info` as its JSON body.
    pub fn identify(info: &PeerInfo) -> Self {
        // Serializing strings and integers cannot fail.
        let body = serde_json::to_vec(info).unwrap_or_default();
        let mut bytes = b"IDENTIFY\n".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        Command(bytes)
    }

    /// `REGISTER <topic> [<channel>]`.
    pub fn register(topic: &str, channel: Option<&str>) -> Self {
        Command(line("REGISTER", topic, channel))
    }

    /// `UNREGISTER <topic> [<channel>]`.
    pub fn unregister(topic: &str, channel: Option<&str>) -> Self {
        Command(line("UNREGISTER", topic, channel))
    }

    /// `PING`.
    pub fn ping() -> Self {
        Command(b"PING\n".to_vec())
    }

    /// The bytes to write.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn line(verb: &str, topic: &str, channel: Option<&str>) -> Vec<u8> {
    match channel {
        Some(channel) => format!("{verb} {topic} {channel}\n").into_bytes(),
        None => format!("{verb} {topic}\n").into_bytes(),
    }
}

/// Appends a response: `[4-byte BE size][data]`.
pub fn put_response(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_nsq_v1_lines() {
        assert_eq!(Command::register("t", None).as_bytes(), b"REGISTER t\n");
        assert_eq!(
            Command::register("t", Some("c")).as_bytes(),
            b"REGISTER t c\n"
        );
        assert_eq!(
            Command::unregister("t", Some("c")).as_bytes(),
            b"UNREGISTER t c\n"
        );
        assert_eq!(Command::ping().as_bytes(), b"PING\n");
        let info = PeerInfo {
            broadcast_address: "h".into(),
            hostname: "h".into(),
            tcp_port: 4150,
            http_port: 4151,
            version: "1.3.0".into(),
        };
        let identify = Command::identify(&info);
        let body = &identify.as_bytes()[13..];
        assert_eq!(&identify.as_bytes()[..9], b"IDENTIFY\n");
        assert_eq!(
            u32::from_be_bytes(identify.as_bytes()[9..13].try_into().unwrap()) as usize,
            body.len()
        );
        let parsed: PeerInfo = serde_json::from_slice(body).unwrap();
        assert_eq!(parsed, info);
        let mut out = Vec::new();
        put_response(&mut out, b"OK");
        assert_eq!(out, b"\0\0\0\x02OK");
    }
}
