//! Content type and metadata of an object, beside its data file. Each sidecar is named
//! after the identity of the data file it describes (`sidecars/<hh>/<hash of key>/<identity>`),
//! so a new version's sidecar is written beside the old one, never over it: whatever the
//! moment a process dies, the data file in place finds its own sidecar, or (for a version
//! that never had one) none.

use std::io::{self, Read};
use std::os::fd::AsFd;

use rustix::fs::{self as rfs, AtFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::root::{open_file, open_folder, read_folder, write_small_file, Root};
use crate::core::backend::Metadata;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    pub content_type: String,
    #[serde(default)]
    pub metadata: Metadata,
}

/// Sidecars are small; anything larger is not one of ours.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// Inode, size and modification time: enough to tell one written file from any later one,
/// even when the filesystem reuses the inode number. A rename keeps all four.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileIdentity {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileIdentity {
    pub fn of(stat: &rfs::Stat) -> FileIdentity {
        FileIdentity {
            ino: stat.st_ino as u64,
            size: stat.st_size as u64,
            mtime: stat.st_mtime as i64,
            mtime_nsec: stat.st_mtime_nsec as i64,
        }
    }

    /// An object's ETag: it changes whenever the file is rewritten (a new file, renamed in), and
    /// a listing can tell it from the file alone, without reading a sidecar.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}-{:x}\"", self.ino, self.size, (self.mtime as u64) << 30 ^ self.mtime_nsec as u64)
    }

    fn file_name(&self) -> String {
        format!("{:x}-{:x}-{:x}-{:x}", self.ino, self.size, self.mtime, self.mtime_nsec)
    }
}

/// Where one key's sidecars live: `<hh>/<hash>` under `sidecars/`.
fn folders(key: &str) -> [String; 2] {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    [hash[..2].to_owned(), hash]
}

impl Root {
    /// The sidecar of the version `identity` of `key`, if it has one.
    pub fn read_sidecar(&self, key: &str, identity: FileIdentity) -> Option<Sidecar> {
        let [fan, hash] = folders(key);
        let folder = open_folder(self.sidecars(), &[&fan, &hash], false, false).ok()?;
        let mut raw = Vec::new();
        open_file(folder.as_fd(), &identity.file_name()).ok()?.take(MAX_SIDECAR_BYTES).read_to_end(&mut raw).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    /// Writes the sidecar of the version `identity` of `key`, beside any other version's.
    pub fn write_sidecar(&self, key: &str, identity: FileIdentity, sidecar: &Sidecar) -> io::Result<()> {
        let [fan, hash] = folders(key);
        let folder = open_folder(self.sidecars(), &[&fan, &hash], true, self.durable)?;
        let json = serde_json::to_vec(sidecar).map_err(io::Error::other)?;
        write_small_file(folder.as_fd(), &identity.file_name(), &json, self.durable)?;
        self.sync_folder(folder.as_fd())
    }

    /// Removes the sidecar of version `identity` of `key` (a write that failed to commit).
    pub fn remove_sidecar(&self, key: &str, identity: FileIdentity) {
        let [fan, hash] = folders(key);
        let Ok(fan_folder) = open_folder(self.sidecars(), &[&fan], false, false) else { return };
        if let Ok(folder) = open_folder(fan_folder.as_fd(), &[&hash], false, false) {
            let _ = rfs::unlinkat(folder.as_fd(), identity.file_name().as_str(), AtFlags::empty());
        }
        // Gone with its last sidecar; a folder still holding one stays.
        let _ = rfs::unlinkat(fan_folder.as_fd(), hash.as_str(), AtFlags::REMOVEDIR);
    }

    /// Gives the sidecar of version `identity` of `from` to `to` as well (a hard link: the
    /// data file keeps its identity when renamed). Nothing to give is not an error.
    pub fn link_sidecar(&self, from: &str, to: &str, identity: FileIdentity) -> io::Result<()> {
        let ([from_fan, from_hash], [to_fan, to_hash]) = (folders(from), folders(to));
        let source = match open_folder(self.sidecars(), &[&from_fan, &from_hash], false, false) {
            Ok(folder) => folder,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(()),
            Err(e) => return Err(e),
        };
        let target = open_folder(self.sidecars(), &[&to_fan, &to_hash], true, self.durable)?;
        let name = identity.file_name();
        match rfs::linkat(source.as_fd(), name.as_str(), target.as_fd(), name.as_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::EXIST) => self.sync_folder(target.as_fd()),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every sidecar of `key` but the one of version `keep` (all of them for `None`):
    /// older versions' and those of writes that died before their data was renamed in.
    pub fn clean_sidecars(&self, key: &str, keep: Option<FileIdentity>) {
        let [fan, hash] = folders(key);
        let Ok(fan_folder) = open_folder(self.sidecars(), &[&fan], false, false) else { return };
        let Ok(folder) = open_folder(fan_folder.as_fd(), &[&hash], false, false) else { return };
        let keep = keep.map(|k| k.file_name());
        let names = read_folder(folder.as_fd()).unwrap_or_default();
        for (name, _) in names.iter().filter(|(name, _)| Some(name) != keep.as_ref()) {
            let _ = rfs::unlinkat(folder.as_fd(), name.as_str(), AtFlags::empty());
        }
        if keep.is_none() {
            let _ = rfs::unlinkat(fan_folder.as_fd(), hash.as_str(), AtFlags::REMOVEDIR);
        }
    }
}
