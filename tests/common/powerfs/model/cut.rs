//! The power cut on the whole model: directories fall back to their durable entries, what the
//! root no longer reaches is forgotten, and each surviving file keeps its durable data (or a
//! torn prefix of its changes).

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::{CutMode, CutReport};
use super::{Body, Ino, Inode, Kind, Model, ROOT};

impl Model {
    /// The power cut: every directory's entries become its durable entries, every file's data
    /// its durable data (all of it for [`CutMode::DropUnsynced`], a torn prefix of the changes
    /// for [`CutMode::Torn`]), and inodes no longer reachable from the root are forgotten.
    /// Must only run while nothing is mounted: kernel references are reset.
    pub fn cut(&mut self, mode: CutMode) -> CutReport {
        self.counters.cuts += 1;
        let mut report = CutReport::default();
        self.listings.clear();

        for inode in self.inodes.values_mut() {
            inode.lookups = 0;
            inode.links = 0;
            inode.durable_links = 0;
            if let Body::Dir(dir) = &mut inode.body {
                report.entries_dropped += dir
                    .current
                    .iter()
                    .filter(|(name, ino)| dir.durable.get(*name) != Some(ino))
                    .count() as u64;
                report.entries_resurrected += dir
                    .durable
                    .iter()
                    .filter(|(name, ino)| dir.current.get(*name) != Some(ino))
                    .count() as u64;
                dir.current = dir.durable.clone();
            }
        }

        // Walk from the root in name order. A directory reached twice (moved, with only its
        // new parent fsynced) keeps the first name found: a directory has one parent.
        let mut reachable = vec![ROOT];
        let mut queue = VecDeque::from([ROOT]);
        let mut seen_dirs = HashSet::from([ROOT]);
        while let Some(dir_ino) = queue.pop_front() {
            let entries: Vec<(OsString, Ino)> = match self.dir(dir_ino) {
                Ok(dir) => dir.current.iter().map(|(n, i)| (n.clone(), *i)).collect(),
                Err(_) => continue,
            };
            for (name, child) in entries {
                let Some(kind) = self.inodes.get(&child).map(Inode::kind) else {
                    continue;
                };
                if kind == Kind::Dir {
                    if !seen_dirs.insert(child) {
                        if let Ok(dir) = self.dir_mut(dir_ino) {
                            dir.current.remove(&name);
                            dir.durable.remove(&name);
                        }
                        report.entries_dropped += 1;
                        continue;
                    }
                    if let Ok(dir) = self.dir_mut(child) {
                        dir.parent = dir_ino;
                    }
                    queue.push_back(child);
                }
                if let Some(c) = self.inodes.get_mut(&child) {
                    if c.links == 0 {
                        reachable.push(child);
                    }
                    c.links += 1;
                    c.durable_links += 1;
                }
            }
        }
        if let Some(root) = self.inodes.get_mut(&ROOT) {
            root.links = 1;
        }
        let reachable: HashSet<Ino> = reachable.into_iter().collect();
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reachable.contains(ino));
        report.inodes_forgotten = (before - self.inodes.len()) as u64;

        let mut rng = match mode {
            CutMode::Torn { seed } => Some(StdRng::seed_from_u64(seed)),
            CutMode::DropUnsynced => None,
        };
        for inode in self.inodes.values_mut() {
            if let Body::File(file) = &mut inode.body {
                let lost = file.cut(rng.as_mut());
                report.files_reverted += u64::from(lost.any);
                report.writes_torn += u64::from(lost.torn);
                report.bytes_dropped += lost.bytes;
            }
        }
        report
    }
}
