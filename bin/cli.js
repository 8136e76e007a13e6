#!/usr/bin/env node
'use strict'
// raptscallions-storage: the configured backend from the command line.

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const crypto = require('node:crypto')
const { Readable } = require('node:stream')
const { pipeline } = require('node:stream/promises')
const storage = require('..')
const { kBaseUrl } = require('../lib/backend')

const USAGE = `Usage: raptscallions-storage <command> [arguments]

Works on the backend named by STORAGE_BACKEND (default: local, under ./storage/uploads).

Commands:
  doctor                          check the configured backend end to end
  put <key> [file|-]              upload a file (or standard input)   [--content-type T]
  get <key> [file|-]              download to a file (or standard output)
  ls [prefix]                     list objects                         [--delimiter /]
  stat <key>                      show an object's metadata
  rm <key>...                     delete objects
  presign <key>                   print a signed URL   [--method GET|PUT] [--expires S] [--content-type T]
  serve                           serve local signed URLs              [--host H] [--port P]
`

function parseArgs(argv) {
  const positional = []
  const flags = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split('=', 2)
      flags[name] = inline ?? argv[++i]
    } else positional.push(arg)
  }
  return { positional, flags }
}

function openBackend() {
  return storage.getBackend(storage.storageConfig.STORAGE_BACKEND)
}

function describe(error) {
  const code = error?.code ? ` [${error.code}]` : ''
  const issues = error?.details?.issues?.map((i) => `\n        ${i.field}: ${i.message}`).join('') ?? ''
  return `${error?.message ?? error}${code}${issues}`
}

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** A progress line on stderr for transfers over 8 MiB, when stderr is a terminal. */
function progressBar(label) {
  if (!process.stderr.isTTY) return undefined
  let last = 0
  return ({ loaded, total }) => {
    const now = Date.now()
    if ((total ?? 0) < 8 << 20 || (now - last < 100 && loaded !== total)) return
    last = now
    const ratio = total ? loaded / total : 0
    const bar = '#'.repeat(Math.round(ratio * 30)).padEnd(30, '.')
    process.stderr.write(`\r${label} [${bar}] ${formatBytes(loaded)} / ${formatBytes(total)}`)
    if (loaded === total) process.stderr.write('\n')
  }
}

const CONTENT_TYPES = {
  '.txt': 'text/plain',
  '.html': 'text/html',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.zip': 'application/zip',
  '.mp4': 'video/mp4',
}

