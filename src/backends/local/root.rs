//! The store's folder, reached only through descriptors opened beneath it. Every path is
//! walked one folder at a time with `O_NOFOLLOW`, and every change is made relative to a
//! folder descriptor already open: no symlink, whenever it was swapped in, leads a key out of
//! the root, and nothing is checked by path and then used by path.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::core::error::{Error, Result};

/// The store's own folder under the root; no key may name it.
pub const INTERNAL_DIR: &str = ".rstorage";
const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
const FOLDER_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;
/// Held shared while a writer creates and locks its temp file, exclusively while temps are swept.
const SWEEP_LOCK: &str = "sweep";

pub struct Root {
    data: OwnedFd,
    internal: OwnedFd,
    tmp: OwnedFd,
    sidecars: OwnedFd,
    locks: OwnedFd,
    /// fsync data, sidecars and folders before a change is acknowledged.
    pub durable: bool,
    pub last_sweep: Mutex<Instant>,
}

/// A folder beneath the root (or the root itself) and the name of an entry in it.
pub struct Entry<'a> {
    folder: Option<OwnedFd>,
    base: BorrowedFd<'a>,
    pub name: &'a str,
}

impl Entry<'_> {
    pub fn folder(&self) -> BorrowedFd<'_> {
        self.folder.as_ref().map_or(self.base, |fd| fd.as_fd())
    }
}

