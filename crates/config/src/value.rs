//! Checking one raw value against its key's type and validator, and normalizing it.
//! `Config` stores only normalized values, so the typed views can parse them back
//! without a failure path.

use crate::registry::{ConfigType, Validator};
use crate::settings::Listener;

/// Returns the normalized value, or a description of what was expected.
pub(crate) fn normalize(
    name: &str,
    ty: ConfigType,
    validator: Validator,
    raw: &str,
) -> Result<String, String> {
    let value = if ty == ConfigType::Password {
        raw
    } else {
        raw.trim()
    };
    let normalized = match ty {
        ConfigType::Boolean => parse_bool(value).map(|b| b.to_string()),
        ConfigType::Int | ConfigType::Short | ConfigType::Long => parse_integer(name, value)
            .filter(|v| fits_type(ty, *v) && in_bounds(validator, *v))
            .map(|v| v.to_string()),
        ConfigType::Double => value
            .parse::<f64>()
            .ok()
            .filter(|v| {
                v.is_finite() && (validator != Validator::Fraction || (0.0..=1.0).contains(v))
            })
            // Huge values in Java's notation (Kafka's "unlimited" is Double.MAX_VALUE).
            .map(|v| {
                if v.abs() >= 1e16 {
                    format!("{v:E}")
                } else {
                    v.to_string()
                }
            }),
        ConfigType::List => normalize_list(value, validator),
        ConfigType::String | ConfigType::Password => normalize_string(value, validator),
    };
    normalized.ok_or_else(|| expected(name, ty, validator, value))
}

fn parse_bool(value: &str) -> Option<bool> {
    // Kafka accepts any case here.
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Bytes,
    Millis,
}

/// Human units are an extension for keys whose name says the unit.
fn unit_of(name: &str) -> Option<Unit> {
    if name.ends_with(".bytes") {
        Some(Unit::Bytes)
    } else if name.ends_with(".ms") {
        Some(Unit::Millis)
    } else {
        None
    }
}

/// A raw integer, or for byte/ms keys a whole number with a unit ("512MiB", "7d").
fn parse_integer(name: &str, value: &str) -> Option<i64> {
    if let Ok(v) = value.parse::<i64>() {
        return Some(v);
    }
    let unit = unit_of(name)?;
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (digits, suffix) = value.split_at(split);
    let n: i64 = digits.parse().ok()?;
    n.checked_mul(multiplier(unit, suffix.trim())?)
}

fn multiplier(unit: Unit, suffix: &str) -> Option<i64> {
    let m = match (unit, suffix.to_ascii_lowercase().as_str()) {
        (Unit::Bytes, "b") => 1,
        (Unit::Bytes, "kb") => 1_000,
        (Unit::Bytes, "kib") => 1 << 10,
        (Unit::Bytes, "mb") => 1_000_000,
        (Unit::Bytes, "mib") => 1 << 20,
        (Unit::Bytes, "gb") => 1_000_000_000,
        (Unit::Bytes, "gib") => 1 << 30,
        (Unit::Bytes, "tb") => 1_000_000_000_000,
        (Unit::Bytes, "tib") => 1 << 40,
        (Unit::Millis, "ms") => 1,
        (Unit::Millis, "s") => 1_000,
        (Unit::Millis, "m" | "min") => 60_000,
        (Unit::Millis, "h") => 3_600_000,
        (Unit::Millis, "d") => 86_400_000,
        _ => return None,
    };
    Some(m)
}

fn type_max(ty: ConfigType) -> i64 {
    match ty {
        ConfigType::Short => i16::MAX.into(),
        ConfigType::Int => i32::MAX.into(),
        _ => i64::MAX,
    }
}

fn fits_type(ty: ConfigType, v: i64) -> bool {
    // Two's complement: the minimum is -max - 1.
    (-type_max(ty) - 1..=type_max(ty)).contains(&v)
}

fn in_bounds(validator: Validator, v: i64) -> bool {
    match validator {
        Validator::AtLeast(min) => v >= min,
        Validator::ZeroOr(min) => v == 0 || v >= min,
        Validator::Range { min, max } => (min..=max).contains(&v),
        _ => true,
    }
}

fn normalize_list(value: &str, validator: Validator) -> Option<String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let items = match validator {
        // At least one entry: a log with no cleanup policy at all is almost surely a typo.
        Validator::ListOf(_) if items.is_empty() => return None,
        Validator::ListOf(allowed) => items
            .iter()
            .map(|item| one_of(allowed, item))
            .collect::<Option<Vec<_>>>()?,
        _ => items,
    };
    Some(items.join(","))
}

