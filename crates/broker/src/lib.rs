//! The Klamm broker: a tokio application serving the Kafka protocol over segment logs.
//!
//! - [`server`]: listeners, connection limits, start-up and clean shutdown.
//! - [`connection`]: one task pair per client; requests take effect in order, responses go
//!   out in order, and the in-flight queue is bounded.
//! - [`handlers`]: one file per Kafka API, routed from the version table.
//! - [`state`]: the topic table and the persisted metadata image.
//! - [`cleaner`]: the log-compaction task (the algorithm is `klamm_log::cleaner`).
//! - [`partition`]: one writer per partition log, its high watermark, group-commit fsync.
//!
//! Architecture invariant: this is the only crate that knows sockets, tasks and time; the
//! protocol, log and config crates it drives are pure.

pub mod admin;
pub mod admin_error;
pub mod alloc;
pub mod broker;
pub mod cleaner;
pub mod clock;
pub mod connection;
pub mod crash_point;
pub mod disk_space;
pub mod fd_limit;
pub mod groups;
pub mod handlers;
pub mod internal;
pub mod internal_log;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod partition_dirs;
#[cfg(target_os = "linux")]
pub mod process_cpu;
pub mod response;
pub mod scrape;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod tasks;
pub mod topic_name;
pub mod txn;

pub use server::run;
