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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes before each payload: length and checksum.
pub const HEADER: u64 = 8;

/// How much a reader asks the file for at once.
const READ_CHUNK: usize = 256 * 1024;

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

/// The writing end of a log. The current segment file is created with the first append.
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes_per_file: u64,
    file: Option<File>,
    write: Position,
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

/// One record parsed from bytes.
enum Parsed {
    /// A whole record: its payload's range in the bytes and its total length.
    Whole(std::ops::Range<usize>, u64),
    /// The checksum fails; the record spans this many bytes.
    Bad(u64),
    /// The bytes end inside the header or payload.
    Short,
}

fn parse(bytes: &[u8]) -> Parsed {
    if (bytes.len() as u64) < HEADER {
        return Parsed::Short;
    }
    let len = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let crc = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let total = HEADER + len;
    if total > bytes.len() as u64 {
        return Parsed::Short;
    }
    let payload = HEADER as usize..total as usize;
    if crc32c::crc32c(&bytes[payload.clone()]) != crc {
        return Parsed::Bad(total);
    }
    Parsed::Whole(payload, total)
}

impl SegmentLog {
    /// Opens (creating the directory) the log in `dir`, truncating a torn tail of the last
    /// segment. Returns the log, what was repaired, and the last whole record's payload.
    pub fn open(
        dir: &Path,
        max_bytes_per_file: u64,
    ) -> Result<(SegmentLog, Recovery, Option<Vec<u8>>), LogError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        let numbers = segments(dir)?;
        let Some(&last) = numbers.last() else {
            let log = SegmentLog {
                dir: dir.into(),
                max_bytes_per_file,
                file: None,
                write: Position::default(),
            };
            return Ok((log, Recovery::default(), None));
        };
        let path = segment_path(dir, last);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(at(&path))?;
        let bytes = read_whole(&mut file).map_err(at(&path))?;
        // Walk the records; the log's end is after the last record that is whole. A bad
        // checksum with whole records after it is mid-file damage (readers skip it); a bad
        // checksum on the last record, or a partial record, is a torn tail.
        let (mut offset, mut end) = (0usize, 0usize);
        let mut last_payload = None;
        loop {
            match parse(&bytes[offset..]) {
                Parsed::Whole(payload, total) => {
                    last_payload = Some(offset + payload.start..offset + payload.end);
                    offset += total as usize;
                    end = offset;
                }
                Parsed::Bad(total) => offset += total as usize,
                Parsed::Short => break,
            }
        }
        let size = bytes.len() as u64;
        let recovery = Recovery {
            truncated_bytes: size - end as u64,
        };
        if (end as u64) < size {
            file.set_len(end as u64).map_err(at(&path))?;
            file.sync_all().map_err(at(&path))?;
        }
        file.seek(SeekFrom::Start(end as u64)).map_err(at(&path))?;
        let mut last_payload = last_payload.map(|r| bytes[r].to_vec());
        if last_payload.is_none() {
            // The last segment holds nothing whole: the last record is in an earlier one.
            for &earlier in numbers.iter().rev().skip(1) {
                let mut reader = LogReader::new(
                    dir,
                    Position {
                        segment: earlier,
                        offset: 0,
                    },
                );
                while reader.position().segment == earlier {
                    match reader.next_record()? {
                        Item::Record(_, payload) => last_payload = Some(payload),
                        Item::Damaged(..) => {}
                        Item::End => break,
                    }
                }
                if last_payload.is_some() {
                    break;
                }
            }
        }
        let log = SegmentLog {
            dir: dir.into(),
            max_bytes_per_file,
            file: Some(file),
            write: Position {
                segment: last,
                offset: end as u64,
            },
        };
        Ok((log, recovery, last_payload))
    }

    /// A log in `dir` known to hold no segment yet.
    pub fn empty(dir: &Path, max_bytes_per_file: u64) -> SegmentLog {
        SegmentLog {
            dir: dir.into(),
            max_bytes_per_file,
            file: None,
            write: Position::default(),
        }
    }

    /// Where the next record will go.
    pub fn write_position(&self) -> Position {
        self.write
    }

    fn open_segment(&mut self, segment: u64) -> Result<(), LogError> {
        let path = segment_path(&self.dir, segment);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(at(&path))?;
        sync_dir(&self.dir)?;
        self.file = Some(file);
        self.write = Position { segment, offset: 0 };
        Ok(())
    }

    /// Appends `payloads` with one write (not yet durable: see [`SegmentLog::sync`]); returns
    /// where each record starts. On failure (a full disk) nothing of the batch stays in the
    /// log: the segment is cut back to where the batch began.
    pub fn append_batch<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<Vec<Position>, LogError> {
        let size: u64 = payloads
            .iter()
            .map(|p| HEADER + p.as_ref().len() as u64)
            .sum();
        let roll = self.file.is_none()
            || (self.write.offset > 0 && self.write.offset + size > self.max_bytes_per_file);
        if roll {
            let next = if self.file.is_none() && self.write.offset == 0 {
                self.write.segment
            } else {
                self.sync()?;
                self.write.segment + 1
            };
            self.open_segment(next)?;
        }
        let mut record = Vec::with_capacity(size as usize);
        let mut starts = Vec::with_capacity(payloads.len());
        let mut offset = self.write.offset;
        for payload in payloads {
            let payload = payload.as_ref();
            starts.push(Position {
                segment: self.write.segment,
                offset,
            });
            record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            record.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
            record.extend_from_slice(payload);
            offset += HEADER + payload.len() as u64;
        }
        let path = segment_path(&self.dir, self.write.segment);
        let Some(file) = self.file.as_mut() else {
            return Err(at(&path)(io::Error::other("segment not open")));
        };
        if let Err(e) = file.write_all(&record) {
            // Part of the batch may be in the file: cut it off so the log ends on a record.
            let start = self.write.offset;
            let repaired = file
                .set_len(start)
                .and_then(|()| file.seek(SeekFrom::Start(start)).map(|_| ()));
            if repaired.is_err() {
                // The next append starts a fresh segment rather than write after garbage.
                self.file = None;
            }
            return Err(at(&path)(e));
        }
        self.write.offset = offset;
        Ok(starts)
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<(), LogError> {
        match &self.file {
            Some(file) => file
                .sync_data()
                .map_err(at(&segment_path(&self.dir, self.write.segment))),
            None => Ok(()),
        }
    }

    /// A second handle on the current segment, so an fsync can run without holding the log.
    pub fn sync_handle(&self) -> Result<Option<File>, LogError> {
        match &self.file {
            Some(file) => file
                .try_clone()
                .map(Some)
                .map_err(at(&segment_path(&self.dir, self.write.segment))),
            None => Ok(None),
        }
    }

    /// Deletes every segment numbered below `segment` (never the one being written).
    /// Returns how many went.
    pub fn remove_below(&self, segment: u64) -> Result<usize, LogError> {
        let limit = segment.min(self.write.segment);
        let mut removed = 0;
        for number in segments(&self.dir)? {
            if number >= limit {
                break;
            }
            let path = segment_path(&self.dir, number);
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(at(&path)(e)),
            }
        }
        Ok(removed)
    }
}

