//! The bytes of one record: `[4-byte BE payload length][4-byte BE CRC32C of the payload]
//! [payload]`, written by [`encode_into`] and read back by [`parse`]. A payload is never
//! empty, so a length of 0 never starts a record.

/// Bytes before each payload: length and checksum.
pub const HEADER: u64 = 8;

/// One record parsed from bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole record: its payload's range in the bytes and its total length.
    Whole(std::ops::Range<usize>, u64),
    /// Not a record: this many bytes are damaged (a checksum that fails, or a run of zeros
    /// with data after it).
    Bad(u64),
    /// The bytes end inside a record, or are zeros to their end: nothing whole (yet).
    Short,
}

/// The record at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    if (bytes.len() as u64) < HEADER {
        return Parsed::Short;
    }
    let len = u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    if len == 0 {
        return zeros(bytes);
    }
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

/// `bytes` start with a zero length. Zeros are what a file holds where its size was made
/// durable before its data (a power cut between a write and its fdatasync), and since the
/// CRC32C of nothing is 0, eight zero bytes would otherwise pass for an empty record.
///
/// Zeros to the end are a torn tail: [`Parsed::Short`]. Zeros with data after them (a hole,
/// which no cut makes; bit rot might) are damage up to where the next record starts: its first
/// non-zero byte is inside its length, so it starts at most 3 bytes before that byte. The
/// first such start holding a whole record is taken, else the earliest.
fn zeros(bytes: &[u8]) -> Parsed {
    let Some(data) = bytes.iter().position(|&b| b != 0) else {
        return Parsed::Short;
    };
    // `data` >= 4 (the length is zero), so every candidate is past the zero length and its own
    // length includes `data`: none recurses here.
    let earliest = data - 3;
    (earliest..=data)
        .find(|&start| matches!(parse(&bytes[start..]), Parsed::Whole(..)))
        .map_or(Parsed::Bad(earliest as u64), |start| {
            Parsed::Bad(start as u64)
        })
}

/// Appends the record holding `payload` (not empty) to `out`; returns its total length.
pub fn encode_into(out: &mut Vec<u8>, payload: &[u8]) -> u64 {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    HEADER + payload.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(&mut out, payload);
        out
    }

    #[test]
    fn zeros_are_never_a_record() {
        // Regression: a zero-filled tail parsed as empty records (length 0, CRC32C("") = 0).
        assert_eq!(parse(&[0u8; 8]), Parsed::Short);
        assert_eq!(parse(&[0u8; 4096]), Parsed::Short);
        // A hole of zeros before a record is damage up to the record, whatever its length.
        for len in [1usize, 300, 70_000] {
            let next = record(&vec![7u8; len]);
            for hole in [4usize, 5, 8, 33] {
                let mut bytes = vec![0u8; hole];
                bytes.extend_from_slice(&next);
                assert_eq!(
                    parse(&bytes),
                    Parsed::Bad(hole as u64),
                    "hole {hole}, record of {len}"
                );
                assert!(matches!(parse(&bytes[hole..]), Parsed::Whole(..)));
            }
        }
    }
}
