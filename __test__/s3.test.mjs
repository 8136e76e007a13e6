// What only the S3 backend has: multipart uploads, the S3Client constructor, configuration from
// STORAGE_S3_*, and failures of the service itself (credentials, a dead or restarted server).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3'
import {
  AbortError,
  PermissionDeniedError,
  S3StorageBackend,
  StorageError,
  StorageTimeoutError,
  StorageUnavailableError,
  createS3Backend,
  resetStorageConfig,
} from '../index.mjs'
import { fixtures } from './fixtures.mjs'
import { ACCESS_KEY, SECRET_KEY, startFaultProxy } from './servers.mjs'

const MiB = 1024 * 1024
const BUCKET = 'conformance-bucket'
const cli = fileURLToPath(new URL('../bin/cli.js', import.meta.url))

/** Chunks of a recognisable pattern; `failAfter` bytes in, the stream errors. */
function patterned(total, { failAfter, onChunk } = {}) {
  let sent = 0
  return (async function* () {
    while (sent < total) {
      if (failAfter !== undefined && sent >= failAfter) throw new Error('the source broke')
      const chunk = Buffer.alloc(Math.min(256 * 1024, total - sent), (sent / (256 * 1024)) % 251)
      sent += chunk.length
      await onChunk?.(sent)
      yield chunk
    }
  })()
}

function expected(total) {
  return Buffer.concat([...Array(Math.ceil(total / (256 * 1024))).keys()].map((i) => Buffer.alloc(Math.min(256 * 1024, total - i * 256 * 1024), i % 251)))
}

function sdkClient(endpoint, secret = SECRET_KEY) {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: secret },
  })
}

for (const fixture of fixtures.filter((f) => ['s3s-fs', 'moto'].includes(f.name))) {
  describe(`S3 backend on ${fixture.name}`, () => {
    let backend
    let server
    let cleanup
    const listsUploads = fixture.name === 'moto' // s3s-fs has no ListMultipartUploads

    before(async () => {
      ;({ backend, server, cleanup } = await fixture.create({ partSize: 5 * MiB, queueSize: 2 }))
    })
    after(() => cleanup())

    async function openUploads() {
      const listed = await sdkClient(server.endpoint).send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))
      return listed.Uploads ?? []
    }

    it('uploads a body of unknown length in parts and reads it back', async () => {
      const total = 23 * MiB + 5
      await backend.upload({ key: 'mp/big.bin', body: patterned(total), contentType: 'application/x-test', metadata: { a: 'b' } })
      const info = await backend.stat('mp/big.bin')
      assert.equal(info.size, total)
      assert.equal(info.contentType, 'application/x-test')
      assert.ok((await backend.get('mp/big.bin')).equals(expected(total)))
      assert.ok((await backend.get('mp/big.bin', { range: { start: 5 * MiB - 3, end: 5 * MiB + 2 } })).equals(expected(total).subarray(5 * MiB - 3, 5 * MiB + 3)))
    })

    it('sends bodies as UNSIGNED-PAYLOAD when asked, in one request and in parts', async () => {
      const unsigned = new S3StorageBackend({
        bucket: BUCKET,
        region: 'us-east-1',
        endpoint: server.endpoint,
        credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
        partSize: 5 * MiB,
        signPayload: false,
      })
      await unsigned.put('unsigned/small.txt', 'small body', { contentType: 'text/plain' })
      assert.equal((await backend.get('unsigned/small.txt')).toString(), 'small body')
      const total = 11 * MiB + 7
      await unsigned.upload({ key: 'unsigned/big.bin', body: patterned(total), contentType: 'x/y' })
      assert.ok((await backend.get('unsigned/big.bin')).equals(expected(total)))
    })

    it('aborts the multipart upload when the body fails: no parts are left behind', async () => {
      await assert.rejects(backend.upload({ key: 'mp/broken.bin', body: patterned(30 * MiB, { failAfter: 12 * MiB }), contentType: 'x/y' }), /the source broke/)
      assert.equal(await backend.exists('mp/broken.bin'), false)
      if (listsUploads) assert.deepEqual(await openUploads(), [])
    })

    it('aborts the multipart upload on an AbortSignal', async () => {
      const controller = new AbortController()
      const body = patterned(30 * MiB, { onChunk: (sent) => sent >= 11 * MiB && controller.abort() })
      await assert.rejects(backend.upload({ key: 'mp/aborted.bin', body, contentType: 'x/y', signal: controller.signal }), AbortError)
      assert.equal(await backend.exists('mp/aborted.bin'), false)
      if (listsUploads) assert.deepEqual(await openUploads(), [])
    })

    it('a wrong stated length stores nothing, even past the first part', async () => {
      await assert.rejects(backend.upload({ key: 'mp/short.bin', body: patterned(12 * MiB), contentType: 'x/y', contentLength: 13 * MiB }), StorageError)
      assert.equal(await backend.exists('mp/short.bin'), false)
      if (listsUploads) assert.deepEqual(await openUploads(), [])
    })

    it('takes an AWS SDK v3 S3Client and reads its settings', async () => {
      const fromClient = new S3StorageBackend(sdkClient(server.endpoint), BUCKET, { signedUrlExpiration: 120 })
      await fromClient.upload({ key: 'client/a.txt', body: Buffer.from('via S3Client'), contentType: 'text/plain' })
      assert.equal((await backend.get('client/a.txt')).toString(), 'via S3Client')
      const { url, expiresAt } = await fromClient.getSignedUrl('client/a.txt')
      assert.ok(Math.abs(Date.parse(expiresAt) - Date.now() - 120_000) < 5000)
      assert.equal(await (await fetch(url)).text(), 'via S3Client')
    })

    it('builds from STORAGE_S3_* and passes doctor', async () => {
      const env = {
        STORAGE_BACKEND: 's3',
        STORAGE_S3_ENDPOINT: server.endpoint,
        STORAGE_S3_REGION: 'us-east-1',
        STORAGE_S3_BUCKET: BUCKET,
        STORAGE_S3_ACCESS_KEY_ID: ACCESS_KEY,
        STORAGE_S3_SECRET_ACCESS_KEY: SECRET_KEY,
      }
      const saved = { ...process.env }
      Object.assign(process.env, env)
      resetStorageConfig()
      try {
        const fromEnv = createS3Backend()
        await fromEnv.put('env/a.txt', 'from env')
        assert.equal((await backend.get('env/a.txt')).toString(), 'from env')
      } finally {
        process.env = saved
        resetStorageConfig()
      }
      const { stdout } = await promisify(execFile)(process.execPath, [cli, 'doctor'], { env: { ...process.env, ...env } })
      assert.match(stdout, /^PASS  signed URL/m)
      assert.match(stdout, /doctor: all checks passed/)
    })
  })
}

