//! Directory entries that survive a power cut: a new file, directory or rename is durable only
//! once its parent directory has been fsynced (POSIX promises nothing before that, and a
//! filesystem may lose the entry even though the file's own data was fsynced).

use std::fs::{self, File};
use std::io;
use std::path::Path;

/// fsyncs directory `dir`, making the entries created, renamed or removed in it durable.
///
/// # Errors
/// The error of opening or fsyncing `dir`.
pub fn sync(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing ancestors, like [`fs::create_dir_all`], and fsyncs the parent
/// of each directory it created, so that the whole path survives a power cut.
///
/// # Errors
/// The first error of creating a directory or fsyncing a parent; directories created before it
/// stay.
pub fn create_all(dir: &Path) -> io::Result<()> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync(parent)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn creates_every_missing_level() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        super::create_all(&deep).unwrap();
        assert!(deep.is_dir());
        super::create_all(&deep).unwrap();
    }
}
