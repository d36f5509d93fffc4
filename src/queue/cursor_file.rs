//! A saved place in a topic's log: a channel's `<channel>.state` (or the topic's
//! `topic.state`, where a first channel would start).
//!
//! Format, big-endian: `RNSQCUR1`; the read cursor and the watermark (each seq, segment,
//! offset: u64); a u32 count of pending messages, each `seq: u64, attempts: u16, due: i64`
//! (milliseconds since the epoch, 0 for ready); then the CRC32C of everything before it.
//!
//! # What survives a power cut
//!
//! [`save`] writes the whole file to `<name>.tmp`, fdatasyncs it, renames it over the old one
//! and fsyncs the directory (creating `channels/` durably first if needed). A cut at any point
//! leaves the old file or the new one, whole; or none, if there was none before; and perhaps
//! a stray `.tmp`, which the topic removes at open. The save is durable once it returns.
//!
//! [`save_quick`] does the same without either fsync: a crash of the process keeps it, a
//! power cut may not. After a cut its name may hold the old file, the new one, nothing, or —
//! the rename durable, the data not — an empty or torn file. Every one of those is safe:
//! [`load`] refuses a torn, empty or foreign file ([`CursorFileError::Corrupt`]), and a
//! channel whose file is missing or refused reads from the oldest message kept (more
//! duplicates, nothing lost). Quick saves are used only for a new channel's first place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::segment_log::{create_dir_durably, parent_dir, sync_dir, LogError, Position};

const MAGIC: &[u8; 8] = b"RNSQCUR1";

/// A message's number in the log and the byte position of its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub seq: u64,
    pub pos: Position,
}

/// A message taken from the log but not finished, with what changed since it was published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub seq: u64,
    pub attempts: u16,
    /// When it may be delivered, in milliseconds since the epoch (0: now).
    pub due_ms: i64,
}

/// A channel's saved state. Every message from `watermark` up to `read` is finished unless
/// listed in `pending`; nothing from `read` on has been taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedCursor {
    pub read: Cursor,
    pub watermark: Cursor,
    pub pending: Vec<Pending>,
}

/// The temp file a save writes first.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn put_cursor(out: &mut Vec<u8>, cursor: &Cursor) {
    out.extend_from_slice(&cursor.seq.to_be_bytes());
    out.extend_from_slice(&cursor.pos.segment.to_be_bytes());
    out.extend_from_slice(&cursor.pos.offset.to_be_bytes());
}

/// Writes `saved` to `path` atomically and durably (see the module docs). On failure the old
/// file, if any, is still in place.
pub fn save(path: &Path, saved: &SavedCursor) -> Result<(), LogError> {
    write(path, saved, true)
}

/// Writes `saved` to `path` atomically, without fsync: it survives the process, not
/// necessarily a power cut (see the module docs for what a cut can leave).
pub fn save_quick(path: &Path, saved: &SavedCursor) -> Result<(), LogError> {
    write(path, saved, false)
}

/// The file's bytes for `saved` (the format in the module docs); [`decode`] reads them back.
pub fn encode(saved: &SavedCursor) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + saved.pending.len() * 18);
    out.extend_from_slice(MAGIC);
    put_cursor(&mut out, &saved.read);
    put_cursor(&mut out, &saved.watermark);
    out.extend_from_slice(&(saved.pending.len() as u32).to_be_bytes());
    for p in &saved.pending {
        out.extend_from_slice(&p.seq.to_be_bytes());
        out.extend_from_slice(&p.attempts.to_be_bytes());
        out.extend_from_slice(&p.due_ms.to_be_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn write(path: &Path, saved: &SavedCursor, durable: bool) -> Result<(), LogError> {
    let out = encode(saved);
    let temp = temp_path(path);
    let fail = |p: &Path| {
        let p = p.to_path_buf();
        move |source| LogError::io(&p, source)
    };
    let dir = parent_dir(path);
    if durable {
        // A new `channels/` must itself survive, or the file renamed into it would not.
        create_dir_durably(dir)?;
    } else {
        fs::create_dir_all(dir).map_err(fail(dir))?;
    }
    {
        use std::io::Write;
        let mut file = fs::File::create(&temp).map_err(fail(&temp))?;
        file.write_all(&out).map_err(fail(&temp))?;
        if durable {
            // The data before the rename: else a cut could leave the new name on an empty
            // or partial file.
            file.sync_data().map_err(fail(&temp))?;
        }
    }
    fs::rename(&temp, path).map_err(fail(path))?;
    if durable {
        // The rename itself survives only once the directory is fsynced.
        sync_dir(dir)?;
    }
    Ok(())
}

/// Why a saved cursor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CursorFileError {
    #[error("{0}")]
    Io(#[from] LogError),
    #[error("{path}: {what}")]
    Corrupt { path: PathBuf, what: &'static str },
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_be_bytes)
    }
    fn cursor(&mut self) -> Option<Cursor> {
        Some(Cursor {
            seq: self.u64()?,
            pos: Position {
                segment: self.u64()?,
                offset: self.u64()?,
            },
        })
    }
}

/// Reads the cursor saved at `path`; `None` if there is none.
pub fn load(path: &Path) -> Result<Option<SavedCursor>, CursorFileError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LogError::io(path, source).into()),
    };
    decode(&bytes)
        .map(Some)
        .map_err(|what| CursorFileError::Corrupt {
            path: path.into(),
            what,
        })
}

