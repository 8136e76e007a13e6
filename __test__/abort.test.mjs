// An AbortSignal ends an operation at once, even while the server has not answered: for every
// HTTP store, buffers and streams up, downloads down.
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { Readable } from 'node:stream'
import { AbortError, AzureBlobStorageBackend, GcsStorageBackend, S3StorageBackend } from '../index.mjs'
import { AZURITE_ACCOUNT, AZURITE_KEY } from './servers.mjs'

/** A server that takes connections and requests, and never answers. */
async function silentServer() {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('data', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}

describe('aborts while the server is silent', () => {
  let silent
  before(async () => {
    silent = await silentServer()
  })
  after(() => silent.close())

  const stores = {
    s3: () => new S3StorageBackend({ bucket: 'b', region: 'us-east-1', endpoint: silent.endpoint, credentials: { accessKeyId: 'a', secretAccessKey: 's' }, stallTimeout: 30 }),
    azure: () => new AzureBlobStorageBackend({ accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container: 'box', endpoint: `${silent.endpoint}/${AZURITE_ACCOUNT}`, stallTimeout: 30 }),
    gcs: () => new GcsStorageBackend({ bucket: 'b', endpoint: silent.endpoint, stallTimeout: 30 }),
  }
  const calls = {
    'a buffer upload': (backend, signal) => backend.upload({ key: 'k', body: Buffer.from('data'), signal }),
    'a streamed upload': (backend, signal) => backend.upload({ key: 'k', body: Readable.from([Buffer.from('data')]), signal }),
    'a download': (backend, signal) => backend.download('k', { signal }),
  }

  for (const [store, open] of Object.entries(stores)) {
    for (const [call, run] of Object.entries(calls)) {
      it(`${store}: ${call} rejects with AbortError soon after the abort`, async () => {
        const controller = new AbortController()
        const started = Date.now()
        setTimeout(() => controller.abort(), 200)
        await assert.rejects(run(open(), controller.signal), AbortError)
        assert.ok(Date.now() - started < 2000, `settled after ${Date.now() - started} ms`)
      })
    }
  }
})
