//! A connection's transport upgrades after IDENTIFY, in nsqd's order: the IDENTIFY response
//! in the transport as it was, then TLS (and `OK` inside it), then snappy or deflate (and
//! `OK`, already compressed). The output is held throughout, so nothing else (a heartbeat)
//! is written while the layers change.

use std::sync::Arc;

use super::TcpContext;
use crate::cmd::Negotiated;
use crate::protocol::{FRAME_RESPONSE, OK};
use crate::session::Session;
use crate::transport::{self, Compression, Encoder, Inbound};

/// Why an upgrade ended the connection.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeFailed {
    #[error("writing to the client failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Transport(#[from] transport::UpgradeError),
    #[error("TLS is not configured")]
    NoTls,
}

/// Sends `response`, then performs the upgrades asked for. Returns the new read side; on an
/// error the connection is unusable and must close.
pub async fn upgrade(
    context: &TcpContext,
    session: &Arc<Session>,
    reader: Inbound,
    negotiated: &mut Negotiated,
    response: &[u8],
    tls: bool,
    compression: Option<Compression>,
) -> Result<Inbound, UpgradeFailed> {
    let mut output = session.output.lock().await;
    output.frame(FRAME_RESPONSE, response).await?;
    output.flush().await?;
    let mut reader = reader;
    let mut info = session.info.transport();
    if tls {
        let server = context.tls.as_ref().ok_or(UpgradeFailed::NoTls)?;
        let stream = transport::reunite(reader, output.take_sink())?;
        let stream = server
            .accept(stream)
            .await
            .map_err(|e| UpgradeFailed::Transport(transport::UpgradeError::Handshake(e)))?;
        info.tls = Some(crate::tls::describe(stream.get_ref().1));
        let (inbound, sink) = transport::split_tls(stream);
        reader = inbound;
        output.set_sink(sink);
        negotiated.tls = true;
        session.info.set_transport(info.clone());
        output.frame(FRAME_RESPONSE, OK).await?;
        output.flush().await?;
    }
    if let Some(compression) = compression {
        output.set_encoder(Encoder::new(compression));
        reader = transport::compress_inbound(reader, compression);
        match compression {
            Compression::Snappy => info.snappy = true,
            Compression::Deflate(_) => info.deflate = true,
        }
        negotiated.compressed = true;
        session.info.set_transport(info);
        output.frame(FRAME_RESPONSE, OK).await?;
        output.flush().await?;
    }
    Ok(reader)
}
