//! powerfs: a FUSE filesystem for power-loss tests. It keeps everything that was not made
//! durable in a "cache" and throws that away at a simulated power cut — which a `kill -9`
//! never does, since the OS page cache survives a killed process.
//!
//! # The model
//! Every object has a *current* state, which every read, `stat` and listing sees, and a
//! *durable* state, which is what a power cut leaves:
//! - **File data** (content and size). `write`, truncate/extend (`set_len`, `O_TRUNC`) and
//!   `fallocate` change the current data. `fsync` and `fdatasync` of the file (any fd of it)
//!   make all of it durable. Nothing else is a barrier: not `close`, not `sync_file_range`
//!   (the kernel never tells FUSE about it), not `syncfs`/`sync`.
//! - **Directory entries**. `create`, `mkdir`, `unlink`, `rmdir`, `rename`, `link` and
//!   `symlink` change the current entries of the directories involved; `fsync` of the
//!   directory (`File::open(dir)?.sync_all()`) makes its entries durable. So a new file or
//!   directory needs its parent fsynced to survive, even if its data was fsynced (and
//!   `create_dir_all` makes no parent durable); an unlinked name comes back unless its parent
//!   was fsynced; a rename survives only as far as each of its two directories was fsynced (a
//!   cross-directory rename with only the new directory fsynced leaves the file under both
//!   names, with only the old one fsynced under neither: it is gone). Inodes keep their
//!   identity across renames: write a temp file, fsync it, rename it over the target and
//!   fsync the directory, and a cut yields the new file; without the directory fsync, the old
//!   one. Rename an unsynced file into place and fsync the directory, and a cut yields the
//!   name with the file's durable data: empty.
//! - `flock` works as on a local filesystem (the kernel keeps the locks); a killed process's
//!   locks are gone with it.
//! - Permissions, owners and timestamps are not modelled: they are kept as they are.
//!
//! # A power cut
//! [`PowerFs::power_cut`] unmounts (the caller promises every process that used the mount is
//! dead: killed *and reaped*; it panics naming the holders otherwise), then every directory's
//! entries become its durable entries, every file's data its durable data, inodes no longer
//! reachable from the root are forgotten, and the same path is mounted again. The remount is
//! what guarantees no kernel cache (pages, attributes, names) outlives the cut. In
//! [`CutMode::Torn`] each file keeps, on top of its durable data, a random prefix of its
//! changes since its last fsync, in order, and the last write kept is torn at a random byte;
//! the seed makes it reproducible. The data becomes durable as it is left.
//!
//! # Use
//! ```ignore
//! let mut fs = powerfs::PowerFs::mount();
//! let data = fs.root().join("data");
//! // spawn the broker on `data`, do work, kill -9 and reap it, then:
//! let report = fs.power_cut(CutMode::DropUnsynced);
//! // start the broker again on `data`: it sees what a real power cut could have left.
//! ```
//! A directory the test means to exist before the broker starts (say its data path) must be
//! made durable like anything else — created, then its parent fsynced — or a cut removes it.
//! Mounting needs root and `/dev/fuse`; without either [`PowerFs::mount`] panics saying so —
//! a power-loss test never passes without running. Requests are served one at a time by a
//! background thread (fuser's session thread); the mount is unmounted when the `PowerFs` is
//! dropped, also while a test panics.

mod fuse;
mod model;

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, MountOption};

use fuse::{lock, Server};
use model::{Model, Owner};

/// What survives of the changes that were not made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutMode {
    /// Nothing that was not made durable survives.
    DropUnsynced,
    /// Per file, a random prefix of its unsynced changes survives in order and the last write
    /// of that prefix is torn at a random byte (a one-byte write is atomic); directory
    /// entries are handled as in `DropUnsynced`. The same seed after the same operations
    /// gives the same result.
    Torn { seed: u64 },
}

/// What a power cut discarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files that lost at least part of a change.
    pub files_reverted: u64,
    /// Bytes of unsynced writes that did not survive (whole writes and torn-off tails).
    pub bytes_dropped: u64,
    /// Writes that survived only in part.
    pub writes_torn: u64,
    /// Directory entries that existed before the cut and not after (a new name, or the new
    /// name of a rename).
    pub entries_dropped: u64,
    /// Directory entries that came back (an unlinked name, or the old name of a rename).
    pub entries_resurrected: u64,
    /// Inodes (files, directories, symlinks) that became unreachable and are gone.
    pub inodes_forgotten: u64,
}

