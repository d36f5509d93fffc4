//! nsqd's first boot on a data path: importing the metadata a Go nsqd left there
//! (`nsqd.dat`, else the legacy `nsqd.<id>.dat`) into the store, once, before the loader
//! replays it.

use std::path::{Path, PathBuf};

use super::StartError;
use crate::meta_store::MetaStore;
use crate::nsqd_dat::{self, DatError};

/// The Go metadata file a first boot imports: `nsqd.dat`, else the legacy `nsqd.<id>.dat`.
fn go_metadata_file(data_path: &Path, node_id: i64) -> Option<PathBuf> {
    [
        nsqd_dat::FILE_NAME.to_string(),
        format!("nsqd.{node_id}.dat"),
    ]
    .into_iter()
    .map(|name| data_path.join(name))
    .find(|path| path.is_file())
}

/// First boot on this data path: import a Go nsqd's metadata file if there is one.
pub(super) fn bootstrap(
    store: &MetaStore,
    data_path: &Path,
    node_id: i64,
) -> Result<(), StartError> {
    if store.is_bootstrapped()? {
        return Ok(());
    }
    let Some(path) = go_metadata_file(data_path, node_id) else {
        store.bootstrap(None)?;
        return Ok(());
    };
    let parsed = match nsqd_dat::read(&path) {
        Ok(parsed) => parsed,
        Err(DatError::Empty { .. }) => {
            tracing::warn!(file = %path.display(), "Go metadata file is empty; starting with no topics");
            store.bootstrap(None)?;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for skipped in &parsed.skipped {
        tracing::warn!(file = %path.display(), kind = skipped.kind, name = %skipped.name, reason = skipped.reason, "not imported");
    }
    let summary = store.bootstrap(Some(&parsed.metadata))?;
    tracing::info!(
        file = %path.display(),
        topics = summary.topics_created,
        channels = summary.channels_created,
        "imported Go nsqd metadata"
    );
    Ok(())
}
