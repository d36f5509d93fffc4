//! An append-only log in numbered segment files, each record length-prefixed and checksummed
//! (CRC32C): the storage the durable message queues will be built on (see
//! `docs/durability.md`). Not wired into the broker yet.
//!
//! Record: `[4-byte BE payload length][4-byte BE CRC32C of the payload][payload]`. Segments are
//! `<dir>/<number, 20 digits>.log`; a segment is closed when the next record would take it past
//! `max_bytes_per_file` (a record larger than that gets a segment of its own).
//!
//! Recovery, at open: a torn tail in the last segment (a partial record, or a last record whose
//! checksum fails) is truncated and counted. Readers skip a bad record in the middle of a
//! segment (its bytes are appended to `<segment>.bad` for inspection) and count it; they never
//! return garbage.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const HEADER: u64 = 8;

/// Where a record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

fn at(path: &Path) -> impl Fn(io::Error) -> LogError + '_ {
    move |source| LogError {
        path: path.into(),
        source,
    }
}

/// What opening found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment (a torn tail).
    pub truncated_bytes: u64,
}

/// The writing end of a log.
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes_per_file: u64,
    file: File,
    write: Position,
}

fn segment_path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.log"))
}

/// The segment numbers present in `dir`, ascending.
pub fn segments(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir).map_err(at(dir))? {
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

/// Reads one record at the reader's position. `Ok(None)`: clean end of data. `Err(len)`: the
/// record is bad (checksum) and spans `len` bytes in all; `Err(0)`: the header or payload runs
/// past the end (torn).
fn read_record(file: &mut File, remaining: u64) -> io::Result<Result<Option<Vec<u8>>, u64>> {
    if remaining == 0 {
        return Ok(Ok(None));
    }
    if remaining < HEADER {
        return Ok(Err(0));
    }
    let mut header = [0u8; 8];
    file.read_exact(&mut header)?;
    let len = u64::from(u32::from_be_bytes([
        header[0], header[1], header[2], header[3],
    ]));
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if HEADER + len > remaining {
        return Ok(Err(0));
    }
    let mut payload = vec![0u8; len as usize];
    file.read_exact(&mut payload)?;
    if crc32c::crc32c(&payload) != crc {
        return Ok(Err(HEADER + len));
    }
    Ok(Ok(Some(payload)))
}

impl SegmentLog {
    /// Opens (creating) the log in `dir`, truncating a torn tail of the last segment.
    pub fn open(dir: &Path, max_bytes_per_file: u64) -> Result<(SegmentLog, Recovery), LogError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        let last = segments(dir)?.last().copied().unwrap_or(0);
        let path = segment_path(dir, last);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(at(&path))?;
        let size = file.metadata().map_err(at(&path))?.len();
        // Walk the records; the log's end is after the last record that is whole. A bad
        // checksum with whole records after it is mid-file damage (readers skip it); a bad
        // checksum on the last record, or a partial record, is a torn tail.
        let mut offset = 0;
        let mut end = 0;
        file.seek(SeekFrom::Start(0)).map_err(at(&path))?;
        loop {
            match read_record(&mut file, size - offset).map_err(at(&path))? {
                Ok(None) => break,
                Ok(Some(payload)) => {
                    offset += HEADER + payload.len() as u64;
                    end = offset;
                }
                Err(0) => break,
                Err(len) => offset += len,
            }
        }
        let recovery = Recovery {
            truncated_bytes: size - end,
        };
        if end < size {
            file.set_len(end).map_err(at(&path))?;
            file.sync_all().map_err(at(&path))?;
        }
        file.seek(SeekFrom::Start(end)).map_err(at(&path))?;
        let log = SegmentLog {
            dir: dir.into(),
            max_bytes_per_file,
            file,
            write: Position {
                segment: last,
                offset: end,
            },
        };
        Ok((log, recovery))
    }

    /// Where the next record will go.
    pub fn write_position(&self) -> Position {
        self.write
    }

    /// Appends a record (not yet durable: see [`SegmentLog::sync`]); returns where it starts.
    pub fn append(&mut self, payload: &[u8]) -> Result<Position, LogError> {
        let size = HEADER + payload.len() as u64;
        if self.write.offset > 0 && self.write.offset + size > self.max_bytes_per_file {
            self.sync()?;
            let next = self.write.segment + 1;
            let path = segment_path(&self.dir, next);
            self.file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(at(&path))?;
            self.write = Position {
                segment: next,
                offset: 0,
            };
        }
        let mut record = Vec::with_capacity(size as usize);
        record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        record.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        record.extend_from_slice(payload);
        let path = segment_path(&self.dir, self.write.segment);
        self.file.write_all(&record).map_err(at(&path))?;
        let start = self.write;
        self.write.offset += size;
        Ok(start)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        let path = segment_path(&self.dir, self.write.segment);
        self.file.sync_data().map_err(at(&path))
    }

    /// A reader from `from` (which must be a record start or a segment's end).
    pub fn reader(&self, from: Position) -> LogReader {
        LogReader {
            dir: self.dir.clone(),
            position: from,
            skipped: 0,
            open: None,
        }
    }
}