/// Reads a cursor file's bytes. Only bytes [`encode`] wrote are accepted: anything torn,
/// empty, foreign or with bytes left over is refused, saying which (`too short`, `checksum
/// mismatch`, `not a cursor file`, `truncated or malformed`). Memory is bounded by the
/// input's length, whatever count it claims.
pub fn decode(bytes: &[u8]) -> Result<SavedCursor, &'static str> {
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err("too short");
    };
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err("checksum mismatch");
    }
    let mut input = Bytes(body);
    if input.take::<8>().as_ref() != Some(MAGIC) {
        return Err("not a cursor file");
    }
    let parse = |input: &mut Bytes| -> Option<SavedCursor> {
        let read = input.cursor()?;
        let watermark = input.cursor()?;
        let count = u32::from_be_bytes(input.take::<4>()?);
        let mut pending = Vec::with_capacity((count as usize).min(input.0.len() / 18));
        for _ in 0..count {
            pending.push(Pending {
                seq: input.u64()?,
                attempts: u16::from_be_bytes(input.take::<2>()?),
                due_ms: i64::from_be_bytes(input.take::<8>()?),
            });
        }
        Some(SavedCursor {
            read,
            watermark,
            pending,
        })
    };
    parse(&mut input)
        .filter(|_| input.0.is_empty())
        .ok_or("truncated or malformed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.state");
        assert_eq!(load(&path).unwrap(), None);
        let saved = SavedCursor {
            read: Cursor {
                seq: 9,
                pos: Position {
                    segment: 1,
                    offset: 40,
                },
            },
            watermark: Cursor {
                seq: 3,
                pos: Position::default(),
            },
            pending: vec![Pending {
                seq: 4,
                attempts: 2,
                due_ms: 1_700_000_000_000,
            }],
        };
        save(&path, &saved).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved));
        assert!(!temp_path(&path).exists());
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(load(&path), Err(CursorFileError::Corrupt { .. })));
    }

    fn example() -> SavedCursor {
        SavedCursor {
            read: Cursor {
                seq: 12,
                pos: Position {
                    segment: 2,
                    offset: 16,
                },
            },
            watermark: Cursor {
                seq: 10,
                pos: Position {
                    segment: 1,
                    offset: 300,
                },
            },
            pending: vec![
                Pending {
                    seq: 10,
                    attempts: 1,
                    due_ms: 0,
                },
                Pending {
                    seq: 11,
                    attempts: 4,
                    due_ms: 1_700_000_000_000,
                },
            ],
        }
    }

    /// What a power cut can leave of a quick save (the rename durable, the data not): the
    /// file empty, cut at any byte, or zeros. Each is refused as corrupt, never read as a
    /// place (the channel then reads from the oldest message kept).
    #[test]
    fn a_torn_empty_or_zeroed_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.state");
        save_quick(&path, &example()).unwrap();
        let whole = fs::read(&path).unwrap();
        assert_eq!(load(&path).unwrap(), Some(example()));
        for cut in 0..whole.len() {
            let mut zeroed = whole.clone();
            zeroed[cut..].fill(0);
            for bytes in [&whole[..cut], &zeroed[..]] {
                fs::write(&path, bytes).unwrap();
                assert!(
                    matches!(load(&path), Err(CursorFileError::Corrupt { .. })),
                    "cut at {cut} of {}",
                    whole.len()
                );
            }
        }
    }

    /// A durable save into a `channels/` that does not exist yet makes the directory's entry
    /// durable (the topic directory fsynced), then the file's (the new directory fsynced). A
    /// quick save fsyncs nothing.
    #[test]
    fn a_durable_save_makes_a_new_directory_and_the_rename_durable() {
        let topic = tempfile::tempdir().unwrap();
        let channels = topic.path().join("channels");
        save(&channels.join("c.state"), &example()).unwrap();
        let synced = crate::queue::segment_log::synced_dirs_under(topic.path());
        assert_eq!(synced, [topic.path().to_path_buf(), channels.clone()]);
        save_quick(&channels.join("d.state"), &example()).unwrap();
        assert_eq!(
            crate::queue::segment_log::synced_dirs_under(topic.path()),
            synced
        );
        assert_eq!(load(&channels.join("d.state")).unwrap(), Some(example()));
    }
}
