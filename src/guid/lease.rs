//! The ID lease file (`<data-path>/guid.lease`): the highest ID time [`super::GuidFactory`]
//! may hand out before it writes a new lease, so that a restarted broker starts above every ID
//! the previous one gave, whatever the wall clock says now.
//!
//! Format, big-endian: `RNSQGID1`, the lease's end as a `u64` in ID time units (`UnixNano >>
//! 20` since nsqd's epoch), then the CRC32C of the 16 bytes before it.
//!
//! [`save`] writes `<path>.tmp`, fdatasyncs it, renames it over the old file and fsyncs the
//! directory: a crash or power cut at any point leaves the old lease or the new one, whole, and
//! perhaps a stray `.tmp` that the next save overwrites.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The lease's name inside the data path.
pub const LEASE_FILE: &str = "guid.lease";

const MAGIC: &[u8; 8] = b"RNSQGID1";
const LEN: usize = 8 + 8 + 4;

/// Why the lease could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {what}; delete it to start IDs from the wall clock", path.display())]
    Corrupt { path: PathBuf, what: &'static str },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> LeaseError + '_ {
    move |source| LeaseError::Io {
        path: path.into(),
        source,
    }
}

/// The lease saved at `path`: `Ok(None)` when there is none (first start, or a data path from
/// Go nsqd or an older rnsq).
///
/// # Errors
/// [`LeaseError::Io`] when the file exists but cannot be read; [`LeaseError::Corrupt`] when it
/// is not a whole lease (wrong length, magic or checksum).
pub fn load(path: &Path) -> Result<Option<i64>, LeaseError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let corrupt = |what| LeaseError::Corrupt {
        path: path.into(),
        what,
    };
    let record: &[u8; LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("not 20 bytes long"))?;
    let (body, crc) = record.split_at(16);
    if &body[..8] != MAGIC {
        return Err(corrupt("not an ID lease (bad magic)"));
    }
    if crc32c::crc32c(body).to_be_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&body[8..16]);
    i64::try_from(u64::from_be_bytes(end))
        .map(Some)
        .map_err(|_| corrupt("lease beyond the ID time range"))
}

/// Saves `end` as the lease at `path`, durably (see the module docs).
///
/// # Errors
/// The first I/O error; the old lease, if any, is then still in place.
pub fn save(path: &Path, end: i64) -> Result<(), LeaseError> {
    let mut out = Vec::with_capacity(LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(end.max(0) as u64).to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    {
        let mut file = fs::File::create(&temp).map_err(io_error(&temp))?;
        file.write_all(&out).map_err(io_error(&temp))?;
        // The data before the rename, else a cut could leave the name on an empty file.
        file.sync_data().map_err(io_error(&temp))?;
    }
    fs::rename(&temp, path).map_err(io_error(path))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    crate::durable_dir::sync(dir).map_err(io_error(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_lease_loads_back_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEASE_FILE);
        assert_eq!(load(&path).unwrap(), None);
        save(&path, 123_456_789).unwrap();
        assert_eq!(load(&path).unwrap(), Some(123_456_789));
        save(&path, 987_654_321).unwrap();
        assert_eq!(load(&path).unwrap(), Some(987_654_321));

        let mut bytes = fs::read(&path).unwrap();
        bytes[12] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(load(&path), Err(LeaseError::Corrupt { .. })));
        fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(load(&path), Err(LeaseError::Corrupt { .. })));
    }
}
