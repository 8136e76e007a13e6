// What only the GCS backend has: resumable uploads, interop with Google's own Node SDK,
// configuration from STORAGE_GCS_*, service-account tokens, and failures of the service itself
// (a dead endpoint, a missing bucket, a stalled download).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { Storage } from '@google-cloud/storage'
import {
  ConfigurationError,
  FileAlreadyExistsError,
  GcsStorageBackend,
  PermissionDeniedError,
  StorageTimeoutError,
  StorageUnavailableError,
  createGcsBackend,
  getBackend,
  resetFactory,
  resetStorageConfig,
} from '../index.mjs'
import { withEnv } from './env.mjs'
import { fixtures, gcsTestKey } from './fixtures.mjs'
import { connectionsTo, startFaultProxy } from './servers.mjs'

const KiB = 1024
const MiB = 1024 * KiB
const BUCKET = 'conformance-bucket'

/** Chunks of a recognisable pattern; `failAfter` bytes in, the stream errors. */
function patterned(total, { failAfter, chunk = 100 * KiB } = {}) {
  let sent = 0
  return (async function* () {
    while (sent < total) {
      if (failAfter !== undefined && sent >= failAfter) throw new Error('the source broke')
      const size = Math.min(chunk, total - sent)
      yield Buffer.from(Array.from({ length: size }, (_, i) => (sent + i) % 253))
      sent += size
    }
  })()
}

function expected(total) {
  return Buffer.from(Array.from({ length: total }, (_, i) => i % 253))
}

