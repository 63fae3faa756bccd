//! ApiVersions: the version table, and the client's software name for the logs.

use super::ConnectionInfo;
use super::Reply;
use kafka_protocol::messages::{ApiVersionsRequest, ResponseKind};

pub fn handle(request: ApiVersionsRequest, version: i16, info: &ConnectionInfo) -> Reply {
    if version >= 3 {
        tracing::info!(
            peer = %info.peer,
            client_software_name = %request.client_software_name.as_str(),
            client_software_version = %request.client_software_version.as_str(),
            "client connected"
        );
    }
    Reply::Now(ResponseKind::ApiVersions(
        super::registry::api_versions_response(0),
    ))
}
