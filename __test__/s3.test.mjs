// What only the S3 backend has: multipart uploads, the S3Client constructor, configuration from
// STORAGE_S3_*, and failures of the service itself (credentials, a dead or restarted server).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import fs from 'node:fs/promises'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import {
  AbortError,
  AliyunOssStorageBackend,
  ConfigurationError,
  ContentLengthMismatchError,
  FileAlreadyExistsError,
  FileNotFoundError,
  InvalidArgumentError,
  PermissionDeniedError,
  S3StorageBackend,
  StorageError,
  StorageTimeoutError,
  StorageUnavailableError,
  createAliyunBackend,
  createS3Backend,
  resetStorageConfig,
} from '../index.mjs'
import { withEnv } from './env.mjs'
import { fixtures, s3Backend } from './fixtures.mjs'
import { ACCESS_KEY, SECRET_KEY, connectionsTo, makeTestCa, startFaultProxy, startMoto, startTlsTerminator } from './servers.mjs'

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
      const unsigned = s3Backend(server.endpoint, { partSize: 5 * MiB, signPayload: false })
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
      await assert.rejects(backend.upload({ key: 'mp/short.bin', body: patterned(12 * MiB), contentType: 'x/y', contentLength: 13 * MiB }), (e) => {
        assert.ok(e instanceof ContentLengthMismatchError, `${e}`)
        assert.deepEqual(e.details, { expected: 13 * MiB, actual: 12 * MiB })
        return true
      })
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

    it('deletes what other tools left under a prefix, folder markers included', async () => {
      const sdk = sdkClient(server.endpoint)
      for (const Key of ['marked/', 'marked/inside.txt']) {
        await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key.endsWith('/') ? '' : 'x' }))
      }
      const listed = async () => (await sdk.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'marked/' }))).KeyCount ?? 0
      // moto lists the marker as an object; s3s-fs keeps it as a folder and lists only the file.
      const before = await listed()
      assert.ok(before >= 1)
      assert.equal(await backend.deletePrefix('marked/'), before)
      assert.equal(await listed(), 0)
    })

    it('copies to any key the validator accepts, and names the missing source', async () => {
      await backend.put('copy/src', 'payload', { contentType: 'text/csv' })
      for (const to of [' ', 'copy/a b+c', 'copy/ünï(1)']) {
        await backend.copy('copy/src', to)
        assert.equal((await backend.get(to)).toString(), 'payload', JSON.stringify(to))
      }
      await assert.rejects(backend.copy('copy/missing', 'copy/x'), (e) => e instanceof FileNotFoundError && e.details.key === 'copy/missing')
    })

    it('refuses to sign PUT guards it cannot enforce', async () => {
      await assert.rejects(backend.getSignedUrl('k', { method: 'PUT', maxBytes: 10 }), InvalidArgumentError)
      await assert.rejects(backend.getSignedUrl('k', { method: 'PUT', allowedContentTypes: ['image/png'] }), InvalidArgumentError)
    })

    if (listsUploads) {
      it('an upload cut off from its server leaves parts that deleteIncompleteUploads removes', { timeout: 60_000 }, async () => {
        const proxy = await startFaultProxy(server.endpoint)
        try {
          const cutOff = s3Backend(proxy.endpoint, { partSize: 5 * MiB })
          // Past the first parts the server answers nothing but 503, the abort included.
          const body = patterned(30 * MiB, { onChunk: (sent) => sent === 11 * MiB && (proxy.faults.failures = 1000) })
          await assert.rejects(cutOff.upload({ key: 'cut/off.bin', body, contentType: 'x/y' }), StorageUnavailableError)
          proxy.faults.failures = 0
          assert.equal((await openUploads()).length, 1, 'the abort could not reach the server')
          assert.equal(await backend.deleteIncompleteUploads(new Date(Date.now() + 60_000)), 1)
          assert.deepEqual(await openUploads(), [])
        } finally {
          await proxy.close()
        }
      })

      it('deleteIncompleteUploads aborts the multipart uploads begun before the date', async () => {
        const sdk = sdkClient(server.endpoint)
        await sdk.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'orphan/a.bin' }))
        // moto dates every upload 2010-11-10, so "older than" is tried against a date before that.
        assert.equal(await backend.deleteIncompleteUploads(new Date('2001-01-01')), 0)
        assert.equal(await backend.deleteIncompleteUploads(new Date(Date.now() + 60_000)), 1)
        assert.deepEqual(await openUploads(), [])
      })
    }

    it('asks a credentials provider again before what it gave expires, and never for each request', async () => {
      let calls = 0
      const provider = (lifetimeMs) => async () => {
        calls++
        return { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, expiration: new Date(Date.now() + lifetimeMs) }
      }
      const lasting = s3Backend(server.endpoint, { credentials: provider(3_600_000) })
      for (let i = 0; i < 5; i++) await lasting.put(`creds/lasting-${i}`, 'x')
      assert.equal((await fetch((await lasting.getSignedUrl('creds/lasting-0')).url)).status, 200)
      assert.equal(calls, 1, 'one fetch for credentials that last an hour')
      // Credentials inside the refresh margin (5 minutes) are fetched again before each use,
      // for requests and for signed URLs alike (which then wait for them).
      calls = 0
      const expiring = s3Backend(server.endpoint, { credentials: provider(60_000) })
      await expiring.put('creds/expiring', 'y')
      await expiring.stat('creds/expiring')
      const { url } = await expiring.getSignedUrl('creds/expiring')
      assert.equal(await (await fetch(url)).text(), 'y')
      assert.equal(calls, 3)
    })

    it('without credentials, takes them from the AWS default chain: the environment, then a profile', async () => {
      const home = await fs.mkdtemp(path.join(os.tmpdir(), 'rstorage-aws-'))
      const open = () => new S3StorageBackend({ bucket: BUCKET, region: 'us-east-1', endpoint: server.endpoint })
      const file = path.join(home, 'credentials')
      await fs.writeFile(file, `[storage-test]\naws_access_key_id = ${ACCESS_KEY}\naws_secret_access_key = ${SECRET_KEY}\n`)
      const none = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined }
      // Nothing may reach for instance metadata from a test.
      const isolated = { ...none, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: path.join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: file }
      try {
        await withEnv({ ...isolated, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY }, () => open().put('chain/env', 'from the environment'))
        await withEnv({ ...isolated, AWS_PROFILE: 'storage-test' }, () => open().put('chain/profile', 'from a profile'))
        assert.equal((await backend.get('chain/profile')).toString(), 'from a profile')
        await withEnv({ ...isolated, AWS_PROFILE: 'no-such-profile' }, () =>
          assert.rejects(open().put('chain/none', 'x'), (e) => e instanceof PermissionDeniedError && /no AWS credentials were found/.test(e.message)),
        )
      } finally {
        await fs.rm(home, { recursive: true, force: true })
      }
    })

    it('a credentials provider that fails is a PermissionDeniedError saying so', async () => {
      const failing = s3Backend(server.endpoint, {
        credentials: async () => {
          throw new Error('token service unreachable')
        },
      })
      for (const call of [() => failing.put('creds/never', 'x'), () => failing.getSignedUrl('creds/never'), () => failing.list()]) {
        await assert.rejects(call(), (e) => e instanceof PermissionDeniedError && /credentials provider failed: .*token service unreachable/.test(e.message))
      }
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
      await withEnv(env, async () => {
        resetStorageConfig()
        const fromEnv = createS3Backend()
        await fromEnv.put('env/a.txt', 'from env')
        assert.equal((await backend.get('env/a.txt')).toString(), 'from env')
      })
      resetStorageConfig()
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
    const wrong = s3Backend(server.endpoint, { credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: secret } })
    for (const call of [() => wrong.put('k', 'v'), () => wrong.exists('k'), () => wrong.download('k')]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof PermissionDeniedError, `${error}`)
        assert.equal(error.statusCode, 403)
        assert.ok(!JSON.stringify({ ...error.toJSON(), stack: error.stack }).includes(secret))
        return true
      })
    }
  })

  it('a bucket that does not exist is a ConfigurationError for every call, exists included', { timeout: 60_000 }, async (t) => {
    // On moto: s3s-fs makes a bucket's folder on the first write to it.
    const moto = await startMoto(BUCKET)
    t.after(() => moto.stop())
    const missing = s3Backend(moto.endpoint, { bucket: 'no-such-bucket' })
    const calls = [
      () => missing.put('k', 'v'),
      () => missing.exists('k'),
      () => missing.stat('k'),
      () => missing.get('k'),
      () => missing.list(),
      () => missing.upload({ key: 'big', body: patterned(6 * MiB) }),
    ]
    for (const call of calls) {
      await assert.rejects(call(), (e) => e instanceof ConfigurationError && /bucket does not exist/.test(e.message))
    }
    assert.equal(await s3Backend(moto.endpoint).exists('no/such/key'), false, 'a missing key in a bucket that exists')
  })

  it('a dead endpoint fails fast with a retryable StorageUnavailableError', { timeout: 30_000 }, async () => {
    const dead = s3Backend('http://127.0.0.1:9') // discard port: nothing listens
    await assert.rejects(dead.exists('k'), (error) => error instanceof StorageUnavailableError && error.retryable === true)
    await assert.rejects(dead.upload({ key: 'k', body: patterned(12 * MiB), contentType: 'x/y' }), StorageUnavailableError)
  })

  it('a server killed mid-upload gives a clear error; restarted, its parts go with deleteIncompleteUploads, and the same backend works', { timeout: 60_000 }, async () => {
    // s3s-fs keeps an upload's parts as files at its root until the upload is aborted.
    const uploadFiles = async () => (await fs.readdir(server.root)).filter((name) => name.startsWith('.upload'))
    const body = patterned(30 * MiB, { onChunk: async (sent) => sent === 11 * MiB && (await server.stop()) })
    await assert.rejects(backend.upload({ key: 'fault/mid.bin', body: Readable.from(body), contentType: 'x/y' }), StorageUnavailableError)
    await server.start()
    assert.equal(await backend.exists('fault/mid.bin'), false)
    assert.ok((await uploadFiles()).length > 0, 'the abort could not reach the server, so its parts are there')
    // s3s-fs cannot list uploads: the store remembers the one whose abort failed.
    assert.equal(await backend.deleteIncompleteUploads(), 1)
    assert.deepEqual(await uploadFiles(), [])
    await backend.upload({ key: 'fault/after.bin', body: patterned(7 * MiB), contentType: 'x/y' })
    assert.equal((await backend.stat('fault/after.bin')).size, 7 * MiB)
  })

  it('a frozen server fails uploads (one request or in parts) with a timeout, never a hang', { timeout: 120_000 }, async () => {
    const quick = s3Backend(server.endpoint, { partSize: 5 * MiB, stallTimeout: 1 })
    await quick.put('frozen/warm.txt', 'connections made before the freeze')
    server.pause()
    try {
      for (const upload of [
        () => quick.put('frozen/small.bin', Buffer.alloc(2 * MiB, 1)),
        () => quick.upload({ key: 'frozen/parts.bin', body: patterned(12 * MiB), contentType: 'x/y' }),
      ]) {
        const started = Date.now()
        await assert.rejects(upload(), StorageTimeoutError)
        assert.ok(Date.now() - started < 45_000, `settled after ${Date.now() - started} ms`)
      }
    } finally {
      server.resume()
    }
  })

  it('keeps a bounded pool of idle connections after a burst', { timeout: 60_000 }, async () => {
    await backend.put('burst/a.txt', 'x')
    await Promise.all(Array.from({ length: 300 }, () => backend.get('burst/a.txt')))
    await new Promise((resolve) => setTimeout(resolve, 200))
    const open = await connectionsTo(server.port)
    assert.ok(open <= 40, `${open} connections left open`)
  })

  it('a dead endpoint names the cause in plain words', async () => {
    const dead = s3Backend('http://127.0.0.1:9')
    for (const call of [() => dead.exists('k'), () => dead.list(), () => dead.copy('a', 'b')]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof StorageUnavailableError, `${error}`)
        assert.match(error.message, /refused/i)
        assert.doesNotMatch(error.message, /DispatchFailure|ConnectorError|\{|Some\(/)
        return true
      })
    }
  })

  describe('through a proxy that misbehaves on demand', () => {
    let proxy
    let viaProxy
    before(async () => {
      proxy = await startFaultProxy(server.endpoint)
      viaProxy = s3Backend(proxy.endpoint, { stallTimeout: 2 })
    })
    after(() => proxy.close())

    it('an abort while the server holds the last answer ends the upload at once and still aborts its parts', { timeout: 60_000 }, async () => {
      const uploadFiles = async () => (await fs.readdir(server.root)).filter((name) => name.startsWith('.upload'))
      let held = 0
      // The completion reaches the server's proxy and is never answered.
      proxy.faults.intercept = (req) =>
        req.method === 'POST' && req.url.includes('uploadId=') && (held++, { respond: { status: 200, body: (async function* () { await new Promise(() => {}) })() } })
      const controller = new AbortController()
      try {
        const uploading = viaProxy.upload({ key: 'abort/held.bin', body: patterned(11 * MiB), contentType: 'x/y', signal: controller.signal })
        while (held === 0) await sleep(20)
        const aborted = Date.now()
        controller.abort()
        await assert.rejects(uploading, AbortError)
        assert.ok(Date.now() - aborted < 1000, `settled ${Date.now() - aborted} ms after the abort`)
        for (let i = 0; i < 100 && (await uploadFiles()).length > 0; i++) await sleep(50)
        assert.deepEqual(await uploadFiles(), [], 'the parts were aborted in the background')
        assert.equal(await backend.exists('abort/held.bin'), false)
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('doctor that fails a check after writing removes its test object', { timeout: 60_000 }, async () => {
      // The signed GET (and only it) fails.
      proxy.faults.intercept = (req) => req.method === 'GET' && req.url.includes('X-Amz-Signature=') && { respond: { status: 500 } }
      try {
        const env = {
          ...process.env,
          STORAGE_BACKEND: 's3',
          STORAGE_S3_ENDPOINT: proxy.endpoint,
          STORAGE_S3_REGION: 'us-east-1',
          STORAGE_S3_BUCKET: BUCKET,
          STORAGE_S3_ACCESS_KEY_ID: ACCESS_KEY,
          STORAGE_S3_SECRET_ACCESS_KEY: SECRET_KEY,
        }
        const run = await promisify(execFile)(process.execPath, [cli, 'doctor'], { env }).catch((failure) => failure)
        assert.match(run.stdout, /^FAIL  signed URL/m)
        assert.match(run.stdout, /^CLEAN removed raptscallions-doctor\//m)
        assert.deepEqual((await backend.list({ prefix: 'raptscallions-doctor/' })).objects, [])
      } finally {
        proxy.faults.intercept = undefined
      }
    })

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

    it('a conditional PUT whose answer was lost is recognised as ours when retried, not refused', async () => {
      let lost = 0
      proxy.faults.intercept = (req) => req.method === 'PUT' && lost++ === 0 && { loseAnswer: true }
      try {
        const result = await viaProxy.put('lost/once.txt', 'first and only', { ifNotExists: true })
        assert.equal(lost, 2, 'the first answer was lost and the write retried')
        assert.match(result.etag, /^".+"$/)
        assert.equal((await backend.get('lost/once.txt')).toString(), 'first and only')
        await assert.rejects(viaProxy.put('lost/once.txt', 'second', { ifNotExists: true }), FileAlreadyExistsError)
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('a multipart completion whose answer was lost is recognised as done when retried', { timeout: 60_000 }, async () => {
      let lost = 0
      proxy.faults.intercept = (req) => req.method === 'POST' && req.url.includes('uploadId=') && lost++ === 0 && { loseAnswer: true }
      try {
        const total = 11 * MiB + 3
        await viaProxy.upload({ key: 'lost/multipart.bin', body: patterned(total), contentType: 'x/y', ifNotExists: true })
        assert.equal(lost, 2)
        assert.ok((await backend.get('lost/multipart.bin')).equals(expected(total)))
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('reads no more than a bounded part of an error answer, however long', async () => {
      proxy.faults.intercept = () => ({
        respond: {
          status: 403,
          body: (async function* () {
            yield Buffer.from('<Error><Code>AccessDenied</Code>')
            for (let i = 0; i < 1600; i++) yield Buffer.alloc(64 * 1024, 0x20) // 100 MiB
          })(),
        },
      })
      try {
        const before = process.memoryUsage().rss
        // A GET: a HEAD answer has no body to read.
        await assert.rejects(viaProxy.get('any'), PermissionDeniedError)
        assert.ok(process.memoryUsage().rss - before < 50e6, 'the whole error body was read')
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('a 416 to a plain GET is an error, not a crash', async () => {
      proxy.faults.intercept = (req) => req.method === 'GET' && { respond: { status: 416, body: Buffer.from('<Error><Code>InvalidRange</Code></Error>') } }
      try {
        // A plain error of the store (500): the server said something that makes no sense.
        await assert.rejects(viaProxy.get('retry/a.txt'), (e) => e.constructor === StorageError && e.statusCode === 500 && /416/.test(e.message))
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('AccessDenied for keys inside a DeleteObjects answer is PERMISSION_DENIED for those keys', async () => {
      proxy.faults.intercept = (req) =>
        req.method === 'POST' &&
        req.url.includes('delete') && {
          respond: {
            status: 200,
            body: Buffer.from('<DeleteResult><Error><Key>gone/b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>'),
          },
        }
      try {
        await assert.rejects(viaProxy.deleteMany(['gone/a', 'gone/b']), (e) => {
          assert.equal(e.constructor, StorageError)
          assert.equal(e.code, 'STORAGE_ERROR')
          assert.equal(e.details.total, 2)
          assert.deepEqual(e.details.failures.map((f) => [f.key, f.code]), [['gone/b', 'PERMISSION_DENIED']])
          return true
        })
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('without DeleteObjects, deletes go one by one, a few at a time', async () => {
      const keys = Array.from({ length: 60 }, (_, i) => `fallback/${i}`)
      for (const key of keys) await backend.put(key, 'x')
      proxy.faults.intercept = (req) => req.method === 'POST' && req.url.includes('delete') && { respond: { status: 501, body: Buffer.from('<Error><Code>NotImplemented</Code></Error>') } }
      proxy.faults.maxActive = 0
      try {
        assert.equal(await viaProxy.deleteMany(keys), 60)
        assert.ok(proxy.faults.maxActive <= 16, `${proxy.faults.maxActive} requests at once`)
        assert.deepEqual((await backend.list({ prefix: 'fallback/' })).objects, [])
      } finally {
        proxy.faults.intercept = undefined
      }
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

describe('S3 over HTTPS, with a CA of its own', () => {
  const s3sfs = fixtures.find((f) => f.name === 's3s-fs')
  let plain
  let server
  let cleanup
  let ca
  let terminator

  before(async () => {
    ;({ backend: plain, server, cleanup } = await s3sfs.create())
    ca = await makeTestCa()
    terminator = await startTlsTerminator(server.endpoint, ca)
  })
  after(async () => {
    await terminator.stop()
    await cleanup()
    await fs.rm(ca.dir, { recursive: true, force: true })
  })

  const over = (options = {}) => s3Backend(terminator.endpoint, { partSize: 5 * MiB, ...options })

  it('trusts the CA it is given, for object calls, listings, multipart uploads and signed URLs', { timeout: 60_000 }, async () => {
    const trusted = over({ caCertificates: ca.caPem })
    await trusted.put('tls/small.txt', 'over TLS')
    assert.equal((await trusted.get('tls/small.txt')).toString(), 'over TLS')
    const size = 11 * MiB + 1
    await trusted.upload({ key: 'tls/large.bin', body: Readable.from(patterned(size)) })
    assert.ok((await trusted.get('tls/large.bin')).equals(expected(size)))
    assert.deepEqual((await trusted.list({ prefix: 'tls/' })).objects.map((o) => o.key), ['tls/large.bin', 'tls/small.txt'])
    const { url } = await trusted.getSignedUrl('tls/small.txt', { expiresIn: 60 })
    assert.ok(url.startsWith('https://'))
    const body = await new Promise((resolve, reject) => {
      https.get(url, { ca: ca.caPem }, (res) => {
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk)).on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }))
      }).on('error', reject)
    })
    assert.deepEqual(body, { status: 200, text: 'over TLS' })
    await withEnv({ NODE_EXTRA_CA_CERTS: path.join(ca.dir, 'ca.pem') }, async () => {
      assert.equal((await over().get('tls/small.txt')).toString(), 'over TLS')
    })
  })

  it('refuses a server nobody trusts with a ConfigurationError at once, and writes nothing', { timeout: 60_000 }, async () => {
    const untrusted = over()
    const calls = {
      put: () => untrusted.put('tls/refused.txt', 'never'),
      multipart: () => untrusted.upload({ key: 'tls/refused.bin', body: Readable.from(patterned(6 * MiB)) }),
      exists: () => untrusted.exists('tls/small.txt'),
      get: () => untrusted.get('tls/small.txt'),
      list: () => untrusted.list({ prefix: 'tls/' }),
    }
    for (const [name, call] of Object.entries(calls)) {
      const started = Date.now()
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof ConfigurationError, `${name}: ${error}`)
        assert.match(error.message, /certificate this machine does not trust/)
        return true
      })
      assert.ok(Date.now() - started < 2000, `${name}: an untrusted certificate is not retried`)
    }
    assert.equal(await plain.exists('tls/refused.txt'), false)
    assert.equal(await plain.exists('tls/refused.bin'), false)
  })
})

describe('Aliyun OSS', () => {
  it('signs for the region in virtual-hosted style on OSS\'s S3 endpoint, from options or STORAGE_ALIYUN_*', async () => {
    const credentials = { accessKeyId: 'AKID', secretAccessKey: 'secret' }
    for (const [options, host] of [
      [{ region: 'cn-hangzhou' }, 'my-bucket.s3.oss-cn-hangzhou.aliyuncs.com'],
      [{ region: 'oss-eu-central-1', internal: true }, 'my-bucket.s3.oss-eu-central-1-internal.aliyuncs.com'],
    ]) {
      const backend = new AliyunOssStorageBackend({ bucket: 'my-bucket', credentials, ...options })
      const url = new URL((await backend.getSignedUrl('dir/a b.txt')).url)
      assert.equal(url.host, host)
      assert.equal(url.pathname, '/dir/a%20b.txt')
      assert.match(url.searchParams.get('X-Amz-Credential'), new RegExp(`^AKID/\\d{8}/${options.region.replace(/^oss-/, '')}/s3/aws4_request$`))
    }
    assert.throws(() => new AliyunOssStorageBackend({ bucket: 'b', credentials }), ConfigurationError)
    const env = {
      STORAGE_BACKEND: 'aliyun',
      STORAGE_ALIYUN_REGION: 'cn-shanghai',
      STORAGE_ALIYUN_BUCKET: 'env-bucket',
      STORAGE_ALIYUN_ACCESS_KEY_ID: 'AKID',
      STORAGE_ALIYUN_SECRET_ACCESS_KEY: 'secret',
    }
    await withEnv(env, async () => {
      resetStorageConfig()
      const fromEnv = createAliyunBackend()
      assert.equal(new URL((await fromEnv.getSignedUrl('k')).url).host, 'env-bucket.s3.oss-cn-shanghai.aliyuncs.com')
    })
    resetStorageConfig()
  })
})
