//! The local filesystem store. Objects are plain files under the root, so other tools can
//! read them; content type, metadata and ETag live in a sidecar under `.rstorage/`.
//!
//! Writes go to a temp file in `.rstorage/tmp` (same filesystem), are fsynced, and are
//! renamed into place under a per-key lock, so a reader sees the old object or the new one,
//! never a torn one, and a failed write leaves nothing behind. A store opened without
//! durability skips the fsyncs: writes then survive a crash of the process, not of the machine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backends::memory::new_etag;
use crate::core::backend::{
    Backend, GetOptions, GetResult, ListEntry, ListOptions, ListPage, Metadata, ObjectMeta, PutOptions, PutResult,
    SignOptions, SignedUrl, DEFAULT_CONTENT_TYPE,
};
use crate::core::body::{Body, ByteStream, CHUNK_SIZE};
use crate::core::error::{Error, Result};
use crate::core::key::Key;
use crate::core::listing::paginate;
use crate::core::signing::UrlSigner;

/// The store's own files; keys may not start with this segment.
pub const INTERNAL_DIR: &str = ".rstorage";
const LOCK_STRIPES: u64 = 64;
/// NAME_MAX on Linux and macOS filesystems.
const MAX_SEGMENT_BYTES: usize = 255;
const SECRET_FILE: &str = "signing-secret";

/// What the sidecar records. `file` ties it to one data file: a sidecar that does not match the
/// file (a crash between the two renames, a file replaced by another tool) is ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sidecar {
    content_type: String,
    #[serde(default)]
    metadata: Metadata,
    etag: String,
    file: FileIdentity,
}

/// Inode, size and modification time: enough to tell one written file from any later one,
/// even when the filesystem reuses the inode number.
#[derive(Serialize, Deserialize, PartialEq, Eq)]
struct FileIdentity {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl FileIdentity {
    fn of(stat: &fs::Metadata) -> FileIdentity {
        FileIdentity { ino: stat.ino(), size: stat.len(), mtime: stat.mtime(), mtime_nsec: stat.mtime_nsec() }
    }

    /// The ETag of a file without a sidecar: it changes whenever the file is rewritten.
    fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.size, self.mtime_nsec as u64 ^ (self.mtime as u64) << 20)
    }
}

pub struct LocalBackend {
    fs: Arc<Root>,
    signer: UrlSigner,
}

/// The store's folder; its methods block, so they run on the blocking pool.
struct Root {
    root: PathBuf,
    internal: PathBuf,
    /// fsync data, sidecars and folders before a write is acknowledged.
    durable: bool,
}

impl LocalBackend {
    /// Opens (creating if needed) a store rooted at `root`. Without a secret, the one kept in
    /// the store is used (created on first use), so every process on this root agrees.
    pub fn open(root: &Path, base_url: &str, secret: Option<Vec<u8>>, durable: bool) -> Result<LocalBackend> {
        let internal = root.join(INTERNAL_DIR);
        for dir in ["tmp", "meta", "locks"] {
            fs::create_dir_all(internal.join(dir)).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        }
        let root = root.canonicalize().map_err(|e| Error::io("resolve the storage root", e))?;
        let internal = root.join(INTERNAL_DIR);
        let secret = match secret {
            Some(secret) => secret,
            None => stored_secret(&internal.join(SECRET_FILE))?,
        };
        Ok(LocalBackend { signer: UrlSigner::new(secret, base_url)?, fs: Arc::new(Root { root, internal, durable }) })
    }
}