/** Serves a backend's self-signed URLs on a free loopback port; resolves to the server. */
function listen(backend, host = '127.0.0.1', port = 0) {
  const server = http.createServer(storage.createSignedUrlHandler(backend))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

/** Fetches a signed URL; a self-signed one is fetched from a handler started for the purpose. */
async function fetchSigned(backend, url) {
  if (!backend[kBaseUrl]) return fetch(url)
  const server = await listen(backend)
  try {
    const target = new URL(url)
    target.host = `127.0.0.1:${server.address().port}`
    target.protocol = 'http:'
    return await fetch(target)
  } finally {
    server.close()
  }
}

/** A check that does not apply to the store as configured, and why. */
class NotApplicable {
  constructor(reason) {
    this.reason = reason
  }
}

async function doctor() {
  let failed = false
  const step = async (name, fn) => {
    if (failed) {
      console.log(`SKIP  ${name}`)
      return undefined
    }
    const started = process.hrtime.bigint()
    try {
      const note = await fn()
      if (note instanceof NotApplicable) {
        console.log(`N/A   ${name.padEnd(12)} ${note.reason}`)
        return true
      }
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      console.log(`PASS  ${name.padEnd(12)} ${ms.toFixed(1).padStart(8)} ms${note ? `  ${note}` : ''}`)
      return true
    } catch (error) {
      failed = true
      console.log(`FAIL  ${name.padEnd(12)} ${describe(error)}`)
      return false
    }
  }
  const payload = crypto.randomBytes(1 << 20)
  const digest = (buf) => crypto.createHash('sha256').update(buf).digest('hex')
  const key = `raptscallions-doctor/${Date.now()}-${crypto.randomUUID()}.bin`
  let backend
  let written = false
  await step('config', () => `backend "${storage.storageConfig.STORAGE_BACKEND}"`)
  await step('open', async () => {
    backend = openBackend()
    await backend.ready?.()
    return backend.root ? `root ${backend.root}` : undefined
  })
  await step('write', async () => {
    const chunks = Readable.from([payload.subarray(0, 300_000), payload.subarray(300_000)])
    written = true
    await backend.upload({ key, body: chunks, contentType: 'application/octet-stream', metadata: { doctor: 'yes' } })
    return `${formatBytes(payload.length)} streamed to ${key}`
  })
  await step('read back', async () => {
    const parts = []
    for await (const chunk of await backend.download(key)) parts.push(chunk)
    if (digest(Buffer.concat(parts)) !== digest(payload)) throw new Error('the bytes read back differ from those written')
    return 'bytes match'
  })
  await step('stat', async () => {
    const info = await backend.stat(key)
    if (info.size !== payload.length) throw new Error(`size is ${info.size}, expected ${payload.length}`)
    if (info.metadata?.doctor !== 'yes') throw new Error('metadata was not kept')
    return `${info.size} bytes, ${info.contentType}, etag ${info.etag}`
  })
  await step('signed URL', async () => {
    let url
    try {
      ;({ url } = await backend.getSignedUrl(key, { expiresIn: 60 }))
    } catch (error) {
      // A store that cannot sign as configured (anonymous on an emulator, a SAS token) says so.
      if (error instanceof storage.ConfigurationError) return new NotApplicable(error.message)
      throw error
    }
    const response = await fetchSigned(backend, url)
    if (!response.ok) throw new Error(`GET ${new URL(url).pathname} answered ${response.status}`)
    if (digest(Buffer.from(await response.arrayBuffer())) !== digest(payload)) throw new Error('the signed URL served other bytes')
    return 'GET served the object'
  })
  await step('delete', async () => {
    await backend.delete(key)
    if (await backend.exists(key)) throw new Error('the object still exists after delete')
    return 'gone'
  })
  if (failed && written) {
    // The test object must not outlive a failed check.
    await backend.delete(key).then(
      () => console.log(`CLEAN removed ${key}`),
      (error) => console.log(`CLEAN could not remove ${key}: ${describe(error)}`),
    )
  }
  console.log(failed ? 'doctor: FAILED' : 'doctor: all checks passed')
  return failed ? 1 : 0
}

const commands = {
  doctor,

  async put([key, file = '-'], flags) {
    if (key === undefined) throw new storage.InvalidArgumentError('put needs a key: put <key> [file|-]', {})
    const backend = openBackend()
    const fromStdin = file === '-'
    const body = fromStdin ? process.stdin : fs.createReadStream(file)
    const size = fromStdin ? undefined : fs.statSync(file).size
    const contentType =
      flags['content-type'] ?? CONTENT_TYPES[path.extname(fromStdin ? key : file).toLowerCase()] ?? 'application/octet-stream'
    const result = await backend.upload({ key, body, contentType, contentLength: size, onProgress: progressBar('put') })
    console.log(`${result.key}  ${result.etag ?? ''}`)
  },

  async get([key, file = '-']) {
    const stream = await openBackend().download(key, { onProgress: progressBar('get') })
    await pipeline(stream, file === '-' ? process.stdout : fs.createWriteStream(file))
  },

  async ls([prefix = ''], flags) {
    const backend = openBackend()
    if (flags.delimiter) {
      let cursor
      do {
        const page = await backend.list({ prefix, delimiter: flags.delimiter, cursor })
        for (const p of page.prefixes) console.log(`${'PRE'.padStart(12)}  ${''.padEnd(24)}  ${p}`)
        for (const o of page.objects) console.log(`${String(o.size).padStart(12)}  ${o.lastModified.toISOString()}  ${o.key}`)
        cursor = page.cursor
      } while (cursor)
      return
    }
    for await (const o of backend.listAll({ prefix })) {
      console.log(`${String(o.size).padStart(12)}  ${o.lastModified.toISOString()}  ${o.key}`)
    }
  },

  async stat([key]) {
    console.log(JSON.stringify(await openBackend().stat(key), null, 2))
  },

  async rm(keys) {
    const count = await openBackend().deleteMany(keys)
    console.log(`deleted ${count}`)
  },

  async presign([key], flags) {
    const signed = await openBackend().getSignedUrl(key, {
      method: (flags.method ?? 'GET').toUpperCase(),
      expiresIn: flags.expires ? Number(flags.expires) : undefined,
      contentType: flags['content-type'],
    })
    console.log(signed.url)
    // What the request must carry besides (the signed content type; Azure's blob type).
    for (const [name, value] of Object.entries(signed.headers ?? {})) console.error(`header ${name}: ${value}`)
    console.error(`expires ${signed.expiresAt}`)
  },

  async serve(_args, flags) {
    const backend = openBackend()
    const base = backend[kBaseUrl] ? new URL(backend[kBaseUrl]) : undefined
    if (!base) throw new Error('this backend serves its own signed URLs; nothing to serve')
    const port = Number(flags.port ?? base.port ?? 8790)
    const server = await listen(backend, flags.host ?? base.hostname, port)
    console.log(`serving signed URLs for ${base.origin}${base.pathname} on http://${flags.host ?? base.hostname}:${server.address().port}`)
    await new Promise((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve))
    server.close()
  },
}

async function main() {
  const [name, ...rest] = process.argv.slice(2)
  const command = commands[name]
  if (!command) {
    process.stdout.write(USAGE)
    return name === undefined || name === 'help' || name === '--help' ? 0 : 2
  }
  const { positional, flags } = parseArgs(rest)
  try {
    return (await command(positional, flags)) ?? 0
  } catch (error) {
    console.error(`error: ${describe(error)}`)
    return 1
  }
}

main().then((code) => {
  process.exitCode = code
})
