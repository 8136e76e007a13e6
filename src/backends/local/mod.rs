//! The local filesystem store. Objects are plain files under the root, so other tools can
//! read them; content type, metadata and ETag live in sidecars under `.rstorage/`.
//!
//! A write goes to a temp file in `.rstorage/tmp` (same filesystem), is fsynced, and is
//! renamed into place under a per-key lock, its sidecar written beside the previous version's
//! first: a reader, or a process opening the store after a crash, sees the old object whole or
//! the new one whole, and a failed write leaves nothing behind. A store opened without
//! durability skips the fsyncs: writes then survive a crash of the process, not of the machine.
//! Every path is reached beneath the root without following symlinks (see `root`).

mod root;
mod secret;
mod sidecar;
mod write;

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rustix::fs::{self as rfs, AtFlags, FileType};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::core::backend::{
    Backend, GetOptions, GetResult, ListEntry, ListOptions, ListPage, Metadata, ObjectMeta, PutOptions, PutResult,
    SignOptions, Signing, DEFAULT_CONTENT_TYPE,
};
use crate::core::body::Body;
use crate::core::error::{Error, Result};
use crate::core::file::{blocking, read_file, ReadTo};
use crate::core::key::Key;
use crate::core::listing::paginate;
use crate::core::signing::UrlSigner;
use root::{open_file, open_folder, read_folder, Root, INTERNAL_DIR};
use sidecar::{FileIdentity, Sidecar};
use write::write_then_commit;

const LOCK_STRIPES: u64 = 64;
/// NAME_MAX on Linux and macOS filesystems.
const MAX_SEGMENT_BYTES: usize = 255;
/// Temp files of killed writers are swept when a store opens, then at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

pub struct LocalBackend {
    root: Arc<Root>,
    signer: UrlSigner,
}

impl LocalBackend {
    /// Opens (creating if needed) a store rooted at `path`, off the caller's thread. Without a
    /// secret, the one kept in the store is used (created on first use), so every process on
    /// this root agrees. Temp files that killed writers left are removed.
    pub async fn open(path: PathBuf, base_url: String, secret: Option<Vec<u8>>, durable: bool) -> Result<LocalBackend> {
        blocking(move || {
            let root = Root::open(&path, durable)?;
            let secret = match secret {
                Some(secret) => secret,
                None => root.stored_secret()?,
            };
            let signer = UrlSigner::new(secret, &base_url)?;
            root.sweep_temps().map_err(|e| Error::io("remove abandoned temp files", e))?;
            Ok(LocalBackend { root: Arc::new(root), signer })
        })
        .await
    }
}

/// The key as a path beneath the root.
fn checked(key: &Key) -> Result<&str> {
    check_path(key.as_str(), true).map_err(|reason| Error::InvalidKey { key: key.to_string(), reason })?;
    Ok(key.as_str())
}

/// Refuses the store's own folder and segments no filesystem can name. A listing prefix may
/// end inside its first segment, which then cannot be the store's folder yet.
fn check_path(path: &str, whole: bool) -> std::result::Result<(), &'static str> {
    if path.split('/').any(|segment| segment.len() > MAX_SEGMENT_BYTES) {
        return Err("a key segment over 255 bytes cannot be a file name on a local filesystem");
    }
    match path.split_once('/') {
        Some((first, _)) if is_internal(first) => Err("keys under .rstorage/ are reserved for the store's own files"),
        None if whole && is_internal(path) => Err("keys under .rstorage/ are reserved for the store's own files"),
        _ => Ok(()),
    }
}

/// Whether a case-insensitive filesystem (macOS, Windows) would take this name for the
/// store's own folder: case folded, and the characters such filesystems ignore dropped.
fn is_internal(name: &str) -> bool {
    let ignorable = |c: &char| matches!(c, '\u{AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}');
    let folded = name.chars().filter(|c| !ignorable(c)).map(|c| if c == 'ſ' { 's' } else { c });
    folded.flat_map(char::to_lowercase).eq(INTERNAL_DIR.chars())
}

fn errno(e: &io::Error) -> Option<Errno> {
    Errno::from_io_error(e)
}

/// What a failure to reach a key's file means for a read.
fn read_error(key: &Key, e: io::Error) -> Error {
    match errno(&e) {
        Some(Errno::NOENT | Errno::NOTDIR) => Error::NotFound { key: key.to_string() },
        Some(Errno::LOOP) => symlinked(key),
        _ => Error::io(format!("open {key}"), e),
    }
}

