//! Reading a segment log: [`LogReader`] returns records in order across segments, a chunk of
//! the file at a time, passing over (and reporting) damage; [`quarantine`] keeps damaged
//! bytes aside.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::header::{self, Header, FORMAT_VERSION, SEGMENT_HEADER};
use super::record::{parse, Parsed};
use super::{segment_path, LogError, Position};

/// How much a reader asks the file for at once.
const READ_CHUNK: usize = 256 * 1024;

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
    /// A reader from `from`: a record start, a segment's end, or offset 0 of a segment (its
    /// first record, after the header if it has one).
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
        let at = super::at(&path);
        if self
            .open
            .as_ref()
            .is_none_or(|(segment, _)| *segment != self.position.segment)
        {
            match File::open(&path) {
                Ok(file) => self.open = Some((self.position.segment, file)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(at(e)),
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
        file.seek(SeekFrom::Start(from)).map_err(&at)?;
        let have = self.buffer.len();
        self.buffer.resize(have + READ_CHUNK, 0);
        let read = match file.read(&mut self.buffer[have..]) {
            Ok(n) => n,
            Err(e) => {
                self.buffer.truncate(have);
                return Err(at(e));
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
            let mut in_buffer = self
                .open
                .as_ref()
                .is_some_and(|(s, _)| *s == self.position.segment)
                && self.position.offset >= self.buffered_from
                && start <= self.buffer.len();
            if in_buffer && self.position.offset == 0 {
                // The start of a segment: step over its header, if it has one.
                match header::parse(&self.buffer) {
                    Header::Legacy => {}
                    Header::Current => {
                        self.position.offset = SEGMENT_HEADER;
                        continue;
                    }
                    Header::Damaged => {
                        let at = self.position;
                        self.position.offset = SEGMENT_HEADER;
                        return Ok(Item::Damaged(at, SEGMENT_HEADER));
                    }
                    Header::Newer(found) => {
                        return Err(LogError::NewerFormat {
                            path: segment_path(&self.dir, self.position.segment),
                            found,
                            supported: FORMAT_VERSION,
                        })
                    }
                    // Not all read yet, or all there is (then: the end, or if a later
                    // segment exists, damage passed over below).
                    Header::Partial => in_buffer = false,
                }
            }
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
///
/// Not fsynced: nothing reads the copy back, and a cut that loses it loses only a copy of
/// bytes still in the segment.
pub fn quarantine(dir: &Path, at: Position, len: u64) -> Result<(), LogError> {
    let path = segment_path(dir, at.segment);
    let mut file = File::open(&path).map_err(super::at(&path))?;
    file.seek(SeekFrom::Start(at.offset))
        .map_err(super::at(&path))?;
    let mut bytes = Vec::new();
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(super::at(&path))?;
    let bad = path.with_extension("log.bad");
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&bad)
        .map_err(super::at(&bad))?;
    out.write_all(&bytes).map_err(super::at(&bad))?;
    Ok(())
}
