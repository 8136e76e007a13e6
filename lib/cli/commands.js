'use strict'
// The CLI's commands: each takes (positionals, option values, { signal }) and resolves to an
// exit code (or nothing, for success). Errors are reported by bin/cli.js.

const fs = require('node:fs')
const fsp = require('node:fs/promises')
const path = require('node:path')
const { once } = require('node:events')
const { pipeline } = require('node:stream/promises')
const mime = require('mime-types')
const { kBaseUrl } = require('../backend')
const { S3StorageBackend } = require('../backends/s3')
const { AbortError } = require('../errors')
const { parseCount, parseSize } = require('./args')
const { doctor } = require('./doctor')
const { EXIT, UsageError, describe } = require('./errors')
const { clearProgressLine, endProgressLine, formatBytes, progressLine } = require('./progress')
const { putResumable } = require('./resumable')
const { backendIdOf, listen, openBackend, openRef } = require('./stores')

const DEFAULT_PART_SIZE = 8 << 20

/** An onProgress callback ({ loaded, total }) that draws a progress line, made once the total is known. */
function progressOf(label) {
  let draw
  return ({ loaded, total }) => {
    draw ??= progressLine(label, total) ?? (() => {})
    draw(loaded)
  }
}

function contentTypeOf(name, values) {
  return values['content-type'] ?? (mime.lookup(name) || 'application/octet-stream')
}

/**
 * What is ours, not the user's: the local store's own folder (its temp files and sidecars, when
 * its root is uploaded as a folder), and this CLI's half downloads and resumable-upload states.
 */
const isWorkingFile = (name) => name === '.rstorage' || /\.rstorage-(part|upload)$/.test(name)

/** Regular files under `dir`, in name order, as paths relative to it with '/' separators. */
async function* filesUnder(dir, relative = '') {
  const entries = await fsp.readdir(path.join(dir, relative), { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    const name = relative ? `${relative}/${entry.name}` : entry.name
    if (isWorkingFile(entry.name)) continue
    if (entry.isDirectory()) yield* filesUnder(dir, name)
    else if (entry.isFile()) yield name
    else console.error(`skipped ${path.join(dir, name)}: not a regular file`)
  }
}

/** `prefix` as a folder: '' stays the whole store, `docs` becomes `docs/`. */
function asFolder(prefix) {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`
}

const isFolder = (file) => fsp.stat(file).then((info) => info.isDirectory(), () => false)

/** Where `name` (a key below a prefix) goes in `folder`; undefined when it would land outside it. */
function fileIn(folder, name) {
  const root = path.resolve(folder)
  const file = path.resolve(root, ...name.split('/'))
  // Keys are the store's to choose: none may write outside the folder asked for.
  return file.startsWith(root + path.sep) ? file : undefined
}

function noObjectsUnder(where) {
  return Object.assign(new Error(`no objects under ${where}`), { code: 'FILE_NOT_FOUND' })
}

function printPut({ key, size, etag }, values) {
  console.log(values.json ? JSON.stringify({ key, size, etag }) : `${key}  ${etag ?? ''}`)
}

/**
 * Downloads to a temp file beside `file` (its folders made), renamed into place once whole: a
 * failed download leaves no half file. `modified` (ms), when given, becomes the file's times.
 */
async function downloadToFile(backend, key, file, { signal, onProgress = progressOf('get'), modified }) {
  // Made first: from the moment the download is open, the pipeline must be there to take its
  // error (a Ctrl-C while the folders were made would be an uncaught one).
  await fsp.mkdir(path.dirname(file), { recursive: true })
  const stream = await backend.download(key, { signal, onProgress })
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.rstorage-part`)
  try {
    await pipeline(stream, fs.createWriteStream(temp))
    if (modified !== undefined) await fsp.utimes(temp, new Date(modified), new Date(modified))
    await fsp.rename(temp, file)
  } catch (error) {
    await fsp.rm(temp, { force: true })
    throw error
  }
}

