//! A segment's first 16 bytes: `[b"RNSQLOG\0"][4-byte BE format version][4-byte BE CRC32C of
//! the 12 bytes before]`, and how to tell them from a segment written before headers existed.

/// The magic every headered segment starts with.
pub const MAGIC: &[u8; 8] = b"RNSQLOG\0";

/// The format this version writes, and the newest it reads. Version 0 is the headerless
/// format of earlier releases: records from offset 0.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the header; a headered segment's first record starts here.
pub const SEGMENT_HEADER: u64 = 16;

/// The header of a new segment.
pub fn encode() -> [u8; SEGMENT_HEADER as usize] {
    let mut out = [0u8; SEGMENT_HEADER as usize];
    out[..8].copy_from_slice(MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    let crc = crc32c::crc32c(&out[..12]);
    out[12..].copy_from_slice(&crc.to_be_bytes());
    out
}

/// What a segment's first bytes say about its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// No header: a segment of an earlier release, records from offset 0.
    Legacy,
    /// This version's header: records from [`SEGMENT_HEADER`].
    Current,
    /// A header naming a newer version; its records cannot be read.
    Newer(u32),
    /// The bytes end inside the header (nothing written yet, a first write cut short, or one
    /// still being read).
    Partial,
    /// The magic is whole but the version or checksum is not one this version wrote.
    Damaged,
}

impl Header {
    /// Where the first record is.
    pub fn data_start(self) -> u64 {
        match self {
            Header::Legacy => 0,
            _ => SEGMENT_HEADER,
        }
    }
}

/// Reads the header from a segment's first bytes (`bytes` starts at offset 0).
pub fn parse(bytes: &[u8]) -> Header {
    let magic = bytes.len().min(MAGIC.len());
    if bytes[..magic] != MAGIC[..magic] {
        return Header::Legacy;
    }
    if (bytes.len() as u64) < SEGMENT_HEADER {
        return Header::Partial;
    }
    let version = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    // A newer version may lay out the rest of its header differently: the version alone
    // decides, before the checksum.
    if version > FORMAT_VERSION {
        return Header::Newer(version);
    }
    let crc = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if version == FORMAT_VERSION && crc == crc32c::crc32c(&bytes[..12]) {
        Header::Current
    } else {
        Header::Damaged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_headers_from_records_and_from_their_own_prefixes() {
        let header = encode();
        assert_eq!(parse(&header), Header::Current);
        for cut in 0..header.len() {
            assert_eq!(parse(&header[..cut]), Header::Partial, "cut at {cut}");
        }
        // A format-0 segment starts with a record: a length whose first byte is 0.
        assert_eq!(parse(&[0, 0, 0, 40, 1, 2, 3, 4]), Header::Legacy);
        assert_eq!(parse(&[0u8; 64]), Header::Legacy);
        let mut newer = header;
        newer[8..12].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(parse(&newer), Header::Newer(7));
        let mut damaged = header;
        damaged[13] ^= 1;
        assert_eq!(parse(&damaged), Header::Damaged);
    }
}