impl Root {
    /// Opens (creating as needed) a store's folder and its internal folders.
    pub fn open(path: &Path, durable: bool) -> Result<Root> {
        // A root that cannot be made or opened is the configuration's fault, not a passing failure.
        let fail = |e: io::Error| Error::Configuration(format!("cannot open the storage root {}: {e}", path.display()));
        std::fs::create_dir_all(path).map_err(fail)?;
        let data = rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| fail(e.into()))?;
        let internal = open_folder(data.as_fd(), &[INTERNAL_DIR], true, durable).map_err(fail)?;
        let sub = |name| open_folder(internal.as_fd(), &[name], true, durable).map_err(fail);
        let (tmp, sidecars, locks) = (sub("tmp")?, sub("sidecars")?, sub("locks")?);
        Ok(Root { data, internal, tmp, sidecars, locks, durable, last_sweep: Mutex::new(Instant::now()) })
    }

    pub fn internal(&self) -> BorrowedFd<'_> {
        self.internal.as_fd()
    }

    pub fn sidecars(&self) -> BorrowedFd<'_> {
        self.sidecars.as_fd()
    }

    pub fn data(&self) -> BorrowedFd<'_> {
        self.data.as_fd()
    }

    /// The folder of a `/`-separated path beneath `base`, and the path's last segment.
    pub fn entry<'a>(&self, base: BorrowedFd<'a>, path: &'a str, create: bool) -> io::Result<Entry<'a>> {
        let (folders, name) = match path.rsplit_once('/') {
            Some((folders, name)) => (folders.split('/').collect::<Vec<_>>(), name),
            None => (Vec::new(), path),
        };
        let folder = (!folders.is_empty()).then(|| open_folder(base, &folders, create, self.durable)).transpose()?;
        Ok(Entry { folder, base, name })
    }

    /// Every folder from `base` down to the entry's folder: what pruning walks back up.
    pub fn chain(&self, base: BorrowedFd<'_>, path: &str) -> io::Result<Vec<OwnedFd>> {
        let mut chain = vec![rustix::io::dup(base)?];
        if let Some((folders, _)) = path.rsplit_once('/') {
            for segment in folders.split('/') {
                let next = rfs::openat(chain[chain.len() - 1].as_fd(), segment, DIR_FLAGS, Mode::empty())?;
                chain.push(next);
            }
        }
        Ok(chain)
    }

    /// Removes the folders of `path` left empty, deepest first; stops at the first that is not.
    pub fn prune(&self, chain: &[OwnedFd], path: &str) {
        let folders: Vec<&str> = path.rsplit_once('/').map_or(Vec::new(), |(f, _)| f.split('/').collect());
        for (depth, segment) in folders.iter().enumerate().rev() {
            if rfs::unlinkat(chain[depth].as_fd(), *segment, AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
    }

    /// Opens one of the lock files (created on first use).
    pub fn lock_file(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(File::from(rfs::openat(self.locks.as_fd(), name, flags, Mode::from_raw_mode(FILE_MODE))?))
    }

    /// Makes the entries of a folder durable (on a durable store).
    pub fn sync_folder(&self, folder: BorrowedFd<'_>) -> io::Result<()> {
        if self.durable {
            rfs::fsync(folder)?;
        }
        Ok(())
    }

    /// Removes every temp file no live writer holds (a writer holds a lock on its temp for
    /// as long as it lives; a killed writer's lock died with it). Returns how many went.
    pub fn sweep_temps(&self) -> io::Result<usize> {
        let sweep = self.lock_file(SWEEP_LOCK)?;
        sweep.lock()?;
        let mut removed = 0;
        for (name, _) in read_folder(self.tmp.as_fd())? {
            let Ok(file) = open_file(self.tmp.as_fd(), &name) else { continue };
            if file.try_lock().is_ok() && rfs::unlinkat(self.tmp.as_fd(), name.as_str(), AtFlags::empty()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A new temp file in `tmp/`, locked so no sweep takes it while its writer lives, and
    /// removed when dropped unless kept.
    pub fn temp_file(&self) -> io::Result<TempFile<'_>> {
        // Creating and locking are two steps: the sweep lock keeps a sweep out from between them.
        let sweep = self.lock_file(SWEEP_LOCK)?;
        sweep.lock_shared()?;
        let name = uuid::Uuid::new_v4().simple().to_string();
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = File::from(rfs::openat(self.tmp.as_fd(), name.as_str(), flags, Mode::from_raw_mode(FILE_MODE))?);
        let temp = TempFile { tmp: self.tmp.as_fd(), name, file, keep: false };
        temp.file.lock()?;
        Ok(temp)
    }
}

pub struct TempFile<'a> {
    tmp: BorrowedFd<'a>,
    pub name: String,
    pub file: File,
    /// Set once the file has been renamed into place.
    pub keep: bool,
}

impl TempFile<'_> {
    /// Moves the temp file to `name` in `folder`; with `no_replace`, an existing entry makes
    /// it fail with `AlreadyExists` and stay untouched.
    pub fn rename_to(&mut self, folder: BorrowedFd<'_>, name: &str, no_replace: bool) -> io::Result<()> {
        if no_replace {
            rename_no_replace(self.tmp, &self.name, folder, name)?;
        } else {
            rfs::renameat(self.tmp, self.name.as_str(), folder, name)?;
        }
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        // Removed while still locked, so no sweep can have taken a reused name in between.
        if !self.keep {
            let _ = rfs::unlinkat(self.tmp, self.name.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn rename_no_replace(from_dir: BorrowedFd, from: &str, to_dir: BorrowedFd, to: &str) -> io::Result<()> {
    match rfs::renameat_with(from_dir, from, to_dir, to, rfs::RenameFlags::NOREPLACE) {
        // Filesystems without it: a hard link also refuses to replace.
        Err(Errno::INVAL | Errno::NOSYS | Errno::NOTSUP) => link_then_unlink(from_dir, from, to_dir, to),
        other => Ok(other?),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn rename_no_replace(from_dir: BorrowedFd, from: &str, to_dir: BorrowedFd, to: &str) -> io::Result<()> {
    link_then_unlink(from_dir, from, to_dir, to)
}

fn link_then_unlink(from_dir: BorrowedFd, from: &str, to_dir: BorrowedFd, to: &str) -> io::Result<()> {
    rfs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
    rfs::unlinkat(from_dir, from, AtFlags::empty())?;
    Ok(())
}

/// Opens the folder that `segments` name beneath `base`, never through a symlink (`ELOOP`);
/// `create` makes missing folders (and, on a durable store, makes their entries durable).
pub fn open_folder(base: BorrowedFd<'_>, segments: &[&str], create: bool, durable: bool) -> io::Result<OwnedFd> {
    let mut current: Option<OwnedFd> = None;
    for segment in segments {
        let at = current.as_ref().map_or(base, |fd| fd.as_fd());
        let next = match rfs::openat(at, *segment, DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create => {
                match rfs::mkdirat(at, *segment, Mode::from_raw_mode(FOLDER_MODE)) {
                    Ok(()) if durable => rfs::fsync(at)?,
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                rfs::openat(at, *segment, DIR_FLAGS, Mode::empty())?
            }
            // With O_DIRECTORY a symlink may answer ENOTDIR: tell it apart from a file in the way.
            Err(Errno::NOTDIR) if is_symlink(at, segment) => return Err(Errno::LOOP.into()),
            other => other?,
        };
        current = Some(next);
    }
    match current {
        Some(fd) => Ok(fd),
        None => Ok(rustix::io::dup(base)?),
    }
}

fn is_symlink(folder: BorrowedFd<'_>, name: &str) -> bool {
    rfs::statat(folder, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink)
}

/// Opens a regular file for reading, never through a symlink.
pub fn open_file(folder: BorrowedFd<'_>, name: &str) -> io::Result<File> {
    Ok(File::from(rfs::openat(folder, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?))
}

/// Writes a small file in one go (created or truncated), fsynced on a durable store.
pub fn write_small_file(folder: BorrowedFd<'_>, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
    use std::io::Write;
    let flags = OFlags::CREATE | OFlags::TRUNC | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut file = File::from(rfs::openat(folder, name, flags, Mode::from_raw_mode(FILE_MODE))?);
    file.write_all(data)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

/// The names in a folder (not `.` and `..`), with their types as the folder reports them.
pub fn read_folder(folder: BorrowedFd<'_>) -> io::Result<Vec<(String, FileType)>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(folder)? {
        let entry = entry?;
        // Names that are not UTF-8 cannot be keys.
        let Ok(name) = entry.file_name().to_str() else { continue };
        if name != "." && name != ".." {
            names.push((name.to_owned(), entry.file_type()));
        }
    }
    Ok(names)
}
