//! `klamm`: the broker (`klamm serve`) and its operator subcommands, in one binary.

mod cli;

use clap::{Args, CommandFactory, Parser, Subcommand};
use klamm_config::{Config, LoadOptions, LogFormat};
use std::path::PathBuf;
use std::process::ExitCode;

/// Large allocations are reserved lazily so a hostile array count cannot abort the process
/// (see `klamm_broker::alloc`).
#[global_allocator]
static ALLOCATOR: klamm_broker::alloc::GuardedAlloc = klamm_broker::alloc::GuardedAlloc;

/// Exit code for a configuration error, before anything is opened.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "klamm",
    version,
    about = "Kafka-wire-compatible message broker, and the tools to operate it",
    long_about = "Kafka-wire-compatible message broker, and the tools to operate it.\n\n\
        `klamm serve` runs the broker. The other subcommands speak the Kafka protocol to any \
        Kafka-compatible broker (-b/--bootstrap-server or KLAMM_BROKERS), except `debug`, \
        which reads a data directory offline. Exit status: 0 only when every item succeeded.",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(ServeArgs),
    /// Inspect and check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Exit 0 when the local broker is ready (the container healthcheck).
    Health {
        /// The broker's readiness endpoint [default: /ready on `admin.listener` from the
        /// environment (KLAMM_ADMIN_LISTENER), else http://127.0.0.1:9644/ready].
        #[arg(long, env = "KLAMM_HEALTH_URL")]
        url: Option<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Cluster id, brokers, API versions and broker configs.
    #[command(subcommand)]
    Cluster(cli::cluster::ClusterCommand),
    /// Create, inspect, change, produce to and consume from topics.
    #[command(subcommand)]
    Topic(cli::topic::TopicCommand),
    /// Consumer groups: list, lag, seek, delete.
    #[command(subcommand)]
    Group(cli::group::GroupCommand),
    /// Load generator: produce, consume and end-to-end throughput and latency.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
    /// Offline checks of a data directory (no broker needed).
    #[command(subcommand)]
    Debug(cli::debug::DebugCommand),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: cli::completion::CompletionShell,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

/// Where configuration comes from. Precedence: defaults < file < KLAMM_* env < --set < the
/// dedicated flags.
#[derive(Args, Clone)]
struct ConfigArgs {
    /// TOML config file with Kafka key names (see config/klamm.toml).
    #[arg(long, short = 'c', env = "KLAMM_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (log.dirs).
    #[arg(long)]
    data_dir: Option<String>,
    /// Listeners, e.g. PLAINTEXT://0.0.0.0:9092 (listeners).
    #[arg(long)]
    listeners: Option<String>,
    /// Addresses given to clients, e.g. PLAINTEXT://localhost:9092 (advertised.listeners).
    #[arg(long)]
    advertised_listeners: Option<String>,
    /// This broker's id (node.id).
    #[arg(long)]
    node_id: Option<String>,
    /// Any config key, as key=value; repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Treat unknown config keys as errors instead of warnings.
    #[arg(long)]
    strict: bool,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every key with its default and documentation, as TOML.
    PrintDefault,
    /// Check a config file; exit 2 with the reason if it is invalid.
    Validate { file: PathBuf },
    /// Print the effective configuration and where each value came from.
    Show {
        #[command(flatten)]
        config: ConfigArgs,
        /// Effective values (the only mode so far; accepted for rpk-style muscle memory).
        #[arg(long)]
        effective: bool,
    },
}

impl ConfigArgs {
    fn load(&self) -> Result<(Config, Vec<String>), klamm_config::ConfigError> {
        let mut flags = Vec::new();
        let mut flag = |key: &str, value: &Option<String>| {
            if let Some(v) = value {
                flags.push((key.to_string(), v.clone()));
            }
        };
        flag("log.dirs", &self.data_dir);
        flag("listeners", &self.listeners);
        flag("advertised.listeners", &self.advertised_listeners);
        flag("node.id", &self.node_id);
        Config::load(&LoadOptions {
            file: self.config.clone(),
            env: std::env::vars().collect(),
            sets: self.sets.clone(),
            flags,
            strict: self.strict,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = cli::Ctx::new(cli.global);
    match cli.command {
        Command::Cluster(cmd) => cli::run(cli::cluster::run(ctx, cmd)),
        Command::Topic(cmd) => cli::run(cli::topic::run(ctx, cmd)),
        Command::Group(cmd) => cli::run(cli::group::run(ctx, cmd)),
        Command::Bench(cmd) => cli::run(cli::bench::run(ctx, cmd)),
        Command::Debug(cmd) => cli::exit(cli::debug::run(&ctx, cmd)),
        Command::Completion { shell } => {
            cli::completion::run(shell, Cli::command());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => serve(args),
        Command::Config(cmd) => config_command(cmd),
        Command::Health { url, timeout_ms } => {
            health(&url.unwrap_or_else(default_health_url), timeout_ms)
        }
    }
}

/// `/ready` on the admin listener the broker would use with this environment.
fn default_health_url() -> String {
    let opts = LoadOptions {
        env: std::env::vars().collect(),
        ..LoadOptions::default()
    };
    let addr = Config::load(&opts)
        .ok()
        .and_then(|(c, _)| c.get("admin.listener").map(str::to_string))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9644".to_string());
    let addr = addr
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    format!("http://{addr}/ready")
}

/// GETs the readiness endpoint: 200 means ready.
fn health(url: &str, timeout_ms: u64) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klamm health: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = std::time::Duration::from_millis(timeout_ms);
    match runtime.block_on(async { tokio::time::timeout(timeout, get_status(url)).await }) {
        Ok(Ok(200)) => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            eprintln!("klamm health: {url} answered {status}: not ready (still recovering?)");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("klamm health: cannot reach {url}: {e} (is the broker running, with admin.listener enabled?)");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("klamm health: {url} did not answer within {timeout_ms} ms");
            ExitCode::FAILURE
        }
    }
}

async fn get_status(url: &str) -> anyhow::Result<u16> {
    let uri: hyper::Uri = url.parse()?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = hyper::Request::get(uri.path())
        .header("host", format!("{host}:{port}"))
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
    Ok(sender.send_request(request).await?.status().as_u16())
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("klamm: {e}");
    ExitCode::from(EXIT_CONFIG)
}

fn config_command(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::PrintDefault => {
            print!("{}", klamm_config::print_default());
            ExitCode::SUCCESS
        }
        ConfigCommand::Validate { file } => {
            let opts = LoadOptions {
                file: Some(file.clone()),
                ..LoadOptions::default()
            };
            match Config::load(&opts) {
                Ok((_, warnings)) => {
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: valid", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => config_error(e),
            }
        }
        ConfigCommand::Show { config, .. } => match config.load() {
            Ok((cfg, _)) => {
                for line in cfg.summary() {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(e),
        },
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, warnings) = match args.config.load() {
        Ok(loaded) => loaded,
        Err(e) => return config_error(e),
    };
    if let Err(why) = single_node_quorum(&config) {
        return config_error(why);
    }
    init_logging(config.broker().log_format);
    for w in warnings {
        tracing::warn!("{w}");
    }
    for line in config.summary() {
        tracing::debug!("config: {line}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("klamm: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(klamm_broker::run(config, shutdown_signal()));
    // The server drained its connections and stopped its tasks; only cut stragglers remain.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("klamm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Klamm runs as its own one-voter quorum until cluster mode (issue 18) exists: a quorum
/// naming other voters, or a node with one role, is refused at start rather than run as a
/// single node the operator did not ask for.
fn single_node_quorum(config: &Config) -> Result<(), String> {
    let quorum = config.quorum().map_err(|e| e.to_string())?;
    let node_id: i32 = config.broker().node_id;
    let alone = match quorum.voters.as_slice() {
        [] => true,
        [only] => only.id == node_id,
        _ => false,
    };
    if alone && quorum.broker && quorum.controller {
        return Ok(());
    }
    Err(format!(
        "controller.quorum.voters = {:?} with process.roles = {:?}: cluster mode is not built \
         yet, so a node can only be its own one-voter quorum (leave controller.quorum.voters \
         empty, or name this node alone)",
        config.get("controller.quorum.voters").unwrap_or_default(),
        config.get("process.roles").unwrap_or_default(),
    ))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
