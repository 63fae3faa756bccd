//! Klamm's configuration: one registry of keys, named exactly as Kafka names them, that
//! feeds everything that touches config. [`BROKER_CONFIGS`] and [`TOPIC_CONFIGS`] give each
//! key its type, default, doc, topic-level synonym and validator; [`Config::load`] layers
//! defaults < TOML file < `KLAMM_*` env < `--set` < dedicated flags over them and
//! validates every value once, so [`Config::broker`] and [`Config::topic_settings`] hand the
//! broker typed settings that cannot fail; [`Config::describe_broker`] and
//! [`Config::describe_topic`] produce DescribeConfigs rows (source and synonyms as Kafka
//! reports them); and [`print_default`] renders the registry as the documented
//! `config/klamm.toml`. Answers written for Kafka's `server.properties` therefore apply
//! unchanged. The crate does no I/O beyond reading the one config file it is given.

mod describe;
mod load;
mod print;
mod registry;
mod settings;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

pub use describe::{ConfigSource, DescribedConfig};
pub use load::{env_var_name, validate_dynamic, Config, DynamicScope, LoadOptions};
pub use print::print_default;
pub use registry::{
    broker_def, topic_def, ConfigDef, ConfigType, TopicConfigDef, Validator, BROKER_CONFIGS,
    SEGMENT_BYTES_MIN, TOPIC_CONFIGS,
};
pub use settings::{
    validate_topic_config, BrokerSettings, CleanerSettings, FlushPolicy, GroupSettings, Listener,
    LogFormat, Quorum, TimestampType, TopicSettings, TxnSettings, Voter,
    FLUSH_INTERVAL_MS_WHEN_UNSET,
};

/// Where a value came from; errors name it so the operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    /// The environment variable's name.
    Env(String),
    Set,
    Flag,
    /// A topic-level value (CreateTopics / AlterConfigs).
    TopicConfig,
    /// AlterConfigs on this broker's resource.
    DynamicBroker,
    /// AlterConfigs on the cluster-wide broker resource (`""`).
    DynamicDefault,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::Set => f.write_str("--set"),
            Origin::Flag => f.write_str("command-line flag"),
            Origin::TopicConfig => f.write_str("topic config"),
            Origin::DynamicBroker => f.write_str("dynamic broker config"),
            Origin::DynamicDefault => f.write_str("dynamic cluster-wide default"),
        }
    }
}

/// An operating error in configuration: the CLI prints it and exits 2; topic-level
/// errors become INVALID_CONFIG responses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {key} (from {origin}): expected {expected}")]
    Invalid {
        key: String,
        value: String,
        origin: Origin,
        expected: String,
    },
    #[error("unknown config key {key} (from {origin})")]
    UnknownKey { key: String, origin: Origin },
    #[error("{key} cannot be changed while the broker runs: set it in the config file, KLAMM_* env or --set and restart")]
    NotDynamic { key: String },
    #[error("unknown topic config {key}")]
    UnknownTopicConfig { key: String },
    #[error("{key} is set twice (in {origin})")]
    Duplicate { key: String, origin: Origin },
    #[error("malformed --set {arg:?}: expected key=value")]
    MalformedSet { arg: String },
    #[error("cannot read config file {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("cannot parse config file {} at line {line}, column {column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}
