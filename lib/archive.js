'use strict'
// Zip archives of many objects, streamed as they are read. One object is open at a time (the
// next download starts once the previous entry is written), a prefix is listed a page at a
// time as the archive needs it, and memory stays bounded by the streams' buffers whatever the
// sizes. The zip format is zip-stream's: entries past 4 GiB and archives past 4 GiB or 65,535
// entries get their ZIP64 records as they need them.

const { PassThrough, pipeline } = require('node:stream')
const { checkStorageKey } = require('./addon')
const { callNativeSync } = require('./native')

// A Unix mode marks entries as made on Unix, whose names Info-ZIP's unzip takes as the UTF-8
// bytes they are; from "FAT" entries (zip-stream's default) it reads them as code page 437.
const FILE_MODE = 0o644

/** The objects to archive, one at a time, with their names in the zip. */
async function* members(backend, { keys, prefix, fullKeys }) {
  if (keys) {
    for (const key of keys) yield { key, name: key }
    return
  }
  // Names are relative to the folder the prefix names: `reports/2024` and `reports/2024/` both
  // leave `reports/` out, so `reports/2024-old/a.pdf` becomes `2024-old/a.pdf`, never `-old/a.pdf`.
  const folder = fullKeys ? '' : prefix.slice(0, prefix.lastIndexOf('/') + 1)
  // listAll asks for the next page only once this one is archived.
  for await (const { key } of backend.listAll({ prefix })) yield { key, name: key.slice(folder.length) }
}

/**
 * A Readable of the zip; `settings` come from options.archiveSettings. Rejects, before any byte
 * is sent, for a key no store takes or a first object that cannot be read (a route answers
 * that as usual); a later failure destroys the stream.
 */
async function downloadArchive(backend, settings) {
  for (const key of settings.keys ?? []) callNativeSync(() => checkStorageKey(key))
  // zip-stream is an ES module; import() loads it on every Node 20, where require() may not.
  const { default: ZipStream } = await import('zip-stream')
  const zip = new ZipStream({ store: !settings.compress })
  // A stream of our own rather than zip-stream's, whose entry() and finalize() are not for callers.
  const archive = new PassThrough()
  const stop = new AbortController()
  // Destroying the archive (a client that went away) destroys the zip, ends the download in
  // progress (it runs under `stop`'s signal) and stops the loop before it lists or opens more.
  const entries = members(backend, settings)
  const first = await entries.next()
  const opened = first.done ? undefined : { ...first.value, object: await backend.download(first.value.key, { signal: stop.signal }) }
  pipeline(zip, archive, () => {})
  archive.once('close', () => stop.abort())
  writeEntries(backend, opened, entries, zip, stop.signal).then(
    () => zip.finalize(),
    // Never finalized: without its central directory, a cut archive cannot pass for a whole one.
    (error) => archive.destroy(error),
  )
  return archive
}

/** Writes `first` (already opened) and then each of `rest`, one at a time. */
async function writeEntries(backend, first, rest, zip, signal) {
  const stopped = new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))
  stopped.catch(() => {})
  async function* all() {
    if (first) yield first
    yield* rest
  }
  for await (const { key, name, object: opened } of all()) {
    const object = opened ?? (await backend.download(key, { signal }))
    const written = new Promise((resolve, reject) => {
      zip.entry(object, { name, date: object.info.lastModified, mode: FILE_MODE }, (error) => (error ? reject(error) : resolve()))
    })
    // An entry whose download was stopped may never report back: the abort ends the wait.
    await Promise.race([written, stopped])
  }
  signal.throwIfAborted()
}

module.exports = { downloadArchive }