/// Operations seen since the mount, for tests and figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// FUSE write requests (one `write(2)` is one, or several when larger than the kernel's
    /// maximum write size).
    pub writes: u64,
    pub bytes_written: u64,
    /// `fsync(2)` of a file (`sync_all`).
    pub fsyncs: u64,
    /// `fdatasync(2)` of a file (`sync_data`): the same barrier here.
    pub fdatasyncs: u64,
    /// `fsync(2)` of a directory (FUSE's `fsyncdir`).
    pub fsyncdirs: u64,
    pub cuts: u64,
}

/// A mounted powerfs on a fresh temporary directory.
pub struct PowerFs {
    model: Arc<Mutex<Model>>,
    /// `None` only while a cut has unmounted it (or after a remount failed).
    session: Option<BackgroundSession>,
    root: PathBuf,
    /// Removed after the unmount in `Drop`.
    _dir: tempfile::TempDir,
}

impl PowerFs {
    /// Mounts an empty powerfs (root directory owned by this process's user) on a fresh
    /// temporary directory.
    ///
    /// # Panics
    /// When not root, when `/dev/fuse` cannot be opened, or when the mount fails: the message
    /// says what is missing and that the power-loss tests did not run.
    pub fn mount() -> PowerFs {
        check_can_mount();
        let dir = tempfile::Builder::new()
            .prefix("powerfs-")
            .tempdir()
            .expect("powerfs: a temporary directory for the mount point");
        let root = dir
            .path()
            .canonicalize()
            .expect("powerfs: the mount point's path");
        // SAFETY: geteuid and getegid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let owner = Owner {
            uid,
            gid,
            perm: 0o755,
        };
        let model = Arc::new(Mutex::new(Model::new(owner)));
        let session = serve(&root, &model).unwrap_or_else(|e| {
            panic!(
                "powerfs: mounting FUSE on {} failed: {e}. The direct mount(2) needs root with \
                 CAP_SYS_ADMIN (without it fuser tries the fusermount3 helper instead). \
                 The power-loss tests did NOT run.",
                root.display()
            )
        });
        PowerFs {
            model,
            session: Some(session),
            root,
            _dir: dir,
        }
    }

    /// The mount point: the root directory of the filesystem.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Operations seen since [`PowerFs::mount`].
    pub fn counters(&self) -> Counters {
        lock(&self.model).counters()
    }

    /// Simulates a power cut (see the module docs) and mounts the result at the same path.
    /// Every process that used the mount must be dead and reaped, and this process must have
    /// closed its files on it.
    ///
    /// # Panics
    /// When the mount is still in use (naming the processes holding it; it stays mounted and
    /// unchanged), when the FUSE session thread had failed, or when the remount fails.
    pub fn power_cut(&mut self, mode: CutMode) -> CutReport {
        let session = self
            .session
            .take()
            .expect("powerfs: not mounted (an earlier power cut failed)");
        if let Err(e) = unmount_once_free(&self.root) {
            self.session = Some(session);
            panic!(
                "powerfs: the power cut cannot unmount {}: {e}. Every process that used the \
                 mount must be killed and reaped, and this process must close its files on it, \
                 before a cut. Still using it: {}",
                self.root.display(),
                describe(&holders(&self.root))
            );
        }
        if let Err(e) = join(session) {
            panic!("powerfs: the FUSE session thread failed before the cut: {e}");
        }
        let report = lock(&self.model).cut(mode);
        let session = serve(&self.root, &self.model).unwrap_or_else(|e| {
            panic!(
                "powerfs: remounting {} after the cut failed: {e}",
                self.root.display()
            )
        });
        self.session = Some(session);
        report
    }
}

