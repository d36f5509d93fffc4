//! Runs the numbered schema steps in `migrations/` against a store being opened.
//!
//! The version lives under [`VERSION_KEY`] in the [`META_TREE`] tree as a big-endian u32; a store
//! without it is version 0 (new and empty). Every step bumps the version in the same
//! transaction as its own writes.

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

#[path = "../../migrations/v0001_topics_and_channels.rs"]
mod v0001;
#[path = "../../migrations/v0002_embed_channels.rs"]
mod v0002;

/// The tree that holds the store's own bookkeeping.
pub(crate) const META_TREE: &str = "meta";
/// The key of the schema version in [`META_TREE`].
pub(crate) const VERSION_KEY: &[u8] = b"schema_version";
/// The tree of topic records.
pub(crate) const TOPICS_TREE: &str = "topics";

type Step = fn(&sled::Db) -> Result<(), MigrationError>;

/// Every step, in order: entry `i` takes the store from version `i` to `i + 1`.
const STEPS: [Step; 2] = [v0001::up, v0002::up];

/// The schema version this build writes.
pub const CURRENT_VERSION: u32 = STEPS.len() as u32;

/// Why a step failed. Nothing of the step is applied when it fails.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrationError {
    #[error("{0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Corrupt(String),
}

impl From<sled::transaction::TransactionError<MigrationError>> for MigrationError {
    fn from(e: sled::transaction::TransactionError<MigrationError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => MigrationError::Storage(e),
        }
    }
}

/// Reads the schema version: 0 when the store has none yet.
pub(crate) fn read_version(db: &sled::Db) -> Result<u32, MigrationError> {
    let meta = db.open_tree(META_TREE)?;
    match meta.get(VERSION_KEY)? {
        None => Ok(0),
        Some(bytes) => decode_version(&bytes),
    }
}

fn decode_version(bytes: &[u8]) -> Result<u32, MigrationError> {
    let array: [u8; 4] = bytes.try_into().map_err(|_| {
        MigrationError::Corrupt(format!("schema version is {} bytes, not 4", bytes.len()))
    })?;
    Ok(u32::from_be_bytes(array))
}

/// Inside a step's transaction: checks that the store is at `from` and moves it to `from + 1`.
pub(crate) fn bump_version(
    meta: &TransactionalTree,
    from: u32,
) -> Result<(), ConflictableTransactionError<MigrationError>> {
    let found = match meta.get(VERSION_KEY)? {
        None => 0,
        Some(bytes) => decode_version(&bytes).map_err(ConflictableTransactionError::Abort)?,
    };
    if found != from {
        return Err(ConflictableTransactionError::Abort(
            MigrationError::Corrupt(format!("expected schema version {from}, found {found}")),
        ));
    }
    meta.insert(VERSION_KEY, &(from + 1).to_be_bytes())?;
    Ok(())
}

/// What [`run`] found and did.
pub(crate) enum Outcome {
    /// The store is at `CURRENT_VERSION`, having been at `from`.
    Current { from: u32 },
    /// The store is newer than this build.
    TooNew { found: u32 },
}

/// Brings the store up to [`CURRENT_VERSION`], one step at a time, each flushed.
///
/// # Errors
/// The failing step's version and error; the store stays at the version before that step.
pub(crate) fn run(db: &sled::Db) -> Result<Outcome, (u32, MigrationError)> {
    let from = read_version(db).map_err(|e| (0, e))?;
    if from > CURRENT_VERSION {
        return Ok(Outcome::TooNew { found: from });
    }
    for (index, step) in STEPS.iter().enumerate().skip(from as usize) {
        let target = index as u32 + 1;
        step(db).map_err(|e| (target, e))?;
        db.flush().map_err(|e| (target, e.into()))?;
        tracing::info!(version = target, "metadata store migrated");
    }
    Ok(Outcome::Current { from })
}
