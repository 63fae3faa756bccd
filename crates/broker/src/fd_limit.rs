//! The process's open-file limit (`RLIMIT_NOFILE`). Every partition holds files open, so
//! the broker raises the soft limit to the hard one at start and sizes `max.partitions`
//! from what it got.
//!
//! `unsafe`: the two libc calls below, each given a struct that outlives the call.
#![allow(unsafe_code)]

/// Raises the soft open-file limit to the hard limit (as Kafka's start scripts ask
/// operators to) and returns the limit in force.
pub fn raise() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which outlives the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads only the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
            tracing::info!(
                from = before,
                to = limit.rlim_cur,
                "raised the open-file limit to its hard limit"
            );
        }
    }
    limit.rlim_cur
}
