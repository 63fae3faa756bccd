//! Listeners, the connection limits, and the broker's lifecycle from start to clean shutdown.

use crate::admin::{self, Readiness};
use crate::connection::{self, ConnectionInfo};
use crate::state::{self, Broker};
use klamm_config::Config;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
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
    crate::metrics::set_enabled(config.get("metrics.enabled") != Some("false"));
    let slow_ms = config
        .get("request.slow.log.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    crate::handlers::set_slow_request_ms(slow_ms);
    let readiness = Arc::new(Readiness::default());
    let admin_addr = config.get("admin.listener").unwrap_or("").to_string();
    if !admin_addr.is_empty() {
        if let Some(l) = admin::bind(&admin_addr).await {
            tokio::spawn(admin::serve(l, readiness.clone()));
        }
    }
    let (broker, flush_queue) = tokio::task::block_in_place(|| Broker::open(config))?;
    state::spawn_flushers(&broker, flush_queue);
    let mut listeners = Vec::new();
    for (listener, advertised) in broker
        .settings
        .listeners
        .iter()
        .zip(&broker.settings.advertised_listeners)
    {
        let addr = format!("{}:{}", listener.host, listener.port);
        let bound = TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} ({}): {e}", listener.name))?;
        tracing::info!(
            listener = %listener.name,
            bound = %bound.local_addr()?,
            advertised = %format!("{}:{}", advertised.host, advertised.port),
            "listening"
        );
        listeners.push((listener.name.clone(), bound));
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some((stream, peer, listener)) = conn_rx.recv() => {
                // Both limits are dynamic: read them from the config in force now.
                let s = broker.config().broker();
                let Some(slot) = try_admit(&counts, peer.ip(), s.max_connections, s.max_connections_per_ip) else {
                    tracing::warn!(%peer, "refusing connection: max.connections or max.connections.per.ip reached");
                    drop(stream);
                    continue;
                };
                let b = broker.clone();
                connections.spawn(async move {
                    let _slot = slot;
                    let m = crate::metrics::metrics();
                    m.connections_accepted.with_label_values(&[&listener]).inc();
                    m.connections_active.with_label_values(&[&listener]).inc();
                    connection::serve(b, stream, ConnectionInfo { peer, listener: listener.clone() }).await;
                    m.connections_active.with_label_values(&[&listener]).dec();
                    m.connections_closed.with_label_values(&[&listener]).inc();
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    tracing::info!("shutting down");
    acceptors.abort_all();
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    tokio::task::block_in_place(|| broker.shutdown())?;
    tracing::info!("clean shutdown complete");
    Ok(())
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
