//! One file's data as powerfs keeps it: the current bytes, the durable bytes, and the changes
//! between them, which an fsync replays and a power cut drops or tears.

use rand::rngs::StdRng;
use rand::Rng;

/// A change to a file's data since its last fsync.
enum Change {
    /// `data` written at `offset`; a write past the end first fills the gap with zeros.
    Write { offset: usize, data: Vec<u8> },
    /// Truncated or extended (with zeros) to this length.
    SetLen(usize),
}

impl Change {
    fn apply(&self, to: &mut Vec<u8>) {
        match self {
            Change::Write { offset, data } => write_into(to, *offset, data),
            Change::SetLen(len) => to.resize(*len, 0),
        }
    }
}

fn write_into(to: &mut Vec<u8>, offset: usize, data: &[u8]) {
    let end = offset + data.len();
    if to.len() < end {
        to.resize(end, 0);
    }
    to[offset..end].copy_from_slice(data);
}

/// What a power cut did to one file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Some change did not survive in full.
    pub any: bool,
    /// The last surviving write was torn.
    pub torn: bool,
    /// Bytes of writes that did not survive.
    pub bytes: u64,
}

/// A file's data.
#[derive(Default)]
pub struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    /// The changes since the last fsync, in order: replaying them onto `durable` gives
    /// `current`. An fsync does exactly that, so it costs the bytes written since the last
    /// one, not the file's size.
    pending: Vec<Change>,
}

impl FileData {
    /// What reads see.
    pub fn current(&self) -> &[u8] {
        &self.current
    }

    /// Writes `data` at `offset` (past the end leaves a hole of zeros). O(`data.len()`).
    pub fn write(&mut self, offset: usize, data: &[u8]) {
        write_into(&mut self.current, offset, data);
        self.pending.push(Change::Write {
            offset,
            data: data.to_vec(),
        });
    }

    /// Truncates or extends (with zeros) to `len`.
    pub fn set_len(&mut self, len: usize) {
        self.current.resize(len, 0);
        self.pending.push(Change::SetLen(len));
    }

    /// Makes the current data durable.
    pub fn fsync(&mut self) {
        for change in self.pending.drain(..) {
            change.apply(&mut self.durable);
        }
        debug_assert_eq!(self.durable.len(), self.current.len());
    }

    /// The power cut: the data becomes the durable data plus, with `torn`, a random prefix of
    /// the changes since the last fsync whose last write is torn at a random byte (a one-byte
    /// write is atomic). What is left is durable.
    pub fn cut(&mut self, torn: Option<&mut StdRng>) -> Lost {
        let mut lost = Lost::default();
        if self.pending.is_empty() {
            return lost;
        }
        let pending = std::mem::take(&mut self.pending);
        let (keep, mut rng) = match torn {
            Some(rng) => (rng.gen_range(0..=pending.len()), Some(rng)),
            None => (0, None),
        };
        for (i, change) in pending.iter().enumerate() {
            let kept = i + 1 < keep;
            let last_kept = i + 1 == keep;
            match change {
                _ if kept => change.apply(&mut self.durable),
                Change::Write { offset, data } if last_kept => {
                    let at = match rng {
                        Some(ref mut rng) if data.len() >= 2 => rng.gen_range(1..data.len()),
                        _ => data.len(),
                    };
                    write_into(&mut self.durable, *offset, &data[..at]);
                    if at < data.len() {
                        lost.torn = true;
                        lost.any = true;
                        lost.bytes += (data.len() - at) as u64;
                    }
                }
                Change::SetLen(_) if last_kept => change.apply(&mut self.durable),
                Change::Write { data, .. } => {
                    lost.any = true;
                    lost.bytes += data.len() as u64;
                }
                Change::SetLen(_) => lost.any = true,
            }
        }
        self.current = self.durable.clone();
        lost
    }
}
