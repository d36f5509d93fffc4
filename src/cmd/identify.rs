//! `IDENTIFY`: the client describes itself and negotiates heartbeats, output buffering,
//! sampling, its message timeout, and (with `feature_negotiation`) TLS and snappy or deflate.
//!
//! # Format
//! `IDENTIFY\n[4-byte size][JSON]` → `OK`, or the negotiated settings as JSON when the
//! client sets `feature_negotiation`; then, for each upgrade granted, the connection upgrades
//! and says `OK` through the new layer (TLS first, then the compression).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use tokio::io::AsyncRead;

use super::{state, wrong_state, Cx, Negotiated, Reply};
use crate::broker::{client_state, Identity};
use crate::config::NsqdOptions;
use crate::protocol::{read_body, read_size, ClientError};
use crate::session::Settings;
use crate::transport::Compression;
use crate::NSQ_VERSION;

/// The IDENTIFY body. Every field may be absent or `null` (Go's decoder leaves the zero value
/// for both, and clients such as tokio-nsq send `null`); unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IdentifyData {
    client_id: Option<String>,
    hostname: Option<String>,
    user_agent: Option<String>,
    feature_negotiation: Option<bool>,
    heartbeat_interval: Option<i64>,
    output_buffer_size: Option<i64>,
    output_buffer_timeout: Option<i64>,
    sample_rate: Option<i64>,
    msg_timeout: Option<i64>,
    tls_v1: Option<bool>,
    snappy: Option<bool>,
    deflate: Option<bool>,
    deflate_level: Option<i64>,
    // Not used, but declared so that a value of the wrong type is refused, as Go's decoder
    // refuses it.
    #[allow(dead_code)]
    short_id: Option<String>,
    #[allow(dead_code)]
    long_id: Option<String>,
}

fn invalid(what: &str, value: i64) -> ClientError {
    ClientError::fatal(
        "E_BAD_BODY",
        format!("IDENTIFY {what} ({value}) is invalid"),
    )
}

pub async fn exec(cx: &mut Cx<'_>, _params: &[&[u8]]) -> Result<Reply, ClientError> {
    if state(cx) != client_state::INIT {
        return Err(wrong_state("IDENTIFY"));
    }
    let body = read_identify_body(cx.reader, cx.options.max_body_size).await?;
    let data = IdentifyData::parse(&body)?;
    let settings = negotiate_settings(&data, cx.session.settings(), cx.options)?;
    cx.session.info.set_identity(Identity {
        client_id: data.client_id.clone().unwrap_or_default(),
        hostname: data.hostname.clone().unwrap_or_default(),
        user_agent: data.user_agent.clone().unwrap_or_default(),
        sample_rate: i32::from(settings.sample_rate),
        output_buffer_size: settings.output_buffer_size as i64,
        output_buffer_timeout_ms: settings
            .output_buffer_timeout
            .map_or(0, |d| d.as_millis() as i64),
        msg_timeout_ms: settings.msg_timeout.as_millis() as i64,
        heartbeat_interval_ms: settings
            .heartbeat_interval
            .map_or(-1, |d| d.as_millis() as i64),
    });
    cx.session.set_settings(settings.clone()).await;
    let offer = Offer {
        tls_available: cx.tls_available,
        transport: cx.transport,
        auth_required: cx.auth.is_some(),
    };
    negotiate_upgrades(&data, &settings, cx.options, offer)
}

/// Reads IDENTIFY's sized body: a size in 1..=`max_body_size`, else `E_BAD_BODY` (as also
/// when the stream ends early).
pub async fn read_identify_body(
    reader: &mut (impl AsyncRead + Unpin),
    max_body_size: i64,
) -> Result<Vec<u8>, ClientError> {
    let size = read_size(reader)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "IDENTIFY failed to read body size"))?;
    if i64::from(size) > max_body_size {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("IDENTIFY body too big {size} > {max_body_size}"),
        ));
    }
    if size <= 0 {
        return Err(ClientError::fatal(
            "E_BAD_BODY",
            format!("IDENTIFY invalid body size {size}"),
        ));
    }
    read_body(reader, size as usize)
        .await
        .map_err(|_| ClientError::fatal("E_BAD_BODY", "IDENTIFY failed to read body"))
}

impl IdentifyData {
    /// Decodes the body as Go does (`null` is all defaults), else `E_BAD_BODY`.
    pub fn parse(body: &[u8]) -> Result<IdentifyData, ClientError> {
        serde_json::from_slice::<Option<IdentifyData>>(body)
            .map_err(|_| ClientError::fatal("E_BAD_BODY", "IDENTIFY failed to decode JSON body"))
            .map(Option::unwrap_or_default)
    }
}

