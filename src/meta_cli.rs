//! `rnsq meta export|import|check`: metadata in and out of a data path.
//!
//! `export` reads a consistent snapshot: from the store when no broker runs on the data path,
//! else from the running broker (sled's files belong to it) via its `GET /meta/export`.
//! `import` and `check` need the store to themselves, so they refuse while a broker runs.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::console::say;
use crate::data_lock::{self, DataLock, LockError};
use crate::meta_store::{self, ImportMode, MetaStore, OpenError, StoreError};
use crate::nsqd_dat::{self, DatError};

/// Why a meta command failed; the message names the file or path and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum MetaCliError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "data path {path} is in use by {holder}; stop the broker first (import and check need the store to themselves)"
    )]
    BrokerRunning { path: PathBuf, holder: String },
    #[error("no metadata store at {0} (nothing to export or check)")]
    NoStore(PathBuf),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    File(#[from] DatError),
    #[error("cannot ask the broker at {address}: {reason}")]
    Broker { address: String, reason: String },
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store has problems (listed above)")]
    CheckFailed,
}

fn store_path(data_path: &Path) -> PathBuf {
    data_path.join(meta_store::STORE_DIR)
}

/// Takes the data-path lock, or says which broker holds it.
fn lock_idle(data_path: &Path) -> Result<DataLock, MetaCliError> {
    match DataLock::acquire(data_path) {
        Ok(lock) => Ok(lock),
        Err(LockError::Held { path, holder }) => Err(MetaCliError::BrokerRunning { path, holder }),
        Err(e) => Err(e.into()),
    }
}

/// Fails with [`MetaCliError::NoStore`] unless the store exists; checked before the lock is
/// taken, because taking it creates the data path.
fn require_store(data_path: &Path) -> Result<(), MetaCliError> {
    let path = store_path(data_path);
    if !path.exists() {
        return Err(MetaCliError::NoStore(path));
    }
    Ok(())
}

fn open_existing(data_path: &Path) -> Result<MetaStore, MetaCliError> {
    require_store(data_path)?;
    Ok(MetaStore::open(&store_path(data_path))?)
}

/// `rnsq meta export`: the metadata as nsqd.dat JSON, to `output` or standard output.
pub fn export(data_path: &Path, output: Option<&Path>) -> Result<(), MetaCliError> {
    let json = match data_lock::probe(data_path)? {
        Some(holder) => {
            let address =
                holder
                    .and_then(|h| h.http_address)
                    .ok_or_else(|| MetaCliError::BrokerRunning {
                        path: data_path.into(),
                        holder: "a process that does not say how to reach it".into(),
                    })?;
            fetch_from_broker(address)?
        }
        None => {
            require_store(data_path)?;
            let _lock = lock_idle(data_path)?;
            let store = open_existing(data_path)?;
            nsqd_dat::render(&store.snapshot()?)
        }
    };
    match output {
        Some(path) => std::fs::write(path, &json).map_err(|source| MetaCliError::Write {
            path: path.into(),
            source,
        }),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&json)
                .and_then(|()| stdout.write_all(b"\n"))
                .map_err(|source| MetaCliError::Write {
                    path: "<stdout>".into(),
                    source,
                })
        }
    }
}

fn fetch_from_broker(mut address: SocketAddr) -> Result<Vec<u8>, MetaCliError> {
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{address}/meta/export");
    let fail = |reason: String| MetaCliError::Broker {
        address: address.to_string(),
        reason,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client.get(&url).send().map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response.bytes().map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    Ok(body.to_vec())
}

/// `rnsq meta import`: applies `file` to the store in one transaction.
pub fn import(data_path: &Path, file: &Path, replace: bool) -> Result<(), MetaCliError> {
    let progress = Progress::new();
    progress.message(&format!("reading {}", file.display()));
    let parsed = nsqd_dat::read(file)?;
    for skipped in &parsed.skipped {
        progress.println(&format!(
            "{}: skipped {} {:?}: {}",
            file.display(),
            skipped.kind,
            skipped.name,
            skipped.reason
        ));
    }
    let _lock = lock_idle(data_path)?;
    let store = MetaStore::open(&store_path(data_path))?;
    let mode = if replace {
        ImportMode::Replace
    } else {
        ImportMode::Merge
    };
    progress.start_bar(parsed.metadata.topics.len() as u64, "preparing");
    let summary =
        store.import_with_progress(&parsed.metadata, mode, &|done| progress.set(done as u64))?;
    progress.finish();
    say(format!(
        "imported {}: {} topics and {} channels in the file; {} topics and {} channels created, {} topics and {} channels removed, {} names skipped",
        file.display(),
        parsed.metadata.topics.len(),
        parsed.metadata.channel_count(),
        summary.topics_created,
        summary.channels_created,
        summary.topics_removed,
        summary.channels_removed,
        parsed.skipped.len(),
    ));
    Ok(())
}

/// `rnsq meta check`: verifies every record and prints the counts.
pub fn check(data_path: &Path) -> Result<(), MetaCliError> {
    require_store(data_path)?;
    let _lock = lock_idle(data_path)?;
    let store = open_existing(data_path)?;
    let report = store.check()?;
    say(format!(
        "{}: schema version {}, {} topics ({} paused), {} channels ({} paused)",
        store.path().display(),
        report.schema_version,
        report.topics,
        report.paused_topics,
        report.channels,
        report.paused_channels
    ));
    let dat = data_path.join(nsqd_dat::FILE_NAME);
    if report.problems.is_empty() {
        match (nsqd_dat::read(&dat), store.snapshot()) {
            (Ok(parsed), Ok(snapshot)) if parsed.metadata == snapshot => {
                say(format!("{}: matches the store", dat.display()))
            }
            (Err(e), _) => say(format!(
                "{e} (it is rewritten from the store at the next start)"
            )),
            _ => say(format!(
                "{}: differs from the store (it is rewritten at the next start)",
                dat.display()
            )),
        }
        say("no problems found");
        return Ok(());
    }
    for problem in &report.problems {
        say(format!("problem: {problem}"));
    }
    Err(MetaCliError::CheckFailed)
}

/// A progress display on a terminal; silent otherwise.
struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    fn new() -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress(Some(bar))
    }

    fn message(&self, text: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(text.to_string());
        }
    }

    fn println(&self, text: &str) {
        match &self.0 {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn start_bar(&self, total: u64, text: &str) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
            bar.set_position(0);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} topics")
            {
                bar.set_style(style);
            }
            bar.set_message(text.to_string());
        }
    }

    fn set(&self, done: u64) {
        if let Some(bar) = &self.0 {
            if done == bar.length().unwrap_or(0) {
                bar.set_message("committing");
            }
            bar.set_position(done);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
