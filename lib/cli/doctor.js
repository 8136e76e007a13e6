'use strict'
// `doctor`: the configured backend checked end to end, one line per step.

const crypto = require('node:crypto')
const { Readable } = require('node:stream')
const storage = require('../..')
const { kBaseUrl } = require('../backend')
const { describe } = require('./errors')
const { formatBytes } = require('./progress')
const { listen, openBackend } = require('./stores')

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
    ;({ backend } = openBackend())
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

module.exports = { doctor }
