'use strict'
// `put --resumable`: a file sent as a resumable upload, piece by piece, whose id is kept in a
// small state file so that a run cut short (Ctrl-C, kill -9, a store error) is resumed by the
// next run of the same command instead of starting over.

const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

/**
 * Where the state of `file`'s upload is kept: beside it (`<file>.rstorage-upload`), or when its
 * folder cannot be written (a read-only mount), under the user's state folder, named after the
 * file's absolute path. The same file always maps to the same place, so the next run finds it.
 */
function statePathFor(file) {
  const absolute = path.resolve(file)
  try {
    fs.accessSync(path.dirname(absolute), fs.constants.W_OK)
    return `${absolute}.rstorage-upload`
  } catch {
    const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state')
    const name = crypto.createHash('sha256').update(absolute).digest('hex').slice(0, 32)
    return path.join(base, 'raptscallions-storage', `${name}.json`)
  }
}

function readState(statePath) {
  try {
    return JSON.parse(fs.readFileSync(statePath, 'utf8'))
  } catch {
    return undefined // none, or unreadable: either way there is nothing to resume
  }
}

/** Written whole or not at all (temp file, then rename), so a kill never leaves half a state. */
function writeState(statePath, state) {
  fs.mkdirSync(path.dirname(statePath), { recursive: true })
  const temp = `${statePath}.${process.pid}.tmp`
  fs.writeFileSync(temp, `${JSON.stringify(state)}\n`)
  fs.renameSync(temp, statePath)
}

function isGone(error) {
  return error?.code === 'UPLOAD_NOT_FOUND' || error?.code === 'UPLOAD_EXPIRED'
}

/**
 * Uploads `file` to `key` on `backend` (registered as `storeId`), resuming the upload a state
 * file names when it is for the same store, key and file (same size and modification time).
 * `log` gets one-line notes (resuming, starting anew); `onProgress(bytesStored)`; `signal`
 * stops it, keeping the upload for the next run. Resolves to the completed upload.
 */
async function putResumable(backend, storeId, key, file, { contentType, partSize, signal, log, onProgress }) {
  const source = await fs.promises.stat(file)
  const identity = { store: storeId, key, file: path.resolve(file), size: source.size, mtimeMs: source.mtimeMs }
  const statePath = statePathFor(file)
  const saved = readState(statePath)

  let upload
  if (saved && ['store', 'key', 'file', 'size', 'mtimeMs'].every((field) => saved[field] === identity[field])) {
    upload = await backend.getUpload(saved.id).catch((error) => {
      if (!isGone(error)) throw error
      log(`the upload ${saved.id} is gone (expired or removed): starting anew`)
      return undefined
    })
  } else if (saved) {
    log(`${file} changed, or goes elsewhere, since the upload ${saved.id} began: starting anew`)
    // The state file is the only record of that upload's id: once replaced, nobody can finish it.
    if (saved.store === storeId && typeof saved.id === 'string') await backend.abortUpload(saved.id).catch(() => {})
  }
  if (upload) {
    log(`resuming at ${upload.offset} bytes`)
  } else {
    upload = await backend.createUpload({ key, length: source.size, contentType })
    writeState(statePath, { id: upload.id, ...identity, startedAt: new Date().toISOString() })
  }

  onProgress?.(upload.offset)
  try {
    while (upload.offset < source.size) {
      const start = upload.offset
      const end = Math.min(start + partSize, source.size)
      upload = await backend.appendUpload(upload.id, {
        offset: start,
        body: fs.createReadStream(file, { start, end: end - 1 }),
        signal,
        onProgress: ({ loaded }) => onProgress?.(start + loaded),
      })
    }
  } catch (error) {
    const stored = error.upload?.offset ?? upload.offset
    error.note = `the upload is kept (${stored} of ${source.size} bytes stored): run the same command again to resume`
    throw error
  }

  // A file changed while it was read would make an object of two versions: not stored.
  const after = await fs.promises.stat(file)
  if (after.size !== source.size || after.mtimeMs !== source.mtimeMs) {
    await backend.abortUpload(upload.id).catch(() => {})
    fs.rmSync(statePath, { force: true })
    throw new Error(`${file} changed during the upload; nothing was stored: run again to upload it as it is now`)
  }
  const done = await backend.completeUpload(upload.id)
  fs.rmSync(statePath, { force: true })
  return done
}

module.exports = { putResumable }
