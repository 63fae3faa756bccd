//! The process's CPU time at microsecond resolution, for `process_cpu_seconds_total`
//! (the prometheus crate's process collector counts whole seconds, so a broker using
//! 0.4 s of CPU a minute showed a flat line).
//!
//! `unsafe`: one libc call, given a zeroed struct that outlives the call.
#![allow(unsafe_code)]

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Opts};

/// User plus system CPU time of every thread of the process, in seconds (`getrusage`).
pub fn cpu_seconds() -> f64 {
    // SAFETY: `usage` is a plain C struct, valid when zeroed, and outlives the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The crate's process collector with its whole-second CPU counter replaced by
/// [`cpu_seconds`]; everything else (memory, fds, threads, start time) is its own.
pub struct ProcessMetrics {
    inner: prometheus::process_collector::ProcessCollector,
}

impl ProcessMetrics {
    pub fn for_self() -> ProcessMetrics {
        ProcessMetrics {
            inner: prometheus::process_collector::ProcessCollector::for_self(),
        }
    }
}

pub const CPU_METRIC: &str = "process_cpu_seconds_total";

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.collect();
        families.retain(|f| f.name() != CPU_METRIC);
        let cpu = Counter::with_opts(Opts::new(
            CPU_METRIC,
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid metric");
        cpu.inc_by(cpu_seconds());
        families.extend(cpu.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Burns CPU until `cpu_seconds` moves: with whole-second resolution it would not move
    /// within the first 50 ms of work unless a second boundary happened to fall there,
    /// so the check is that it moves by less than a second, twice.
    #[test]
    fn cpu_seconds_has_sub_second_resolution() {
        for _ in 0..2 {
            let before = cpu_seconds();
            let mut x = 0u64;
            while cpu_seconds() == before {
                for i in 0..100_000u64 {
                    x = x.wrapping_mul(31).wrapping_add(i);
                }
                std::hint::black_box(x);
            }
            let step = cpu_seconds() - before;
            assert!(step > 0.0 && step < 0.5, "step {step}");
        }
    }

    #[test]
    fn the_collector_reports_fractional_cpu_seconds_once() {
        let families = ProcessMetrics::for_self().collect();
        let cpu: Vec<_> = families.iter().filter(|f| f.name() == CPU_METRIC).collect();
        assert_eq!(cpu.len(), 1);
        let v = cpu[0].get_metric()[0].get_counter().get_value();
        assert!(v > 0.0 && v.fract() != 0.0, "{v}");
        assert!(families
            .iter()
            .any(|f| f.name() == "process_resident_memory_bytes"));
    }
}
