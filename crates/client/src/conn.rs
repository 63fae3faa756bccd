//! One TCP connection to one broker: framing, correlation ids, and the versions it serves.
//!
//! Responses on a Kafka connection come back in request order, so a caller may `send`
//! several requests and then `recv` them in the same order (pipelining, used by `bench`).

use crate::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame accepted (a fetch returns at most `max_bytes`, set well below).
pub const MAX_RESPONSE_BYTES: usize = 128 << 20;

/// Kafka's name for an API key, e.g. `Produce` (`Unknown` for keys the crate does not know).
pub fn api_name(key: i16) -> &'static str {
    static NAMES: std::sync::OnceLock<BTreeMap<i16, &'static str>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        // `ApiKey`'s Debug output is the variant name, which is Kafka's API name. Built once,
        // so the leaked strings are bounded by the number of API keys.
        ApiKey::iter()
            .map(|k| (k as i16, &*Box::leak(format!("{k:?}").into_boxed_str())))
            .collect()
    });
    names.get(&key).copied().unwrap_or("Unknown")
}

pub struct Connection {
    addr: String,
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation_id: i32,
    timeout: Duration,
    /// api key → (min, max) the broker serves.
    versions: BTreeMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and negotiates versions with ApiVersions (v3, falling back to v0 for old
    /// brokers).
    pub async fn connect(addr: &str, client_id: &str, timeout: Duration) -> Result<Connection> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(ClientError::Unreachable {
                    tried: addr.to_string(),
                    reason: e.to_string(),
                    hint: crate::error::BOOTSTRAP_HINT,
                })
            }
            Err(_) => {
                return Err(ClientError::Unreachable {
                    tried: addr.to_string(),
                    reason: format!("no TCP connection within {timeout:?}"),
                    hint: crate::error::BOOTSTRAP_HINT,
                })
            }
        };
        stream.set_nodelay(true).ok();
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation_id: 1,
            timeout,
            versions: BTreeMap::new(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("klamm-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = match conn.call_at(3, &request).await {
            Ok(r) if r.error_code == 0 => r,
            // A broker older than ApiVersions v3 answers in v0 format with UNSUPPORTED_VERSION.
            Ok(_) | Err(ClientError::Protocol { .. }) => conn.call_at(0, &request).await?,
            Err(e) => return Err(e),
        };
        if response.error_code != 0 {
            return Err(ClientError::kafka("ApiVersions", response.error_code, None));
        }
        conn.versions = versions_table(&response);
        Ok(conn)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `(min, max)` versions of every API the broker serves.
    pub fn versions(&self) -> &BTreeMap<i16, (i16, i16)> {
        &self.versions
    }

    /// The highest version both sides speak: the broker's range intersected with
    /// `[min, max]`, the versions the caller knows how to fill.
    pub fn pick_version<R: Request>(&self, min: i16, max: i16) -> Result<i16> {
        let unsupported = || ClientError::Unsupported {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            min,
            max,
        };
        let (broker_min, broker_max) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let version = broker_max.min(max);
        if version < min.max(broker_min) {
            return Err(unsupported());
        }
        Ok(version)
    }

    /// Negotiates a version in `[min, max]`, sends `request` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        min: i16,
        max: i16,
    ) -> Result<R::Response> {
        let version = self.pick_version::<R>(min, max)?;
        self.call_at(version, request).await
    }

    /// Sends at an explicit version and waits for the response.
    pub async fn call_at<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        let corr = self.send(version, request).await?;
        self.recv::<R>(version, corr).await
    }

    /// Writes one request; returns its correlation id for [`Connection::recv`].
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32> {
        let corr = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(&[0u8; 4]);
        let encoded = header
            .encode(&mut buf, R::header_version(version))
            .and_then(|_| request.encode(&mut buf, version));
        if let Err(e) = encoded {
            return Err(ClientError::Invalid(format!(
                "cannot encode {} v{version}: {e}",
                api_name(R::KEY)
            )));
        }
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        let write = self.stream.write_all(&buf);
        match tokio::time::timeout(self.timeout, write).await {
            Ok(Ok(())) => Ok(corr),
            Ok(Err(e)) => Err(self.io_error(e)),
            Err(_) => Err(self.timeout_error(R::KEY)),
        }
    }

    /// Reads the response to the request sent at `version` with correlation id `corr`.
    pub async fn recv<R: Request>(&mut self, version: i16, corr: i32) -> Result<R::Response> {
        let frame = match tokio::time::timeout(self.timeout, self.read_frame()).await {
            Ok(r) => r?,
            Err(_) => return Err(self.timeout_error(R::KEY)),
        };
        self.decode::<R>(frame, version, corr)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|e| self.io_error(e))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                api: "response",
                reason: format!("frame size {size} out of range"),
            });
        }
        let mut buf = vec![0u8; size as usize];
        self.stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| self.io_error(e))?;
        Ok(Bytes::from(buf))
    }

    fn decode<R: Request>(&self, mut frame: Bytes, version: i16, corr: i32) -> Result<R::Response> {
        let protocol = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            reason,
        };
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| protocol(format!("header: {e}")))?;
        if header.correlation_id != corr {
            return Err(protocol(format!(
                "correlation id {} where {corr} was expected",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(|e| protocol(format!("v{version}: {e}")))
    }

    fn io_error(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    fn timeout_error(&self, key: i16) -> ClientError {
        ClientError::Timeout {
            addr: self.addr.clone(),
            api: api_name(key),
            timeout: self.timeout,
        }
    }
}

fn versions_table(response: &ApiVersionsResponse) -> BTreeMap<i16, (i16, i16)> {
    response
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect()
}
