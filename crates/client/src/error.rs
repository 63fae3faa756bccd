//! What can go wrong talking to a broker, phrased for the operator who has to fix it.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection to a broker address.
    #[error("cannot reach a broker at {tried}: {reason}\n  {hint}")]
    Unreachable {
        tried: String,
        reason: String,
        /// What to check, depending on where the address came from.
        hint: &'static str,
    },
    /// A broker did not answer in time.
    #[error("{addr} did not answer {api} within {timeout:?} (raise --timeout, or check the broker's load and logs)")]
    Timeout {
        addr: String,
        api: &'static str,
        timeout: Duration,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// The broker does not offer any version of this API that the client speaks.
    #[error("the broker at {addr} does not support {api} (the client speaks v{min}–v{max})")]
    Unsupported {
        addr: String,
        api: &'static str,
        min: i16,
        max: i16,
    },
    /// Bytes that do not decode as the expected response.
    #[error("{addr}: malformed {api} response: {reason}")]
    Protocol {
        addr: String,
        api: &'static str,
        reason: String,
    },
    /// A request-level Kafka error (per-item errors are returned to the caller instead).
    #[error("{api} failed: {name}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        api: &'static str,
        code: i16,
        name: String,
        message: Option<String>,
    },
    /// Client-side misuse or a missing topic/partition.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    pub fn kafka(api: &'static str, code: i16, message: Option<String>) -> ClientError {
        ClientError::Kafka {
            api,
            code,
            name: klamm_protocol::errors::error_name(code),
            message: message.filter(|m| !m.is_empty()),
        }
    }
}

/// For addresses given on the command line.
pub const BOOTSTRAP_HINT: &str = "check that a broker is running and listening there, and that \
     -b/--bootstrap-server (or KLAMM_BROKERS) names its host:port";
/// For addresses a broker advertised in Metadata or FindCoordinator.
pub const ADVERTISED_HINT: &str = "the broker advertises this address (advertised.listeners): \
     it must resolve and be reachable from this machine";

pub type Result<T> = std::result::Result<T, ClientError>;
