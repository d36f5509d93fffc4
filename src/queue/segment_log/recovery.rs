//! What the bytes of a log's last segment hold, and where the log ends once its torn tail is
//! cut: the pure half of recovery at open, over bytes (the writer reads the file and cuts it).

use std::ops::Range;

use super::header::{self, Header};
use super::record::{parse, Parsed};

/// What [`scan`] found in a segment's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// What the first bytes say about the segment's format.
    pub header: Header,
    /// Where the first record is (0 in a segment of an earlier release, else after the
    /// header).
    pub data_start: usize,
    /// Where the log ends: after the last whole record, at `data_start` when there is none,
    /// and 0 when the segment is `fresh`. Everything from here on is a torn tail.
    pub end: usize,
    /// The last whole record's payload, as a range of the bytes.
    pub last_payload: Option<Range<usize>>,
    /// The segment holds nothing whole and a cut tore it (a header cut short, or a damaged
    /// header or an old-format segment with no whole record): it is to be emptied, and gets
    /// a header with its next records.
    pub fresh: bool,
}

/// Walks the records of a last segment's `bytes` (from offset 0). The log's end is after the
/// last record that is whole: a bad checksum with whole records after it is mid-file damage
/// (readers skip it); a bad checksum on the last record, a partial record or zeros to the end
/// are a torn tail. A header naming a newer format is reported in [`Scan::header`], for the
/// caller to refuse; it never fails.
pub fn scan(bytes: &[u8]) -> Scan {
    let header = header::parse(bytes);
    let data_start = header.data_start() as usize;
    let (mut offset, mut end) = (data_start, data_start);
    let mut last_payload = None;
    let mut walk = header != Header::Partial;
    while walk {
        match parse(&bytes[offset.min(bytes.len())..]) {
            Parsed::Whole(payload, total) => {
                last_payload = Some(offset + payload.start..offset + payload.end);
                offset += total as usize;
                end = offset;
            }
            Parsed::Bad(total) => offset += total as usize,
            Parsed::Short => walk = false,
        }
    }
    let fresh = match header {
        Header::Partial => true,
        Header::Legacy | Header::Damaged => last_payload.is_none(),
        Header::Current | Header::Newer(_) => false,
    };
    if fresh {
        end = 0;
    }
    Scan {
        header,
        data_start,
        end,
        last_payload,
        fresh,
    }
}