fn normalize_string(value: &str, validator: Validator) -> Option<String> {
    match validator {
        Validator::OneOf(allowed) => one_of(allowed, value).map(str::to_string),
        Validator::Listeners => Some(join_listeners(&Listener::parse_list(value)?)),
        Validator::AdvertisedListeners if value.is_empty() => Some(String::new()),
        Validator::AdvertisedListeners => {
            let listeners = Listener::parse_list(value)?;
            let wildcard = listeners.iter().any(|l| l.is_wildcard());
            (!wildcard).then(|| join_listeners(&listeners))
        }
        // Kafka allows a comma-separated list of dirs; Klamm keeps one data dir.
        Validator::Dir => Some(value.to_string()).filter(|v| !v.is_empty() && !v.contains(',')),
        Validator::ListenerNames => {
            let names: Vec<String> = value
                .split(',')
                .map(str::trim)
                .map(|n| {
                    (!n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                        .then(|| n.to_ascii_uppercase())
                })
                .collect::<Option<_>>()?;
            Some(names.join(","))
        }
        Validator::VotersOrEmpty if value.trim().is_empty() => Some(String::new()),
        Validator::VotersOrEmpty => Some(crate::settings::join_voters(
            &crate::settings::Voter::parse_list(value)?,
        )),
        Validator::HostPortOrEmpty if value.is_empty() => Some(String::new()),
        Validator::HostPortOrEmpty => {
            let (host, port) = value.rsplit_once(':')?;
            let host_ok = !host.is_empty() && !host.contains(['/', ' ', ',']);
            (host_ok && port.parse::<u16>().is_ok()).then(|| value.to_string())
        }
        Validator::FileOrEmpty => {
            Some(value.to_string()).filter(|v| !v.ends_with('/') && !v.contains('\0'))
        }
        _ => Some(value.to_string()),
    }
}

fn one_of(allowed: &'static [&'static str], value: &str) -> Option<&'static str> {
    allowed
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(value))
}

fn join_listeners(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(Listener::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The "expected ..." half of an invalid-value message.
fn expected(name: &str, ty: ConfigType, validator: Validator, value: &str) -> String {
    match (ty, validator) {
        (ConfigType::Boolean, _) => "true or false".into(),
        (ConfigType::Int | ConfigType::Short | ConfigType::Long, _) => {
            let noun = match unit_of(name) {
                Some(Unit::Bytes) => " of bytes",
                Some(Unit::Millis) => " of milliseconds",
                None => "",
            };
            let too_big = parse_integer(name, value).is_some_and(|v| v > type_max(ty));
            let bounds = match validator {
                Validator::AtLeast(min) if too_big => {
                    format!(" between {min} and {}", type_max(ty))
                }
                Validator::AtLeast(min) => format!(" >= {min}"),
                Validator::ZeroOr(min) => format!(": 0 (off) or >= {min}"),
                Validator::Range { min, max } => format!(" between {min} and {max}"),
                _ => format!(" <= {}", type_max(ty)),
            };
            format!("a whole number{noun}{bounds}")
        }
        (ConfigType::Double, Validator::Fraction) => "a number between 0 and 1".into(),
        (ConfigType::Double, _) => "a number".into(),
        (_, Validator::OneOf(allowed)) => format!("one of {}", allowed.join(", ")),
        (_, Validator::ListOf(allowed)) => {
            format!("a comma-separated list of {}", allowed.join(", "))
        }
        (_, Validator::Listeners) => "comma-separated NAME://host:port entries with unique names, \
             e.g. PLAINTEXT://0.0.0.0:9092"
            .into(),
        (_, Validator::AdvertisedListeners) => {
            "comma-separated NAME://host:port entries with unique names and a host clients \
             can reach (not 0.0.0.0 or ::), e.g. PLAINTEXT://broker1.example.com:9092"
                .into()
        }
        (_, Validator::Dir) => "a single directory path".into(),
        (_, Validator::ListenerNames) => {
            "comma-separated listener names (letters, digits, _), e.g. CONTROLLER".into()
        }
        (_, Validator::VotersOrEmpty) => {
            "comma-separated id@host:port entries with unique ids, e.g. \
             1@10.0.0.1:9093,2@10.0.0.2:9093,3@10.0.0.3:9093, or empty for a single node"
                .into()
        }
        (_, Validator::HostPortOrEmpty) => {
            "host:port (e.g. 0.0.0.0:9644), or empty to disable".into()
        }
        _ => "a string".into(),
    }
}
