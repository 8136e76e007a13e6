//! The signing secret every process on one root shares, kept in the store. It is created
//! whole or not at all (written to a temp file, then renamed into place), so a process killed
//! while creating it leaves either no secret or a complete one, and a store always opens.

use std::io::{self, Read, Write};

use rustix::fs as rfs;
use rustix::io::Errno;

use super::root::{open_file, Root};
use crate::core::error::{Error, Result};

const SECRET_FILE: &str = "signing-secret";
const SECRET_LOCK: &str = "signing-secret";
/// What `UrlSigner` accepts.
const MIN_SECRET_BYTES: usize = 16;

impl Root {
    /// The store's secret, created on first use.
    pub fn stored_secret(&self) -> Result<Vec<u8>> {
        let fail = |e: io::Error| Error::io("read or create the signing secret", e);
        if let Some(secret) = self.read_secret().map_err(fail)? {
            return Ok(secret);
        }
        // Creating it is serialised across processes; whoever comes second reads the first's.
        let lock = self.lock_file(SECRET_LOCK).map_err(fail)?;
        lock.lock().map_err(fail)?;
        if let Some(secret) = self.read_secret().map_err(fail)? {
            return Ok(secret);
        }
        let secret = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
        let mut temp = self.temp_file().map_err(fail)?;
        temp.file.write_all(hex::encode(&secret).as_bytes()).and_then(|_| temp.file.sync_all()).map_err(fail)?;
        // Replaces whatever is there: only a file no process could read a secret from.
        temp.rename_to(self.internal(), SECRET_FILE, false).map_err(fail)?;
        rfs::fsync(self.internal()).map_err(|e| fail(e.into()))?;
        Ok(secret)
    }

    /// `None` when there is no secret yet, or only what a crash of an older version left (an
    /// empty or partial file).
    fn read_secret(&self) -> io::Result<Option<Vec<u8>>> {
        let mut text = Vec::new();
        match open_file(self.internal(), SECRET_FILE) {
            Ok(file) => file.take(1024).read_to_end(&mut text)?,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => return Ok(None),
            Err(e) => return Err(e),
        };
        let secret = std::str::from_utf8(&text).ok().and_then(|text| hex::decode(text.trim()).ok());
        Ok(secret.filter(|secret| secret.len() >= MIN_SECRET_BYTES))
    }
}
