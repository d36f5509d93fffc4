//! IDENTIFY and the upgrades after it, on the client's side and in nsqd's order: the IDENTIFY
//! response in plain text, then the TLS handshake and `OK` inside TLS, then snappy or deflate
//! and `OK` already compressed.
//!
//! A benchmark that asked for TLS or compression and did not get it fails: a plain run
//! reported as an encrypted one would be a lie.

use super::conn::Conn;
use super::tls_client::TlsClient;
use super::{expect_ok, read_frame, unexpected, BenchError};
use crate::protocol::FRAME_RESPONSE;
use crate::transport::Compression;

/// The transport a benchmark asks nsqd for.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    pub tls: Option<TlsClient>,
    pub compression: Option<Compression>,
}

impl Transport {
    /// Neither TLS nor compression: IDENTIFY without feature negotiation, as before.
    pub fn is_plain(&self) -> bool {
        self.tls.is_none() && self.compression.is_none()
    }

    /// `plain`, `TLS`, `snappy`, `TLS+deflate level 6`, … for the benchmark's header line.
    pub fn describe(&self) -> String {
        let compression = match self.compression {
            Some(Compression::Snappy) => Some("snappy".to_string()),
            Some(Compression::Deflate(level)) => Some(format!("deflate level {level}")),
            None => None,
        };
        match (&self.tls, compression) {
            (None, None) => "plain".into(),
            (Some(_), None) => "TLS".into(),
            (None, Some(c)) => c,
            (Some(_), Some(c)) => format!("TLS+{c}"),
        }
    }
}

/// What nsqd granted beyond what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The deflate level nsqd compresses with (it clamps to its `--max-deflate-level`).
    pub deflate_level: Option<u32>,
}

/// `IDENTIFY\n[size][json]`. Without TLS or compression, without feature negotiation (so the
/// answer is `OK`); otherwise with it, asking for exactly `transport`.
pub(crate) fn identify_command(
    client_id: &str,
    user_agent: &str,
    transport: &Transport,
) -> Vec<u8> {
    let mut body = serde_json::json!({
        "client_id": client_id,
        "hostname": client_id,
        "user_agent": user_agent,
        "feature_negotiation": !transport.is_plain(),
    });
    if !transport.is_plain() {
        body["tls_v1"] = transport.tls.is_some().into();
        body["snappy"] = (transport.compression == Some(Compression::Snappy)).into();
        if let Some(Compression::Deflate(level)) = transport.compression {
            body["deflate"] = true.into();
            body["deflate_level"] = level.into();
        }
    }
    let body = body.to_string();
    let mut command = b"IDENTIFY\n".to_vec();
    command.extend_from_slice(&(body.len() as u32).to_be_bytes());
    command.extend_from_slice(body.as_bytes());
    command
}

/// Reads the answer to the IDENTIFY sent with [`identify_command`] and performs the upgrades
/// it granted. Fails with [`BenchError::Refused`] when nsqd did not grant everything
/// `transport` asked for (the connection is then useless and should be dropped), and with
/// the handshake's or nsqd's error otherwise.
pub(crate) async fn upgrade(
    conn: &mut Conn,
    address: &str,
    transport: &Transport,
) -> Result<Granted, BenchError> {
    if transport.is_plain() {
        expect_ok(conn, "IDENTIFY").await?;
        return Ok(Granted {
            deflate_level: None,
        });
    }
    let (frame_type, data) = read_frame(conn).await?;
    if frame_type != FRAME_RESPONSE || !data.starts_with(b"{") {
        return Err(unexpected(
            "IDENTIFY with feature_negotiation",
            frame_type,
            &data,
        ));
    }
    let reply: serde_json::Value = serde_json::from_slice(&data)
        .map_err(|e| BenchError::Protocol(format!("nsqd's IDENTIFY response is not JSON: {e}")))?;
    let granted = |key: &str| reply[key].as_bool() == Some(true);
    let refused = |what: &str, key: &str, how: &str| {
        BenchError::Refused(format!(
            "nsqd at {address} did not grant {what} (IDENTIFY answered {key}: {}); {how}",
            reply[key]
        ))
    };
    if transport.tls.is_some() && !granted("tls_v1") {
        return Err(refused(
            "TLS",
            "tls_v1",
            "start it with --tls-cert and --tls-key",
        ));
    }
    let mut deflate_level = None;
    match transport.compression {
        Some(Compression::Snappy) if !granted("snappy") => {
            return Err(refused("snappy", "snappy", "it runs with --snappy=false"));
        }
        Some(Compression::Deflate(_)) if !granted("deflate") => {
            return Err(refused(
                "deflate",
                "deflate",
                "it runs with --deflate=false",
            ));
        }
        Some(Compression::Deflate(_)) => {
            deflate_level = reply["deflate_level"].as_u64().map(|l| l as u32);
        }
        _ => {}
    }
    if let Some(tls) = &transport.tls {
        conn.start_tls(tls, tls.server_name(address)?).await?;
        expect_ok(conn, "the TLS upgrade").await?;
    }
    if let Some(compression) = transport.compression {
        conn.compress(compression)?;
        expect_ok(conn, "the compression upgrade").await?;
    }
    Ok(Granted { deflate_level })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(command: &[u8]) -> serde_json::Value {
        serde_json::from_slice(&command[13..]).expect("json")
    }

    #[test]
    fn identify_asks_for_exactly_the_transport() {
        let plain = body(&identify_command("w", "ua", &Transport::default()));
        assert_eq!(plain["feature_negotiation"], false);
        assert!(plain.get("snappy").is_none());
        let deflate = Transport {
            tls: None,
            compression: Some(Compression::Deflate(3)),
        };
        let asked = body(&identify_command("w", "ua", &deflate));
        assert_eq!(asked["feature_negotiation"], true);
        assert_eq!(asked["tls_v1"], false);
        assert_eq!(asked["snappy"], false);
        assert_eq!(asked["deflate"], true);
        assert_eq!(asked["deflate_level"], 3);
        assert_eq!(deflate.describe(), "deflate level 3");
    }
}