/// Reads records in order, across segments, skipping damaged ones.
pub struct LogReader {
    dir: PathBuf,
    position: Position,
    /// Damaged records passed over so far.
    pub skipped: u64,
    /// The segment file being read, kept open between records.
    open: Option<(u64, File)>,
}

impl LogReader {
    /// Where the next record is read from.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The next whole record, or `None` at the end of what has been written.
    pub fn next_record(&mut self) -> Result<Option<(Position, Vec<u8>)>, LogError> {
        loop {
            let path = segment_path(&self.dir, self.position.segment);
            if self
                .open
                .as_ref()
                .is_none_or(|(segment, _)| *segment != self.position.segment)
            {
                match File::open(&path) {
                    Ok(file) => self.open = Some((self.position.segment, file)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(at(&path)(e)),
                }
            }
            let Some((_, file)) = self.open.as_mut() else {
                return Ok(None);
            };
            // The size is read each time: the writer may have appended since.
            let size = file.metadata().map_err(at(&path))?.len();
            file.seek(SeekFrom::Start(self.position.offset))
                .map_err(at(&path))?;
            let remaining = size.saturating_sub(self.position.offset);
            match read_record(file, remaining).map_err(at(&path))? {
                Ok(Some(payload)) => {
                    let start = self.position;
                    self.position.offset += HEADER + payload.len() as u64;
                    return Ok(Some((start, payload)));
                }
                Ok(None) | Err(0) => {
                    // The end of this segment (or a record still being written): move on
                    // only if a later segment exists.
                    let next = Position {
                        segment: self.position.segment + 1,
                        offset: 0,
                    };
                    if segment_path(&self.dir, next.segment).exists() && remaining == 0 {
                        self.position = next;
                        continue;
                    }
                    return Ok(None);
                }
                Err(len) => {
                    self.quarantine(&path, len)?;
                    self.skipped += 1;
                    self.position.offset += len;
                }
            }
        }
    }

    fn quarantine(&self, path: &Path, len: u64) -> Result<(), LogError> {
        let mut file = File::open(path).map_err(at(path))?;
        file.seek(SeekFrom::Start(self.position.offset))
            .map_err(at(path))?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact(&mut bytes).map_err(at(path))?;
        let bad = path.with_extension("log.bad");
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&bad)
            .map_err(at(&bad))?;
        out.write_all(&bytes).map_err(at(&bad))?;
        tracing::warn!(segment = %path.display(), offset = self.position.offset, len, "skipped a damaged record");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(log: &SegmentLog) -> (Vec<Vec<u8>>, u64) {
        let mut reader = log.reader(Position {
            segment: 0,
            offset: 0,
        });
        let mut out = Vec::new();
        while let Some((_, payload)) = reader.next_record().unwrap() {
            out.push(payload);
        }
        (out, reader.skipped)
    }

    #[test]
    fn appends_across_segments_and_reads_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recovery) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!(recovery.truncated_bytes, 0);
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 + i as usize]).collect();
        for p in &payloads {
            log.append(p).unwrap();
        }
        log.sync().unwrap();
        assert!(
            segments(dir.path()).unwrap().len() > 3,
            "records rolled into several segments"
        );
        assert_eq!(read_all(&log), (payloads.clone(), 0));
        drop(log);
        let (mut log, recovery) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!(recovery.truncated_bytes, 0);
        log.append(b"after").unwrap();
        let (all, _) = read_all(&log);
        assert_eq!(all.len(), 21);
        assert_eq!(all.last().unwrap(), b"after");
    }

    #[test]
    fn a_torn_tail_is_truncated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append(b"one").unwrap();
        log.append(b"two").unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        // A partial record: a header promising 100 bytes and 5 of them.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&100u32.to_be_bytes()).unwrap();
        file.write_all(&[0, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        drop(file);
        let (log, recovery) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(recovery.truncated_bytes, 13);
        assert_eq!(read_all(&log), (vec![b"one".to_vec(), b"two".to_vec()], 0));

        // A whole last record whose checksum fails is a torn tail too.
        drop(log);
        let size = fs::metadata(&path).unwrap().len();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (log, recovery) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(recovery.truncated_bytes, HEADER + 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), size - HEADER - 3);
        assert_eq!(read_all(&log), (vec![b"one".to_vec()], 0));
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_skipped_counted_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append(b"first").unwrap();
        let middle = log.append(b"middle").unwrap();
        log.append(b"last").unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[(middle.offset + HEADER) as usize] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (log, recovery) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            recovery.truncated_bytes, 0,
            "mid-file damage is not a torn tail"
        );
        assert_eq!(
            read_all(&log),
            (vec![b"first".to_vec(), b"last".to_vec()], 1)
        );
        let bad = fs::read(path.with_extension("log.bad")).unwrap();
        assert_eq!(bad.len() as u64, HEADER + 6);
    }
}
