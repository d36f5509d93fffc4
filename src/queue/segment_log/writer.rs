//! The writing end of a segment log ([`SegmentLog`]): opening it (repairing a torn tail),
//! appending batches, fsyncing, starting segments and deleting old ones.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::reader::{Item, LogReader};
use super::record::{self, parse, Parsed, HEADER};
use super::{at, segment_path, segments, sync_dir, LogError, Position};

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
            last_payload = last_record_before(dir, &numbers)?;
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
        let mut bytes = Vec::with_capacity(size as usize);
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

/// The payload of the last whole record in the segments before the last of `numbers`.
fn last_record_before(dir: &Path, numbers: &[u64]) -> Result<Option<Vec<u8>>, LogError> {
    for &earlier in numbers.iter().rev().skip(1) {
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
