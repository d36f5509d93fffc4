//! An append-only log in numbered segment files, each record length-prefixed and checksummed
//! (CRC32C): the storage under a topic's message log.
//!
//! Record: `[4-byte BE payload length][4-byte BE CRC32C of the payload][payload]`. Segments are
//! `<dir>/<number, 20 digits>.log`; a batch that would take a segment past
//! `max_bytes_per_file` starts the next one (a batch larger than that gets a segment of its
//! own). A segment is fsynced before the next one is started, so only the last can be torn.
//!
//! Recovery, at open: a torn tail in the last segment (a partial record, or a last record whose
//! checksum fails) is truncated and counted. Readers report a bad record in the middle of a
//! segment as [`Item::Damaged`] and pass over it; they never return garbage.
//!
//! The pieces: [`record`] (the bytes of one record), [`writer`] (the writing end and recovery
//! at open), [`reader`] (reading records in order across segments).

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

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
#[error("{path}: {source}")]
pub struct LogError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Turns an I/O error on `path` into a [`LogError`] naming it.
fn at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError {
        path: path.into(),
        source,
    }
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

/// Makes a directory's entries (a new or removed file) durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}