describe('S3 failures', () => {
  const s3sfs = fixtures.find((f) => f.name === 's3s-fs')
  let backend
  let server
  let cleanup

  before(async () => {
    ;({ backend, server, cleanup } = await s3sfs.create({ partSize: 5 * MiB, queueSize: 2 }))
  })
  after(() => cleanup())

  it('wrong credentials are a PermissionDeniedError that never shows the secret', async () => {
    const secret = 'wrong-secret-that-must-not-leak'
    const wrong = new S3StorageBackend({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: server.endpoint,
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: secret },
    })
    for (const call of [() => wrong.put('k', 'v'), () => wrong.exists('k'), () => wrong.download('k')]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof PermissionDeniedError, `${error}`)
        assert.equal(error.statusCode, 403)
        assert.ok(!JSON.stringify({ ...error.toJSON(), stack: error.stack }).includes(secret))
        return true
      })
    }
  })

  it('a dead endpoint fails fast with a retryable StorageUnavailableError', { timeout: 30_000 }, async () => {
    const dead = new S3StorageBackend({
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:9', // discard port: nothing listens
      credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    })
    await assert.rejects(dead.exists('k'), (error) => error instanceof StorageUnavailableError && error.retryable === true)
    await assert.rejects(dead.upload({ key: 'k', body: patterned(12 * MiB), contentType: 'x/y' }), StorageUnavailableError)
  })

  it('a server killed mid-upload gives a clear error and leaves nothing; restarted, the same backend works', { timeout: 60_000 }, async () => {
    const body = patterned(30 * MiB, { onChunk: async (sent) => sent === 11 * MiB && (await server.stop()) })
    await assert.rejects(backend.upload({ key: 'fault/mid.bin', body: Readable.from(body), contentType: 'x/y' }), StorageUnavailableError)
    await server.start()
    assert.equal(await backend.exists('fault/mid.bin'), false)
    await backend.upload({ key: 'fault/after.bin', body: patterned(7 * MiB), contentType: 'x/y' })
    assert.equal((await backend.stat('fault/after.bin')).size, 7 * MiB)
  })

  describe('through a proxy that misbehaves on demand', () => {
    let proxy
    let viaProxy
    before(async () => {
      proxy = await startFaultProxy(server.endpoint)
      viaProxy = new S3StorageBackend({
        bucket: BUCKET,
        region: 'us-east-1',
        endpoint: proxy.endpoint,
        credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
        stallTimeout: 2,
      })
    })
    after(() => proxy.close())

    it('retries transient 503s and 500s, then gives up with a retryable error', async () => {
      await backend.put('retry/a.txt', 'still here')
      for (const status of [503, 500]) {
        proxy.faults.status = status
        proxy.faults.failures = 2
        const before = proxy.faults.requests
        assert.equal((await viaProxy.get('retry/a.txt')).toString(), 'still here')
        assert.equal(proxy.faults.requests - before, 3, 'two failures, then the retry that worked')
      }
      proxy.faults.failures = 100
      await assert.rejects(viaProxy.exists('retry/a.txt'), (e) => e instanceof StorageUnavailableError && e.retryable)
      proxy.faults.failures = 0
    })

    it('a stalled download times out', { timeout: 30_000 }, async () => {
      await backend.put('stall/big.bin', Buffer.alloc(4 * MiB, 1))
      proxy.faults.stallAfterBytes = 256 * 1024
      try {
        const stream = await viaProxy.download('stall/big.bin')
        await assert.rejects(
          (async () => {
            for await (const _chunk of stream);
          })(),
          (e) => e instanceof StorageTimeoutError && e.statusCode === 503,
        )
      } finally {
        proxy.faults.stallAfterBytes = undefined
      }
    })
  })
})
