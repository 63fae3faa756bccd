//! The admin HTTP listener (`admin.listener`, default `0.0.0.0:9644`): `GET /metrics`
//! (Prometheus text), `GET /health` (the process is alive) and `GET /ready` (recovery has
//! finished and the Kafka listeners are bound; 503 before). It starts before recovery so
//! that orchestrators can tell "alive but loading" from "dead".

use crate::broker::Broker;
use crate::shutdown::Stop;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;

/// Set once the broker is ready; `/ready` and the broker-state metrics use it.
#[derive(Default)]
pub struct Readiness {
    broker: OnceLock<Arc<Broker>>,
}

impl Readiness {
    pub fn set_ready(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }
}

/// Binds the admin listener. Failing to bind is reported, not fatal: the Kafka listeners
/// matter more than the metrics endpoint (a second broker on one host is the common case).
pub async fn bind(addr: &str) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(l) => {
            tracing::info!(listener = "admin", bound = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), "listening (GET /metrics, /health, /ready)");
            Some(l)
        }
        Err(e) => {
            tracing::warn!(address = addr, error = %e, "admin listener not started: /metrics, /health and /ready are unavailable");
            None
        }
    }
}

/// Serves the admin HTTP listener until `stop` is signalled.
pub async fn serve(listener: TcpListener, readiness: Arc<Readiness>, mut stop: Stop) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer): (_, SocketAddr) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let readiness = readiness.clone();
                async move { Ok::<_, Infallible>(route(&req, &readiness)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

fn route(req: &Request<Incoming>, readiness: &Readiness) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n", PLAIN);
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n", PLAIN),
        "/ready" => match readiness.broker() {
            Some(_) => text(StatusCode::OK, "ready\n", PLAIN),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "recovering\n", PLAIN),
        },
        "/metrics" => {
            let body = crate::scrape::render(readiness.broker().map(|b| b.as_ref()));
            text(
                StatusCode::OK,
                body,
                "text/plain; version=0.0.4; charset=utf-8",
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /health or /ready\n",
            PLAIN,
        ),
    }
}
