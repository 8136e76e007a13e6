// The backends the shared suites run against. Adding a backend means adding a fixture here.
import fs from 'node:fs/promises'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { LocalStorageBackend, MemoryStorageBackend, createSignedUrlHandler } from '../index.mjs'

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

export const fixtures = [
  {
    name: 'local',
    /** Large objects go to disk, so the 1 GiB streaming test applies. */
    streamsToDisk: true,
    async create() {
      const root = await tempDir('local')
      const served = await withSignedUrlServer((baseUrl) => new LocalStorageBackend({ root, baseUrl }))
      return {
        backend: served.backend,
        async cleanup() {
          await served.close()
          await fs.rm(root, { recursive: true, force: true })
        },
      }
    },
  },
  {
    name: 'memory',
    streamsToDisk: false,
    async create() {
      const served = await withSignedUrlServer((baseUrl) => new MemoryStorageBackend({ baseUrl }))
      return { backend: served.backend, cleanup: served.close }
    },
  },
]
