//! The in-memory filesystem behind powerfs: inodes whose data and directory entries each have a
//! *current* state (what reads see) and a *durable* state (what survives a power cut), the
//! barriers that copy one to the other, and the cut that throws the difference away.
//!
//! Every operation answers a POSIX errno on failure and then has changed nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::time::SystemTime;

use fuser::Errno;

use super::Counters;
use file_data::FileData;

mod cut;
mod file_data;

/// An inode number; never reused within one [`Model`].
pub type Ino = u64;

/// The root directory's inode number (FUSE's fixed root).
pub const ROOT: Ino = 1;

/// The longest name a directory entry may have, as on ext4.
pub const NAME_MAX: usize = 255;

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// Attributes as `stat` reports them, from the current state.
#[derive(Clone, Copy, Debug)]
pub struct Attr {
    pub ino: Ino,
    pub kind: Kind,
    pub size: u64,
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
}

/// Who creates an inode and with which permission bits.
#[derive(Clone, Copy, Debug)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub perm: u16,
}

struct DirData {
    current: BTreeMap<OsString, Ino>,
    durable: BTreeMap<OsString, Ino>,
    /// The directory holding this one's current entry (itself for the root); `..` in listings.
    parent: Ino,
}

enum Body {
    File(FileData),
    Dir(DirData),
    Symlink(OsString),
}

struct Inode {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
    /// Current entries naming this inode.
    links: u32,
    /// Durable entries naming this inode, in any directory; while non-zero a cut may bring the
    /// inode back, so it is kept.
    durable_links: u32,
    /// References the kernel holds (FUSE lookup count); while non-zero the kernel may still
    /// ask about the inode, so it is kept.
    lookups: u64,
}

impl Inode {
    fn kind(&self) -> Kind {
        match self.body {
            Body::File(_) => Kind::File,
            Body::Dir(_) => Kind::Dir,
            Body::Symlink(_) => Kind::Symlink,
        }
    }

    fn touch(&mut self) {
        let now = SystemTime::now();
        self.mtime = now;
        self.ctime = now;
    }
}

/// One `opendir`'s snapshot of a listing: (inode, kind, name), `.` and `..` first.
type Listing = Vec<(Ino, Kind, OsString)>;

/// The whole filesystem.
pub struct Model {
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    listings: HashMap<u64, Listing>,
    next_listing: u64,
    counters: Counters,
}

impl Model {
    /// An empty filesystem: a durable root directory owned by `owner`.
    pub fn new(owner: Owner) -> Model {
        let mut model = Model {
            inodes: BTreeMap::new(),
            next_ino: ROOT,
            listings: HashMap::new(),
            next_listing: 1,
            counters: Counters::default(),
        };
        let root = model.new_inode(owner, Body::Dir(empty_dir(ROOT)));
        debug_assert_eq!(root, ROOT);
        if let Some(inode) = model.inodes.get_mut(&ROOT) {
            inode.links = 1;
        }
        model
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    fn new_inode(&mut self, owner: Owner, body: Body) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = SystemTime::now();
        self.inodes.insert(
            ino,
            Inode {
                body,
                perm: owner.perm & 0o7777,
                uid: owner.uid,
                gid: owner.gid,
                atime: now,
                mtime: now,
                ctime: now,
                links: 0,
                durable_links: 0,
                lookups: 0,
            },
        );
        ino
    }

    fn inode(&self, ino: Ino) -> Result<&Inode, Errno> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn inode_mut(&mut self, ino: Ino) -> Result<&mut Inode, Errno> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn dir(&self, ino: Ino) -> Result<&DirData, Errno> {
        match &self.inode(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn dir_mut(&mut self, ino: Ino) -> Result<&mut DirData, Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::Dir(dir) => Ok(dir),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> Result<&mut FileData, Errno> {
        match &mut self.inode_mut(ino)?.body {
            Body::File(file) => Ok(file),
            Body::Dir(_) => Err(Errno::EISDIR),
            Body::Symlink(_) => Err(Errno::EINVAL),
        }
    }

    /// The current attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> Result<Attr, Errno> {
        let inode = self.inode(ino)?;
        let (size, nlink) = match &inode.body {
            Body::File(file) => (file.current().len() as u64, inode.links),
            Body::Symlink(target) => (target.len() as u64, inode.links),
            Body::Dir(dir) => {
                let subdirs = dir
                    .current
                    .values()
                    .filter(|child| {
                        self.inodes
                            .get(child)
                            .is_some_and(|c| matches!(c.body, Body::Dir(_)))
                    })
                    .count() as u32;
                let nlink = if inode.links == 0 { 0 } else { 2 + subdirs };
                (4096, nlink)
            }
        };
        Ok(Attr {
            ino,
            kind: inode.kind(),
            size,
            perm: inode.perm,
            nlink,
            uid: inode.uid,
            gid: inode.gid,
            atime: inode.atime,
            mtime: inode.mtime,
            ctime: inode.ctime,
        })
    }

    /// Looks `name` up in `parent` and takes a kernel reference on what it finds.
    pub fn lookup(&mut self, parent: Ino, name: &OsStr) -> Result<Attr, Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        self.referenced(ino)
    }

