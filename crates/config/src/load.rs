//! Layering the sources over the defaults: file < env < `--set` < flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::registry::{canonical, ConfigDef, ConfigType, ALIASES, BROKER_CONFIGS};
use crate::value::normalize;
use crate::{ConfigError, Origin};

/// What the CLI gathered; [`Config::load`] does the rest.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub file: Option<PathBuf>,
    /// The process environment; only `KLAMM_*` names of registry keys are used.
    pub env: Vec<(String, String)>,
    /// `key=value` strings from `--set`.
    pub sets: Vec<String>,
    /// Dedicated CLI flags already mapped to keys, e.g. `("log.dirs", dir)`.
    pub flags: Vec<(String, String)>,
    /// Unknown keys in the file or `--set` are errors instead of warnings.
    pub strict: bool,
}

/// A validated broker configuration.
///
/// Invariant: every stored value has passed its key's validator and is normalized, and
/// `advertised.listeners` matches `listeners`; construction goes only through
/// [`Config::defaults`] and [`Config::load`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Only keys some source set at startup; the rest read their registry default.
    pub(crate) set: BTreeMap<&'static str, Setting>,
    /// Dynamic values for every broker (AlterConfigs on broker resource `""`); they beat
    /// the startup sources.
    pub(crate) dynamic_default: BTreeMap<&'static str, String>,
    /// Dynamic values for this broker (AlterConfigs on broker resource `"<node.id>"`); they
    /// beat everything.
    pub(crate) dynamic_broker: BTreeMap<&'static str, String>,
}

/// Which layer of dynamic broker configs a change is for: Kafka's broker resource named
/// `""` (the cluster-wide default) or named by a node id (that broker alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicScope {
    ClusterDefault,
    Broker,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Setting {
    pub(crate) value: String,
    pub(crate) origin: Origin,
}

/// One `key = value` from a source, before validation.
struct Entry {
    key: String,
    value: String,
    origin: Origin,
}

/// `KLAMM_` + the key uppercased with `.` → `_`: `log.dirs` → `KLAMM_LOG_DIRS`.
pub fn env_var_name(key: &str) -> String {
    format!("KLAMM_{}", key.to_ascii_uppercase().replace('.', "_"))
}

impl Config {
    /// Every key at its registry default.
    pub fn defaults() -> Config {
        Config::default()
    }

    /// Loads and validates all sources; returns warnings (unknown keys) for the caller
    /// to print.
    pub fn load(opts: &LoadOptions) -> Result<(Config, Vec<String>), ConfigError> {
        let mut config = Config::defaults();
        let mut warnings = Vec::new();
        if let Some(path) = &opts.file {
            config.apply(file_entries(path)?, opts.strict, &mut warnings)?;
        }
        config.apply(env_entries(&opts.env), opts.strict, &mut warnings)?;
        config.apply(set_entries(&opts.sets)?, opts.strict, &mut warnings)?;
        let flags = opts.flags.iter().map(|(key, value)| Entry {
            key: key.clone(),
            value: value.clone(),
            origin: Origin::Flag,
        });
        config.apply(flags.collect(), opts.strict, &mut warnings)?;
        // The checks that span keys: advertised names must exist in listeners, and the
        // roles, voters and node id must agree.
        config.advertised_listeners()?;
        config.quorum()?;
        Ok((config, warnings))
    }

    /// The effective value; `None` when unset and without a default. Kafka's order:
    /// per-broker dynamic, cluster-wide dynamic, startup sources, default.
    pub fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = self.dynamic_broker.get(key) {
            return Some(value);
        }
        if let Some(value) = self.dynamic_default.get(key) {
            return Some(value);
        }
        match self.set.get(key) {
            Some(setting) => Some(&setting.value),
            None => crate::broker_def(key)
                .map(|d| d.default)
                .filter(|d| !d.is_empty()),
        }
    }

    /// Where the effective value of `key` came from.
    pub fn origin(&self, key: &str) -> Origin {
        if self.dynamic_broker.contains_key(key) {
            return Origin::DynamicBroker;
        }
        if self.dynamic_default.contains_key(key) {
            return Origin::DynamicDefault;
        }
        self.set
            .get(key)
            .map_or(Origin::Default, |s| s.origin.clone())
    }

    /// The dynamic values of one layer, as stored (normalized).
    pub fn dynamic(&self, scope: DynamicScope) -> BTreeMap<String, String> {
        self.layer(scope)
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// This config with one dynamic layer replaced by `values`, each checked as
    /// [`validate_dynamic`] does; the first bad one is the error and nothing changes.
    pub fn with_dynamic(
        &self,
        scope: DynamicScope,
        values: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut layer = BTreeMap::new();
        for (key, value) in values {
            let def = dynamic_def(key)?;
            layer.insert(def.name, validate_dynamic(key, value)?);
        }
        let mut next = self.clone();
        *next.layer_mut(scope) = layer;
        Ok(next)
    }

    /// Restores a persisted layer at startup. A value this version no longer accepts
    /// (a key removed or made static, a tightened validator) is skipped with a warning
    /// rather than stopping the broker.
    pub fn restore_dynamic(
        &mut self,
        scope: DynamicScope,
        values: &BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut layer = BTreeMap::new();
        for (key, value) in values {
            match dynamic_def(key).and_then(|def| Ok((def.name, validate_dynamic(key, value)?))) {
                Ok((name, value)) => {
                    layer.insert(name, value);
                }
                Err(e) => warnings.push(format!("stored dynamic config ignored: {e}")),
            }
        }
        *self.layer_mut(scope) = layer;
        warnings
    }

    fn layer(&self, scope: DynamicScope) -> &BTreeMap<&'static str, String> {
        match scope {
            DynamicScope::ClusterDefault => &self.dynamic_default,
            DynamicScope::Broker => &self.dynamic_broker,
        }
    }

    fn layer_mut(&mut self, scope: DynamicScope) -> &mut BTreeMap<&'static str, String> {
        match scope {
            DynamicScope::ClusterDefault => &mut self.dynamic_default,
            DynamicScope::Broker => &mut self.dynamic_broker,
        }
    }

    /// One `key = value (origin)` line per key for the startup log, passwords redacted.
    pub fn summary(&self) -> Vec<String> {
        BROKER_CONFIGS
            .iter()
            .map(|def| {
                let value = match self.get(def.name) {
                    None => "(unset)",
                    Some(_) if def.ty == ConfigType::Password => "[redacted]",
                    Some(v) => v,
                };
                format!("{} = {} ({})", def.name, value, self.origin(def.name))
            })
            .collect()
    }

    /// Applies one source's entries. An alias is applied before the registry name it
    /// stands for, so within one source `log.dirs` beats `log.dir`.
    fn apply(
        &mut self,
        mut entries: Vec<Entry>,
        strict: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        entries.sort_by_key(|e| !ALIASES.iter().any(|(alias, _)| *alias == e.key));
        for entry in entries {
            let Some(def) = canonical(&entry.key) else {
                // Flags are mapped by code, so an unknown one is a bug, not a typo.
                let fatal = strict || entry.origin == Origin::Flag;
                let err = ConfigError::UnknownKey {
                    key: entry.key,
                    origin: entry.origin,
                };
                if fatal {
                    return Err(err);
                }
                warnings.push(format!("{err}: ignored"));
                continue;
            };
            self.set.insert(def.name, validate(def, entry)?);
        }
        Ok(())
    }
}

