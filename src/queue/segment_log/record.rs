//! The bytes of one record: `[4-byte BE payload length][4-byte BE CRC32C of the payload]
//! [payload]`, written by [`encode_into`] and read back by [`parse`].

/// Bytes before each payload: length and checksum.
pub const HEADER: u64 = 8;

/// One record parsed from bytes.
pub(super) enum Parsed {
    /// A whole record: its payload's range in the bytes and its total length.
    Whole(std::ops::Range<usize>, u64),
    /// The checksum fails; the record spans this many bytes.
    Bad(u64),
    /// The bytes end inside the header or payload.
    Short,
}

/// The record at the start of `bytes`.
pub(super) fn parse(bytes: &[u8]) -> Parsed {
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

/// Appends the record holding `payload` to `out`; returns its total length.
pub(super) fn encode_into(out: &mut Vec<u8>, payload: &[u8]) -> u64 {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
    HEADER + payload.len() as u64
}
