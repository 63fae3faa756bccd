//! A refused admin operation, as handlers answer it.
//!
//! Invariant: a leaf — this module imports nothing from the crate.

use kafka_protocol::error::ResponseError;

/// A refused admin operation: the Kafka error and a message for the client.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub error: ResponseError,
    pub message: String,
}

impl AdminError {
    pub fn new(error: ResponseError, message: impl Into<String>) -> AdminError {
        AdminError {
            error,
            message: message.into(),
        }
    }
}
