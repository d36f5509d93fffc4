//! The writing end of a segment log ([`SegmentLog`]): opening it (repairing a torn tail),
//! appending batches, fsyncing, starting segments and deleting old ones.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::header::{self, Header, FORMAT_VERSION, SEGMENT_HEADER};
use super::reader::{Item, LogReader};
use super::record::{self, HEADER};
use super::recovery::{scan, Scan};
use super::{at, live_segments, segment_path, segments, sync_dir, LogError, Position};

/// What opening found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment (a torn tail, or a torn header: the whole
    /// segment).
    pub truncated_bytes: u64,
    /// Segments below a gap in the numbering, left out of the log (see
    /// [`super::live_segments`]).
    pub stale_segments: usize,
}

/// The writing end of a log. The current segment file is created with the first append.
pub struct SegmentLog {
    dir: PathBuf,
    max_bytes_per_file: u64,
    file: Option<File>,
    write: Position,
    /// Where the current segment's first record is: 0 in a segment of an earlier release,
    /// [`SEGMENT_HEADER`] in one with a header.
    data_start: u64,
    /// The current segment is empty: the next append writes its header first.
    header_pending: bool,
    /// The next append starts a new segment (the current one ends in bytes that could not be
    /// cut off, or holds positions a saved cursor may point past).
    roll_pending: bool,
}

