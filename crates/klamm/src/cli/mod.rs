//! Operator subcommands that speak the Kafka protocol (`cluster`, `topic`, `group`, `bench`),
//! the offline log tools (`debug`) and shell completion.
//!
//! Conventions (see OPERATOR-UX.md): text output is aligned columns under stable uppercase
//! headers; `--format json` prints one JSON document (one object per record for
//! `topic consume`); per-item status rows carry Kafka's error names; the exit status is 0
//! only when every item succeeded.

/// `println!` that ignores a closed stdout (`klamm topic list | head -1` must not panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

pub mod bench;
pub mod cluster;
pub mod completion;
pub mod debug;
pub mod format;
pub mod group;
pub mod topic;

use clap::Args;
use klamm_client::Client;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Flags every subcommand accepts.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Comma-separated host:port list of brokers to bootstrap from.
    #[arg(
        short = 'b',
        long = "bootstrap-server",
        env = "KLAMM_BROKERS",
        default_value = "localhost:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// Output: `text` (aligned columns) or `json`. `topic consume`/`produce` also take a
    /// record format string such as '%k %v\n'.
    #[arg(short = 'f', long, default_value = "text", global = true)]
    pub format: String,
    /// Per-request timeout, e.g. 500ms, 10s, 1m (a bare number is milliseconds).
    #[arg(long, default_value = "10s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short = 'v', long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress bars or hints.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

/// Parses `500ms`, `10s`, `2m`, `1h` or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 10s, 2m)"))?;
    let ms = match unit {
        "" | "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("unknown unit {unit:?} in {s:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_millis(ms))
}

/// What a subcommand needs from the global flags.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub args: GlobalArgs,
    /// Colour on stdout: a terminal, and `NO_COLOR` unset.
    pub color: bool,
}

impl Ctx {
    pub fn new(args: GlobalArgs) -> Ctx {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Ctx { args, color }
    }

    pub fn json(&self) -> bool {
        self.args.format == "json"
    }

    /// Refuses record format strings outside `topic consume`/`produce`.
    pub fn check_plain_format(&self) -> anyhow::Result<()> {
        match self.args.format.as_str() {
            "text" | "json" => Ok(()),
            other => anyhow::bail!("--format {other:?}: expected text or json"),
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        let client = Client::connect(&self.args.bootstrap_server, self.args.timeout).await?;
        if self.args.verbose > 0 {
            eprintln!("connected to {}", client.bootstrap_addr());
        }
        Ok(client)
    }

    /// A status cell: `OK` or the Kafka error name, red on a colour terminal.
    pub fn status(&self, code: i16) -> String {
        if code == 0 {
            "OK".to_string()
        } else {
            self.paint_error(&klamm_protocol::errors::error_name(code))
        }
    }

    pub fn paint_error(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[31m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Prints a hint on stderr unless `-q`.
    pub fn hint(&self, text: &str) {
        if !self.args.quiet {
            eprintln!("{text}");
        }
    }
}

/// Runs an async subcommand on a fresh runtime; `Ok(true)` means every item succeeded.
pub fn run<F>(future: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<bool>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klamm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(future);
    runtime.shutdown_timeout(Duration::from_millis(100));
    exit(result)
}

/// Maps a subcommand's result to the exit status, printing the error if any.
pub fn exit(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("klamm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Aligned text columns with uppercase headers; cells may hold ANSI colour codes.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.render().as_bytes());
    }

    pub fn render(&self) -> String {
        let visible = |s: &str| strip_ansi(s).chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(visible(cell));
                }
            }
        }
        let mut text = String::new();
        let mut line = |cells: Vec<&str>| {
            let last = cells.len().saturating_sub(1);
            for (i, cell) in cells.iter().enumerate() {
                text.push_str(cell);
                if i < last {
                    let pad = widths[i].saturating_sub(visible(cell)) + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // Empty trailing cells would leave trailing blanks.
            text.truncate(text.trim_end_matches(' ').len());
            text.push('\n');
        };
        line(self.headers.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
        text
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Prints a JSON document on stdout.
pub fn print_json(value: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("a Value always serializes")
    );
}

/// `{"error_code": c, "error": "NAME"}` fields for JSON status rows.
pub fn json_status(code: i16, message: Option<&str>) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("error_code".into(), code.into());
    m.insert(
        "error".into(),
        if code == 0 {
            Value::Null
        } else {
            klamm_protocol::errors::error_name(code).into()
        },
    );
    if let Some(msg) = message.filter(|m| !m.is_empty()) {
        m.insert("message".into(), msg.into());
    }
    m
}

/// `STATUS` cell text with the broker's message appended when there is one.
pub fn status_with_message(ctx: &Ctx, code: i16, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty() && code != 0) {
        Some(m) => format!("{}: {m}", ctx.status(code)),
        None => ctx.status(code),
    }
}

/// Splits `key=value`.
pub fn parse_key_value(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => anyhow::bail!("{s:?}: expected key=value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn table_aligns_ignoring_colour() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["\x1b[31mxyz\x1b[0m".into(), "1".into()]);
        assert_eq!(t.render(), "A    LONGER\n\x1b[31mxyz\x1b[0m  1\n");
    }
}