fn read_whole(file: &mut File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What a reader found next.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// A whole record and where it starts.
    Record(Position, Vec<u8>),
    /// Damaged bytes at this position and of this length, passed over.
    Damaged(Position, u64),
    /// Nothing more has been written yet.
    End,
}

/// Reads records in order, across segments, a chunk at a time.
pub struct LogReader {
    dir: PathBuf,
    position: Position,
    /// The open segment and bytes read from it, starting at `buffered_from`.
    open: Option<(u64, File)>,
    buffer: Vec<u8>,
    buffered_from: u64,
}

impl LogReader {
    /// A reader from `from` (a record start or a segment's end).
    pub fn new(dir: &Path, from: Position) -> Self {
        LogReader {
            dir: dir.into(),
            position: from,
            open: None,
            buffer: Vec::new(),
            buffered_from: from.offset,
        }
    }

    /// Where the next record is read from.
    pub fn position(&self) -> Position {
        self.position
    }

    fn next_segment_exists(&self) -> bool {
        segment_path(&self.dir, self.position.segment + 1).exists()
    }

    /// Reads more of the current segment into the buffer; false at its end.
    fn fill(&mut self) -> Result<bool, LogError> {
        let path = segment_path(&self.dir, self.position.segment);
        if self
            .open
            .as_ref()
            .is_none_or(|(segment, _)| *segment != self.position.segment)
        {
            match File::open(&path) {
                Ok(file) => self.open = Some((self.position.segment, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(at(&path)(e)),
            }
            self.buffer.clear();
            self.buffered_from = self.position.offset;
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Ok(false);
        };
        // Drop what has been consumed, keep a partial record.
        let consumed = (self.position.offset - self.buffered_from) as usize;
        self.buffer.drain(..consumed.min(self.buffer.len()));
        self.buffered_from = self.position.offset;
        let from = self.buffered_from + self.buffer.len() as u64;
        file.seek(SeekFrom::Start(from)).map_err(at(&path))?;
        let have = self.buffer.len();
        self.buffer.resize(have + READ_CHUNK, 0);
        let read = file.read(&mut self.buffer[have..]).map_err(at(&path));
        let read = match read {
            Ok(n) => n,
            Err(e) => {
                self.buffer.truncate(have);
                return Err(e);
            }
        };
        self.buffer.truncate(have + read);
        Ok(read > 0)
    }

    /// The next record, a damaged stretch passed over, or the end of what is written.
    pub fn next_record(&mut self) -> Result<Item, LogError> {
        let mut reread = false;
        loop {
            let start = (self.position.offset.saturating_sub(self.buffered_from)) as usize;
            let in_buffer = self
                .open
                .as_ref()
                .is_some_and(|(s, _)| *s == self.position.segment)
                && self.position.offset >= self.buffered_from
                && start <= self.buffer.len();
            if in_buffer {
                match parse(&self.buffer[start..]) {
                    Parsed::Whole(payload, total) => {
                        let at = self.position;
                        let bytes =
                            self.buffer[start + payload.start..start + payload.end].to_vec();
                        self.position.offset += total;
                        return Ok(Item::Record(at, bytes));
                    }
                    Parsed::Bad(_) | Parsed::Short if !reread => {
                        // Bytes buffered past the log's end may be a failed write since cut
                        // off and overwritten: read them again before calling them damage.
                        reread = true;
                        self.buffer.clear();
                        self.buffered_from = self.position.offset;
                        continue;
                    }
                    Parsed::Bad(total) => {
                        let at = self.position;
                        self.position.offset += total;
                        return Ok(Item::Damaged(at, total));
                    }
                    Parsed::Short => {}
                }
            }
            if self.fill()? {
                continue;
            }
            // The end of this segment's bytes: move on if a later segment exists. Bytes left
            // over in a sealed segment are damage (a length prefix that lies).
            if !self.next_segment_exists() {
                return Ok(Item::End);
            }
            let leftover = self.buffered_from + self.buffer.len() as u64;
            let at = self.position;
            self.position = Position {
                segment: self.position.segment + 1,
                offset: 0,
            };
            self.open = None;
            self.buffer.clear();
            self.buffered_from = 0;
            if leftover > at.offset {
                return Ok(Item::Damaged(at, leftover - at.offset));
            }
        }
    }
}

/// Copies `len` damaged bytes at `at` to `<segment>.log.bad` for inspection.
pub fn quarantine(dir: &Path, at: Position, len: u64) -> Result<(), LogError> {
    let path = segment_path(dir, at.segment);
    let mut file = File::open(&path).map_err(self::at(&path))?;
    file.seek(SeekFrom::Start(at.offset))
        .map_err(self::at(&path))?;
    let mut bytes = Vec::new();
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(self::at(&path))?;
    let bad = path.with_extension("log.bad");
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&bad)
        .map_err(self::at(&bad))?;
    out.write_all(&bytes).map_err(self::at(&bad))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> (Vec<Vec<u8>>, u64) {
        let mut reader = LogReader::new(dir, Position::default());
        let mut out = Vec::new();
        let mut damaged = 0;
        loop {
            match reader.next_record().unwrap() {
                Item::Record(_, payload) => out.push(payload),
                Item::Damaged(at, len) => {
                    quarantine(dir, at, len).unwrap();
                    damaged += 1;
                }
                Item::End => return (out, damaged),
            }
        }
    }

    #[test]
    fn appends_across_segments_and_reads_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recovery, last) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!((recovery.truncated_bytes, last), (0, None));
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 10 + i as usize]).collect();
        for p in &payloads {
            log.append_batch(&[p]).unwrap();
        }
        log.sync().unwrap();
        assert!(
            segments(dir.path()).unwrap().len() > 3,
            "records rolled into several segments"
        );
        assert_eq!(read_all(dir.path()), (payloads.clone(), 0));
        drop(log);
        let (mut log, recovery, last) = SegmentLog::open(dir.path(), 64).unwrap();
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(last.as_deref(), Some(&payloads[19][..]));
        log.append_batch(&[b"after"]).unwrap();
        let (all, _) = read_all(dir.path());
        assert_eq!(all.len(), 21);
        assert_eq!(all.last().unwrap(), b"after");
    }

    #[test]
    fn a_batch_lands_in_one_segment_with_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 100).unwrap();
        let starts = log
            .append_batch(&[[1u8; 30], [2u8; 30], [3u8; 30]])
            .unwrap();
        assert_eq!(starts.len(), 3);
        assert!(starts.iter().all(|p| p.segment == 0));
        let next = log.append_batch(&[[4u8; 30]]).unwrap();
        assert_eq!(
            next[0],
            Position {
                segment: 1,
                offset: 0
            }
        );
        assert_eq!(read_all(dir.path()).0.len(), 4);
    }

    #[test]
    fn a_torn_tail_is_truncated_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append_batch(&[b"one", b"two"]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        // A partial record: a header promising 100 bytes and 5 of them.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&100u32.to_be_bytes()).unwrap();
        file.write_all(&[0, 0, 0, 0, 1, 2, 3, 4, 5]).unwrap();
        drop(file);
        let (log, recovery, last) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(recovery.truncated_bytes, 13);
        assert_eq!(last.as_deref(), Some(&b"two"[..]));
        assert_eq!(
            read_all(dir.path()),
            (vec![b"one".to_vec(), b"two".to_vec()], 0)
        );

        // A whole last record whose checksum fails is a torn tail too.
        drop(log);
        let size = fs::metadata(&path).unwrap().len();
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_log, recovery, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(recovery.truncated_bytes, HEADER + 3);
        assert_eq!(fs::metadata(&path).unwrap().len(), size - HEADER - 3);
        assert_eq!(read_all(dir.path()), (vec![b"one".to_vec()], 0));
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_reported_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        let starts = log
            .append_batch(&[&b"first"[..], &b"middle"[..], &b"last"[..]])
            .unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[(starts[1].offset + HEADER) as usize] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_log, recovery, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            recovery.truncated_bytes, 0,
            "mid-file damage is not a torn tail"
        );
        assert_eq!(
            read_all(dir.path()),
            (vec![b"first".to_vec(), b"last".to_vec()], 1)
        );
        let bad = fs::read(path.with_extension("log.bad")).unwrap();
        assert_eq!(bad.len() as u64, HEADER + 6);
    }

    #[test]
    fn a_lying_length_in_a_sealed_segment_skips_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 40).unwrap();
        log.append_batch(&[[1u8; 10], [2u8; 10]]).unwrap();
        log.append_batch(&[[3u8; 30]]).unwrap();
        drop(log);
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[18..22].copy_from_slice(&1000u32.to_be_bytes());
        fs::write(&path, &bytes).unwrap();
        let (all, damaged) = read_all(dir.path());
        assert_eq!(all, vec![vec![1u8; 10], vec![3u8; 30]]);
        assert_eq!(damaged, 1);
    }

    #[test]
    fn bytes_read_past_the_end_are_read_again_before_they_count_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 1 << 20).unwrap();
        log.append_batch(&[b"one"]).unwrap();
        // A write that failed half way leaves bytes past the end, which a reader buffers.
        let path = segment_path(dir.path(), 0);
        let end = log.write_position().offset;
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[9u8; 20])
            .unwrap();
        let mut reader = LogReader::new(dir.path(), Position::default());
        assert!(matches!(reader.next_record().unwrap(), Item::Record(..)));
        // They are cut off, and the next record is written where they were.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(end)
            .unwrap();
        log.append_batch(&[b"two"]).unwrap();
        match reader.next_record().unwrap() {
            Item::Record(_, payload) => assert_eq!(payload, b"two"),
            other => panic!("expected the new record, got {other:?}"),
        }
    }

    #[test]
    fn old_segments_are_removed_but_never_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = SegmentLog::open(dir.path(), 16).unwrap();
        for i in 0..4u8 {
            log.append_batch(&[[i; 10]]).unwrap();
        }
        assert_eq!(segments(dir.path()).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(log.remove_below(2).unwrap(), 2);
        assert_eq!(log.remove_below(99).unwrap(), 1);
        assert_eq!(segments(dir.path()).unwrap(), vec![3]);
    }
}
