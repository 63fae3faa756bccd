//! Listeners, the connection limits, and the broker's lifecycle from start to clean shutdown.

use crate::admin::{self, Readiness};
use crate::broker::Broker;
use crate::connection;
use crate::handlers::ConnectionInfo;
use crate::tasks::Tasks;
use klamm_config::Config;
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;

/// Counts connections in total and per client IP against `max.connections` and
/// `max.connections.per.ip`.
#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

struct ConnectionSlot {
    counts: Arc<Mutex<ConnectionCounts>>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

fn try_admit(
    counts: &Arc<Mutex<ConnectionCounts>>,
    ip: IpAddr,
    max_total: usize,
    max_per_ip: usize,
) -> Option<ConnectionSlot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let on_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
    if c.total >= max_total || on_ip >= max_per_ip {
        return None;
    }
    c.total += 1;
    *c.per_ip.entry(ip).or_insert(0) += 1;
    Some(ConnectionSlot {
        counts: counts.clone(),
        ip,
    })
}

/// Runs the broker until `shutdown` resolves, then shuts down cleanly. Recovery happens
/// before any listener is bound, so a successful connect means the broker is ready.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut tasks = Tasks::new();
    let readiness = Arc::new(Readiness::default());
    let admin_addr = config.get("admin.listener").unwrap_or("").to_string();
    let mut admin_bound = None;
    if !admin_addr.is_empty() {
        if let Some(l) = admin::bind(&admin_addr).await {
            admin_bound = l.local_addr().ok();
            tasks.spawn(
                "admin-http",
                admin::serve(l, readiness.clone(), tasks.stop_signal()),
            );
        }
    }
    // Bound now but not listening until recovery is done, so a successful connect still
    // means ready; binding first lets a listener on port 0 advertise the port it got.
    let mut sockets = Vec::new();
    for listener in config.broker().listeners {
        let socket = bind_listener(&listener.host, listener.port)
            .map_err(|e| anyhow::anyhow!("cannot listen on {listener} : {e}"))?;
        sockets.push((listener.name, socket));
    }
    let bound_ports: Vec<(String, u16)> = sockets
        .iter()
        .map(|(name, s)| Ok((name.clone(), s.local_addr()?.port())))
        .collect::<std::io::Result<_>>()?;
    let config = config.with_bound_ports(&bound_ports);
    let ready_file = config.get("ready.file").unwrap_or("").to_string();
    let (broker, flush_queue) = tokio::task::block_in_place(|| Broker::open(config))?;
    crate::tasks::spawn_broker_tasks(&mut tasks, &broker, flush_queue);
    let mut listeners = Vec::new();
    let mut ready_lines = Vec::new();
    for ((name, socket), advertised) in sockets
        .into_iter()
        .zip(&broker.settings.advertised_listeners)
    {
        let addr = socket.local_addr()?;
        let bound = socket
            .listen(LISTEN_BACKLOG)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({name}): {e}"))?;
        tracing::info!(
            listener = %name,
            bound = %addr,
            advertised = %format!("{}:{}", advertised.host, advertised.port),
            "listening"
        );
        ready_lines.push(format!("{name} {addr}"));
        listeners.push((name, bound));
    }
    if let Some(addr) = admin_bound {
        ready_lines.push(format!("ADMIN {addr}"));
    }
    if !ready_file.is_empty() {
        write_ready_file(std::path::Path::new(&ready_file), &ready_lines)?;
    }
    warn_localhost_in_container(&broker.settings);
    readiness.set_ready(broker.clone());
    tracing::info!(
        node_id = broker.settings.node_id,
        cluster_id = %broker.cluster_id,
        data_dir = %broker.data_dir().display(),
        ready_ms = started.elapsed().as_millis() as u64,
        "klamm ready"
    );
    let counts = Arc::new(Mutex::new(ConnectionCounts::default()));
    let mut connections = JoinSet::new();
    let mut acceptors = JoinSet::new();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(64);
    for (name, listener) in listeners {
        let tx = conn_tx.clone();
        acceptors.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        if tx.send((stream, peer, name.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(conn_tx);
    let (stop_connections, connection_stop) = crate::shutdown::channel();
    tokio::pin!(shutdown);
    let failure = loop {
        tokio::select! {
            _ = &mut shutdown => break None,
            e = tasks.failed() => break Some(e),
            Some((stream, peer, listener)) = conn_rx.recv() => {
                // Both limits are dynamic: read them from the config in force now.
                let s = broker.config().broker();
                let Some(slot) = try_admit(&counts, peer.ip(), s.max_connections, s.max_connections_per_ip) else {
                    tracing::warn!(%peer, "refusing connection: max.connections or max.connections.per.ip reached");
                    drop(stream);
                    continue;
                };
                let b = broker.clone();
                let stop = connection_stop.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let m = crate::metrics::metrics();
                    m.connections_accepted.with_label_values(&[&listener]).inc();
                    m.connections_active.with_label_values(&[&listener]).inc();
                    connection::serve(b, stream, ConnectionInfo { peer, listener: listener.clone() }, stop).await;
                    m.connections_active.with_label_values(&[&listener]).dec();
                    m.connections_closed.with_label_values(&[&listener]).inc();
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };
    // Connections accepted but not yet served are closed, not left waiting.
    drop(conn_rx);
    let timeout = Duration::from_millis(broker.settings.shutdown_timeout_ms);
    drain(&broker, acceptors, connections, stop_connections, timeout).await;
    // Tasks stop after the connections: acknowledgements being drained need the flusher.
    let cut = tasks.stop(timeout).await;
    if !cut.is_empty() {
        tracing::warn!(tasks = ?cut, "background tasks still running after shutdown.timeout.ms were cut");
    }
    tokio::task::block_in_place(|| broker.shutdown())?;
    match failure {
        None => {
            tracing::info!("clean shutdown complete");
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// The draining half of shutdown: stop accepting, let every connection finish the requests
/// it has read (answers written, fsyncs done) and close, within `timeout`; connections
/// still busy then are cut, and counted in the log.
async fn drain(
    broker: &Broker,
    mut acceptors: JoinSet<()>,
    mut connections: JoinSet<()>,
    stop_connections: crate::shutdown::StopSender,
    timeout: Duration,
) {
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections; finishing the requests already read"
    );
    acceptors.abort_all();
    while acceptors.join_next().await.is_some() {}
    broker.begin_draining();
    stop_connections.stop();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, connections.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    connections = connections.len(),
                    timeout_ms = timeout.as_millis() as u64,
                    "connections still busy after shutdown.timeout.ms are cut; their requests in flight get no answer"
                );
                connections.abort_all();
                while connections.join_next().await.is_some() {}
                break;
            }
        }
    }
}

/// Pending connections a listener queues (as `TcpListener::bind` sets on Linux).
const LISTEN_BACKLOG: u32 = 1024;

/// A socket bound to `host:port` (0: the OS picks), not yet listening.
fn bind_listener(host: &str, port: u16) -> std::io::Result<tokio::net::TcpSocket> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to no address")))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// `ready.file`: one `NAME host:port` line per listener (the bound port, also when 0 was
/// asked) and `ADMIN host:port`, written whole (temporary file, then rename) once every
/// listener accepts connections, so a reader sees the complete file or none.
fn write_ready_file(path: &std::path::Path, lines: &[String]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("cannot write ready.file {}: {e}", path.display()))
}

/// Advertising only `localhost` from inside a container is the most common compose mistake:
/// other containers then connect to themselves. Say so at start.
fn warn_localhost_in_container(settings: &klamm_config::BrokerSettings) {
    let in_container = std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists();
    let local = |h: &str| h == "localhost" || h.starts_with("127.") || h == "::1";
    if in_container && settings.advertised_listeners.iter().all(|l| local(&l.host)) {
        tracing::warn!(
            "running in a container but advertising only localhost: clients in other containers cannot reach this broker; \
             set advertised.listeners (KLAMM_ADVERTISED_LISTENERS), e.g. INTERNAL://klamm:9092,EXTERNAL://localhost:19092"
        );
    }
}