impl Drop for PowerFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        match unmount(&self.root) {
            Ok(()) => {
                if let Err(e) = join(session) {
                    eprintln!("powerfs: the FUSE session thread failed: {e}");
                }
            }
            Err(e) => {
                // Still in use (a test failed with a process or file open on it): detach it
                // so no stale mount is left behind. The session thread ends by itself when
                // the last file on it is closed.
                eprintln!(
                    "powerfs: unmounting {} failed ({e}); still using it: {}; detaching it",
                    self.root.display(),
                    describe(&holders(&self.root))
                );
                if let Err(e) = detach(&self.root) {
                    eprintln!("powerfs: detaching {} failed too: {e}", self.root.display());
                }
                drop(session);
            }
        }
    }
}

/// Panics unless this process can mount FUSE.
fn check_can_mount() {
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "powerfs: mounting FUSE needs root, but this test runs as uid {euid}. \
         The power-loss tests did NOT run."
    );
    assert!(
        has_cap_sys_admin(),
        "powerfs: mounting FUSE needs CAP_SYS_ADMIN, which this root process lacks (a container \
         without --privileged or --cap-add SYS_ADMIN?). The power-loss tests did NOT run."
    );
    if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
        panic!(
            "powerfs: /dev/fuse cannot be opened ({e}): load the fuse module (`modprobe fuse`) \
             or give the container the device (`--device /dev/fuse`). \
             The power-loss tests did NOT run."
        );
    }
}

/// Whether this process's effective capabilities include CAP_SYS_ADMIN, which mount(2) needs;
/// assumed so when /proc cannot say.
fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
    effective.is_none_or(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The capability's bit number (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

/// Mounts `model` at `root` and serves it on a background thread.
fn serve(root: &Path, model: &Arc<Mutex<Model>>) -> io::Result<BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName("powerfs".into()),
        MountOption::DefaultPermissions,
    ];
    fuser::Session::new(Server::new(model.clone()), root, &config)?.spawn()
}

/// Waits for the session thread of an unmounted filesystem; returns how it ended.
fn join(session: BackgroundSession) -> io::Result<()> {
    match session.join() {
        // The kernel sometimes ends the connection of a just-unmounted filesystem with
        // ECONNABORTED rather than ENODEV; fuser 0.18 calls only the latter a clean end
        // (fixed upstream by cberner/fuser#708).
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(()),
        other => other,
    }
}

fn unmount(root: &Path) -> io::Result<()> {
    umount2(root, 0)
}

/// Unmounts `root`, waiting out a moment of busyness that passes by itself.
///
/// The kernel can report a mount busy just after its last holder let go: another test
/// thread's fork inherits this process's open files until the child's exec closes them, and
/// FUSE finishes a close asynchronously. So a busy mount is retried for up to 10 s while no
/// process holds it, and for half a second while one does (the fork window), after which a
/// test that really left a file open hears so.
fn unmount_once_free(root: &Path) -> io::Result<()> {
    use std::time::{Duration, Instant};
    let start = Instant::now();
    loop {
        match unmount(root) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let patience = if holders(root).is_empty() {
                    Duration::from_secs(10)
                } else {
                    Duration::from_millis(500)
                };
                if start.elapsed() >= patience {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

fn detach(root: &Path) -> io::Result<()> {
    umount2(root, libc::MNT_DETACH)
}

fn umount2(root: &Path, flags: libc::c_int) -> io::Result<()> {
    let path = CString::new(root.as_os_str().as_bytes())?;
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The processes with a file, working directory or root under `root`, as "pid (name)".
fn holders(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return vec!["(cannot read /proc)".into()];
    };
    for proc in procs.flatten() {
        let pid = proc.file_name();
        if !pid.as_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = proc.path();
        let mut links: Vec<PathBuf> = vec![dir.join("cwd"), dir.join("root")];
        if let Ok(fds) = std::fs::read_dir(dir.join("fd")) {
            links.extend(fds.flatten().map(|fd| fd.path()));
        }
        let holds = links
            .iter()
            .filter_map(|link| std::fs::read_link(link).ok())
            .any(|target| target.starts_with(root));
        if holds {
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            found.push(format!("{} ({})", pid.to_string_lossy(), name.trim()));
        }
    }
    found
}

fn describe(holders: &[String]) -> String {
    if holders.is_empty() {
        "no process found".into()
    } else {
        holders.join(", ")
    }
}