/// What a failure to put a file at a key means.
fn write_error(key: &Key, e: io::Error) -> Error {
    match errno(&e) {
        Some(Errno::NOTDIR | Errno::ISDIR | Errno::EXIST | Errno::NOTEMPTY) => Error::KeyConflict {
            key: key.to_string(),
            reason: "on the local store a key cannot be both an object and a folder of other keys (S3 allows both)",
        },
        Some(Errno::LOOP) => symlinked(key),
        _ => Error::io(format!("store {key}"), e),
    }
}

fn symlinked(key: &Key) -> Error {
    Error::PermissionDenied(format!(
        "{key}: a folder on this key's path is a symlink, which the local store never follows"
    ))
}

fn modified(stat: &rfs::Stat) -> SystemTime {
    let since_epoch = Duration::new(stat.st_mtime.max(0) as u64, stat.st_mtime_nsec as u32);
    UNIX_EPOCH + since_epoch
}

fn stripe(key: &Key) -> u64 {
    let digest = Sha256::digest(key.as_str().as_bytes());
    u64::from_le_bytes([digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7]])
        % LOCK_STRIPES
}

impl Root {
    /// Takes one of the lock stripes: writers of a key hold it exclusively while they swap
    /// files in, readers hold it shared while they open the file and its sidecar.
    fn lock(&self, stripe: u64, exclusive: bool) -> Result<File> {
        let file = self.lock_file(&stripe.to_string()).map_err(|e| Error::io("open a lock", e))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(|e| Error::io("lock", e))?;
        Ok(file)
    }

    /// Opens an object and its metadata, consistently.
    fn open_object(&self, key: &Key) -> Result<(File, ObjectMeta)> {
        let path = checked(key)?;
        let _lock = self.lock(stripe(key), false)?;
        let entry = self.entry(self.data(), path, false).map_err(|e| read_error(key, e))?;
        let file = open_file(entry.folder(), entry.name).map_err(|e| match errno(&e) {
            // The key itself is a symlink: not an object.
            Some(Errno::LOOP) => Error::NotFound { key: key.to_string() },
            _ => read_error(key, e),
        })?;
        let stat = rfs::fstat(&file).map_err(|e| Error::io(format!("stat {key}"), e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(Error::NotFound { key: key.to_string() });
        }
        let identity = FileIdentity::of(&stat);
        let sidecar = self
            .read_sidecar(path, identity)
            .unwrap_or_else(|| Sidecar { content_type: DEFAULT_CONTENT_TYPE.to_owned(), metadata: Metadata::new() });
        let meta = ObjectMeta {
            key: key.to_string(),
            size: stat.st_size as u64,
            content_type: sidecar.content_type,
            etag: Some(identity.etag()),
            last_modified: modified(&stat),
            metadata: sidecar.metadata,
        };
        Ok((file, meta))
    }

    /// Renames something into the key's place with `place`, making its folders first; a
    /// concurrent delete may prune a folder just made, so that is retried.
    fn place(
        &self,
        key: &Key,
        no_replace: bool,
        mut place: impl FnMut(BorrowedFd<'_>, &str) -> io::Result<()>,
    ) -> Result<()> {
        let mut attempts = 0;
        loop {
            let entry = self.entry(self.data(), key.as_str(), true).map_err(|e| write_error(key, e))?;
            match place(entry.folder(), entry.name) {
                Ok(()) => return self.sync_folder(entry.folder()).map_err(|e| Error::io(format!("store {key}"), e)),
                Err(e) if errno(&e) == Some(Errno::NOENT) && attempts < 3 => attempts += 1,
                Err(e) if errno(&e) == Some(Errno::EXIST) && no_replace => {
                    let existing = rfs::statat(entry.folder(), entry.name, AtFlags::SYMLINK_NOFOLLOW);
                    if existing.is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory) {
                        return Err(write_error(key, e));
                    }
                    return Err(Error::AlreadyExists { key: key.to_string() });
                }
                Err(e) => return Err(write_error(key, e)),
            }
        }
    }

    /// Swaps a fully written temp file (and its sidecar, if it needs one) into place.
    fn commit(
        &self,
        key: &Key,
        temp: &mut root::TempFile,
        identity: FileIdentity,
        options: PutOptions,
    ) -> Result<String> {
        let path = checked(key)?;
        let content_type = options.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
        // Nothing beyond what a plain file tells: no sidecar to write.
        let plain = content_type == DEFAULT_CONTENT_TYPE && options.metadata.is_empty();
        let etag = identity.etag();
        // Sidecars are written under the lock too: a concurrent writer cleaning up after its
        // own commit must not see this one's before its data is in place.
        let _lock = self.lock(stripe(key), true)?;
        if let Some(expected) = &options.if_match {
            if self.current_etag(path).as_ref() != Some(expected) {
                return Err(Error::Precondition {
                    key: key.to_string(),
                    reason: "its ETag is not the one given".into(),
                });
            }
        }
        if !plain {
            let sidecar = Sidecar { content_type, metadata: options.metadata };
            self.write_sidecar(path, identity, &sidecar).map_err(|e| Error::io(format!("store {key}"), e))?;
        }
        match self.place(key, options.if_not_exists, |folder, name| temp.rename_to(folder, name, options.if_not_exists))
        {
            Ok(()) => {
                self.clean_sidecars(path, (!plain).then_some(identity));
                Ok(etag)
            }
            Err(e) => {
                self.remove_sidecar(path, identity);
                Err(e)
            }
        }
    }

    /// The ETag of the object at `path` now, if there is one; the caller holds its lock.
    fn current_etag(&self, path: &str) -> Option<String> {
        let entry = self.entry(self.data(), path, false).ok()?;
        let stat = rfs::statat(entry.folder(), entry.name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile).then(|| FileIdentity::of(&stat).etag())
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let path = checked(key)?;
        let _lock = self.lock(stripe(key), true)?;
        let chain = match self.chain(self.data(), path) {
            Ok(chain) => chain,
            Err(e) if matches!(errno(&e), Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)) => return Ok(()),
            Err(e) => return Err(Error::io(format!("delete {key}"), e)),
        };
        let folder = chain[chain.len() - 1].as_fd();
        let name = path.rsplit('/').next().unwrap_or(path);
        match rfs::unlinkat(folder, name, AtFlags::empty()) {
            Ok(()) => {}
            // Missing already, or a folder of other keys (not an object).
            Err(Errno::NOENT | Errno::ISDIR | Errno::PERM) => {
                self.clean_sidecars(path, None);
                return Ok(());
            }
            Err(e) => return Err(Error::io(format!("delete {key}"), e.into())),
        }
        self.clean_sidecars(path, None);
        self.sync_folder(folder).map_err(|e| Error::io(format!("delete {key}"), e))?;
        // Deleted prefixes leave no empty folders behind.
        self.prune(&chain, path);
        Ok(())
    }