/// The registry entry of a key AlterConfigs may change on a broker resource.
fn dynamic_def(key: &str) -> Result<&'static ConfigDef, ConfigError> {
    let def = crate::broker_def(key).ok_or_else(|| ConfigError::UnknownKey {
        key: key.into(),
        origin: Origin::DynamicBroker,
    })?;
    if !def.dynamic {
        return Err(ConfigError::NotDynamic { key: key.into() });
    }
    Ok(def)
}

/// Checks a value for a dynamic broker key (AlterConfigs on a broker resource) and returns
/// its normalized form. Static keys are refused: they are fixed until a restart.
pub fn validate_dynamic(key: &str, value: &str) -> Result<String, ConfigError> {
    let def = dynamic_def(key)?;
    normalize(def.name, def.ty, def.validator, value).map_err(|expected| ConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        origin: Origin::DynamicBroker,
        expected,
    })
}

fn validate(def: &ConfigDef, entry: Entry) -> Result<Setting, ConfigError> {
    match normalize(def.name, def.ty, def.validator, &entry.value) {
        Ok(value) => Ok(Setting {
            value,
            origin: entry.origin,
        }),
        Err(expected) => Err(ConfigError::Invalid {
            key: entry.key,
            value: entry.value,
            origin: entry.origin,
            expected,
        }),
    }
}

fn file_entries(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let table: toml::Table = text.parse().map_err(|e| parse_error(path, &text, &e))?;
    let mut entries = Vec::new();
    flatten("", &table, &Origin::File(path.to_path_buf()), &mut entries)?;
    Ok(entries)
}

fn parse_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let offset = err.span().map_or(0, |span| span.start);
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    ConfigError::Parse {
        path: path.to_path_buf(),
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
        // toml's message may span lines; the CLI prints one line.
        message: err.message().trim().replace('\n', "; "),
    }
}

/// TOML dotted keys are nested tables; joining the path back with `.` makes
/// `log.retention.hours = 1` and `"log.retention.hours" = 1` the same key.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    origin: &Origin,
    out: &mut Vec<Entry>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            flatten(&key, inner, origin, out)?;
            continue;
        }
        if out.iter().any(|e| e.key == key) {
            return Err(ConfigError::Duplicate {
                key,
                origin: origin.clone(),
            });
        }
        let Some(text) = toml_text(value) else {
            return Err(ConfigError::Invalid {
                key,
                value: match value {
                    toml::Value::Datetime(d) => d.to_string(),
                    other => other.to_string(),
                },
                origin: origin.clone(),
                expected: "a string, number, boolean or array of those".into(),
            });
        };
        out.push(Entry {
            key,
            value: text,
            origin: origin.clone(),
        });
    }
    Ok(())
}

/// A TOML value in the string form the validators read; arrays become comma lists.
fn toml_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::Array(items) => {
            let items = items.iter().map(|item| match item {
                toml::Value::Array(_) => None,
                scalar => toml_text(scalar),
            });
            Some(items.collect::<Option<Vec<_>>>()?.join(","))
        }
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

/// Other `KLAMM_*` variables belong to the CLI (e.g. `KLAMM_BROKERS`) and are skipped.
fn env_entries(env: &[(String, String)]) -> Vec<Entry> {
    let names = BROKER_CONFIGS
        .iter()
        .map(|d| d.name)
        .chain(ALIASES.iter().map(|(a, _)| *a));
    let by_var: BTreeMap<String, &str> = names.map(|name| (env_var_name(name), name)).collect();
    env.iter()
        .filter_map(|(var, value)| {
            Some(Entry {
                key: by_var.get(var)?.to_string(),
                value: value.clone(),
                origin: Origin::Env(var.clone()),
            })
        })
        .collect()
}

fn set_entries(sets: &[String]) -> Result<Vec<Entry>, ConfigError> {
    sets.iter()
        .map(|arg| match arg.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Entry {
                key: key.trim().to_string(),
                value: value.to_string(),
                origin: Origin::Set,
            }),
            _ => Err(ConfigError::MalformedSet { arg: arg.clone() }),
        })
        .collect()
}
