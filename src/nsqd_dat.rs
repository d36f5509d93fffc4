//! `nsqd.dat`: Go nsqd's metadata file. rnsq reads it (to import a Go nsqd's metadata) and keeps
//! one current beside its store (so that a Go nsqd, or a tool that reads the file, still works).
//!
//! The format is JSON. Go nsqd 1.3.0 writes
//! `{"topics":[{"name":"t","paused":false,"channels":[{"name":"c","paused":false}]}],"version":"1.3.0"}`
//! with `null` for an empty list; older releases wrote alphabetical keys and `[]`. Both parse.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::durable_dir;
use crate::metadata::{ChannelMeta, Metadata, TopicMeta};
use crate::names;

/// The file's name inside the data path.
pub const FILE_NAME: &str = "nsqd.dat";

/// The `version` written into the file: the Go nsqd release whose format this is.
pub const FORMAT_VERSION: &str = "1.3.0";

/// Why a metadata file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DatError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: not valid nsqd metadata JSON at line {line}, column {column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A name the file holds that cannot become a persisted topic or channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `topic` or `channel`.
    pub kind: &'static str,
    /// The topic, or `topic/channel`.
    pub name: String,
    /// Why it was skipped.
    pub reason: &'static str,
}

/// A parsed file: the metadata it holds and the names that were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub metadata: Metadata,
    pub skipped: Vec<Skipped>,
}