    fn move_object(&self, from: &Key, to: &Key) -> Result<()> {
        let (source_path, target_path) = (checked(from)?, checked(to)?);
        let (a, b) = (stripe(from).min(stripe(to)), stripe(from).max(stripe(to)));
        let _first = self.lock(a, true)?;
        let _second = (a != b).then(|| self.lock(b, true)).transpose()?;
        let source = self.entry(self.data(), source_path, false).map_err(|e| read_error(from, e))?;
        let stat = match rfs::statat(source.folder(), source.name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile => stat,
            _ => return Err(Error::NotFound { key: from.to_string() }),
        };
        // The target gets the sidecar before the data: at every moment the data file in either
        // place finds its own. The data file keeps its identity when renamed.
        let identity = FileIdentity::of(&stat);
        self.link_sidecar(source_path, target_path, identity).map_err(|e| Error::io(format!("move {from}"), e))?;
        let moved =
            self.place(to, false, |folder, name| Ok(rfs::renameat(source.folder(), source.name, folder, name)?));
        if let Err(e) = moved {
            self.remove_sidecar(target_path, identity);
            return Err(e);
        }
        self.clean_sidecars(target_path, Some(identity));
        self.clean_sidecars(source_path, None);
        self.sync_folder(source.folder()).map_err(|e| Error::io(format!("move {from}"), e))?;
        if let Ok(chain) = self.chain(self.data(), source_path) {
            self.prune(&chain, source_path);
        }
        Ok(())
    }

