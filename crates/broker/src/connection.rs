//! One client connection: read frames, dispatch them in order, write responses in order.
//!
//! The reader runs each request's synchronous part (validation, appends) before reading the
//! next, so requests on one connection take effect in the order sent, as in Kafka. What is
//! left — waiting for an fsync or for fetchable data — is a future queued to the writer,
//! which awaits them in order. The queue's capacity is the connection's in-flight limit
//! (`queued.max.requests.per.connection`): a client that does not read its responses stops
//! being read from, so a slow reader cannot grow the broker's memory.

use crate::handlers::{self, DispatchError, Outcome, Pending};
use crate::state::Broker;
use bytes::BytesMut;
use klamm_protocol::frame::{self, SIZE_PREFIX_BYTES};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Who is on the other end, for handlers that answer per listener.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// Name of the listener the connection arrived on (e.g. `PLAINTEXT`).
    pub listener: String,
}

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, info: ConnectionInfo) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let in_flight_max = broker.settings.queued_max_requests_per_connection.max(1);
    let (tx, mut rx) = mpsc::channel::<Pending>(in_flight_max);
    let peer = info.peer;
    let write_task = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Outcome::Respond(chunks) => {
                    if write_chunks(&mut writer, chunks).await.is_err() {
                        return;
                    }
                }
                Outcome::Silent => {}
                Outcome::Close => return,
            }
        }
        let _ = writer.shutdown().await;
    });
    let idle = Duration::from_millis(broker.settings.connections_max_idle_ms.max(1));
    let max_bytes = broker.settings.socket_request_max_bytes;
    loop {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        match tokio::time::timeout(idle, reader.read_exact(&mut prefix)).await {
            Err(_) => {
                tracing::debug!(%peer, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Err(_)) => break, // closed by the client
            Ok(Ok(_)) => {}
        }
        let size = match frame::request_size(prefix, max_bytes) {
            Ok(size) => size,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let mut body = BytesMut::zeroed(size);
        if reader.read_exact(&mut body).await.is_err() {
            break;
        }
        match handlers::dispatch(&broker, body.freeze(), &info) {
            Ok(pending) => {
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Err(DispatchError::Close(reason)) => {
                tracing::warn!(%peer, reason, "closing connection");
                break;
            }
        }
    }
    // Let queued responses go out (the writer ends when the queue is drained and closed).
    drop(tx);
    let _ = write_task.await;
}

/// Writes every chunk with vectored writes, so a header and the record bytes it frames go
/// out in as few syscalls as the socket allows.
async fn write_chunks(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    mut chunks: Vec<bytes::Bytes>,
) -> std::io::Result<()> {
    use bytes::Buf;
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[first..]
            .iter()
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let c = &mut chunks[first];
            let n = written.min(c.len());
            c.advance(n);
            written -= n;
            if c.is_empty() {
                first += 1;
            }
        }
        while first < chunks.len() && chunks[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}