/// The settings `data` asks for, starting from the connection's `settings`, each checked
/// against `opts` as Go checks it (`E_BAD_BODY IDENTIFY <what> (<value>) is invalid`): a
/// heartbeat interval of -1 (off) or 1 s..=max, an output buffer size of -1 (write through),
/// 64..=max, an output buffer timeout of -1 or min..=max, a sample rate of 0..=99, a message
/// timeout of 1 s..=max; 0 or absent keeps the current value.
pub fn negotiate_settings(
    data: &IdentifyData,
    mut settings: Settings,
    opts: &NsqdOptions,
) -> Result<Settings, ClientError> {
    let max_ms = |d: Duration| d.as_millis() as i64;
    settings.heartbeat_interval = match data.heartbeat_interval.unwrap_or(0) {
        -1 => None,
        0 => settings.heartbeat_interval,
        ms if (1000..=max_ms(opts.max_heartbeat_interval)).contains(&ms) => {
            Some(Duration::from_millis(ms as u64))
        }
        ms => return Err(invalid("heartbeat interval", ms)),
    };
    let mut timeout = match data.output_buffer_timeout.unwrap_or(0) {
        -1 => None,
        0 => settings.output_buffer_timeout,
        ms if (max_ms(opts.output_buffer.min_timeout)..=max_ms(opts.max_output_buffer_timeout))
            .contains(&ms) =>
        {
            Some(Duration::from_millis(ms as u64))
        }
        ms => return Err(invalid("output buffer timeout", ms)),
    };
    let size = match data.output_buffer_size.unwrap_or(0) {
        -1 => {
            // Go's smallest buffer: every frame goes out at once.
            timeout = None;
            1
        }
        0 => settings.output_buffer_size,
        n if (64..=opts.max_output_buffer_size).contains(&n) => n as usize,
        n => return Err(invalid("output buffer size", n)),
    };
    settings.output_buffer_timeout = timeout;
    settings.output_buffer_size = size;
    let sample_rate = data.sample_rate.unwrap_or(0);
    if !(0..=99).contains(&sample_rate) {
        return Err(invalid("sample rate", sample_rate));
    }
    settings.sample_rate = sample_rate as u8;
    settings.msg_timeout = match data.msg_timeout.unwrap_or(0) {
        0 => settings.msg_timeout,
        ms if (1000..=max_ms(opts.max_msg_timeout)).contains(&ms) => {
            Duration::from_millis(ms as u64)
        }
        ms => return Err(invalid("msg timeout", ms)),
    };
    Ok(settings)
}

/// What the broker can grant an IDENTIFY besides its settings.
#[derive(Debug, Clone, Copy)]
pub struct Offer {
    /// The broker has a TLS certificate.
    pub tls_available: bool,
    /// What the connection has negotiated already.
    pub transport: Negotiated,
    /// AUTH is enabled.
    pub auth_required: bool,
}

/// IDENTIFY's reply once its `settings` are in force: `OK` without `feature_negotiation`,
/// else the negotiated settings as JSON, with the upgrades granted (TLS when offered and
/// asked for, snappy or deflate when enabled and asked for, each at most once per
/// connection). Asking for both compressions is `E_IDENTIFY_FAILED`.
pub fn negotiate_upgrades(
    data: &IdentifyData,
    settings: &Settings,
    opts: &NsqdOptions,
    offer: Offer,
) -> Result<Reply, ClientError> {
    let max_ms = |d: Duration| d.as_millis() as i64;
    if data.feature_negotiation != Some(true) {
        return Ok(Reply::Response(crate::protocol::OK.to_vec()));
    }
    // What Go grants: TLS when the broker has a certificate, each compression when enabled;
    // rnsq also grants each upgrade once only (a second TLS handshake inside TLS, or a second
    // compression layer, is never what a client means).
    let tls = offer.tls_available && !offer.transport.tls && data.tls_v1 == Some(true);
    let deflate = opts.deflate && !offer.transport.compressed && data.deflate == Some(true);
    let snappy = opts.snappy && !offer.transport.compressed && data.snappy == Some(true);
    let mut deflate_level = 6;
    if deflate {
        if let Some(level) = data.deflate_level.filter(|l| *l > 0) {
            deflate_level = level;
        }
    }
    deflate_level = deflate_level.min(opts.max_deflate_level);
    if deflate && snappy {
        return Err(ClientError::fatal(
            "E_IDENTIFY_FAILED",
            "cannot enable both deflate and snappy compression",
        ));
    }
    let compression = if snappy {
        Some(Compression::Snappy)
    } else if deflate {
        Some(Compression::Deflate(deflate_level.clamp(0, 9) as u32))
    } else {
        None
    };
    let reply = json!({
        "max_rdy_count": opts.max_rdy_count,
        "version": NSQ_VERSION,
        "max_msg_timeout": max_ms(opts.max_msg_timeout),
        "msg_timeout": max_ms(settings.msg_timeout),
        "tls_v1": tls,
        "deflate": deflate,
        "deflate_level": deflate_level,
        "max_deflate_level": opts.max_deflate_level,
        "snappy": snappy,
        "sample_rate": settings.sample_rate,
        "auth_required": offer.auth_required,
        "output_buffer_size": settings.output_buffer_size,
        "output_buffer_timeout": settings.output_buffer_timeout.map_or(0, |d| d.as_millis() as i64),
    });
    let response = reply.to_string().into_bytes();
    if !tls && compression.is_none() {
        return Ok(Reply::Response(response));
    }
    Ok(Reply::Upgrade {
        response,
        tls,
        compression,
    })
}