impl Root {
    fn data_path(&self, key: &Key) -> Result<PathBuf> {
        if key.as_str().split('/').next() == Some(INTERNAL_DIR) {
            return Err(Error::InvalidKey { key: key.to_string(), reason: "keys under .rstorage/ are reserved" });
        }
        if key.as_str().split('/').any(|segment| segment.len() > MAX_SEGMENT_BYTES) {
            return Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "a key segment over 255 bytes cannot be a file name on a local filesystem",
            });
        }
        Ok(self.root.join(key.as_str()))
    }

    fn sidecar_path(&self, key: &Key) -> PathBuf {
        let hash = hex::encode(Sha256::digest(key.as_str().as_bytes()));
        self.internal.join("meta").join(&hash[..2]).join(hash)
    }

    /// Refuses paths whose folders pass through a symlink (which could leave the root).
    fn check_parent(&self, key: &Key, path: &Path) -> io::Result<()> {
        let parent = path.parent().expect("a data path is below the root");
        let expected = match key.as_str().rsplit_once('/') {
            Some((dir, _)) => self.root.join(dir),
            None => self.root.clone(),
        };
        if parent.canonicalize()? != expected {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "the key's folder is a symlink"));
        }
        Ok(())
    }

    /// Takes one of the lock stripes; writers of a key hold it exclusively while they swap
    /// files in, readers hold it shared while they open the file and its sidecar.
    fn lock(&self, key: &Key, exclusive: bool) -> Result<File> {
        let file = self.stripe_file(stripe(key))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(|e| Error::io("lock", e))?;
        Ok(file)
    }

    fn stripe_file(&self, stripe: u64) -> Result<File> {
        let path = self.internal.join("locks").join(stripe.to_string());
        OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| Error::io("open a lock", e))
    }

    /// Opens an object and its metadata, consistently.
    fn open_object(&self, key: &Key) -> Result<(File, ObjectMeta)> {
        let path = self.data_path(key)?;
        let not_found = || Error::NotFound { key: key.to_string() };
        let _lock = self.lock(key, false)?;
        let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
            Ok(file) => file,
            Err(e) if is_missing(&e) => return Err(not_found()),
            Err(e) => return Err(Error::io(format!("open {key}"), e)),
        };
        self.check_parent(key, &path).map_err(|e| Error::io(format!("open {key}"), e))?;
        let stat = file.metadata().map_err(|e| Error::io(format!("stat {key}"), e))?;
        if !stat.is_file() {
            return Err(not_found());
        }
        let sidecar = fs::read(self.sidecar_path(key))
            .ok()
            .and_then(|raw| serde_json::from_slice::<Sidecar>(&raw).ok())
            .filter(|s| s.file == FileIdentity::of(&stat));
        let modified = stat.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let meta = match sidecar {
            Some(s) => ObjectMeta {
                key: key.to_string(),
                size: stat.len(),
                content_type: s.content_type,
                etag: Some(s.etag),
                last_modified: modified,
                metadata: s.metadata,
            },
            None => ObjectMeta {
                key: key.to_string(),
                size: stat.len(),
                content_type: DEFAULT_CONTENT_TYPE.to_owned(),
                etag: Some(FileIdentity::of(&stat).etag()),
                last_modified: modified,
                metadata: Metadata::new(),
            },
        };
        Ok((file, meta))
    }

    /// Swaps a fully written temp file (and its sidecar, if it needs one) into place.
    fn commit(&self, key: &Key, temp: &Path, sidecar: Option<&Sidecar>, if_not_exists: bool) -> Result<()> {
        let path = self.data_path(key)?;
        let fail = |e: io::Error| Error::io(format!("store {key}"), e);
        let _lock = self.lock(key, true)?;
        if if_not_exists && fs::symlink_metadata(&path).is_ok() {
            return Err(Error::AlreadyExists { key: key.to_string() });
        }
        let sidecar_path = self.sidecar_path(key);
        let sidecar_temp = temp.with_extension("meta");
        if let Some(sidecar) = sidecar {
            let json = serde_json::to_vec(sidecar).expect("sidecar serializes");
            write_file(&sidecar_temp, &json, self.durable).map_err(fail)?;
        }
        let parent = path.parent().expect("a data path is below the root");
        // A concurrent delete may prune a folder we just made; make it again and retry.
        let mut attempts = 0;
        loop {
            fs::create_dir_all(parent).map_err(|e| conflict_or(key, e, fail))?;
            self.check_parent(key, &path).map_err(fail)?;
            let renamed = match sidecar {
                Some(_) => fs::create_dir_all(sidecar_path.parent().expect("sidecars sit in a fan-out folder"))
                    .and_then(|_| fs::rename(&sidecar_temp, &sidecar_path)),
                None => Ok(()),
            };
            match renamed.and_then(|_| fs::rename(temp, &path)) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => {
                    let _ = fs::remove_file(&sidecar_temp);
                    return Err(conflict_or(key, e, fail));
                }
            }
        }
        if sidecar.is_none() {
            // An older version's sidecar no longer matches the file; it would only be ignored.
            let _ = fs::remove_file(&sidecar_path);
        }
        self.sync_dir(parent).map_err(fail)
    }

    /// Makes renames in a folder durable (on a durable store).
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if !self.durable {
            return Ok(());
        }
        File::open(dir).and_then(|dir| dir.sync_all())
    }

    fn remove(&self, key: &Key) -> Result<()> {
        let path = self.data_path(key)?;
        let _lock = self.lock(key, true)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if is_missing(&e) || path.is_dir() => return Ok(()),
            Err(e) => return Err(Error::io(format!("delete {key}"), e)),
        }
        let _ = fs::remove_file(self.sidecar_path(key));
        // Prune folders left empty, so deleted prefixes leave no trace; stops at the first
        // folder that still holds something.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn move_object(&self, from: &Key, to: &Key) -> Result<()> {
        let (source, target) = (self.data_path(from)?, self.data_path(to)?);
        let fail = |e: io::Error| Error::io(format!("move {from} to {to}"), e);
        let (a, b) = (stripe(from).min(stripe(to)), stripe(from).max(stripe(to)));
        let first = self.stripe_file(a)?;
        first.lock().map_err(fail)?;
        let second = (a != b).then(|| self.stripe_file(b)).transpose()?;
        if let Some(second) = &second {
            second.lock().map_err(fail)?;
        }
        match fs::symlink_metadata(&source) {
            Ok(stat) if stat.is_file() => self.check_parent(from, &source).map_err(fail)?,
            _ => return Err(Error::NotFound { key: from.to_string() }),
        }
        let parent = target.parent().expect("a data path is below the root");
        fs::create_dir_all(parent).map_err(|e| conflict_or(to, e, fail))?;
        self.check_parent(to, &target).map_err(fail)?;
        let (from_sidecar, to_sidecar) = (self.sidecar_path(from), self.sidecar_path(to));
        fs::create_dir_all(to_sidecar.parent().expect("sidecars sit in a fan-out folder")).map_err(fail)?;
        // Inode and times survive the rename, so the moved sidecar still matches the moved file.
        if fs::rename(&from_sidecar, &to_sidecar).is_err() {
            let _ = fs::remove_file(&to_sidecar);
        }
        fs::rename(&source, &target).map_err(|e| conflict_or(to, e, fail))?;
        self.sync_dir(parent).map_err(fail)
    }

    fn walk(&self, prefix: &str) -> Result<Vec<ListEntry>> {
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) => self.root.join(dir),
            None => self.root.clone(),
        };
        let mut entries = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let listing = match fs::read_dir(&dir) {
                Ok(listing) => listing,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(Error::io("list", e)),
            };
            for entry in listing {
                let entry = entry.map_err(|e| Error::io("list", e))?;
                let path = entry.path();
                if path == self.internal {
                    continue;
                }
                // Symlinks are never followed: they could lead out of the root.
                let Ok(stat) = entry.metadata() else { continue };
                let Some(key) = path.strip_prefix(&self.root).ok().and_then(|p| p.to_str()) else {
                    continue;
                };
                if !key.starts_with(prefix) && !prefix.starts_with(&format!("{key}/")) {
                    continue;
                }
                if stat.is_dir() {
                    pending.push(path.clone());
                } else if stat.is_file() && Key::parse(key).is_ok() {
                    entries.push(ListEntry {
                        key: key.to_owned(),
                        size: stat.len(),
                        last_modified: stat.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        etag: None,
                    });
                }
            }
        }
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn put(&self, key: &Key, body: Body, options: PutOptions) -> Result<PutResult> {
        self.fs.data_path(key)?;
        let temp = self.fs.internal.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
        let (this, k, t) = (Arc::clone(&self.fs), key.clone(), temp.clone());
        let committed = write_then_commit(&temp, body, self.fs.durable, move |file| {
            let content_type = options.content_type.unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned());
            // Nothing beyond what a plain file tells: no sidecar to write.
            let plain = content_type == DEFAULT_CONTENT_TYPE && options.metadata.is_empty();
            let etag = if plain { file.etag() } else { new_etag() };
            let sidecar =
                (!plain).then(|| Sidecar { content_type, metadata: options.metadata, etag: etag.clone(), file });
            this.commit(&k, &t, sidecar.as_ref(), options.if_not_exists).map(|_| etag)
        })
        .await;
        if committed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        committed.map(|etag| PutResult { etag: Some(etag) })
    }

    async fn get(&self, key: &Key, options: GetOptions) -> Result<GetResult> {
        let (this, k) = (Arc::clone(&self.fs), key.clone());
        let (file, meta) = blocking(move || this.open_object(&k)).await?;
        let span = match options.range {
            Some(range) => range.resolve(meta.size)?,
            None => (0, meta.size),
        };
        Ok(GetResult { stream: read_file(file, span), meta, span })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let (this, k) = (Arc::clone(&self.fs), key.clone());
        blocking(move || this.open_object(&k).map(|(_, meta)| meta)).await
    }

    async fn delete(&self, key: &Key) -> Result<()> {
        let (this, k) = (Arc::clone(&self.fs), key.clone());
        blocking(move || this.remove(&k)).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let (this, opts) = (Arc::clone(&self.fs), options.clone());
        blocking(move || this.walk(&opts.prefix).map(|entries| paginate(entries, &opts))).await
    }

    fn sign_url(&self, key: &Key, options: &SignOptions) -> Result<SignedUrl> {
        self.fs.data_path(key)?;
        self.signer.sign(key, options, SystemTime::now())
    }

    fn url_signer(&self) -> Option<&UrlSigner> {
        Some(&self.signer)
    }

    async fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        let (this, from, to) = (Arc::clone(&self.fs), from.clone(), to.clone());
        blocking(move || this.move_object(&from, &to)).await
    }
}

