//! Which partition directories in the data dir belong to a live topic, and how the others
//! go away.
//!
//! Invariant: a directory `<topic>-<N>` is opened as a partition only when the metadata
//! image holds `<topic>` with more than `N` partitions and the directory's
//! `partition.metadata` names that topic's id (or is missing: a file lost to a crash or to
//! damage, which the corruption rig exercises, does not cost the data). Every other such
//! directory is a *stray* — a deleted topic's, left by a crash after the image changed, or a
//! crash mid-create before the image did — and is moved aside and removed in the
//! background, never opened. The image is therefore the durable intent of a deletion: once
//! it is saved, the next start finishes the deletion whatever step the crash interrupted.

use crate::metadata::{kafka_base64, MetadataImage};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The longest file name Linux file systems take (NAME_MAX).
const NAME_BYTES_MAX: usize = 255;
/// Every directory whose name ends so is removed (at start-up, and after a deletion).
pub const DOOMED_SUFFIX: &str = "-delete";

/// The name a partition directory is moved to when its topic is deleted or it is found
/// stray: Kafka's `<topic>-<N>.<tag>-delete`, with the topic cut so the name fits in
/// NAME_MAX (a 249-character topic name would not, KAFKA-4893). The tag keeps it unique.
pub fn doomed_name(topic: &str, index: i32, tag: Uuid) -> String {
    let suffix = format!("-{index}.{}{DOOMED_SUFFIX}", tag.simple());
    let mut cut = topic.len().min(NAME_BYTES_MAX - suffix.len());
    while !topic.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &topic[..cut])
}

/// Renames `dir` (partition `index` of `topic`) aside for removal; returns where it went.
/// The rename is atomic: the directory is either still at its name or gone from it.
pub fn move_aside(data_dir: &Path, dir: &Path, topic: &str, index: i32) -> io::Result<PathBuf> {
    let to = data_dir.join(doomed_name(topic, index, Uuid::new_v4()));
    fs::rename(dir, &to)?;
    Ok(to)
}

/// The topic id a partition directory's `partition.metadata` names (Kafka's base64 form),
/// or `None` when the file is missing or unreadable.
fn owner(dir: &Path) -> Option<String> {
    let text = fs::read_to_string(dir.join("partition.metadata")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
}

/// Whether `dir` may be opened as a partition of the topic with id `id`.
pub fn belongs_to(dir: &Path, id: Uuid) -> bool {
    owner(dir).is_none_or(|o| o == kafka_base64(id))
}

/// `(topic, index)` from a directory name `<topic>-<N>`, if it has that form.
fn parse(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok().filter(|i| *i >= 0)?;
    crate::topic_name::check(topic).ok()?;
    Some((topic, index))
}

/// Start-up: moves every stray partition directory aside (one warning for all of them)
/// and removes those and any left from earlier deletions in the background.
pub fn sweep(data_dir: &Path, image: &MetadataImage) {
    // Listed whole before any rename: a directory renamed while `readdir` runs may be
    // listed again under its new name.
    let Ok(entries) = fs::read_dir(data_dir).map(|d| d.flatten().collect::<Vec<_>>()) else {
        return;
    };
    let mut doomed = Vec::new();
    let mut strays: Vec<String> = Vec::new();
    for e in entries {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(DOOMED_SUFFIX) {
            doomed.push(path);
            continue;
        }
        let Some((topic, index)) = parse(&name) else {
            continue;
        };
        let live = image
            .topics
            .get(topic)
            .is_some_and(|r| index < r.partitions && belongs_to(&path, r.id));
        if live {
            continue;
        }
        match move_aside(data_dir, &path, topic, index) {
            Ok(to) => {
                doomed.push(to);
                strays.push(name);
            }
            Err(e) => tracing::error!(dir = %path.display(), error = %e,
                "cannot move a stray partition directory aside; it is not opened"),
        }
    }
    if let Some(first) = strays.first() {
        tracing::warn!(
            strays = strays.len(),
            first = %first,
            "partition directories of no live topic (a deleted topic's after a crash, or a \
             creation cut short): moved aside, never served, removed in the background"
        );
    }
    if !doomed.is_empty() {
        let _ = klamm_log::sync_dir(data_dir);
    }
    remove_in_background(doomed);
}

/// Removes directories already moved aside, on a thread of its own: a topic of thousands
/// of partitions takes a while, and nothing waits for it (start-up sweeps whatever is left).
pub fn remove_in_background(dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("klamm-remove-dirs".into())
        .spawn(move || {
            for dir in dirs {
                match fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        tracing::warn!(dir = %dir.display(), error = %e,
                            "cannot remove a deleted partition directory; the next start retries")
                    }
                    _ => {}
                }
                crate::crash_point::reached("delete.removed");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the directory remover; the next start retries");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doomed_names_fit_name_max_for_the_longest_topic() {
        let topic = "t".repeat(249);
        for index in [0, 9, 99_999, i32::MAX] {
            let name = doomed_name(&topic, index, Uuid::new_v4());
            assert!(name.len() <= NAME_BYTES_MAX, "{}", name.len());
            assert!(name.ends_with(DOOMED_SUFFIX));
            assert!(name.contains(&format!("-{index}.")));
        }
        let short = doomed_name("orders", 3, Uuid::nil());
        assert_eq!(short, format!("orders-3.{}-delete", Uuid::nil().simple()));
        // Never parsed back as a live partition.
        assert!(parse(&short).is_none());
    }

    #[test]
    fn parse_takes_the_last_dash() {
        assert_eq!(parse("a-b-12"), Some(("a-b", 12)));
        assert_eq!(parse("a-b"), None);
        assert_eq!(parse("a--1"), Some(("a-", 1)));
        assert_eq!(parse("a-x"), None);
        assert_eq!(parse("bad name-1"), None);
    }
}
