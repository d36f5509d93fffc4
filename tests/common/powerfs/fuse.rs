//! The FUSE adapter: turns kernel requests into [`Model`] calls and the answers into replies.
//! It holds no state of its own, so a new one is made for every mount of the same model.
//!
//! What the kernel does itself and never asks about: `flock` and POSIX locks (no lock
//! capability is requested, so the kernel keeps them locally, as for any FUSE mount without
//! lock support), permission checks (`default_permissions`), `O_APPEND` offsets, `lseek`, and
//! `sync_file_range` (which is why it is no barrier here).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

use super::model::{Attr, Kind, Model, Owner};

/// How long the kernel may cache attributes and names. Every change passes through the kernel,
/// so its caches stay right while mounted; a power cut remounts, which drops them all.
const TTL: Duration = Duration::from_secs(1);

/// Size reported by `statfs`: 64 GiB of 4 KiB blocks, and a million inodes.
const BLOCK: u64 = 4096;
const TOTAL_BLOCKS: u64 = 16 * 1024 * 1024;
const TOTAL_INODES: u64 = 1 << 20;

/// The filesystem served by one mount.
pub struct Server {
    model: Arc<Mutex<Model>>,
}

impl Server {
    pub fn new(model: Arc<Mutex<Model>>) -> Server {
        Server { model }
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        lock(&self.model)
    }
}

/// Locks the model. A panic while it was held cannot leave it half-changed in a way that
/// matters more than a hung mount would, so poisoning is ignored.
pub fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    model
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn file_attr(attr: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime,
        crtime: attr.ctime,
        kind: file_type(attr.kind),
        perm: attr.perm,
        nlink: attr.nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK as u32,
        flags: 0,
    }
}

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    }
}

fn owner(req: &Request, mode: u32, umask: u32) -> Owner {
    Owner {
        uid: req.uid(),
        gid: req.gid(),
        perm: (mode & !umask & 0o7777) as u16,
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn entry(reply: ReplyEntry, result: Result<Attr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&TTL, &file_attr(&attr), Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Server {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        entry(reply, self.model().lookup(parent.0, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.model().forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.model().getattr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.model().setattr(
            ino.0,
            mode.map(|m| (m & 0o7777) as u16),
            uid,
            gid,
            size,
            atime.map(time),
            mtime.map(time),
        );
        match result {
            Ok(attr) => reply.attr(&TTL, &file_attr(&attr)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.model().readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Only regular files: nothing the broker does needs devices, fifos or sockets.
            return reply.error(Errno::EPERM);
        }
        let owner = owner(req, mode, umask);
        entry(
            reply,
            self.model().create(parent.0, name, Kind::File, owner, None),
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let owner = owner(req, mode, umask);
        entry(
            reply,
            self.model().create(parent.0, name, Kind::Dir, owner, None),
        );
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.model().unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(reply, self.model().rmdir(parent.0, name));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let owner = owner(req, 0o777, 0);
        let result = self.model().create(
            parent.0,
            link_name,
            Kind::Symlink,
            owner,
            Some(target.as_os_str()),
        );
        entry(reply, result);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.model().rename(
            parent.0,
            name,
            newparent.0,
            newname,
            flags.contains(RenameFlags::RENAME_NOREPLACE),
            flags.contains(RenameFlags::RENAME_EXCHANGE),
        );
        empty(reply, result);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        entry(reply, self.model().link(ino.0, newparent.0, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().getattr(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.model().read(ino.0, offset, size) {
            Ok(data) => reply.data(data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.model().write(ino.0, offset, data) {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) is no barrier.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.model().fsync(ino.0, datasync));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.model().opendir(ino.0) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let model = self.model();
        let entries = match model.listing(fh.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        for (i, (ino, kind, name)) in entries.iter().enumerate() {
            // The offset handed back is where the next readdir resumes.
            let next = offset + i as u64 + 1;
            if reply.add(INodeNo(*ino), next, file_type(*kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.model().releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.model().fsyncdir(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (bytes, inodes) = self.model().usage();
        let free = TOTAL_BLOCKS.saturating_sub(bytes.div_ceil(BLOCK));
        let ffree = TOTAL_INODES.saturating_sub(inodes);
        let bsize = BLOCK as u32;
        reply.statfs(
            TOTAL_BLOCKS,
            free,
            free,
            TOTAL_INODES,
            ffree,
            bsize,
            255,
            bsize,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // Only asked without `default_permissions`; existence is all there is to check.
        empty(reply, self.model().getattr(ino.0).map(drop));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let owner = owner(req, mode, umask);
        let mut model = self.model();
        let mut result = model.create(parent.0, name, Kind::File, owner, None);
        if result.as_ref().is_err_and(|e| *e == Errno::EEXIST) && flags & libc::O_EXCL == 0 {
            // O_CREAT without O_EXCL on an existing name opens it.
            result = model.lookup(parent.0, name);
            let dir = result.as_ref().ok().filter(|attr| attr.kind == Kind::Dir);
            if let Some(ino) = dir.map(|attr| attr.ino) {
                model.forget(ino, 1);
                result = Err(Errno::EISDIR);
            }
        }
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &file_attr(&attr),
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        empty(reply, self.model().fallocate(ino.0, offset, length, mode));
    }
}
