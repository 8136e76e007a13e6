// The backends the shared suites run against. Adding a backend means adding a fixture here.
import fs from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {
  AzureBlobStorageBackend,
  GcsStorageBackend,
  LocalStorageBackend,
  MemoryStorageBackend,
  S3StorageBackend,
  createSignedUrlHandler,
} from '../index.mjs'
import {
  ACCESS_KEY,
  AZURITE_ACCOUNT,
  AZURITE_KEY,
  SECRET_KEY,
  connectionsTo,
  startAzurite,
  startFakeGcs,
  startMoto,
  startS3sFs,
  startTokenServer,
} from './servers.mjs'

/** Descriptors this process holds open on files under `root`. */
async function descriptorsUnder(root) {
  const fds = await fs.readdir('/proc/self/fd')
  const targets = await Promise.all(fds.map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')))
  return targets.filter((target) => target.startsWith(`${root}/`)).length
}

/** Serves a self-signing backend's URLs on a loopback port under /files. */
async function withSignedUrlServer(makeBackend) {
  let handler = (_req, res) => res.end()
  const server = http.createServer((req, res) => handler(req, res))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const baseUrl = `http://127.0.0.1:${server.address().port}/files`
  const backend = await makeBackend(baseUrl)
  handler = createSignedUrlHandler(backend)
  return { backend, baseUrl, close: () => new Promise((resolve) => server.close(resolve)) }
}

export async function tempDir(name) {
  return fs.mkdtemp(path.join(os.tmpdir(), `rstorage-${name}-`))
}

export const BUCKET = 'conformance-bucket'

/** An S3 backend on the test bucket at `endpoint`, with the test servers' credentials. */
export function s3Backend(endpoint, options = {}) {
  return new S3StorageBackend({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    ...options,
  })
}

const CONTAINER = 'conformance-container'

/** An Azure backend on the test container of an Azurite at `endpoint`, with its development key. */
export function azureBackend(endpoint, options = {}) {
  return new AzureBlobStorageBackend({
    accountName: AZURITE_ACCOUNT,
    accountKey: AZURITE_KEY,
    container: CONTAINER,
    endpoint,
    ...options,
  })
}

/**
 * `create()` of the fixtures whose store is a server: a backend on a fresh server, whose
 * downloads hold connections to it.
 */
async function createOnServer(options) {
  const { place, server, cleanup } = await this.provision()
  return { backend: this.open(place, options), server, cleanup, held: () => connectionsTo(server.port) }
}

/** What the stores that serve their own URLs (local, memory) do, with no server in between. */
const SELF_SERVED = {
  checksSignatures: true,
  conditionalGets: true,
  headWithGetUrl: true,
  atomicMetadata: true,
  atomicCreate: true,
  listsEtags: true,
  putUrlsBindContentType: true,
  suffixRanges: true,
  responseOverrides: true,
  metadataAsSent: true,
}

/** The local store; `durable: false` runs the same suite without fsyncs. */
function localFixture(name, { durable, streamsToDisk }) {
  return {
    name,
    ...SELF_SERVED,
    streamsToDisk,
    async provision() {
      const root = await tempDir('local')
      return { place: { root }, cleanup: () => fs.rm(root, { recursive: true, force: true }) }
    },
    open({ root }, options) {
      return new LocalStorageBackend({ root, durable, ...options })
    },
    async create() {
      const { place, cleanup } = await this.provision()
      const served = await withSignedUrlServer((baseUrl) => new LocalStorageBackend({ root: place.root, baseUrl, durable }))
      return {
        backend: served.backend,
        held: () => descriptorsUnder(place.root),
        async cleanup() {
          await served.close()
          await cleanup()
        },
      }
    },
  }
}

/**
 * Each fixture: `create()` → { backend, cleanup, server?, held? }, where `held()` counts what a
 * download holds open (descriptors under a local root, connections to an S3 server; the memory
 * store holds nothing a download could leak); `provision()` → { place, cleanup,
 * server? }, where `place` is plain data (a folder, an endpoint) so that `open(place, options?)`
 * can build more backends on the same storage from other threads or processes (`options` go to
 * the store's constructor: a local or memory store's `baseUrl`); and what its server does:
 * `checksSignatures` (refuses tampered or expired presigned URLs), `conditionalGets`
 * (answers If-None-Match with 304), `headWithGetUrl` (our handler serves HEAD with a GET URL;
 * S3 signs the method, so it does not), `atomicMetadata` (data and metadata change together;
 * s3s-fs writes them separately, so concurrent writers can mix them there), `atomicCreate`
 * (`If-None-Match: *` lets one racer win; s3s-fs checks for the file, then writes), `listsEtags`
 * (listings carry each object's ETag; s3s-fs 0.14 leaves it out), `putUrlsBindContentType` (a
 * signed PUT URL refuses another content type; Azure's SAS signs no request header),
 * `metadataAsSent` (metadata headers are kept as sent: s3s-fs decodes the RFC 2047 words that
 * carry non-ASCII and edge-space values, and sends them back raw, which HTTP then trims),
 * `suffixRanges` (a signed URL serves `Range: bytes=-N`; Azure serves no suffix ranges, and
 * Azurite 3.35 answers one with a broken response), `maxKeyBytes`
 * (s3s-fs 0.14 names a file after the whole key and fails with a 500 past about 150 bytes),
 * `responseOverrides` (a signed GET's response content type and disposition are served;
 * fake-gcs-server ignores them).
 */
const allFixtures = [
  // `streamsToDisk` picks where the 1 GiB test runs: once per store that keeps objects on disk
  // (a test-cost choice, not a difference in behaviour).
  localFixture('local', { durable: true, streamsToDisk: true }),
  localFixture('local without fsync', { durable: false, streamsToDisk: false }),
  {
    name: 'memory',
    ...SELF_SERVED,
    streamsToDisk: false,
    // Nothing to share: each backend is its own store.
    async provision() {
      return { place: {}, cleanup: async () => {} }
    },
    open(_place, options) {
      return new MemoryStorageBackend(options)
    },
    async create() {
      const served = await withSignedUrlServer((baseUrl) => new MemoryStorageBackend({ baseUrl }))
      return { backend: served.backend, cleanup: served.close }
    },
  },
  {
    name: 's3s-fs',
    streamsToDisk: true,
    checksSignatures: true,
    conditionalGets: false,
    headWithGetUrl: false,
    atomicMetadata: false,
    atomicCreate: false,
    listsEtags: false,
    putUrlsBindContentType: true,
    suffixRanges: true,
    responseOverrides: true,
    metadataAsSent: false,
    maxKeyBytes: 150,
    async provision() {
      const root = await tempDir('s3s')
      const server = await startS3sFs(root, BUCKET)
      return {
        place: { endpoint: server.endpoint },
        server,
        async cleanup() {
          await server.stop()
          await fs.rm(root, { recursive: true, force: true })
        },
      }
    },
    open({ endpoint }, options) {
      return s3Backend(endpoint, options)
    },
    create: createOnServer,
  },
  {
    name: 'moto',
    streamsToDisk: false,
    checksSignatures: false,
    conditionalGets: true,
    headWithGetUrl: false,
    atomicMetadata: true,
    atomicCreate: true,
    listsEtags: true,
    putUrlsBindContentType: true,
    suffixRanges: true,
    responseOverrides: true,
    metadataAsSent: true,
    async provision() {
      const server = await startMoto(BUCKET)
      return { place: { endpoint: server.endpoint }, server, cleanup: () => server.stop() }
    },
    open({ endpoint }, options) {
      return s3Backend(endpoint, options)
    },
    create: createOnServer,
  },
  {
    name: 'azurite',
    streamsToDisk: true,
    checksSignatures: true,
    conditionalGets: true,
    headWithGetUrl: true,
    atomicMetadata: true,
    atomicCreate: true,
    listsEtags: true,
    putUrlsBindContentType: false,
    suffixRanges: false,
    responseOverrides: true,
    metadataAsSent: true,
    async provision() {
      const server = await startAzurite(CONTAINER)
      return { place: { endpoint: server.endpoint }, server, cleanup: () => server.stop() }
    },
    open({ endpoint }, options) {
      return azureBackend(endpoint, options)
    },
    create: createOnServer,
  },
  /**
   * fake-gcs-server, with the test service account's tokens from a local token endpoint (the
   * JWT-bearer flow runs for real; the server checks no tokens or signatures). What it lacks:
   * `responseOverrides` (it ignores a signed GET's response-content-type/-disposition),
   * conditional GETs, and method-free signed URLs.
   */
  {
    name: 'fake-gcs-server',
    streamsToDisk: true,
    checksSignatures: false,
    conditionalGets: false,
    headWithGetUrl: false,
    atomicMetadata: true,
    atomicCreate: true,
    listsEtags: true,
    putUrlsBindContentType: true,
    suffixRanges: true,
    responseOverrides: false,
    metadataAsSent: true,
    async provision() {
      const server = await startFakeGcs(BUCKET)
      const key = await startTokenServer((await gcsTestKey('')).private_key)
      const credentials = await gcsTestKey(key.uri)
      return {
        place: { endpoint: server.endpoint, credentials },
        server,
        tokens: key.state,
        async cleanup() {
          await key.close()
          await server.stop()
        },
      }
    },
    open({ endpoint, credentials }, options) {
      return new GcsStorageBackend({ bucket: BUCKET, endpoint, credentials, ...options })
    },
    create: createOnServer,
  },
]

/** Google's published test service account (conformance-tests), with its token endpoint at `tokenUri`. */
export async function gcsTestKey(tokenUri) {
  const file = new URL('../src/backends/gcs/testdata/test_service_account.not-a-test.json', import.meta.url)
  return { ...JSON.parse(await fs.readFile(file, 'utf8')), token_uri: tokenUri }
}

/** `ONLY_FIXTURES=moto,local` runs the shared suites against those fixtures alone (while working on one store). */
const only = process.env.ONLY_FIXTURES?.split(',').map((name) => name.trim())
export const fixtures = only ? allFixtures.filter((fixture) => only.includes(fixture.name)) : allFixtures
