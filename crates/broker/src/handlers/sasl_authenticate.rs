//! SaslAuthenticate (v0–v2): without a SASL handshake there is nothing to authenticate, so
//! the answer is ILLEGAL_SASL_STATE with a message naming the cause.

use super::ConnectionInfo;
use super::Reply;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ResponseKind, SaslAuthenticateResponse};

pub fn handle(info: &ConnectionInfo) -> Reply {
    let message = format!(
        "listener {} does not offer SASL authentication; use security.protocol=PLAINTEXT",
        info.listener
    );
    Reply::Now(ResponseKind::SaslAuthenticate(
        SaslAuthenticateResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code())
            .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_string(
                message,
            ))),
    ))
}
