//! `klamm config print-default`: the registry as a documented TOML file. The checked-in
//! `config/klamm.toml` is exactly this output (a test keeps them equal).

use crate::registry::{ConfigDef, ConfigType, BROKER_CONFIGS, SECTIONS};

const WIDTH: usize = 88;

const HEADER: &str = "\
# Klamm broker configuration, as written by `klamm config print-default`.
#
# Keys are Kafka's broker property names, so `log.retention.hours = 168` here means what
# it means in Kafka's server.properties. Every key is listed with its default; keys shown
# commented out are unset by default.
#
# Precedence, lowest first: built-in defaults < this file < environment variables
# KLAMM_<KEY> (key uppercased, \".\" -> \"_\", e.g. KLAMM_LOG_DIRS=/var/lib/klamm)
# < --set key=value < dedicated command-line flags. Unknown keys are warned about, or
# rejected with --strict. Keys ending in .bytes or .ms also take units: \"512MiB\", \"1GiB\",
# \"250ms\", \"10s\", \"7d\".
#
# Keys marked (dynamic) can also be changed while the broker runs, without a restart:
# `klamm cluster config set KEY=VALUE` (or AlterConfigs on the BROKER resource). Such
# changes are kept in the data dir and take precedence over this file.
";

pub fn print_default() -> String {
    let mut out = String::from(HEADER);
    for def in BROKER_CONFIGS {
        if let Some((title, _)) = SECTIONS.iter().find(|(_, first)| *first == def.name) {
            out.push_str(&format!("\n# ==== {title} ====\n"));
        }
        out.push('\n');
        let doc = if def.dynamic {
            format!("{} (dynamic)", def.doc)
        } else {
            def.doc.to_string()
        };
        for line in wrap(&doc, WIDTH - 2) {
            out.push_str(&format!("# {line}\n"));
        }
        let key = toml_key(def.name);
        if def.default.is_empty() {
            out.push_str(&format!("# {key} =\n"));
        } else {
            out.push_str(&format!("{key} = {}\n", toml_value(def)));
        }
    }
    out
}

/// Dotted keys read best, but a key that is also the prefix of another
/// (`max.connections`, `max.connections.per.ip`) cannot be both a value and a table in
/// TOML, so it is quoted.
fn toml_key(name: &str) -> String {
    let prefix = format!("{name}.");
    if BROKER_CONFIGS.iter().any(|d| d.name.starts_with(&prefix)) {
        format!("\"{name}\"")
    } else {
        name.to_string()
    }
}

fn toml_value(def: &ConfigDef) -> String {
    match def.ty {
        ConfigType::String | ConfigType::List | ConfigType::Password => {
            format!(
                "\"{}\"",
                def.default.replace('\\', "\\\\").replace('"', "\\\"")
            )
        }
        _ => def.default.to_string(),
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