impl SegmentLog {
    /// Opens (creating the directory) the log in `dir`, truncating a torn tail of the last
    /// segment. Returns the log, what was repaired, and the last whole record's payload.
    ///
    /// # Errors
    /// [`LogError::NewerFormat`] if a segment was written in a newer format (nothing is
    /// changed); [`LogError::Io`] if reading or repairing fails.
    pub fn open(
        dir: &Path,
        max_bytes_per_file: u64,
    ) -> Result<(SegmentLog, Recovery, Option<Vec<u8>>), LogError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        let all = segments(dir)?;
        let numbers = live_segments(dir)?;
        let mut recovery = Recovery {
            stale_segments: all.len() - numbers.len(),
            ..Recovery::default()
        };
        if recovery.stale_segments > 0 {
            tracing::warn!(dir = %dir.display(), stale = ?&all[..recovery.stale_segments], "ignoring segments below a gap in the numbering (deleted before a power cut undid the delete)");
        }
        let Some((&last, sealed)) = numbers.split_last() else {
            return Ok((SegmentLog::empty(dir, max_bytes_per_file), recovery, None));
        };
        // Refuse a newer format before changing anything.
        for &number in sealed {
            newer_refused(&segment_path(dir, number), read_header(dir, number)?)?;
        }
        let path = segment_path(dir, last);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(at(&path))?;
        let bytes = read_whole(&mut file).map_err(at(&path))?;
        let Scan {
            header,
            data_start,
            end,
            last_payload,
            fresh,
        } = scan(&bytes);
        newer_refused(&path, header)?;
        let size = bytes.len() as u64;
        recovery.truncated_bytes = size - end as u64;
        if (end as u64) < size {
            file.set_len(end as u64).map_err(at(&path))?;
            // Durable before anything is appended: else a later cut could bring the torn
            // bytes back between the records before them and those after.
            file.sync_all().map_err(at(&path))?;
        }
        file.seek(SeekFrom::Start(end as u64)).map_err(at(&path))?;
        let mut last_payload = last_payload.map(|r| bytes[r].to_vec());
        if last_payload.is_none() {
            // The last segment holds nothing whole: the last record is in an earlier one.
            last_payload = last_record_in(dir, sealed)?;
        }
        let log = SegmentLog {
            dir: dir.into(),
            max_bytes_per_file,
            file: Some(file),
            write: Position {
                segment: last,
                offset: if fresh { SEGMENT_HEADER } else { end as u64 },
            },
            data_start: if fresh {
                SEGMENT_HEADER
            } else {
                data_start as u64
            },
            header_pending: fresh,
            roll_pending: false,
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
            data_start: SEGMENT_HEADER,
            header_pending: true,
            roll_pending: false,
        }
    }

    /// Where the next record will go (offset 0 of segment 0 before the first append, which
    /// readers read as the first record of that segment).
    pub fn write_position(&self) -> Position {
        self.write
    }

    /// Makes the next append start a new segment, so that no record is ever written at a
    /// position of the current segment past its end now.
    pub fn roll_on_next_append(&mut self) {
        if self.file.is_some() {
            self.roll_pending = true;
        }
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
        // The new entry is durable before any record is written to the file: a durable OK
        // for a record in it then needs only the file's fdatasync, and a cut never leaves a
        // gap where this segment should be.
        sync_dir(&self.dir)?;
        self.file = Some(file);
        self.write = Position {
            segment,
            offset: SEGMENT_HEADER,
        };
        self.data_start = SEGMENT_HEADER;
        self.header_pending = true;
        self.roll_pending = false;
        Ok(())
    }

    /// Appends `payloads` (none empty) with one write (not yet durable: see
    /// [`SegmentLog::sync`]); returns where each record starts. On failure (a full disk)
    /// nothing of the batch stays in the log: the segment is cut back to where the batch
    /// began.
    pub fn append_batch<P: AsRef<[u8]>>(
        &mut self,
        payloads: &[P],
    ) -> Result<Vec<Position>, LogError> {
        if payloads.iter().any(|p| p.as_ref().is_empty()) {
            // A zero length is how readers tell zeros from records.
            let path = segment_path(&self.dir, self.write.segment);
            return Err(at(&path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an empty record cannot be stored",
            )));
        }
        let size: u64 = payloads
            .iter()
            .map(|p| HEADER + p.as_ref().len() as u64)
            .sum();
        let first_segment = self.file.is_none();
        let has_records = self.write.offset > self.data_start;
        let roll = first_segment
            || self.roll_pending
            || (has_records && self.write.offset + size > self.max_bytes_per_file);
        if roll {
            let next = if first_segment {
                self.write.segment
            } else {
                // Everything in this segment is durable before the next exists: an fsync of
                // the new segment then covers every record before it (group commit across a
                // roll), and only the last segment can be torn.
                self.sync()?;
                self.write.segment + 1
            };
            self.open_segment(next)?;
        }
        let mut bytes = Vec::with_capacity((SEGMENT_HEADER + size) as usize);
        if self.header_pending {
            bytes.extend_from_slice(&header::encode());
        }
        let mut starts = Vec::with_capacity(payloads.len());
        let mut offset = self.write.offset;
        for payload in payloads {
            starts.push(Position {
                segment: self.write.segment,
                offset,
            });
            offset += record::encode_into(&mut bytes, payload.as_ref());
        }
        let path = segment_path(&self.dir, self.write.segment);
        let Some(file) = self.file.as_mut() else {
            return Err(at(&path)(io::Error::other("segment not open")));
        };
        if let Err(e) = file.write_all(&bytes) {
            // Part of the batch may be in the file: cut it off so the log ends on a record.
            let start = if self.header_pending {
                0
            } else {
                self.write.offset
            };
            let repaired = file
                .set_len(start)
                .and_then(|()| file.seek(SeekFrom::Start(start)).map(|_| ()));
            if repaired.is_err() {
                // The next append starts a fresh segment rather than write after garbage.
                // The file stays open: the records before the batch are still to be
                // fsynced (by the roll, or by a durable publisher's sync of this segment).
                self.roll_pending = true;
            }
            return Err(at(&path)(e));
        }
        self.header_pending = false;
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
    /// Records in earlier segments were fsynced when the current one was started.
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
    ///
    /// The unlinks are not made durable (no directory fsync), on purpose: every message in
    /// these segments is finished, so a cut that brings one back only delivers finished
    /// messages again (at least once), or leaves a gap below the log that opening ignores
    /// ([`super::live_segments`]).
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

/// The header at the start of segment `number` in `dir`.
fn read_header(dir: &Path, number: u64) -> Result<Header, LogError> {
    let path = segment_path(dir, number);
    let mut bytes = Vec::with_capacity(SEGMENT_HEADER as usize);
    File::open(&path)
        .and_then(|f| f.take(SEGMENT_HEADER).read_to_end(&mut bytes))
        .map_err(at(&path))?;
    Ok(header::parse(&bytes))
}

/// Refuses a segment whose header names a newer format.
fn newer_refused(path: &Path, header: Header) -> Result<(), LogError> {
    match header {
        Header::Newer(found) => Err(LogError::NewerFormat {
            path: path.into(),
            found,
            supported: FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

/// The payload of the last whole record in the segments `numbers`.
fn last_record_in(dir: &Path, numbers: &[u64]) -> Result<Option<Vec<u8>>, LogError> {
    for &earlier in numbers.iter().rev() {
        let mut last_payload = None;
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
            return Ok(last_payload);
        }
    }
    Ok(None)
}

fn read_whole(file: &mut File) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}