#[derive(Serialize, Deserialize)]
struct DatFile {
    #[serde(default)]
    topics: Option<Vec<DatTopic>>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DatTopic {
    name: String,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    channels: Option<Vec<DatChannel>>,
}

#[derive(Serialize, Deserialize)]
struct DatChannel {
    name: String,
    #[serde(default)]
    paused: bool,
}

/// Reads and parses the file at `path`. `version` is not checked, as in Go.
///
/// # Errors
/// [`DatError::Read`] when it cannot be read, [`DatError::Empty`] when it holds only white
/// space, [`DatError::Json`] (with line and column) when it is not the expected JSON.
pub fn read(path: &Path) -> Result<Parsed, DatError> {
    let bytes = fs::read(path).map_err(|source| DatError::Read {
        path: path.into(),
        source,
    })?;
    parse(path, &bytes)
}

/// Parses file contents; `path` only names the file in errors. Invalid and ephemeral names are
/// left out and listed in [`Parsed::skipped`]; repeated names are merged.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, DatError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DatError::Empty { path: path.into() });
    }
    let file: DatFile = serde_json::from_slice(bytes).map_err(|e| DatError::Json {
        path: path.into(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let mut skipped = Vec::new();
    let mut topics = Vec::new();
    for topic in file.topics.unwrap_or_default() {
        if let Some(reason) = unusable(&topic.name, names::is_valid_topic_name) {
            skipped.push(Skipped {
                kind: "topic",
                name: topic.name,
                reason,
            });
            continue;
        }
        let mut channels = Vec::new();
        for channel in topic.channels.unwrap_or_default() {
            if let Some(reason) = unusable(&channel.name, names::is_valid_channel_name) {
                let name = format!("{}/{}", topic.name, channel.name);
                skipped.push(Skipped {
                    kind: "channel",
                    name,
                    reason,
                });
                continue;
            }
            channels.push(ChannelMeta {
                name: channel.name,
                paused: channel.paused,
            });
        }
        topics.push(TopicMeta {
            name: topic.name,
            paused: topic.paused,
            channels,
        });
    }
    Ok(Parsed {
        metadata: Metadata::from_topics(topics),
        skipped,
    })
}

fn unusable(name: &str, valid: fn(&str) -> bool) -> Option<&'static str> {
    if !valid(name) {
        Some("invalid name")
    } else if names::is_ephemeral(name) {
        Some("ephemeral names are never persisted")
    } else {
        None
    }
}

/// Renders `meta` exactly as Go nsqd 1.3.0 writes it: keys `name`, `paused`, `channels` in
/// that order, `null` for an empty list, `"version":"1.3.0"`.
pub fn render(meta: &Metadata) -> Vec<u8> {
    let topics: Vec<DatTopic> = meta
        .topics
        .iter()
        .map(|t| DatTopic {
            name: t.name.clone(),
            paused: t.paused,
            channels: non_empty(
                t.channels
                    .iter()
                    .map(|c| DatChannel {
                        name: c.name.clone(),
                        paused: c.paused,
                    })
                    .collect(),
            ),
        })
        .collect();
    let file = DatFile {
        topics: non_empty(topics),
        version: Some(FORMAT_VERSION.into()),
    };
    // Serializing structs of strings, bools and lists cannot fail.
    serde_json::to_vec(&file).unwrap_or_default()
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Replaces `<dir>/nsqd.dat` with `meta` atomically: a temp file (mode 0600) is written and
/// fsynced, renamed over the old file, and the directory is fsynced, so after a crash the file
/// is either the old one or the new one, whole.
///
/// # Errors
/// Any I/O error; the old file is then untouched and the temp file removed where possible.
pub fn write_atomic(dir: &Path, meta: &Metadata) -> io::Result<()> {
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{FILE_NAME}.{}.{seq}.tmp", std::process::id()));
    let result = write_then_rename(&tmp, &dir.join(FILE_NAME), &render(meta));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    durable_dir::sync(dir)
}

fn write_then_rename(tmp: &Path, target: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    fs::rename(tmp, target)
}

/// Removes temp files a crash left behind in `dir` (ours and Go's `nsqd.dat.<n>.tmp`).
/// Returns how many were removed.
pub fn remove_stray_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("nsqd.dat.") && name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("nsqd.dat")
    }

    #[test]
    fn renders_go_1_3_0_form() {
        let meta = Metadata::from_topics([
            TopicMeta {
                name: "t".into(),
                paused: true,
                channels: vec![ChannelMeta {
                    name: "c".into(),
                    paused: false,
                }],
            },
            TopicMeta {
                name: "u".into(),
                paused: false,
                channels: vec![],
            },
        ]);
        let text = String::from_utf8(render(&meta)).unwrap();
        assert_eq!(
            text,
            r#"{"topics":[{"name":"t","paused":true,"channels":[{"name":"c","paused":false}]},{"name":"u","paused":false,"channels":null}],"version":"1.3.0"}"#
        );
        assert_eq!(
            String::from_utf8(render(&Metadata::default())).unwrap(),
            r#"{"topics":null,"version":"1.3.0"}"#
        );
    }

    #[test]
    fn parses_both_go_encodings_and_round_trips() {
        let old = br#"{"topics":[{"channels":[],"name":"a","paused":false},{"channels":[{"name":"c","paused":true}],"name":"b","paused":true}],"version":"0.3.8"}"#;
        let new = br#"{"topics":[{"name":"a","paused":false,"channels":null},{"name":"b","paused":true,"channels":[{"name":"c","paused":true}]}],"version":"1.3.0"}"#;
        let a = parse(p(), old).unwrap();
        let b = parse(p(), new).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.metadata.topics.len(), 2);
        assert_eq!(parse(p(), &render(&a.metadata)).unwrap(), a);
    }

    #[test]
    fn skips_invalid_and_ephemeral_names() {
        let text = br#"{"topics":[{"name":"bad name","paused":false,"channels":null},
            {"name":"t#ephemeral","paused":false,"channels":null},
            {"name":"t","paused":false,"channels":[{"name":"c#ephemeral","paused":false},{"name":"ok","paused":false}]}]}"#;
        let parsed = parse(p(), text).unwrap();
        assert_eq!(parsed.metadata.topics.len(), 1);
        assert_eq!(parsed.metadata.topics[0].channels.len(), 1);
        let skipped: Vec<_> = parsed.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["bad name", "t#ephemeral", "t/c#ephemeral"]);
    }

    #[test]
    fn reports_line_and_column_of_bad_json() {
        let err = parse(p(), b"{\"topics\": [\n  {\"name\": }\n]}").unwrap_err();
        match err {
            DatError::Json { line, column, .. } => assert_eq!((line, column), (2, 12)),
            other => panic!("unexpected {other}"),
        }
        assert!(matches!(
            parse(p(), b" \n").unwrap_err(),
            DatError::Empty { .. }
        ));
    }

    #[test]
    fn write_atomic_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::from_topics([TopicMeta {
            name: "x".into(),
            ..Default::default()
        }]);
        write_atomic(dir.path(), &meta).unwrap();
        write_atomic(dir.path(), &Metadata::default()).unwrap();
        let parsed = read(&dir.path().join(FILE_NAME)).unwrap();
        assert!(parsed.metadata.topics.is_empty());
        fs::write(dir.path().join("nsqd.dat.123.tmp"), b"junk").unwrap();
        assert_eq!(remove_stray_temps(dir.path()).unwrap(), 1);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }
}