fn stripe(key: &Key) -> u64 {
    let digest = Sha256::digest(key.as_str().as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % LOCK_STRIPES
}

fn is_missing(e: &io::Error) -> bool {
    // ENOTDIR: a path component is a file; ELOOP: the last component is a symlink.
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) || e.raw_os_error() == Some(libc::ELOOP)
}

/// A key whose folders collide with existing files (or a key that is a folder) cannot be stored.
fn conflict_or(key: &Key, e: io::Error, fail: impl Fn(io::Error) -> Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory | io::ErrorKind::AlreadyExists => {
            Error::Precondition {
                key: key.to_string(),
                reason: "the key collides with a folder or file of other keys".into(),
            }
        }
        _ => fail(e),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::io("background task", io::Error::other(e)))?
}

/// Chunks queued for the writer thread.
const WRITE_QUEUE: usize = 8;
/// Start writeback every this many bytes, so the closing fsync has little left to flush.
const WRITEBACK_EVERY: usize = 8 << 20;

/// Writes the body to a new temp file on one blocking thread (no task per chunk, no extra
/// copy), fsyncs it when durable, and hands what identifies the file to `commit` on that same
/// thread: a small object costs one trip to the blocking pool, not two.
async fn write_then_commit<T: Send + 'static>(
    temp: &Path,
    mut body: Body,
    durable: bool,
    commit: impl FnOnce(FileIdentity) -> Result<T> + Send + 'static,
) -> Result<T> {
    let fail = |e: io::Error| Error::io("write a temp file", e);
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    // Set once the whole body arrived: a writer that sees the channel close without it
    // skips the fsync of a file about to be removed.
    let complete = Arc::new(AtomicBool::new(false));
    let (path, done) = (temp.to_owned(), Arc::clone(&complete));
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<T>> {
        receive_into(&path, receiver, &done, durable).map_err(fail)?.map(commit).transpose()
    });
    while let Some(chunk) = body.stream.next().await {
        if sender.send(chunk?).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    complete.store(true, Ordering::Release);
    drop(sender);
    let written = writer.await.map_err(|e| fail(io::Error::other(e)))??;
    written.ok_or_else(|| fail(io::Error::other("the writer stopped early")))
}

