//! One client connection: read frames, dispatch them in order, write responses in order.
//!
//! The reader runs each request's synchronous part (validation, appends) before reading the
//! next, so requests on one connection take effect in the order sent, as in Kafka. What is
//! left — waiting for an fsync or for fetchable data — is a future queued to the writer,
//! which awaits them in order. The queue's capacity is the connection's in-flight limit
//! (`queued.max.requests.per.connection`): a client that does not read its responses stops
//! being read from, so a slow reader cannot grow the broker's memory.

use crate::broker::Broker;
use crate::handlers::{self, ConnectionInfo, DispatchError, Outcome, Pending};
use crate::shutdown::Stop;
use bytes::BytesMut;
use klamm_protocol::frame::{self, SIZE_PREFIX_BYTES};

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Request bodies up to this size are read without waiting for `queued.max.request.bytes`.
pub const SMALL_REQUEST_BYTES: usize = 64 * 1024;

/// Serves one connection until the client closes it, a limit closes it, or `stop` is
/// signalled: then no further request is read, and the ones already read are answered
/// (their fsyncs awaited) before the socket closes.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, info: ConnectionInfo, mut stop: Stop) {
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
    // A started frame must arrive whole this soon (and never later than the idle timer).
    let frame_deadline =
        Duration::from_millis(broker.settings.socket_request_timeout_ms.max(1)).min(idle);
    loop {
        let mut prefix = [0u8; SIZE_PREFIX_BYTES];
        // Stopping is checked only here, while waiting for the next request: a request
        // whose size prefix arrived is read whole and handled.
        let read = tokio::select! {
            biased;
            _ = stop.wait() => break,
            read = tokio::time::timeout(idle, reader.read_exact(&mut prefix)) => read,
        };
        match read {
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
        // One deadline for waiting for budget and reading the body: a connection that
        // declared a frame holds (or waits for) budget at most socket.request.timeout.ms.
        let frame_due = tokio::time::Instant::now() + frame_deadline;
        // Room in the broker-wide budget before a byte of the body is held: a client that
        // declares 100 MiB and sends nothing costs nothing until the budget allows it.
        let permit = match &broker.request_bytes {
            None => None,
            // Small requests (metadata, heartbeats, fetches) never wait behind large ones:
            // what they hold is bounded by max.connections × SMALL_REQUEST_BYTES.
            Some(_) if size <= SMALL_REQUEST_BYTES => None,
            Some((budget, total)) => {
                let want = u32::try_from(size).unwrap_or(u32::MAX).min(*total);
                match tokio::time::timeout_at(frame_due, budget.acquire_many(want)).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => {
                        tracing::warn!(%peer, size,
                            "closing connection: no room for the request within \
                             socket.request.timeout.ms (queued.max.request.bytes is in use)");
                        break;
                    }
                }
            }
        };
        let mut body = BytesMut::zeroed(size);
        match tokio::time::timeout_at(frame_due, reader.read_exact(&mut body)).await {
            Err(_) => {
                tracing::warn!(%peer, size,
                    "closing connection: request body not received within socket.request.timeout.ms");
                break;
            }
            Ok(Err(_)) => break,
            Ok(Ok(_)) => {}
        }
        let dispatched = handlers::dispatch(&broker, body.freeze(), &info).await;
        drop(permit);
        match dispatched {
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
