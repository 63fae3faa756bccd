//! Kafka's rules for topic names.
//!
//! Invariant: a leaf — this module imports nothing from the crate.

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`; the error says why.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!(
            "topic name is {} characters, the limit is {TOPIC_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    Ok(())
}

/// Kafka's rule: `a.b` and `a_b` may not both exist, because metric names replace `.` by `_`
/// and the two topics' metrics would be one.
pub fn collide(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a != b
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| x == y || matches!((x, y), (b'.', b'_') | (b'_', b'.')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_and_underscores_collide() {
        assert!(collide("a.b", "a_b"));
        assert!(collide("a_b.c", "a.b_c"));
        assert!(
            !collide("a.b", "a.b"),
            "the same name is TOPIC_ALREADY_EXISTS, not a collision"
        );
        assert!(!collide("a.b", "a-b"));
        assert!(!collide("a.b", "a.bc"));
    }

    #[test]
    fn names_follow_kafkas_rule() {
        assert!(check("orders.v1_x-2").is_ok());
        assert!(check(&"a".repeat(TOPIC_NAME_BYTES_MAX)).is_ok());
        for bad in [
            "",
            ".",
            "..",
            "a b",
            "ü",
            &"a".repeat(TOPIC_NAME_BYTES_MAX + 1),
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