for (const fixture of fixtures.filter((f) => f.name === 'fake-gcs-server')) {
  describe(`GCS backend on ${fixture.name}`, () => {
    let place
    let server
    let cleanup
    let backend
    let sdk
    let tokens

    before(async () => {
      ;({ place, server, cleanup, tokens } = await fixture.provision())
      backend = fixture.open(place, { partSize: 256 * KiB, queueSize: 2 })
      // Google's SDK on the same server, with the same service account (its token endpoint is
      // the local one, so nothing leaves the machine).
      sdk = new Storage({ apiEndpoint: place.endpoint, projectId: 'test-project', credentials: place.credentials })
    })

    after(async () => {
      await cleanup()
    })

    it('what we write, Google\'s SDK reads byte-identical, with content type and metadata', async () => {
      const small = Buffer.from('{"hello":"gcs"}')
      await backend.put('interop/ours-small.json', small, { contentType: 'application/json', metadata: { owner: 'me' } })
      const large = expected(MiB + 17)
      await backend.upload({
        key: 'interop/ours-large.bin',
        body: Readable.from(patterned(large.length)),
        contentType: 'x/pattern',
        metadata: { kind: 'resumable' },
      })
      for (const [key, data, type, metadata] of [
        ['interop/ours-small.json', small, 'application/json', { owner: 'me' }],
        ['interop/ours-large.bin', large, 'x/pattern', { kind: 'resumable' }],
      ]) {
        const file = sdk.bucket(BUCKET).file(key)
        const [read] = await file.download()
        assert.ok(read.equals(data), key)
        const [meta] = await file.getMetadata()
        assert.equal(meta.contentType, type)
        assert.deepEqual(meta.metadata, metadata)
        assert.equal(Number(meta.size), data.length)
      }
    })

    it('what Google\'s SDK writes, we read byte-identical, with content type and metadata', async () => {
      const data = expected(700 * KiB)
      for (const resumable of [false, true]) {
        const key = `interop/sdk-${resumable ? 'resumable' : 'simple'}.bin`
        await sdk.bucket(BUCKET).file(key).save(data, { resumable, contentType: 'x/sdk', metadata: { metadata: { from: 'sdk' } } })
        assert.ok((await backend.get(key)).equals(data), key)
        const stat = await backend.stat(key)
        const [seen] = await sdk.bucket(BUCKET).file(key).getMetadata()
        // fake-gcs-server takes a resumable object's type from the last chunk's request, which
        // the SDK sends untyped: the SDK reads back application/octet-stream there too, and we
        // read what the server holds. A simple upload keeps the type.
        assert.equal(stat.contentType, resumable ? seen.contentType : 'x/sdk', key)
        assert.deepEqual(stat.metadata, { from: 'sdk' })
        assert.equal(stat.size, data.length)
      }
    })

    it('bodies of edge sizes go up and come back whole, with and without a stated length', async () => {
      for (const size of [0, 1, 256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 512 * KiB, 3 * 256 * KiB + 5]) {
        for (const stated of [false, true]) {
          const key = `edges/${size}-${stated}`
          await backend.upload({
            key,
            body: Readable.from(patterned(size, { chunk: 70 * KiB })),
            contentType: 'x/y',
            contentLength: stated ? size : undefined,
          })
          const read = await backend.get(key)
          assert.equal(read.length, size, key)
          assert.ok(read.equals(expected(size)), key)
          assert.equal((await backend.stat(key)).contentType, 'x/y')
        }
      }
    })

    it('a resumable upload whose body fails mid-way leaves nothing behind', async () => {
      const key = 'broken/mid.bin'
      await assert.rejects(
        backend.upload({ key, body: Readable.from(patterned(2 * MiB, { failAfter: MiB })), contentType: 'x/y' }),
        /the source broke/,
      )
      assert.equal(await backend.exists(key), false)
      assert.deepEqual((await backend.list({ prefix: 'broken/' })).objects, [])
    })

    it('ifNotExists holds for one-request uploads, with a 409', async () => {
      await backend.put('once/a', 'first', { ifNotExists: true })
      await assert.rejects(backend.put('once/a', 'second', { ifNotExists: true }), FileAlreadyExistsError)
      assert.equal((await backend.get('once/a')).toString(), 'first')
    })

    it('copies server-side, lists with a delimiter and page tokens', async () => {
      await backend.put('tree/a/1', '1')
      await backend.put('tree/a/2', '2')
      await backend.put('tree/b', 'b')
      await backend.copy('tree/b', 'tree/c')
      assert.equal((await backend.get('tree/c')).toString(), 'b')
      const top = await backend.list({ prefix: 'tree/', delimiter: '/' })
      assert.deepEqual(top.prefixes, ['tree/a/'])
      assert.deepEqual(top.objects.map((o) => o.key), ['tree/b', 'tree/c'])
      const first = await backend.list({ prefix: 'tree/', limit: 2 })
      assert.equal(first.objects.length, 2)
      assert.ok(first.cursor)
      const second = await backend.list({ prefix: 'tree/', limit: 2, cursor: first.cursor })
      assert.deepEqual(second.objects.map((o) => o.key), ['tree/b', 'tree/c'])
    })

    it('gets its tokens by the JWT-bearer flow, once, not per request', async () => {
      const before = tokens.tokens
      const fresh = fixture.open(place)
      for (let i = 0; i < 5; i++) await fresh.exists(`tokens/${i}`)
      assert.equal(tokens.tokens - before, 1)
    })

    it('a key the token endpoint refuses is a PermissionDeniedError that shows no secret', async () => {
      const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' })
      const wrongKey = fixture.open({ ...place, credentials: { ...place.credentials, private_key: otherKey } })
      await assert.rejects(wrongKey.exists('k'), (error) => {
        assert.ok(error instanceof PermissionDeniedError, `${error}`)
        const shown = JSON.stringify(error.toJSON()) + error.message + JSON.stringify(error.details)
        assert.ok(!shown.includes('PRIVATE KEY') && !shown.includes(otherKey.split('\n')[1]), shown)
        return true
      })
    })

    it('signs V4 URLs with the service account; anonymous access refuses to sign, saying why', async () => {
      const { url } = await backend.getSignedUrl('signed/x', { method: 'PUT', contentType: 'text/plain' })
      assert.match(url, /X-Goog-Algorithm=GOOG4-RSA-SHA256/)
      assert.match(url, /X-Goog-SignedHeaders=content-type%3Bhost/)
      const anonymous = new GcsStorageBackend({ bucket: BUCKET, endpoint: place.endpoint })
      await anonymous.put('anon/x', 'x')
      assert.equal((await anonymous.get('anon/x')).toString(), 'x')
      await assert.rejects(anonymous.getSignedUrl('anon/x'), (e) => e instanceof ConfigurationError && /service-account key/.test(e.message))
    })

    it('a missing bucket is a ConfigurationError, for reads, writes and deletes', async () => {
      const missing = new GcsStorageBackend({ bucket: 'no-such-bucket', endpoint: place.endpoint })
      for (const call of [
        () => missing.exists('k'),
        () => missing.get('k'),
        () => missing.put('k', 'x'),
        () => missing.delete('k'),
        () => missing.upload({ key: 'k', body: Readable.from(patterned(600 * KiB)), contentType: 'x/y' }),
      ]) {
        await assert.rejects(call(), (e) => e instanceof ConfigurationError && /no-such-bucket/.test(e.message))
      }
    })

    it('a dead endpoint fails fast with a retryable StorageUnavailableError', { timeout: 30_000 }, async () => {
      const dead = new GcsStorageBackend({ bucket: BUCKET, endpoint: 'http://127.0.0.1:9' })
      await assert.rejects(dead.exists('k'), (e) => e instanceof StorageUnavailableError && e.retryable === true)
      await assert.rejects(dead.upload({ key: 'k', body: Readable.from(patterned(MiB)), contentType: 'x/y' }), StorageUnavailableError)
    })

    it('a stalled download times out', { timeout: 30_000 }, async () => {
      const proxy = await startFaultProxy(place.endpoint)
      try {
        const viaProxy = new GcsStorageBackend({ bucket: BUCKET, endpoint: proxy.endpoint, stallTimeout: 1 })
        await backend.put('stall/big.bin', Buffer.alloc(4 * MiB, 1))
        proxy.faults.stallAfterBytes = 256 * KiB
        const stream = await viaProxy.download('stall/big.bin')
        await assert.rejects(
          (async () => {
            for await (const _chunk of stream);
          })(),
          (e) => e instanceof StorageTimeoutError && e.statusCode === 503,
        )
      } finally {
        await proxy.close()
      }
    })

    it('doctor passes anonymously on the emulator, the signed URL check marked not applicable, and leaves nothing', { timeout: 60_000 }, async () => {
      const cli = new URL('../bin/cli.js', import.meta.url).pathname
      const env = {
        ...process.env,
        STORAGE_BACKEND: 'gcs',
        STORAGE_GCS_PROJECT_ID: 'test-project',
        STORAGE_GCS_BUCKET: BUCKET,
        STORAGE_GCS_ENDPOINT: place.endpoint,
      }
      const { stdout } = await promisify(execFile)(process.execPath, [cli, 'doctor'], { env })
      assert.match(stdout, /^N\/A   signed URL .*service-account key/m)
      assert.match(stdout, /doctor: all checks passed/)
      const left = await sdk.bucket(BUCKET).getFiles({ prefix: 'raptscallions-doctor/' })
      assert.deepEqual(left[0].map((f) => f.name), [])
    })

    it('doctor passes with a key file (STORAGE_GCS_KEY_FILE_PATH) on the emulator', { timeout: 60_000 }, async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rstorage-gcs-key-'))
      const keyFile = path.join(dir, 'key.json')
      await fs.writeFile(keyFile, JSON.stringify(place.credentials))
      try {
        const cli = new URL('../bin/cli.js', import.meta.url).pathname
        const env = {
          ...process.env,
          STORAGE_BACKEND: 'gcs',
          STORAGE_GCS_PROJECT_ID: 'test-project',
          STORAGE_GCS_BUCKET: BUCKET,
          STORAGE_GCS_ENDPOINT: place.endpoint,
          STORAGE_GCS_KEY_FILE_PATH: keyFile,
        }
        const { stdout } = await promisify(execFile)(process.execPath, [cli, 'doctor'], { env })
        assert.match(stdout, /doctor: all checks passed/)
        assert.doesNotMatch(stdout, /PRIVATE KEY/)
      } finally {
        await fs.rm(dir, { recursive: true, force: true })
      }
    })

    it('builds from STORAGE_GCS_* (an emulator endpoint: anonymous) and registers as "gcs"', async () => {
      await withEnv(
        {
          STORAGE_BACKEND: 'gcs',
          STORAGE_GCS_PROJECT_ID: 'test-project',
          STORAGE_GCS_BUCKET: BUCKET,
          STORAGE_GCS_ENDPOINT: place.endpoint,
          STORAGE_GCS_KEY_FILE_PATH: undefined,
        },
        async () => {
          resetStorageConfig()
          resetFactory()
          try {
            const fromEnv = createGcsBackend()
            assert.equal(fromEnv.projectId, 'test-project')
            await fromEnv.put('env/x', 'y')
            assert.equal((await getBackend('gcs').get('env/x')).toString(), 'y')
          } finally {
            resetFactory()
            resetStorageConfig()
          }
        },
      )
      assert.ok((await connectionsTo(server.port)) >= 0)
    })
  })
}