    fn referenced(&mut self, ino: Ino) -> Result<Attr, Errno> {
        self.inode_mut(ino)?.lookups += 1;
        self.getattr(ino)
    }

    /// Drops `n` kernel references; an inode nothing names or references any more is freed.
    pub fn forget(&mut self, ino: Ino, n: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_sub(n);
        }
        self.free_if_unused(ino);
    }

    /// Checks that `name` can be added to `parent`.
    fn check_new_name(&self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        if self.inode(parent)?.links == 0 {
            // A removed directory accepts no new entries.
            return Err(Errno::ENOENT);
        }
        if self.dir(parent)?.current.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        Ok(())
    }

    fn add_entry(&mut self, parent: Ino, name: &OsStr, ino: Ino) -> Result<(), Errno> {
        self.dir_mut(parent)?.current.insert(name.into(), ino);
        self.inode_mut(parent)?.touch();
        let inode = self.inode_mut(ino)?;
        inode.links += 1;
        inode.ctime = SystemTime::now();
        if let Body::Dir(dir) = &mut inode.body {
            dir.parent = parent;
        }
        Ok(())
    }

    fn remove_entry(&mut self, parent: Ino, name: &OsStr) -> Result<Ino, Errno> {
        let ino = self
            .dir_mut(parent)?
            .current
            .remove(name)
            .ok_or(Errno::ENOENT)?;
        self.inode_mut(parent)?.touch();
        let inode = self.inode_mut(ino)?;
        inode.links = inode.links.saturating_sub(1);
        inode.ctime = SystemTime::now();
        Ok(ino)
    }

    /// Creates `name` in `parent` (an empty file, an empty directory or a symlink) and takes a
    /// kernel reference on it. `EEXIST` if the name is taken.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &OsStr,
        kind: Kind,
        owner: Owner,
        symlink_target: Option<&OsStr>,
    ) -> Result<Attr, Errno> {
        self.check_new_name(parent, name)?;
        let body = match kind {
            Kind::File => Body::File(FileData::default()),
            Kind::Dir => Body::Dir(empty_dir(parent)),
            Kind::Symlink => Body::Symlink(symlink_target.unwrap_or_default().into()),
        };
        let ino = self.new_inode(owner, body);
        self.add_entry(parent, name, ino)?;
        self.referenced(ino)
    }

    /// A new name `newname` in `newparent` for the non-directory `ino`.
    pub fn link(&mut self, ino: Ino, newparent: Ino, newname: &OsStr) -> Result<Attr, Errno> {
        if self.inode(ino)?.kind() == Kind::Dir {
            return Err(Errno::EPERM);
        }
        self.check_new_name(newparent, newname)?;
        self.add_entry(newparent, newname, ino)?;
        self.referenced(ino)
    }

    /// Removes the non-directory entry `name` from `parent`.
    pub fn unlink(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        if self.inode(ino)?.kind() == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(parent, name)?;
        self.free_if_unused(ino);
        Ok(())
    }

    /// Removes the empty directory `name` from `parent`.
    pub fn rmdir(&mut self, parent: Ino, name: &OsStr) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        if !self.dir(ino)?.current.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove_entry(parent, name)?;
        self.free_if_unused(ino);
        Ok(())
    }

    /// Whether `dir` is `ancestor` or lies beneath it (by current entries).
    fn is_within(&self, mut dir: Ino, ancestor: Ino) -> bool {
        loop {
            if dir == ancestor {
                return true;
            }
            match self.dir(dir) {
                Ok(d) if d.parent != dir => dir = d.parent,
                _ => return false,
            }
        }
    }

    /// Moves `name` in `parent` to `newname` in `newparent`, replacing what was there as
    /// rename(2) does; `noreplace` refuses an existing target with `EEXIST`, `exchange` swaps
    /// the two names.
    #[allow(clippy::too_many_arguments)]
    pub fn rename(
        &mut self,
        parent: Ino,
        name: &OsStr,
        newparent: Ino,
        newname: &OsStr,
        noreplace: bool,
        exchange: bool,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.current.get(name).ok_or(Errno::ENOENT)?;
        let target = self.dir(newparent)?.current.get(newname).copied();
        if newname.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let moving_dir = self.inode(ino)?.kind() == Kind::Dir;
        if moving_dir && self.is_within(newparent, ino) {
            return Err(Errno::EINVAL);
        }
        if exchange {
            let other = target.ok_or(Errno::ENOENT)?;
            if self.inode(other)?.kind() == Kind::Dir && self.is_within(parent, other) {
                return Err(Errno::EINVAL);
            }
            self.remove_entry(parent, name)?;
            self.remove_entry(newparent, newname)?;
            self.add_entry(newparent, newname, ino)?;
            self.add_entry(parent, name, other)?;
            return Ok(());
        }
        if let Some(target) = target {
            if noreplace {
                return Err(Errno::EEXIST);
            }
            if target == ino {
                // Two names of one inode: rename(2) does nothing.
                return Ok(());
            }
            match (moving_dir, self.inode(target)?.kind() == Kind::Dir) {
                (true, true) => {
                    if !self.dir(target)?.current.is_empty() {
                        return Err(Errno::ENOTEMPTY);
                    }
                }
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (false, false) => {}
            }
            self.remove_entry(newparent, newname)?;
            self.free_if_unused(target);
        }
        self.remove_entry(parent, name)?;
        self.add_entry(newparent, newname, ino)?;
        Ok(())
    }

    /// The target of the symlink `ino`.
    pub fn readlink(&self, ino: Ino) -> Result<OsString, Errno> {
        match &self.inode(ino)?.body {
            Body::Symlink(target) => Ok(target.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Changes what `setattr` may change; a size change is a data change like a write.
    #[allow(clippy::too_many_arguments)]
    pub fn setattr(
        &mut self,
        ino: Ino,
        perm: Option<u16>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<SystemTime>,
        mtime: Option<SystemTime>,
    ) -> Result<Attr, Errno> {
        if let Some(size) = size {
            let len = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
            let file = self.file_mut(ino)?;
            file.set_len(len);
            self.inode_mut(ino)?.touch();
        }
        let inode = self.inode_mut(ino)?;
        if let Some(perm) = perm {
            inode.perm = perm & 0o7777;
        }
        if let Some(uid) = uid {
            inode.uid = uid;
        }
        if let Some(gid) = gid {
            inode.gid = gid;
        }
        if let Some(atime) = atime {
            inode.atime = atime;
        }
        if let Some(mtime) = mtime {
            inode.mtime = mtime;
        }
        inode.ctime = SystemTime::now();
        self.getattr(ino)
    }

    /// Up to `size` bytes of the current data from `offset`.
    pub fn read(&self, ino: Ino, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let data = match &self.inode(ino)?.body {
            Body::File(file) => file.current(),
            Body::Dir(_) => return Err(Errno::EISDIR),
            Body::Symlink(_) => return Err(Errno::EINVAL),
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = start.saturating_add(size as usize).min(data.len());
        Ok(&data[start..end])
    }

    /// Writes `data` at `offset` into the current data (a write past the end leaves a hole of
    /// zeros) and remembers it for the next fsync. Costs O(`data.len()`).
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let offset = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let written = u32::try_from(data.len()).map_err(|_| Errno::EINVAL)?;
        let file = self.file_mut(ino)?;
        file.write(offset, data);
        self.inode_mut(ino)?.touch();
        self.counters.writes += 1;
        self.counters.bytes_written += data.len() as u64;
        Ok(written)
    }

    /// `fallocate(2)`: mode 0 extends the file with zeros to `offset + length` if it is
    /// shorter; `FALLOC_FL_KEEP_SIZE` alone changes nothing visible. Other modes:
    /// `EOPNOTSUPP`.
    pub fn fallocate(
        &mut self,
        ino: Ino,
        offset: u64,
        length: u64,
        mode: i32,
    ) -> Result<(), Errno> {
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let end = usize::try_from(end).map_err(|_| Errno::EFBIG)?;
        match mode {
            0 => {
                let file = self.file_mut(ino)?;
                if file.current().len() < end {
                    file.set_len(end);
                }
                Ok(())
            }
            libc::FALLOC_FL_KEEP_SIZE => self.file_mut(ino).map(drop),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// Makes the current data of `ino` durable (data and size); a directory's entries if `ino`
    /// is a directory.
    pub fn fsync(&mut self, ino: Ino, datasync: bool) -> Result<(), Errno> {
        if datasync {
            self.counters.fdatasyncs += 1;
        } else {
            self.counters.fsyncs += 1;
        }
        match &mut self.inode_mut(ino)?.body {
            Body::File(file) => {
                file.fsync();
                Ok(())
            }
            Body::Dir(_) => self.make_entries_durable(ino),
            Body::Symlink(_) => Ok(()),
        }
    }

    /// Makes the current entries of the directory `ino` durable.
    pub fn fsyncdir(&mut self, ino: Ino) -> Result<(), Errno> {
        self.counters.fsyncdirs += 1;
        self.make_entries_durable(ino)
    }

    fn make_entries_durable(&mut self, ino: Ino) -> Result<(), Errno> {
        let dir = self.dir_mut(ino)?;
        let before = std::mem::replace(&mut dir.durable, dir.current.clone());
        let after: Vec<Ino> = dir.durable.values().copied().collect();
        for child in &after {
            if let Some(c) = self.inodes.get_mut(child) {
                c.durable_links += 1;
            }
        }
        for child in before.values() {
            if let Some(c) = self.inodes.get_mut(child) {
                c.durable_links = c.durable_links.saturating_sub(1);
            }
            self.free_if_unused(*child);
        }
        Ok(())
    }

    /// Frees `ino` (and what only it kept alive) once no entry, durable entry or kernel
    /// reference names it.
    fn free_if_unused(&mut self, ino: Ino) {
        let mut queue = VecDeque::from([ino]);
        while let Some(ino) = queue.pop_front() {
            let unused = self.inodes.get(&ino).is_some_and(|i| {
                ino != ROOT && i.links == 0 && i.durable_links == 0 && i.lookups == 0
            });
            if !unused {
                continue;
            }
            let Some(inode) = self.inodes.remove(&ino) else {
                continue;
            };
            if let Body::Dir(dir) = inode.body {
                for child in dir.durable.values() {
                    if let Some(c) = self.inodes.get_mut(child) {
                        c.durable_links = c.durable_links.saturating_sub(1);
                    }
                    queue.push_back(*child);
                }
                for child in dir.current.values() {
                    if let Some(c) = self.inodes.get_mut(child) {
                        c.links = c.links.saturating_sub(1);
                    }
                    queue.push_back(*child);
                }
            }
        }
    }

    /// Snapshots the current listing of the directory `ino` for `readdir`; returns its handle.
    pub fn opendir(&mut self, ino: Ino) -> Result<u64, Errno> {
        let dir = self.dir(ino)?;
        let mut listing = vec![
            (ino, Kind::Dir, OsString::from(".")),
            (dir.parent, Kind::Dir, OsString::from("..")),
        ];
        for (name, child) in &dir.current {
            let kind = self.inode(*child).map(Inode::kind).unwrap_or(Kind::File);
            listing.push((*child, kind, name.clone()));
        }
        let handle = self.next_listing;
        self.next_listing += 1;
        self.listings.insert(handle, listing);
        Ok(handle)
    }

    /// The entries of listing `handle` from position `offset` on.
    pub fn listing(&self, handle: u64, offset: u64) -> Result<&[(Ino, Kind, OsString)], Errno> {
        let listing = self.listings.get(&handle).ok_or(Errno::EBADF)?;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(listing.len());
        Ok(&listing[start..])
    }

    pub fn releasedir(&mut self, handle: u64) {
        self.listings.remove(&handle);
    }

    /// Bytes held by current file data, and the number of inodes.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = self
            .inodes
            .values()
            .map(|i| match &i.body {
                Body::File(f) => f.current().len() as u64,
                _ => 0,
            })
            .sum();
        (bytes, self.inodes.len() as u64)
    }
}

fn empty_dir(parent: Ino) -> DirData {
    DirData {
        current: BTreeMap::new(),
        durable: BTreeMap::new(),
        parent,
    }
}