/** An object `{ id, backend, key }` copied: within one backend, the store's own copy; between two, streamed. */
async function copyObject(from, to, { signal, onProgress }) {
  if (from.id === to.id) return from.backend.copy(from.key, to.key)
  const stream = await from.backend.download(from.key, { signal })
  const { contentType, metadata, contentLength } = stream.info
  return to.backend.upload({ key: to.key, body: stream, contentType, metadata, contentLength, signal, onProgress })
}

/** cp and mv: within one backend, the store's own copy or move; between two, a streamed download → upload. */
async function transfer([fromRef, toRef], { signal }, move) {
  const from = openRef(fromRef)
  const to = openRef(toRef)
  if (move && from.id === to.id) {
    await from.backend.move(from.key, to.key)
  } else {
    await copyObject(from, to, { signal, onProgress: progressOf(move ? 'mv' : 'cp') })
    if (move) await from.backend.delete(from.key)
  }
  console.log(`${move ? 'moved' : 'copied'} ${fromRef} to ${toRef}`)
}

/**
 * One side of a sync: a store and a prefix when written <backend>:<prefix>, else a local folder
 * (as rclone reads its arguments: a bare name is a path, never a key of the default backend).
 * `shown(name)` is how an entry below it is printed.
 */
function syncSide(ref) {
  if (backendIdOf(ref) === undefined) return { ref, folder: ref, shown: (name) => path.join(ref, ...name.split('/')) }
  const { id, backend, key } = openRef(ref)
  const prefix = asFolder(key)
  return { ref, id, backend, prefix, shown: (name) => `${id}:${prefix}${name}` }
}

/** What a side of a sync holds: its names ('/'-separated paths below it) → { size, modified (ms), etag }. */
async function syncContents(side) {
  const contents = new Map()
  if (side.folder !== undefined) {
    for await (const name of filesUnder(side.folder)) {
      const { size, mtimeMs } = await fsp.stat(path.join(side.folder, name))
      contents.set(name, { size, modified: mtimeMs })
    }
    return contents
  }
  for await (const object of side.backend.listAll({ prefix: side.prefix })) {
    if (object.key.endsWith('/')) continue // a folder marker, not a file
    const entry = { size: object.size, modified: object.lastModified.getTime(), etag: object.etag }
    contents.set(object.key.slice(side.prefix.length), entry)
  }
  return contents
}

// A single-part upload's ETag on S3-compatible stores: the MD5 of the bytes. Other ETags (a
// multipart upload's `…-N`, the local store's file identity, Azure's and GCS's versions) tell
// nothing about another store's copy.
const MD5_ETAG = /^"?[0-9a-f]{32}"?$/i

/**
 * Whether sync copies an entry: missing or of another size at the destination; else, when both
 * ETags are MD5s of S3-compatible stores, when they differ; else when the source was modified in
 * a later second (S3 lists times to the second, so finer times would copy again what it holds).
 */
function needsCopy(source, target, md5Etags) {
  if (!target || source.size !== target.size) return true
  if (md5Etags && MD5_ETAG.test(source.etag) && MD5_ETAG.test(target.etag)) {
    return source.etag.toLowerCase() !== target.etag.toLowerCase()
  }
  return Math.floor(source.modified / 1000) > Math.floor(target.modified / 1000)
}

/** Copies one entry of a sync; uploads and downloads are whole or nothing, so a cut never leaves half of one. */
async function syncCopy(from, to, name, { size, modified }, { signal, onProgress }) {
  if (to.folder !== undefined) {
    const file = fileIn(to.folder, name)
    if (!file) throw new Error(`it would be written outside ${to.folder}`)
    // The object's time, as aws s3 sync sets it: a sync of the folder back sees nothing newer.
    return downloadToFile(from.backend, from.prefix + name, file, { signal, onProgress, modified })
  }
  const key = to.prefix + name
  if (from.folder === undefined) return copyObject({ ...from, key: from.prefix + name }, { ...to, key }, { signal, onProgress })
  const body = fs.createReadStream(path.join(from.folder, name))
  return to.backend.upload({ key, body, contentType: contentTypeOf(name, {}), contentLength: size, signal, onProgress })
}

