// What only the Azure store has: blocks, connection strings and SAS tokens, configuration from
// STORAGE_AZURE_*, interop with the official SDK, and failures of the service itself.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import fs from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  BlobClient,
  BlobSASPermissions,
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob'
import {
  AzureBlobStorageBackend,
  ConfigurationError,
  FileAlreadyExistsError,
  PermissionDeniedError,
  StorageTimeoutError,
  StorageUnavailableError,
  createAzureBackend,
  resetStorageConfig,
} from '../index.mjs'
import { withEnv } from './env.mjs'
import { azureBackend, fixtures } from './fixtures.mjs'
import { AZURITE_ACCOUNT, AZURITE_KEY, entraToken, makeTestCa, startAzuriteTls, startFaultProxy } from './servers.mjs'

const KiB = 1024
const CONTAINER = 'conformance-container'
const cli = fileURLToPath(new URL('../bin/cli.js', import.meta.url))

async function readAll(stream) {
  const parts = []
  for await (const chunk of stream) parts.push(chunk)
  return Buffer.concat(parts)
}

/** `data` as a stream cut at random points; `failAfter` bytes in, it errors. */
function randomlyCut(data, { failAfter } = {}) {
  return (async function* () {
    let at = 0
    while (at < data.length) {
      if (failAfter !== undefined && at >= failAfter) throw new Error('the source broke')
      const next = Math.min(data.length, at + 1 + crypto.randomInt(100 * KiB))
      yield data.subarray(at, next)
      at = next
    }
  })()
}

