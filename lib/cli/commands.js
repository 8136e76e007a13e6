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
const { parseCount, parseSize } = require('./args')
const { doctor } = require('./doctor')
const { EXIT, UsageError } = require('./errors')
const { formatBytes, progressLine } = require('./progress')
const { putResumable } = require('./resumable')
const { listen, openBackend, openRef } = require('./stores')

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

/** Regular files under `dir`, in name order, as paths relative to it with '/' separators. */
async function* filesUnder(dir, relative = '') {
  const entries = await fsp.readdir(path.join(dir, relative), { withFileTypes: true })
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  for (const entry of entries) {
    const name = relative ? `${relative}/${entry.name}` : entry.name
    if (entry.isDirectory()) yield* filesUnder(dir, name)
    else if (entry.isFile()) yield name
    else console.error(`skipped ${path.join(dir, name)}: not a regular file`)
  }
}

/** `prefix` as a folder: '' stays the whole store, `docs` becomes `docs/`. */
function asFolder(prefix) {
  return prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`
}

function printPut({ key, size, etag }, values) {
  console.log(values.json ? JSON.stringify({ key, size, etag }) : `${key}  ${etag ?? ''}`)
}

/**
 * Downloads to a temp file beside `file` (its folders made), renamed into place once whole: a
 * failed download leaves no half file.
 */
async function downloadToFile(backend, key, file, signal) {
  const stream = await backend.download(key, { signal, onProgress: progressOf('get') })
  await fsp.mkdir(path.dirname(file), { recursive: true })
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.rstorage-part`)
  try {
    await pipeline(stream, fs.createWriteStream(temp))
    await fsp.rename(temp, file)
  } catch (error) {
    await fsp.rm(temp, { force: true })
    throw error
  }
}

/** cp and mv: within one backend, the store's own copy or move; between two, a streamed download → upload. */
async function transfer([fromRef, toRef], { signal }, move) {
  const from = openRef(fromRef)
  const to = openRef(toRef)
  if (from.id === to.id) {
    await (move ? from.backend.move(from.key, to.key) : from.backend.copy(from.key, to.key))
  } else {
    const stream = await from.backend.download(from.key, { signal })
    const { contentType, metadata, contentLength } = stream.info
    await to.backend.upload({
      key: to.key,
      body: stream,
      contentType,
      metadata,
      contentLength,
      signal,
      onProgress: progressOf(move ? 'mv' : 'cp'),
    })
    if (move) await from.backend.delete(from.key)
  }
  console.log(`${move ? 'moved' : 'copied'} ${fromRef} to ${toRef}`)
}

const commands = {
  doctor,

  async put([ref, file = '-'], values, { signal }) {
    const { id, backend, key } = openRef(ref)
    if (values['part-size'] !== undefined && !values.resumable) throw new UsageError('--part-size goes with --resumable', 'put')
    if (values.recursive) {
      if (file === '-') throw new UsageError('put -r needs a folder: put -r <key> <folder>', 'put')
      if (values.resumable) throw new UsageError('--resumable uploads one file, not a folder', 'put')
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
      if (values.resumable) throw new UsageError('--resumable needs a file, not standard input', 'put')
      const result = await backend.upload({ key, body: process.stdin, contentType: contentTypeOf(key, values), signal })
      return printPut(result, values)
    }
    // Checked before a stream is opened, so a missing file is one clear error, not a stream's.
    const { size } = await fsp.stat(file).then((info) => {
      if (info.isDirectory()) throw new UsageError(`${file} is a folder: upload it with put -r`, 'put')
      return info
    })
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
      const isFolder = await fsp.stat(file).then((info) => info.isDirectory(), () => false)
      return downloadToFile(backend, key, isFolder ? path.join(file, path.posix.basename(key)) : file, signal)
    }
    if (file === '-') throw new UsageError('get -r needs a folder: get -r <key> <folder>', 'get')
    const prefix = asFolder(key)
    const root = path.resolve(file)
    let count = 0
    for await (const object of backend.listAll({ prefix })) {
      if (object.key.endsWith('/')) continue // a folder marker, not a file
      const target = path.resolve(root, ...object.key.slice(prefix.length).split('/'))
      // Keys are the store's to choose: none may write outside the folder asked for.
      if (!target.startsWith(root + path.sep)) {
        console.error(`skipped ${object.key}: it would be written outside ${file}`)
        continue
      }
      await downloadToFile(backend, object.key, target, signal)
      console.log(`${object.key} -> ${path.relative('.', target)}`)
      count++
    }
    if (count === 0) throw Object.assign(new Error(`no objects under ${prefix || 'the store'}`), { code: 'FILE_NOT_FOUND' })
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