/// The writer thread's loop: `None` when the body ended early (no fsync for a file about to go).
fn receive_into(
    path: &Path,
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
    complete: &AtomicBool,
    durable: bool,
) -> io::Result<Option<FileIdentity>> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut unflushed = 0;
    while let Some(chunk) = receiver.blocking_recv() {
        file.write_all(&chunk)?;
        unflushed += chunk.len();
        if durable && unflushed >= WRITEBACK_EVERY {
            start_writeback(&file);
            unflushed = 0;
        }
    }
    if !complete.load(Ordering::Acquire) {
        return Ok(None);
    }
    if durable {
        file.sync_all()?;
    }
    Ok(Some(FileIdentity::of(&file.metadata()?)))
}

#[cfg(target_os = "linux")]
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; SYNC_FILE_RANGE_WRITE only starts writeback of dirty pages.
    unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File) {}

fn write_file(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(data)?;
    if durable {
        file.sync_all()?;
    }
    Ok(())
}

/// Streams `[start, end)` of an open file in `CHUNK_SIZE` reads, each into a fresh buffer that
/// becomes a JS Buffer without a copy. Dropping the stream closes the file.
fn read_file(file: File, (start, end): (u64, u64)) -> ByteStream {
    let state = (Some(file), start, end);
    stream::try_unfold(state, |(file, pos, end)| async move {
        let Some(mut file) = file.filter(|_| pos < end) else {
            return Ok(None);
        };
        let want = (end - pos).min(CHUNK_SIZE as u64);
        let (file, chunk) = blocking(move || {
            let mut chunk = Vec::with_capacity(want as usize);
            file.seek(SeekFrom::Start(pos))
                .and_then(|_| (&mut file).take(want).read_to_end(&mut chunk))
                .map_err(|e| Error::io("read", e))?;
            Ok((file, chunk))
        })
        .await?;
        if chunk.is_empty() {
            return Err(Error::io(
                "read",
                io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while being read"),
            ));
        }
        let next = pos + chunk.len() as u64;
        Ok(Some((Bytes::from(chunk), (Some(file), next, end))))
    })
    .boxed()
}

fn stored_secret(path: &Path) -> Result<Vec<u8>> {
    let fail = |e: io::Error| Error::io("read the signing secret", e);
    for _ in 0..50 {
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                let secret = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
                file.write_all(hex::encode(&secret).as_bytes()).and_then(|_| file.sync_all()).map_err(fail)?;
                return Ok(secret);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let text = fs::read_to_string(path).map_err(fail)?;
                // Another process may have created the file and not yet written it.
                if let Ok(secret) =
                    hex::decode(text.trim()).map_err(|_| ()).and_then(|s| if s.len() >= 16 { Ok(s) } else { Err(()) })
                {
                    return Ok(secret);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(fail(e)),
        }
    }
    Err(Error::Configuration(format!("the signing secret at {} is unreadable", path.display())))
}