function syncDelete(to, name) {
  if (to.folder !== undefined) return fsp.rm(path.join(to.folder, ...name.split('/')))
  return to.backend.delete(to.prefix + name)
}

const commands = {
  doctor,

  async put([ref, named], values, { signal }) {
    const { id, backend, key } = openRef(ref)
    const file = named ?? '-'
    if (values['part-size'] !== undefined && !values.resumable) throw new UsageError('--part-size goes with --resumable', 'put')
    if (values.recursive) {
      if (file === '-') throw new UsageError('put -r needs a folder: put -r <key> <folder>', 'put')
      if (values.resumable) throw new UsageError('--resumable uploads one file, not a folder', 'put')
      if (!(await fsp.stat(file)).isDirectory()) throw new UsageError(`${file} is not a folder: upload it without -r`, 'put')
      for await (const name of filesUnder(file)) {
        const result = await backend.upload({
          key: `${asFolder(key)}${name}`,
          body: fs.createReadStream(path.join(file, name)),
          contentType: contentTypeOf(name, values),
          signal,
        })
        printPut(result, values)
      }
      return undefined
    }
    if (file === '-') {
      // Unnamed, it is read from a pipe or a file only: on a terminal it would wait, silently, for typing.
      if (named === undefined && process.stdin.isTTY) {
        throw new UsageError('put needs a file, or - to read standard input from a pipe', 'put')
      }
      if (values.resumable) throw new UsageError('--resumable needs a file, not standard input', 'put')
      const result = await backend.upload({
        key,
        body: process.stdin,
        contentType: contentTypeOf(key, values),
        signal,
        onProgress: progressOf('put'),
      })
      endProgressLine() // a line without a total never ends itself
      return printPut(result, values)
    }
    // Checked before a stream is opened, so a missing file is one clear error, not a stream's.
    const info = await fsp.stat(file)
    if (info.isDirectory()) throw new UsageError(`${file} is a folder: upload it with put -r`, 'put')
    // A FIFO or a device has no length to state (its size reads 0), and cannot be resumed.
    const size = info.isFile() ? info.size : undefined
    if (values.resumable && size === undefined) throw new UsageError(`--resumable needs a regular file; ${file} is not one`, 'put')
    if (values.resumable) {
      const partSize = values['part-size'] === undefined ? DEFAULT_PART_SIZE : parseSize(values['part-size'], 'part-size', 'put')
      let draw // made at the first report, which is where this run starts (a resumed upload's offset)
      const result = await putResumable(backend, id, key, file, {
        contentType: contentTypeOf(file, values),
        partSize,
        signal,
        log: (line) => console.error(line),
        onProgress: (stored) => {
          draw ??= progressLine('put', size, { startAt: stored }) ?? (() => {})
          draw(stored)
        },
      })
      return printPut(result, values)
    }
    const result = await backend.upload({
      key,
      body: fs.createReadStream(file),
      contentType: contentTypeOf(file, values),
      contentLength: size,
      signal,
      onProgress: progressOf('put'),
    })
    return printPut({ ...result, size }, values)
  },

  async get([ref, file = '-'], values, { signal }) {
    const { backend, key } = openRef(ref)
    if (!values.recursive) {
      if (file === '-') return pipeline(await backend.download(key, { signal, onProgress: progressOf('get') }), process.stdout)
      // Into a folder, as cp does: under the key's last segment.
      return downloadToFile(backend, key, (await isFolder(file)) ? path.join(file, path.posix.basename(key)) : file, { signal })
    }
    if (file === '-') throw new UsageError('get -r needs a folder: get -r <key> <folder>', 'get')
    const prefix = asFolder(key)
    let count = 0
    for await (const object of backend.listAll({ prefix })) {
      if (object.key.endsWith('/')) continue // a folder marker, not a file
      const target = fileIn(file, object.key.slice(prefix.length))
      if (!target) {
        console.error(`skipped ${object.key}: it would be written outside ${file}`)
        continue
      }
      await downloadToFile(backend, object.key, target, { signal })
      console.log(`${object.key} -> ${path.relative('.', target)}`)
      count++
    }
    if (count === 0) throw noObjectsUnder(prefix || 'the store')
    return undefined
  },

  async ls([ref = ''], values) {
    const { backend, key: prefix } = openRef(ref)
    const show = (o) =>
      console.log(values.json ? JSON.stringify(o) : `${String(o.size).padStart(12)}  ${o.lastModified.toISOString()}  ${o.key}`)
    if (values.delimiter === undefined) {
      for await (const o of backend.listAll({ prefix })) show(o)
      return
    }
    let cursor
    do {
      const page = await backend.list({ prefix, delimiter: values.delimiter, cursor })
      for (const p of page.prefixes) {
        console.log(values.json ? JSON.stringify({ prefix: p }) : `${'PRE'.padStart(12)}  ${''.padEnd(24)}  ${p}`)
      }
      page.objects.forEach(show)
      cursor = page.cursor
    } while (cursor)
  },

  async stat([ref], values) {
    const { backend, key } = openRef(ref)
    const info = await backend.stat(key)
    if (values.json) return console.log(JSON.stringify(info, null, 2))
    const rows = [
      ['key', info.key],
      ['size', `${info.size} (${formatBytes(info.size)})`],
      ['content-type', info.contentType],
      ['etag', info.etag],
      ['modified', info.lastModified.toISOString()],
      ...Object.entries(info.metadata ?? {}).map(([name, value]) => [`meta ${name}`, value]),
    ]
    for (const [name, value] of rows) if (value !== undefined) console.log(`${name.padEnd(14)}${value}`)
    return undefined
  },

  async du([ref = ''], values) {
    const { backend, key: prefix } = openRef(ref)
    const usage = await backend.usage(prefix)
    if (values.json) return console.log(JSON.stringify({ prefix, ...usage }))
    console.log(`${formatBytes(usage.bytes)}  ${usage.objects} object${usage.objects === 1 ? '' : 's'}  ${prefix || '(everything)'}`)
    return undefined
  },

  async rm(refs, values) {
    let missing = 0
    for (const ref of refs) {
      const { backend, key } = openRef(ref)
      if (values.prefix) {
        if (key === '') throw new UsageError('an empty --prefix would delete every object; refused', 'rm')
        const count = await backend.deletePrefix(key)
        console.log(`deleted ${count} object${count === 1 ? '' : 's'} under ${ref}`)
      } else if (await backend.exists(key)) {
        // A delete of a missing key succeeds on every store: exists() is what tells them apart.
        await backend.delete(key)
        console.log(`deleted ${ref}`)
      } else {
        missing++
        if (!values.force) console.error(`not found: ${ref}`)
      }
    }
    return missing > 0 && !values.force ? EXIT.notFound : EXIT.ok
  },

  cp: (args, _values, context) => transfer(args, context, false),
  mv: (args, _values, context) => transfer(args, context, true),

  async sync([fromRef, toRef], values, { signal }) {
    const from = syncSide(fromRef)
    const to = syncSide(toRef)
    if (from.folder !== undefined && to.folder !== undefined) {
      const hint = `write a store as <backend>:<prefix> (local:${toRef})`
      throw new UsageError(`neither ${fromRef} nor ${toRef} names a store: ${hint}`, 'sync')
    }
    if (from.id === to.id && (from.prefix.startsWith(to.prefix) || to.prefix.startsWith(from.prefix))) {
      throw new UsageError(`${fromRef} and ${toRef} overlap: one holds the other`, 'sync')
    }
    const source = await syncContents(from)
    // An empty prefix is more likely mistyped than meant, and with --delete would empty <to>.
    if (from.folder === undefined && source.size === 0) throw noObjectsUnder(fromRef)
    const target = to.folder === undefined || (await isFolder(to.folder)) ? await syncContents(to) : new Map()
    const md5Etags = from.backend instanceof S3StorageBackend && to.backend instanceof S3StorageBackend
    const copies = [...source].filter(([name, entry]) => needsCopy(entry, target.get(name), md5Etags))
    const deletions = values.delete ? [...target.keys()].filter((name) => !source.has(name)) : []
    const dryRun = values['dry-run']
    const counts = { copied: 0, bytes: 0, deleted: 0, unchanged: source.size - copies.length, failed: 0 }
    const draw = dryRun ? undefined : progressLine('sync', copies.reduce((sum, [, { size }]) => sum + size, 0))

    const interrupted = () =>
      Object.assign(new AbortError('The operation was aborted'), {
        note: `${counts.copied} of ${copies.length} copied: run the same sync again to go on`,
      })
    /** Does one action (none on a dry run) and prints it; a failure is reported and the rest go on, but Ctrl-C stops all. */
    const act = async (action, line, run) => {
      if (signal?.aborted) throw interrupted()
      try {
        if (!dryRun) await run()
      } catch (error) {
        if (signal?.aborted) throw interrupted() // whatever the cut action failed with
        clearProgressLine()
        console.error(`failed ${line}: ${describe(error)}`)
        // Standard output tells every action, with its error, to whatever reads the JSON.
        if (values.json) console.log(JSON.stringify({ ...action, error: describe(error) }))
        counts.failed++
        return false
      }
      clearProgressLine()
      console.log(values.json ? JSON.stringify(action) : line)
      return true
    }

    let settled = 0 // bytes of the copies done or failed
    for (const [name, entry] of copies) {
      const action = { action: 'copy', source: from.shown(name), target: to.shown(name), size: entry.size }
      const onProgress = draw && (({ loaded }) => draw(settled + loaded))
      const copy = () => syncCopy(from, to, name, entry, { signal, onProgress })
      if (await act(action, `copy ${action.source} -> ${action.target}`, copy)) {
        counts.copied++
        counts.bytes += entry.size
      }
      settled += entry.size
      draw?.(settled)
    }
    for (const name of deletions) {
      const target = to.shown(name)
      if (await act({ action: 'delete', target }, `delete ${target}`, () => syncDelete(to, name))) counts.deleted++
    }

    const { copied, bytes, deleted, unchanged, failed } = counts
    if (values.json) console.log(JSON.stringify({ action: 'summary', ...counts, dryRun: Boolean(dryRun) }))
    else if (dryRun) console.log(`dry run: ${copied} to copy (${bytes} bytes), ${deleted} to delete, ${unchanged} unchanged`)
    else {
      const failures = failed ? `, ${failed} failed` : ''
      console.log(`${copied} copied (${bytes} bytes), ${deleted} deleted, ${unchanged} unchanged${failures}`)
    }
    return failed ? EXIT.failed : EXIT.ok
  },

  async presign([ref], values) {
    const { backend, key } = openRef(ref)
    const signed = await backend.getSignedUrl(key, {
      method: (values.method ?? 'GET').toUpperCase(),
      expiresIn: parseCount(values.expires, 'expires', 'presign'),
      contentType: values['content-type'],
    })
    console.log(signed.url)
    // What the request must carry besides (the signed content type; Azure's blob type).
    for (const [name, value] of Object.entries(signed.headers ?? {})) console.error(`header ${name}: ${value}`)
    console.error(`expires ${signed.expiresAt}`)
  },

  async serve(_args, values, { signal }) {
    const { backend } = openBackend()
    const base = backend[kBaseUrl] ? new URL(backend[kBaseUrl]) : undefined
    if (!base) throw new Error('this backend serves its own signed URLs; nothing to serve')
    // The signed URLs point at the base URL: listening anywhere else would answer none of them.
    let port = parseCount(values.port, 'port', 'serve') ?? (base.port ? Number(base.port) : undefined)
    if (port === undefined) {
      if (base.protocol !== 'http:') {
        throw new UsageError(`${base.origin} is not plain HTTP, which serve speaks: give the --port it is proxied to`, 'serve')
      }
      port = 80
    }
    const host = values.host ?? base.hostname.replace(/^\[(.*)\]$/, '$1') // URL keeps an IPv6 host's brackets
    const server = await listen(backend, host, port)
    const shown = host.includes(':') ? `[${host}]` : host
    console.log(`serving signed URLs for ${base.origin}${base.pathname} on http://${shown}:${server.address().port}`)
    await once(signal, 'abort')
    server.close()
  },
}

module.exports = { commands }