describe('Azure', () => {
  const azurite = fixtures.find((f) => f.name === 'azurite')
  let server
  let cleanup
  let sdk
  let container

  before(async () => {
    ;({ server, cleanup } = await azurite.provision())
    sdk = new BlobServiceClient(server.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
    container = sdk.getContainerClient(CONTAINER)
  })
  after(() => cleanup())

  it('stores bodies of every edge size, one request or blocks, cut anywhere', async () => {
    const partSize = 64 * KiB
    const backend = azureBackend(server.endpoint, { partSize, queueSize: 3 })
    for (const size of [0, 1, partSize - 1, partSize, partSize + 1, 5 * partSize + 7]) {
      const data = crypto.randomBytes(size)
      for (const contentLength of [undefined, size]) {
        const key = `edges/${size}-${contentLength ?? 'unknown'}`
        await backend.upload({ key, body: Readable.from(randomlyCut(data)), contentLength, contentType: 'x/edge' })
        assert.ok((await backend.get(key)).equals(data), key)
        const blocks = await container.getBlockBlobClient(key).getBlockList('committed')
        assert.equal(blocks.committedBlocks.length, size > partSize ? Math.ceil(size / partSize) : 0, key)
      }
    }
  })

  it('a failed block upload leaves the previous object whole, and no new blob', async () => {
    const backend = azureBackend(server.endpoint, { partSize: 64 * KiB, queueSize: 2 })
    await backend.put('failed/kept', 'previous', { contentType: 'text/plain' })
    const data = crypto.randomBytes(400 * KiB)
    for (const key of ['failed/kept', 'failed/new']) {
      await assert.rejects(backend.upload({ key, body: Readable.from(randomlyCut(data, { failAfter: 200 * KiB })) }))
    }
    assert.equal((await backend.get('failed/kept')).toString(), 'previous')
    assert.equal((await backend.stat('failed/kept')).contentType, 'text/plain')
    assert.equal(await backend.exists('failed/new'), false)
  })

  it('ifNotExists holds for block lists too', async () => {
    const backend = azureBackend(server.endpoint, { partSize: 64 * KiB })
    const big = () => Readable.from(randomlyCut(crypto.randomBytes(200 * KiB)))
    await backend.upload({ key: 'once/big', body: big(), ifNotExists: true })
    await assert.rejects(backend.upload({ key: 'once/big', body: big(), ifNotExists: true }), FileAlreadyExistsError)
  })

  it('what we write, the official SDK reads byte-identical with its type and metadata; and the reverse', async () => {
    const backend = azureBackend(server.endpoint, { partSize: 64 * KiB })
    const data = crypto.randomBytes(300 * KiB)
    await backend.upload({ key: 'interop/ours.bin', body: Readable.from(randomlyCut(data)), contentType: 'image/png', metadata: { owner: 'me', purpose: 'interop' } })
    const blob = container.getBlobClient('interop/ours.bin')
    assert.ok((await blob.downloadToBuffer()).equals(data))
    const properties = await blob.getProperties()
    assert.equal(properties.contentType, 'image/png')
    assert.deepEqual(properties.metadata, { owner: 'me', purpose: 'interop' })

    const theirs = Buffer.from('written by @azure/storage-blob')
    await container.getBlockBlobClient('interop/theirs.txt').uploadData(theirs, {
      blobHTTPHeaders: { blobContentType: 'text/plain' },
      metadata: { Owner: 'sdk' },
    })
    assert.ok((await backend.get('interop/theirs.txt')).equals(theirs))
    const info = await backend.stat('interop/theirs.txt')
    assert.deepEqual([info.contentType, info.metadata], ['text/plain', { owner: 'sdk' }])
    assert.deepEqual((await backend.list({ prefix: 'interop/' })).objects.map((o) => o.key), ['interop/ours.bin', 'interop/theirs.txt'])
  })

  it('a SAS URL we sign works with the official SDK, and PUT URLs name the headers Azure needs', async () => {
    const backend = azureBackend(server.endpoint)
    const signed = await backend.getSignedUrl('sas/upload.json', { method: 'PUT', contentType: 'application/json' })
    assert.deepEqual(signed.headers, { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'application/json' })
    const put = await fetch(signed.url, { method: 'PUT', body: '{"a":1}', headers: signed.headers })
    assert.equal(put.status, 201)
    const { url } = await backend.getSignedUrl('sas/upload.json')
    assert.equal((await new BlobClient(url).downloadToBuffer()).toString(), '{"a":1}', 'the SDK takes our SAS URL')
    const response = await fetch(url)
    assert.deepEqual([response.status, response.headers.get('content-type'), await response.text()], [200, 'application/json', '{"a":1}'])
  })

  it('works from a connection string, and from a SAS token (which cannot sign URLs)', async () => {
    const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${server.endpoint};`
    const fromString = new AzureBlobStorageBackend({ connectionString, container: CONTAINER })
    await fromString.put('cs/a.txt', 'from a connection string')
    assert.equal((await fromString.get('cs/a.txt')).toString(), 'from a connection string')

    const token = generateBlobSASQueryParameters(
      {
        containerName: CONTAINER,
        permissions: ContainerSASPermissions.parse('racwdl'),
        expiresOn: new Date(Date.now() + 3_600_000),
      },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString()
    const withSas = azureBackend(server.endpoint, { accountKey: undefined, sasToken: token })
    await withSas.put('sas-token/a.txt', 'with a SAS token', { metadata: { owner: 'sas' } })
    assert.equal((await withSas.get('sas-token/a.txt')).toString(), 'with a SAS token')
    assert.deepEqual((await withSas.list({ prefix: 'sas-token/' })).objects.map((o) => o.key), ['sas-token/a.txt'])
    await withSas.copy('sas-token/a.txt', 'sas-token/b.txt')
    assert.deepEqual((await withSas.stat('sas-token/b.txt')).metadata, { owner: 'sas' })
    await assert.rejects(withSas.getSignedUrl('sas-token/a.txt'), ConfigurationError)

    const readOnly = generateBlobSASQueryParameters(
      { containerName: CONTAINER, permissions: BlobSASPermissions.parse('r'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    ).toString()
    const limited = azureBackend(server.endpoint, { accountKey: undefined, sasToken: readOnly })
    await assert.rejects(limited.put('sas-token/c.txt', 'refused'), PermissionDeniedError)
  })

  it('wrong keys are a PermissionDeniedError that never shows the key', async () => {
    const wrongKey = Buffer.from('a wrong key that must not leak').toString('base64')
    const wrong = azureBackend(server.endpoint, { accountKey: wrongKey })
    for (const call of [() => wrong.put('k', 'v'), () => wrong.exists('k'), () => wrong.download('k'), () => wrong.list()]) {
      await assert.rejects(call(), (error) => {
        assert.ok(error instanceof PermissionDeniedError, `${error}`)
        assert.equal(error.statusCode, 403)
        assert.ok(!JSON.stringify({ ...error.toJSON(), stack: error.stack, message: error.message }).includes(wrongKey))
        return true
      })
    }
    assert.throws(() => azureBackend(server.endpoint, { accountKey: 'not base64!' }), ConfigurationError)
    assert.throws(() => azureBackend(server.endpoint, { container: 'Bad_Name' }), ConfigurationError)
    assert.throws(() => new AzureBlobStorageBackend({ container: CONTAINER }), ConfigurationError)
  })

  it('a missing container is a ConfigurationError', async () => {
    const missing = azureBackend(server.endpoint, { container: 'no-such-container' })
    await assert.rejects(missing.put('k', 'v'), ConfigurationError)
    await assert.rejects(missing.list(), ConfigurationError)
  })

  it('a dead endpoint fails fast with a retryable StorageUnavailableError', { timeout: 30_000 }, async () => {
    const dead = azureBackend(`http://127.0.0.1:9/${AZURITE_ACCOUNT}`)
    await assert.rejects(dead.exists('k'), (error) => error instanceof StorageUnavailableError && error.retryable === true)
    await assert.rejects(dead.put('k', 'v'), StorageUnavailableError)
  })

  it('builds from STORAGE_AZURE_* and passes doctor', async () => {
    const env = {
      STORAGE_BACKEND: 'azure',
      STORAGE_AZURE_ACCOUNT_NAME: AZURITE_ACCOUNT,
      STORAGE_AZURE_ACCESS_KEY: AZURITE_KEY,
      STORAGE_AZURE_CONTAINER: CONTAINER,
      STORAGE_AZURE_ENDPOINT: server.endpoint,
    }
    await withEnv(env, async () => {
      resetStorageConfig()
      await createAzureBackend().put('env/a.txt', 'from env')
    })
    resetStorageConfig()
    assert.equal((await azureBackend(server.endpoint).get('env/a.txt')).toString(), 'from env')
    const { stdout } = await promisify(execFile)(process.execPath, [cli, 'doctor'], { env: { ...process.env, ...env } })
    assert.match(stdout, /doctor: all checks passed/)
  })

  describe('through a faulty proxy', () => {
    let proxy
    let viaProxy
    before(async () => {
      proxy = await startFaultProxy(server.endpoint)
      viaProxy = azureBackend(`${proxy.endpoint}/${AZURITE_ACCOUNT}`, { partSize: 64 * KiB, stallTimeout: 2 })
    })
    after(() => proxy.close())

    it('a conditional Put Blob whose answer was lost is recognised as ours when retried', async () => {
      let lost = 0
      proxy.faults.intercept = (req) => req.method === 'PUT' && lost++ === 0 && { loseAnswer: true }
      try {
        await viaProxy.put('lost/once.txt', 'first and only', { ifNotExists: true })
        assert.equal(lost, 2, 'the first answer was lost and the write retried')
        await assert.rejects(viaProxy.put('lost/once.txt', 'second', { ifNotExists: true }), FileAlreadyExistsError)
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('a block list commit whose answer was lost is recognised as ours when retried', async () => {
      let lost = 0
      proxy.faults.intercept = (req) => req.url.includes('comp=blocklist') && req.method === 'PUT' && lost++ === 0 && { loseAnswer: true }
      try {
        const data = crypto.randomBytes(200 * KiB)
        await viaProxy.upload({ key: 'lost/blocks.bin', body: Readable.from(randomlyCut(data)), ifNotExists: true })
        assert.equal(lost, 2)
        assert.ok((await viaProxy.get('lost/blocks.bin')).equals(data))
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('retries transient 503s, then gives up with a retryable error', async () => {
      await viaProxy.put('retry/a.txt', 'still here')
      proxy.faults.status = 503
      proxy.faults.failures = 2
      assert.equal((await viaProxy.get('retry/a.txt')).toString(), 'still here')
      proxy.faults.failures = 100
      await assert.rejects(viaProxy.exists('retry/a.txt'), (e) => e instanceof StorageUnavailableError && e.retryable)
      proxy.faults.failures = 0
    })

    it('with a TokenCredential, sends its token as a bearer and asks again only before it expires', async () => {
      const calls = []
      const credential = {
        async getToken(scope) {
          calls.push(scope)
          return { token: `token-${calls.length}`, expiresOnTimestamp: Date.now() + 6 * 60_000 }
        },
      }
      const seen = []
      proxy.faults.intercept = (req) => {
        seen.push(req.headers.authorization)
        return { respond: { status: 404, headers: { 'x-ms-error-code': 'BlobNotFound' } } }
      }
      try {
        const backend = azureBackend(`${proxy.endpoint}/${AZURITE_ACCOUNT}`, { accountKey: undefined, credential })
        assert.equal(await backend.exists('a'), false)
        assert.equal(await backend.exists('b'), false)
        assert.deepEqual(calls, ['https://storage.azure.com/.default'], 'one token for both calls')
        assert.deepEqual(seen, ['Bearer token-1', 'Bearer token-1'])
        const failing = azureBackend(`${proxy.endpoint}/${AZURITE_ACCOUNT}`, {
          accountKey: undefined,
          credential: { getToken: async () => Promise.reject(new Error('no managed identity here')) },
        })
        await assert.rejects(failing.exists('a'), (e) => e instanceof PermissionDeniedError && /no managed identity here/.test(e.message))
        assert.throws(() => azureBackend(server.endpoint, { accountKey: undefined, credential: {} }), ConfigurationError)
      } finally {
        proxy.faults.intercept = undefined
      }
    })

    it('with no key, takes a service principal from AZURE_* and never shows its secret', async () => {
      const forms = []
      let answer = { status: 200, body: { token_type: 'Bearer', expires_in: 3600, access_token: 'minted-token' } }
      const authority = http.createServer((req, res) => {
        let body = ''
        req.on('data', (c) => (body += c))
        req.on('end', () => {
          forms.push({ url: req.url, form: Object.fromEntries(new URLSearchParams(body)) })
          res.writeHead(answer.status, { 'content-type': 'application/json' })
          res.end(JSON.stringify(answer.body))
        })
      })
      await new Promise((resolve) => authority.listen(0, '127.0.0.1', resolve))
      const secret = 'client-secret-that-must-not-leak'
      const env = {
        AZURE_TENANT_ID: 'my-tenant',
        AZURE_CLIENT_ID: 'my-app',
        AZURE_CLIENT_SECRET: secret,
        AZURE_AUTHORITY_HOST: `http://127.0.0.1:${authority.address().port}`,
      }
      const seen = []
      proxy.faults.intercept = (req) => {
        seen.push(req.headers.authorization)
        return { respond: { status: 404, headers: { 'x-ms-error-code': 'BlobNotFound' } } }
      }
      try {
        await withEnv(env, async () => {
          const backend = azureBackend(`${proxy.endpoint}/${AZURITE_ACCOUNT}`, { accountKey: undefined })
          assert.equal(await backend.exists('a'), false)
          assert.deepEqual(seen, ['Bearer minted-token'])
          assert.deepEqual(forms, [{
            url: '/my-tenant/oauth2/v2.0/token',
            form: { grant_type: 'client_credentials', client_id: 'my-app', client_secret: secret, scope: 'https://storage.azure.com/.default' },
          }])
          answer = { status: 401, body: { error: 'invalid_client', error_description: `bad secret ${secret}` } }
          const refused = azureBackend(`${proxy.endpoint}/${AZURITE_ACCOUNT}`, { accountKey: undefined })
          await assert.rejects(refused.exists('a'), (error) => {
            assert.ok(error instanceof PermissionDeniedError, `${error}`)
            assert.match(error.message, /invalid_client/)
            assert.ok(!JSON.stringify({ ...error.toJSON(), message: error.message, stack: error.stack }).includes(secret))
            return true
          })
        })
        assert.throws(() => azureBackend(server.endpoint, { accountKey: undefined }), ConfigurationError, 'nothing in the environment either')
      } finally {
        proxy.faults.intercept = undefined
        await new Promise((resolve) => authority.close(resolve))
      }
    })

    it('a stalled download times out', { timeout: 30_000 }, async () => {
      await viaProxy.put('stall/big.bin', Buffer.alloc(1024 * KiB, 1))
      proxy.faults.stallAfterBytes = 256 * KiB
      try {
        const stream = await viaProxy.download('stall/big.bin')
        await assert.rejects(readAll(stream), (e) => e instanceof StorageTimeoutError && e.statusCode === 503)
      } finally {
        proxy.faults.stallAfterBytes = undefined
      }
    })
  })
})

describe('Azure over HTTPS, with a CA of its own and Microsoft Entra ID tokens', () => {
  let ca
  let server
  const tokenCredential = (options) => ({ getToken: async () => ({ token: entraToken(options), expiresOnTimestamp: Date.now() + 3_600_000 }) })
  const open = (options) => new AzureBlobStorageBackend({ container: CONTAINER, endpoint: server.endpoint, accountName: AZURITE_ACCOUNT, ...options })

  before(async () => {
    ca = await makeTestCa()
    server = await startAzuriteTls(CONTAINER, ca)
  })
  after(async () => {
    await server.stop()
    await fs.rm(ca.dir, { recursive: true, force: true })
  })

  it('trusts the CA it is given (caCertificates, NODE_EXTRA_CA_CERTS) and refuses an unknown one with a ConfigurationError', async () => {
    const trusted = open({ accountKey: AZURITE_KEY, caCertificates: ca.caPem })
    await trusted.put('tls/a.txt', 'over TLS')
    assert.equal((await trusted.get('tls/a.txt')).toString(), 'over TLS')
    const started = Date.now()
    await assert.rejects(open({ accountKey: AZURITE_KEY }).get('tls/a.txt'), (error) => {
      assert.ok(error instanceof ConfigurationError, `${error}`)
      assert.match(error.message, /certificate this machine does not trust \(UnknownIssuer\)/)
      return true
    })
    assert.ok(Date.now() - started < 2000, 'an untrusted certificate is not retried')
    await withEnv({ NODE_EXTRA_CA_CERTS: path.join(ca.dir, 'ca.pem') }, async () => {
      assert.equal((await open({ accountKey: AZURITE_KEY }).get('tls/a.txt')).toString(), 'over TLS')
    })
    assert.throws(() => open({ accountKey: AZURITE_KEY, caCertificates: 'not a certificate' }), ConfigurationError)
    await withEnv({ NODE_EXTRA_CA_CERTS: path.join(ca.dir, 'missing.pem') }, async () => {
      assert.throws(() => open({ accountKey: AZURITE_KEY }), (e) => e instanceof ConfigurationError && /NODE_EXTRA_CA_CERTS/.test(e.message))
    })
  })

  it('works on Entra ID tokens alone, and an expired token is a PermissionDeniedError', async () => {
    const backend = open({ credential: tokenCredential(), caCertificates: ca.caPem })
    await backend.upload({ key: 'entra/a.bin', body: Readable.from(randomlyCut(crypto.randomBytes(200 * KiB))), contentType: 'x/y', metadata: { owner: 'entra' } })
    await backend.copy('entra/a.bin', 'entra/b.bin')
    assert.deepEqual((await backend.stat('entra/b.bin')).metadata, { owner: 'entra' })
    assert.deepEqual((await backend.list({ prefix: 'entra/' })).objects.map((o) => o.key), ['entra/a.bin', 'entra/b.bin'])
    await backend.delete('entra/a.bin')
    assert.equal(await backend.exists('entra/a.bin'), false)
    const expired = open({ credential: tokenCredential({ minutes: -10 }), caCertificates: ca.caPem })
    await assert.rejects(expired.exists('entra/b.bin'), PermissionDeniedError)
  })

  it('signs URLs on Entra ID tokens with a user delegation key, fetched once and kept', async () => {
    let asked = 0
    const credential = { getToken: async () => (asked++, { token: entraToken(), expiresOnTimestamp: Date.now() + 3_600_000 }) }
    const backend = open({ credential, caCertificates: ca.caPem })
    await backend.put('delegated/a.txt', 'signed without a key', { contentType: 'text/plain' })
    const agent = new https.Agent({ ca: ca.caPem })
    const request = (url, { method = 'GET', headers = {}, body } = {}) =>
      new Promise((resolve, reject) => {
        const req = https.request(url, { method, headers, agent }, (res) => {
          const parts = []
          res.on('data', (c) => parts.push(c))
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString() }))
        })
        req.on('error', reject)
        req.end(body)
      })
    const first = await backend.getSignedUrl('delegated/a.txt', { responseContentDisposition: 'attachment; filename="a.txt"' })
    const url = new URL(first.url)
    assert.ok(url.searchParams.has('skoid') && url.searchParams.has('ske'), first.url)
    const got = await request(first.url)
    assert.deepEqual([got.status, got.text, got.headers['content-disposition']], [200, 'signed without a key', 'attachment; filename="a.txt"'])
    url.searchParams.set('sig', url.searchParams.get('sig').replace(/^./, (c) => (c === 'A' ? 'B' : 'A')))
    assert.equal((await request(url.toString())).status, 403, 'a tampered signature is refused')
    const put = await backend.getSignedUrl('delegated/b.json', { method: 'PUT', contentType: 'application/json' })
    assert.equal((await request(put.url, { method: 'PUT', headers: put.headers, body: '{"b":2}' })).status, 201)
    assert.equal((await backend.get('delegated/b.json')).toString(), '{"b":2}')
    const week = await backend.getSignedUrl('delegated/a.txt', { expiresIn: 604_800 })
    assert.equal((await request(week.url)).status, 200, 'a week-long URL gets a key that outlives it')
  })
})