    /// One page of the objects under the listing's prefix, walking only what the page needs:
    /// folders are read in key order, those wholly before the cursor are skipped, and with a
    /// "/" delimiter a folder that becomes one common prefix is left after its first object.
    /// Symlinks are never followed.
    fn list_page(&self, options: &ListOptions) -> Result<ListPage> {
        let prefix = options.prefix.as_str();
        check_path(prefix, false).map_err(|reason| Error::InvalidKey { key: prefix.to_owned(), reason })?;
        let start = prefix.rsplit_once('/').map(|(folder, _)| folder);
        let segments: Vec<&str> = start.map_or(Vec::new(), |folder| folder.split('/').collect());
        let folder = match open_folder(self.data(), &segments, false, false) {
            Ok(folder) => folder,
            Err(e) if matches!(errno(&e), Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP)) => {
                return Ok(ListPage::default())
            }
            Err(e) => return Err(Error::io("list", e)),
        };
        let base = start.map_or(String::new(), |f| format!("{f}/"));
        let mut walk = Walk { options, stack: Vec::new(), collapsing: None, failed: None };
        walk.enter(folder, base);
        let page = paginate(&mut walk, options);
        match walk.failed {
            Some(e) => Err(Error::io("list", e)),
            None => Ok(page),
        }
    }
}

/// A folder being read: its key prefix and its entries left, in key order.
type OpenFolder = (OwnedFd, String, std::vec::IntoIter<(String, FileType)>);

/// The objects under a listing's prefix in key order, read lazily, folder by folder.
struct Walk<'a> {
    options: &'a ListOptions,
    stack: Vec<OpenFolder>,
    /// The depth of a folder that collapses into one common prefix: left after its first object.
    collapsing: Option<usize>,
    failed: Option<io::Error>,
}

impl Walk<'_> {
    fn enter(&mut self, folder: OwnedFd, base: String) {
        match read_folder(folder.as_fd()) {
            Ok(mut entries) => {
                // A folder's keys all start with "name/": sorted that way, a depth-first walk
                // meets keys in byte order.
                let sort_key = |(name, kind): &(String, FileType)| {
                    if *kind == FileType::Directory {
                        format!("{name}/")
                    } else {
                        name.clone()
                    }
                };
                entries.sort_by_cached_key(sort_key);
                self.stack.push((folder, base, entries.into_iter()));
            }
            Err(e) => self.failed = Some(e),
        }
    }
}

/// Whether a folder whose keys all start with `folder_prefix` can hold nothing of this page.
fn skips(options: &ListOptions, folder_prefix: &str) -> bool {
    let prefix = options.prefix.as_str();
    if !(folder_prefix.starts_with(prefix) || prefix.starts_with(folder_prefix)) {
        return true;
    }
    let Some(cursor) = options.cursor.as_deref() else { return false };
    // Every key under it sorts before the cursor, or (a delimiter's common prefix) is it.
    if folder_prefix < cursor && !cursor.starts_with(folder_prefix) {
        return true;
    }
    collapses(options, folder_prefix).is_some_and(|common| common.as_str() <= cursor)
}

/// The common prefix a folder's keys all become under a "/" delimiter, if they do.
fn collapses(options: &ListOptions, folder_prefix: &str) -> Option<String> {
    let prefix = options.prefix.as_str();
    if options.delimiter.as_deref() != Some("/") || folder_prefix.len() <= prefix.len() {
        return None;
    }
    let rest = folder_prefix.strip_prefix(prefix)?;
    rest.find('/').map(|i| format!("{prefix}{}", &rest[..=i]))
}

