//! An append-only log in numbered segment files, each record length-prefixed and checksummed
//! (CRC32C): the storage under a topic's message log.
//!
//! # Format
//!
//! Segments are `<dir>/<number, 20 digits>.log`, numbered consecutively. Every segment this
//! version starts begins with a 16-byte header, written with the segment's first records in
//! the same `write`:
//!
//! ```text
//! [8 bytes: b"RNSQLOG\0"][4-byte BE format version, 1][4-byte BE CRC32C of the 12 bytes before]
//! ```
//!
//! then records, each `[4-byte BE payload length][4-byte BE CRC32C of the payload][payload]`.
//! A payload is never empty, so a length of 0 is never a record (see below). Segments written
//! before headers existed (format 0) start directly with a record; they are read as they are,
//! and appended to as they are (a segment never mixes formats). A format-0 file cannot start
//! with `R` (its first length would exceed 1.3 GB). A header naming a newer version than
//! [`FORMAT_VERSION`] makes the log refuse to open ([`LogError::NewerFormat`]).
//!
//! A [`Position`] is `(segment, byte offset)`. Offset 0 means the start of a segment in either
//! format: its first record is at 0 in a format-0 file and at [`SEGMENT_HEADER`] in a
//! headered one, and readers starting at 0 step over the header.
//!
//! # Writing and what survives a power cut
//!
//! A batch that would take a segment past `max_bytes_per_file` starts the next one (a batch
//! larger than that gets a segment of its own). Before the next segment is created the current
//! one is fdatasynced, and a new segment's directory entry is fsynced before anything is
//! written to it, so only the last segment can be torn, and no segment is ever missing from
//! the middle of the log because of a cut.
//!
//! # Recovery at open
//!
//! A torn tail of the last segment is truncated and counted: a partial record, a last record
//! whose checksum fails, a run of zero bytes to the end (a file whose size was made durable
//! before its data), or a header cut short (the segment is then empty). Segments below a gap
//! in the numbering are the leftovers of deletes a cut undid; they are not part of the log.
//! Readers report a bad record in the middle of a segment as [`Item::Damaged`] and pass over
//! it; they never return garbage.
//!
//! The pieces: `header` (a segment's first bytes), `record` (the bytes of one record),
//! `recovery` (where a last segment's bytes end once a torn tail is cut), `writer` (the
//! writing end and recovery at open), `reader` (reading records in order
//! across segments).

pub mod header;
mod reader;
pub mod record;
pub mod recovery;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod torn_tail_tests;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable_dir;

pub use header::{FORMAT_VERSION, SEGMENT_HEADER};
pub use reader::{quarantine, Item, LogReader};
pub use record::HEADER;
pub use writer::{Recovery, SegmentLog};

/// Where a record starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A log failure, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Reading, writing or syncing `path` failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The segment at `path` was written by a newer rnsq, in a format this one cannot read.
    /// Nothing was changed; the log stays closed.
    #[error(
        "{path}: segment format version {found} is newer than this rnsq reads (version \
         {supported}); run the rnsq that wrote it, or move the topic's directory away"
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
}

impl LogError {
    /// An I/O failure on `path`.
    pub fn io(path: &Path, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Turns an I/O error on `path` into a [`LogError`] naming it.
fn at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError::io(path, source)
}

/// The path of segment `segment` in `dir`.
pub fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

/// The segment numbers present in `dir`, ascending (none if `dir` does not exist).
pub fn segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut numbers = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
        Err(e) => return Err(at(dir)(e)),
    };
    for entry in entries {
        let name = entry.map_err(at(dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name
            .strip_suffix(".log")
            .and_then(|n| n.parse::<u64>().ok())
        {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The segments of the log in `dir`: the consecutive run ending at the highest number.
///
/// Segments are created consecutively and deleted from the lowest, and each creation is
/// made durable before the segment is written, so the log is always one run. Numbers below
/// a gap can only be deletes that a power cut undid (unlinks are not fsynced: nothing
/// depends on them): their messages were finished, and they are not part of the log. They go
/// with the next consumed segments ([`SegmentLog::remove_below`] deletes every lower number).
pub fn live_segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut numbers = segments(dir)?;
    let run = numbers
        .windows(2)
        .rposition(|pair| pair[0] + 1 != pair[1])
        .map_or(0, |gap| gap + 1);
    Ok(numbers.split_off(run))
}

/// Makes a directory's entries (a new, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    durable_dir::sync(dir).map_err(at(dir))?;
    #[cfg(test)]
    SYNCED_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.to_path_buf());
    Ok(())
}

/// Every directory [`sync_dir`] fsynced, in order: tests check which entries were made
/// durable before a claim depended on them (each test looks at paths under its own temp dir).
#[cfg(test)]
pub(crate) static SYNCED_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// The directories under `root` fsynced so far, in order.
#[cfg(test)]
pub(crate) fn synced_dirs_under(root: &Path) -> Vec<PathBuf> {
    SYNCED_DIRS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|d| d.starts_with(root))
        .cloned()
        .collect()
}

/// The directory holding `path`'s entry (`.` for a bare relative name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing parents, fsyncing the parent of each one created, so that
/// once this returns the whole path survives a power cut. An existing `dir` is left as it is
/// (its entry is as durable as whoever made it left it).
pub fn create_dir_durably(dir: &Path) -> Result<(), LogError> {
    if dir.is_dir() {
        return Ok(());
    }
    create_dir_durably(parent_dir(dir))?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent_dir(dir)),
        // Made meanwhile by someone else, who syncs it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(at(dir)(e)),
    }
}
