//! The shape of a row of the broker's API table (`klamm_broker::handlers::registry`, one row
//! per API with its handler) and the ApiVersions response built from such rows. The broker
//! checks every request against its table, never against the crate's `valid_versions()`,
//! which lists what the crate can *encode*, not what Klamm implements.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One API Klamm implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    pub api: ApiKey,
    /// Lowest version served, and advertised: Klamm advertises exactly what it serves.
    pub min: i16,
    pub max: i16,
}

/// The ApiVersions response body for `error_code` (0, or UNSUPPORTED_VERSION for the
/// fallback), listing every API in `table`.
pub fn api_versions_response(
    table: impl Iterator<Item = ApiSupport>,
    error_code: i16,
) -> ApiVersionsResponse {
    let api_keys = table
        .map(|s| {
            ApiVersion::default()
                .with_api_key(s.api as i16)
                .with_min_version(s.min)
                .with_max_version(s.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_each_row_with_its_range() {
        let table = [ApiSupport {
            api: ApiKey::Produce,
            min: 0,
            max: 12,
        }];
        let r = api_versions_response(table.into_iter(), 35);
        assert_eq!(r.error_code, 35);
        let k = &r.api_keys[0];
        assert_eq!((k.api_key, k.min_version, k.max_version), (0, 0, 12));
    }
}
