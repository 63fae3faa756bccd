//! SaslHandshake (v0–v1): no listener offers SASL yet, so every mechanism is unsupported.
//!
//! Answering (rather than closing the socket) lets a client configured for SASL against a
//! PLAINTEXT listener report a configuration error: librdkafka and the Java client both
//! print the broker's (empty) mechanism list with UNSUPPORTED_SASL_MECHANISM.

use super::ConnectionInfo;
use super::Reply;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, SaslHandshakeRequest, SaslHandshakeResponse};

pub fn handle(request: SaslHandshakeRequest, info: &ConnectionInfo) -> Reply {
    tracing::info!(
        peer = %info.peer,
        listener = %info.listener,
        mechanism = %request.mechanism.as_str(),
        "SASL handshake on a listener without SASL: the client's security.protocol does not \
         match this listener"
    );
    Reply::Now(ResponseKind::SaslHandshake(
        SaslHandshakeResponse::default()
            .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
            .with_mechanisms(Vec::new()),
    ))
}
