//! Crash points for the deletion-crash tests: `KLAMM_TEST_CRASH_AT=NAME` (or `NAME@N`, the
//! N-th time that point is reached; default the first) makes the process exit at once with
//! [`CRASH_EXIT_CODE`] when it reaches that point, running no destructor and flushing
//! nothing — to the data dir that is what `kill -9` at that instant would leave (written
//! bytes are in the page cache either way). Unset, a point costs one atomic load.
//!
//! The points: `delete.before_save`, `delete.saved`, `delete.moved` (after each partition's
//! directory moved aside), `delete.retired`, `delete.removed` (after each background
//! removal), and `<file>.tmp_written` / `<file>.renamed` inside every atomic file write.
//!
//! Invariant: crash points only observe; they never change what the broker writes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The exit code of a crash point, so a test knows its point was reached.
pub const CRASH_EXIT_CODE: i32 = 86;
/// The environment variable naming the point.
pub const CRASH_AT_ENV: &str = "KLAMM_TEST_CRASH_AT";

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn parse(spec: &str) -> Option<(String, u64)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    match spec.split_once('@') {
        Some((name, nth)) => Some((name.to_string(), nth.parse().ok().filter(|n| *n > 0)?)),
        None => Some((spec.to_string(), 1)),
    }
}

/// Exits the process here if `KLAMM_TEST_CRASH_AT` names this point (and this is its N-th hit).
pub fn reached(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var(CRASH_AT_ENV).ok().as_deref().and_then(parse));
    let Some((want, nth)) = armed else { return };
    if want != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        eprintln!("{CRASH_AT_ENV}: crashing at {name}@{nth}");
        std::process::exit(CRASH_EXIT_CODE);
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn specs_name_a_point_and_an_optional_hit() {
        assert_eq!(parse("delete.saved"), Some(("delete.saved".into(), 1)));
        assert_eq!(parse("delete.moved@3"), Some(("delete.moved".into(), 3)));
        assert_eq!(parse(""), None);
        assert_eq!(parse("delete.moved@0"), None);
        assert_eq!(parse("delete.moved@x"), None);
    }
}