impl Iterator for Walk<'_> {
    type Item = ListEntry;

    fn next(&mut self) -> Option<ListEntry> {
        let options = self.options;
        while self.failed.is_none() {
            let (folder, base, entries) = self.stack.last_mut()?;
            let Some((name, kind)) = entries.next() else {
                self.stack.pop();
                if self.collapsing == Some(self.stack.len()) {
                    self.collapsing = None;
                }
                continue;
            };
            if base.is_empty() && is_internal(&name) {
                continue;
            }
            let key = format!("{base}{name}");
            let folder = folder.as_fd();
            let stat = || rfs::statat(folder, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
            let kind = match kind {
                FileType::Unknown => stat().map_or(FileType::Unknown, |s| FileType::from_raw_mode(s.st_mode)),
                known => known,
            };
            if kind == FileType::Directory {
                let folder_prefix = format!("{key}/");
                if skips(options, &folder_prefix) {
                    continue;
                }
                if let Ok(child) = open_folder(folder, &[&name], false, false) {
                    if self.collapsing.is_none() && collapses(options, &folder_prefix).is_some() {
                        self.collapsing = Some(self.stack.len());
                    }
                    self.enter(child, folder_prefix);
                }
                continue;
            }
            if kind != FileType::RegularFile || !key.starts_with(options.prefix.as_str()) || !Key::is_well_formed(&key)
            {
                continue;
            }
            // Before the cursor: on an earlier page, and not worth a stat.
            if options.cursor.as_deref().is_some_and(|cursor| key.as_str() <= cursor) && self.collapsing.is_none() {
                continue;
            }
            let Some(stat) = stat() else { continue };
            if let Some(depth) = self.collapsing.take() {
                // One object stands for the whole common prefix: the rest of it is not read.
                self.stack.truncate(depth);
            }
            return Some(ListEntry {
                size: stat.st_size as u64,
                last_modified: modified(&stat),
                etag: Some(FileIdentity::of(&stat).etag()),
                key,
            });
        }
        None
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        checked(key)?;
        let k = key.clone();
        let etag = write_then_commit(Arc::clone(&self.root), body, move |root, temp, identity| {
            root.commit(&k, temp, identity, options)
        })
        .await?;
        self.sweep_now_and_then();
        Ok(PutResult { etag: Some(etag) })
    }

    async fn download(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let (root, k) = (Arc::clone(&self.root), key.clone());
        let (file, meta) = blocking(move || root.open_object(&k)).await?;
        let span = match options.range {
            Some(range) => range.resolve(meta.size)?,
            None => (0, meta.size),
        };
        Ok(GetResult { stream: read_file(file, span.0, ReadTo::Exactly(span.1)), meta, span })
    }

    async fn stat(&self, key: &Key) -> Result<ObjectMeta> {
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking(move || root.open_object(&k).map(|(_, meta)| meta)).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let (root, k) = (Arc::clone(&self.root), key.clone());
        blocking(move || root.remove(&k)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let (root, opts) = (Arc::clone(&self.root), options.clone());
        blocking(move || root.list_page(&opts)).await
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Signing {
        Signing::Ready(checked(key).and_then(|_| self.signer.sign(key, options, SystemTime::now())))
    }

    fn url_signer(&self) -> Option<&UrlSigner> {
        Some(&self.signer)
    }

    async fn move_object(&self, from: &Key, to: &Key) -> Result<()> {
        let (root, from, to) = (Arc::clone(&self.root), from.clone(), to.clone());
        blocking(move || root.move_object(&from, &to)).await
    }

    /// A temp file no live writer holds is abandoned, whatever its age.
    async fn delete_incomplete_uploads(&self, _before: SystemTime) -> Result<u64> {
        let root = Arc::clone(&self.root);
        blocking(move || root.sweep_temps().map(|n| n as u64).map_err(|e| Error::io("remove abandoned temp files", e)))
            .await
    }
}

impl LocalBackend {
    /// Sweeps temp files again once `SWEEP_EVERY` has passed, in the background.
    fn sweep_now_and_then(&self) {
        let mut last = self.root.last_sweep.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < SWEEP_EVERY {
            return;
        }
        *last = Instant::now();
        let root = Arc::clone(&self.root);
        tokio::task::spawn_blocking(move || root.sweep_temps());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use bytes::Bytes;

    use super::*;
    use crate::core::storage::{Storage, UploadOptions};

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Paged listings of any tree (any prefix, limit, with and without a delimiter) give,
        /// page by page, what paging the whole sorted key list gives.
        #[test]
        fn paged_listings_match_the_sorted_keys(
            keys in proptest::collection::btree_set("[ab]{1,2}(/[ab.-]{1,2}){0,3}", 1..40),
            prefix in "([ab]{0,2}(/[ab]{0,1})?)?",
            limit in 1usize..6,
            delimited: bool,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let storage = Storage::new(Arc::new(
                    LocalBackend::open(dir.path().to_owned(), "http://127.0.0.1:9/".into(), None, false).await.unwrap(),
                ));
                // A key that is also a folder of other keys cannot be stored here: keep the first.
                let mut stored: Vec<String> = Vec::new();
                for key in &keys {
                    if Key::parse(key.as_str()).is_ok()
                        && storage.put(key, Body::bytes(Bytes::from_static(b"x")), UploadOptions::default()).await.is_ok()
                    {
                        stored.push(key.clone());
                    }
                }
                let entry = |key: &String| ListEntry { key: key.clone(), size: 1, last_modified: UNIX_EPOCH, etag: None };
                let all: Vec<ListEntry> = stored.iter().map(entry).collect();
                let delimiter = delimited.then(|| "/".to_owned());
                let mut options = ListOptions { prefix: prefix.clone(), delimiter: delimiter.clone(), limit: Some(limit), cursor: None };
                let mut expected_options = options.clone();
                if crate::core::key::check_prefix(&prefix).is_err() {
                    return Ok(());
                }
                loop {
                    let page = storage.list(options.clone()).await.unwrap();
                    let expected = paginate(all.clone(), &expected_options);
                    let keys_of = |p: &ListPage| p.objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
                    proptest::prop_assert_eq!(keys_of(&page), keys_of(&expected));
                    proptest::prop_assert_eq!(&page.prefixes, &expected.prefixes);
                    proptest::prop_assert_eq!(page.cursor.is_some(), expected.cursor.is_some());
                    match (page.cursor, expected.cursor) {
                        (Some(cursor), Some(raw)) => {
                            options.cursor = Some(cursor);
                            expected_options.cursor = Some(raw);
                        }
                        _ => break,
                    }
                }
                Ok(())
            })?;
        }
    }

    #[test]
    fn the_stores_folder_is_reserved_in_any_spelling() {
        for name in [".rstorage", ".RSTORAGE", ".RStorage", ".r\u{17f}torage", ".rs\u{200b}torage", ".rstor\u{ad}age"] {
            assert!(is_internal(name), "{name:?}");
        }
        for name in [".rstorage2", "rstorage", ".rstorag", "x.rstorage"] {
            assert!(!is_internal(name), "{name:?}");
        }
        assert!(check_path(".RStorage/signing-secret", true).is_err());
        assert!(check_path(".rstorage", true).is_err());
        assert!(check_path(".rstorage", false).is_ok(), "a prefix may still go on to .rstorage2");
        assert!(check_path(&format!("a/{}", "x".repeat(256)), false).is_err());
    }

    /// A folder on a key's path swapped for a symlink to outside (and back), as fast as the
    /// machine allows, while the store writes, reads, lists, moves and deletes through it:
    /// nothing is ever read, written or removed outside the root.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_symlink_swapped_in_mid_operation_never_leads_outside() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside").unwrap();
        let root = dir.path().join("root");
        let backend =
            LocalBackend::open(root.clone(), "http://localhost".into(), Some(vec![7; 32]), false).await.unwrap();
        let storage = Storage::new(Arc::new(backend));
        std::fs::create_dir_all(root.join("flip")).unwrap();
        std::fs::write(root.join("flip/secret"), "inside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("flop")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (root, stop) = (root.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let exchange = rfs::RenameFlags::EXCHANGE;
                    match rfs::renameat_with(rfs::CWD, root.join("flip"), rfs::CWD, root.join("flop"), exchange) {
                        Ok(()) => swaps += 1,
                        // A delete pruned the real folder while it was in place: make it again.
                        Err(_) => {
                            let _ = std::fs::create_dir(root.join("flip"));
                            let _ = std::fs::create_dir(root.join("flop"));
                        }
                    }
                }
                swaps
            })
        };
        let mut outside_reads = 0;
        for i in 0..3000 {
            let body = Body::bytes(Bytes::from_static(b"planted"));
            let _ = storage.put(&format!("flip/planted-{i}"), body, UploadOptions::default()).await;
            if let Ok(bytes) = storage.get("flip/secret", GetOptions::default()).await {
                outside_reads += usize::from(bytes == "outside");
            }
            let _ = storage.list(ListOptions { prefix: "flip/".into(), ..Default::default() }).await;
            let _ = storage.move_object("flip/secret", "flip/secret").await;
            let _ = storage.delete(&format!("flip/planted-{i}")).await;
            if i % 100 == 0 {
                let _ = storage.delete("flip/secret").await;
                let _ = storage
                    .put("flip/secret", Body::bytes(Bytes::from_static(b"inside")), UploadOptions::default())
                    .await;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 1000, "only {swaps} swaps");
        assert_eq!(outside_reads, 0);
        let names: Vec<_> = std::fs::read_dir(outside.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret"], "written or removed outside the root");
        assert_eq!(std::fs::read_to_string(outside.path().join("secret")).unwrap(), "outside");
    }
}
