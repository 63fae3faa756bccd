//! DescribeConfigs rows, protocol-agnostic: the broker maps them onto the wire.

use std::collections::BTreeMap;

use crate::registry::{broker_def, ConfigType, TopicConfigDef, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::settings::validate_topic_config;
use crate::Config;

/// Where a described value comes from, with Kafka's `config_source` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopicConfig,
    DynamicBrokerConfig,
    DynamicDefaultBrokerConfig,
    /// File, env, `--set` or a flag: anything fixed at startup.
    StaticBrokerConfig,
    DefaultConfig,
}

impl ConfigSource {
    pub fn kafka_code(&self) -> i8 {
        match self {
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DescribedConfig {
    pub name: String,
    /// `None` for sensitive keys and for keys that are unset.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub ty: ConfigType,
    pub doc: &'static str,
    /// `(name, value, source)` from highest precedence down; the first is the effective one.
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// Hours and minutes synonyms are converted to the topic's ms; Kafka maps any negative
/// retention to -1 ("forever").
fn to_topic_units(synonym: &str, value: &str) -> String {
    let factor: i64 = if synonym.ends_with(".hours") {
        3_600_000
    } else if synonym.ends_with(".minutes") {
        60_000
    } else {
        return value.to_string();
    };
    match value.parse::<i64>() {
        Ok(v) if v < 0 => "-1".to_string(),
        Ok(v) => v.saturating_mul(factor).to_string(),
        Err(_) => value.to_string(),
    }
}

impl Config {
    pub fn describe_broker(&self) -> Vec<DescribedConfig> {
        BROKER_CONFIGS
            .iter()
            .map(|def| {
                let sensitive = def.ty == ConfigType::Password;
                let mut synonyms = self.broker_layers(&[def.name]);
                if !def.default.is_empty() {
                    let default = def.default.to_string();
                    synonyms.push((def.name.to_string(), default, ConfigSource::DefaultConfig));
                }
                DescribedConfig {
                    name: def.name.to_string(),
                    value: self
                        .get(def.name)
                        .filter(|_| !sensitive)
                        .map(str::to_string),
                    source: synonyms
                        .first()
                        .map_or(ConfigSource::DefaultConfig, |s| s.2),
                    read_only: !def.dynamic,
                    sensitive,
                    ty: def.ty,
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// What describing broker resource `""` shows, as in Kafka: only the cluster-wide
    /// dynamic values.
    pub fn describe_cluster_defaults(&self) -> Vec<DescribedConfig> {
        self.dynamic_default
            .iter()
            .filter_map(|(name, value)| {
                let def = broker_def(name)?;
                let sensitive = def.ty == ConfigType::Password;
                let source = ConfigSource::DynamicDefaultBrokerConfig;
                Some(DescribedConfig {
                    name: def.name.to_string(),
                    value: (!sensitive).then(|| value.clone()),
                    source,
                    read_only: false,
                    sensitive,
                    ty: def.ty,
                    doc: def.doc,
                    synonyms: vec![(def.name.to_string(), value.clone(), source)],
                })
            })
            .collect()
    }

    /// The non-default values of broker keys `names` (synonyms, most specific first), in
    /// Kafka's precedence: layer by layer — this broker's dynamic values, the cluster-wide
    /// dynamic values, the startup values — and by synonym within a layer. So a dynamic
    /// `log.retention.hours` beats a static `log.retention.ms`, as in Kafka, where a dynamic
    /// key hides the synonyms of the layers below it.
    fn broker_layers(&self, names: &[&str]) -> Vec<(String, String, ConfigSource)> {
        let layers = [
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::StaticBrokerConfig,
        ];
        let mut out = Vec::new();
        for source in layers {
            for name in names {
                let value = match source {
                    ConfigSource::DynamicBrokerConfig => self.dynamic_broker.get(name),
                    ConfigSource::DynamicDefaultBrokerConfig => self.dynamic_default.get(name),
                    _ => self.set.get(name).map(|s| &s.value),
                };
                if let Some(value) = value {
                    out.push((name.to_string(), value.clone(), source));
                }
            }
        }
        out
    }

    pub fn describe_topic(&self, overrides: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
        TOPIC_CONFIGS
            .iter()
            .map(|def| {
                let synonyms = self.topic_synonyms(def, overrides);
                let (name, value, source) = &synonyms[0];
                DescribedConfig {
                    name: def.name.to_string(),
                    value: Some(to_topic_units(name, value)),
                    source: *source,
                    read_only: false,
                    sensitive: false,
                    ty: def.ty,
                    doc: def.doc,
                    synonyms,
                }
            })
            .collect()
    }

    /// The effective value of topic key `key`, in topic units.
    pub(crate) fn topic_value(&self, key: &str, overrides: &BTreeMap<String, String>) -> String {
        let def = TOPIC_CONFIGS.iter().find(|d| d.name == key);
        let def = def.unwrap_or_else(|| panic!("{key} is not in TOPIC_CONFIGS"));
        let synonyms = self.topic_synonyms(def, overrides);
        to_topic_units(&synonyms[0].0, &synonyms[0].1)
    }

    /// Kafka's order: the topic override, the broker synonyms' dynamic and startup values
    /// (see [`Config::broker_layers`]), then the default (of the first broker synonym that has one, else the topic's own). Never
    /// empty, since the default always ends it.
    fn topic_synonyms(
        &self,
        def: &TopicConfigDef,
        overrides: &BTreeMap<String, String>,
    ) -> Vec<(String, String, ConfigSource)> {
        let mut out = Vec::new();
        let topic_override = overrides
            .get(def.name)
            .map(|v| validate_topic_config(def.name, v));
        if let Some(Ok(value)) = topic_override {
            out.push((
                def.name.to_string(),
                value,
                ConfigSource::DynamicTopicConfig,
            ));
        }
        out.extend(self.broker_layers(def.broker_synonyms));
        let with_default = def
            .broker_synonyms
            .iter()
            .filter_map(|name| broker_def(name));
        let (name, default) = with_default
            .filter(|d| !d.default.is_empty())
            .map(|d| (d.name, d.default))
            .next()
            .unwrap_or((def.name, def.default));
        out.push((
            name.to_string(),
            default.to_string(),
            ConfigSource::DefaultConfig,
        ));
        out
    }
}
