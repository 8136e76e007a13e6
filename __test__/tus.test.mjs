// The official tus client (tus-js-client) against createTusHandler, on every store: whole files,
// small chunks, uploads cut at random points and resumed (also across a killed server),
// deferred length, many at once; and the protocol's refusals, with the statuses it names.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import * as tus from 'tus-js-client'
import { createTusHandler } from '../index.mjs'
import { fixtures } from './fixtures.mjs'

const TUS = { 'Tus-Resumable': '1.0.0' }

async function listen(handler, port = 0) {
  const server = http.createServer(handler)
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${server.address().port}/files`, port: server.address().port, server }
}

/** Options without the keys left undefined (tus-js-client takes an undefined chunkSize literally). */
const defined = (options) => Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))

/**
 * Uploads `input` with tus-js-client; resolves to the upload URL once done or, with `cut`, once
 * it failed (a proxy cut it off).
 */
function send(input, endpoint, options = {}, { cut = false } = {}) {
  options = defined(options)
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(input, {
      endpoint,
      retryDelays: [],
      metadata: { filename: options.filename ?? 'file.bin', filetype: 'application/x-test' },
      ...options,
      onError: (error) => (cut ? resolve(upload.url) : reject(error)),
      onSuccess: () => (cut ? reject(new Error('finished before it could be cut')) : resolve(upload.url)),
    })
    upload.start()
  })
}

/**
 * A TCP proxy in front of a server that, once armed with `cut(bytes)`, lets that many bytes of
 * the next PATCH through and then drops the connection both ways: a client gone mid-body.
 */
async function cuttingProxy(port) {
  let cutAfter
  const sockets = new Set()
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
    }
    let passed
    client.on('data', (chunk) => {
      if (cutAfter !== undefined && passed === undefined && chunk.includes('PATCH ')) passed = 0
      if (passed !== undefined) {
        passed += chunk.length
        if (passed > cutAfter) {
          upstream.write(chunk.subarray(0, chunk.length - (passed - cutAfter)))
          cutAfter = undefined
          client.destroy()
          upstream.destroy()
          return
        }
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk) => client.write(chunk))
    client.on('close', () => upstream.end())
    upstream.on('close', () => client.end())
  })
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  return {
    endpoint: `http://127.0.0.1:${proxy.address().port}/files`,
    cut: (bytes) => (cutAfter = bytes),
    close() {
      for (const socket of sockets) socket.destroy()
      proxy.close()
    },
  }
}

/** The offset the server tells a client resuming `url` (a HEAD waits for a cut PATCH to be stored). */
async function offsetOf(url) {
  const head = await fetch(url, { method: 'HEAD', headers: TUS })
  assert.equal(head.status, 200)
  return Number(head.headers.get('upload-offset'))
}

const idOf = (url) => new URL(url).pathname.split('/').pop()

for (const fixture of fixtures) {
  describe(`tus: ${fixture.name}`, () => {
    let backend, cleanup, endpoint, server, proxy
    const finished = []
    const patches = []

    before(async () => {
      ;({ backend, cleanup } = await fixture.create())
      const handler = createTusHandler(backend, {
        path: '/files',
        keyFor: ({ metadata }) => `tus/${metadata.filename}`,
        onUploadFinish: (_req, upload) => finished.push(upload),
      })
      let port
      ;({ url: endpoint, server, port } = await listen((req, res) => {
        if (req.method === 'PATCH') patches.push({ id: idOf(`http://x${req.url}`), offset: Number(req.headers['upload-offset']) })
        handler(req, res)
      }))
      proxy = await cuttingProxy(port)
    })
    after(async () => {
      proxy.close()
      server.close()
      await cleanup()
    })

    it('uploads whole files and files in small chunks, byte for byte', async () => {
      for (const [size, chunkSize] of [[0, undefined], [1, undefined], [300_001, undefined], [200_000, 65_536], [65_536, 65_535]]) {
        const data = crypto.randomBytes(size)
        const filename = `whole-${size}-${chunkSize}.bin`
        await send(data, endpoint, { filename, chunkSize })
        assert.ok((await backend.get(`tus/${filename}`)).equals(data), filename)
        const done = finished.find((f) => f.key === `tus/${filename}`)
        assert.equal(done?.size, size)
        assert.equal((await backend.stat(`tus/${filename}`)).contentType, 'application/x-test')
      }
    })

    it('resumes uploads cut at random points, from where the store says they are', async () => {
      for (let round = 0; round < 3; round++) {
        const data = crypto.randomBytes(400_000 + round)
        const filename = `resumed-${round}.bin`
        proxy.cut(100_000 + Math.floor(Math.random() * 250_000))
        const url = await send(data, proxy.endpoint, { filename, chunkSize: round === 0 ? 150_000 : undefined }, { cut: true })
        const kept = await offsetOf(url)
        assert.ok(kept > 0, 'the bytes before the cut were kept')
        assert.equal((await backend.getUpload(idOf(url))).offset, kept)
        await send(data, proxy.endpoint, { filename, uploadUrl: url })
        assert.ok((await backend.get(`tus/${filename}`)).equals(data), filename)
        assert.ok(patches.some((p) => p.id === idOf(url) && p.offset === kept), `no PATCH resumed at ${kept}`)
      }
    })

    it('takes an unknown length, sent as a stream, stated with the last chunk', async () => {
      const data = crypto.randomBytes(150_000)
      await send(Readable.from([data.subarray(0, 70_000), data.subarray(70_000)]), endpoint, {
        filename: 'deferred.bin',
        uploadLengthDeferred: true,
        chunkSize: 40_000,
      })
      assert.ok((await backend.get('tus/deferred.bin')).equals(data))
    })

    it('runs many uploads at once', async () => {
      const files = Array.from({ length: 8 }, (_, i) => [`parallel-${i}.bin`, crypto.randomBytes(50_000 + i * 1000)])
      await Promise.all(files.map(([filename, data]) => send(data, endpoint, { filename, chunkSize: 20_000 })))
      for (const [filename, data] of files) assert.ok((await backend.get(`tus/${filename}`)).equals(data), filename)
    })

    if (fixture.open && fixture.provision && fixture.name !== 'memory') {
      it('resumes an upload after the server process was killed mid-body and started again', async () => {
        const { place, cleanup: release } = await fixture.provision()
        const child = (port) => {
          const proc = spawn(process.execPath, [new URL('./workers/tus-server.mjs', import.meta.url).pathname, fixture.name, JSON.stringify(place), String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
          return new Promise((resolve, reject) => {
            proc.stdout.on('data', (line) => resolve({ proc, port: Number(/ready (\d+)/.exec(String(line))[1]) }))
            proc.on('exit', (code) => reject(new Error(`the tus server exited with ${code}`)))
          })
        }
        try {
          const first = await child(0)
          const url = `http://127.0.0.1:${first.port}/files`
          const data = crypto.randomBytes(2_000_000)
          let uploadUrl
          const cut = new Promise((resolve, reject) => {
            const upload = new tus.Upload(data, {
              endpoint: url,
              retryDelays: [],
              chunkSize: 100_000,
              metadata: { filename: 'killed.bin' },
              onError: () => resolve(),
              onSuccess: () => reject(new Error('finished before the kill')),
              onProgress: (sent) => {
                uploadUrl = upload.url
                if (sent > 1_000_000) first.proc.kill('SIGKILL')
              },
            })
            upload.start()
          })
          await cut
          await once(first.proc, 'exit').catch(() => {})
          const second = await child(first.port)
          try {
            const resumedFrom = Number((await fetch(uploadUrl, { method: 'HEAD', headers: TUS })).headers.get('upload-offset'))
            assert.ok(resumedFrom >= 900_000, `the restarted server knows only ${resumedFrom} bytes`)
            await send(data, url, { uploadUrl, filename: 'killed.bin' })
            const reader = fixture.open(place)
            assert.ok((await reader.get('tus/killed.bin')).equals(data))
          } finally {
            second.proc.kill('SIGKILL')
          }
        } finally {
          await release()
        }
      })
    }

    it('refuses what the protocol refuses, with the statuses it names', async () => {
      const create = (headers) => fetch(endpoint, { method: 'POST', headers: { ...TUS, ...headers } })
      const options = await fetch(endpoint, { method: 'OPTIONS' })
      assert.equal(options.status, 204)
      assert.match(options.headers.get('tus-extension'), /creation-defer-length/)
      assert.match(options.headers.get('tus-checksum-algorithm'), /sha1/)
      assert.equal((await fetch(endpoint, { method: 'POST', headers: { 'Upload-Length': '5' } })).status, 412)
      assert.equal((await create({})).status, 400, 'no length and not deferred')
      assert.equal((await create({ 'Upload-Length': '5', 'Upload-Defer-Length': '1' })).status, 400)
      assert.equal((await create({ 'Upload-Length': '-1' })).status, 400)
      assert.equal((await create({ 'Upload-Length': '5', 'Upload-Metadata': 'filename not*base64' })).status, 400)
      const made = await create({ 'Upload-Length': '5', 'Upload-Metadata': `filename ${Buffer.from('proto.bin').toString('base64')}` })
      assert.equal(made.status, 201)
      const location = new URL(made.headers.get('location'), endpoint).toString()
      assert.match(idOf(location), /^[0-9a-f]{32}$/)
      assert.ok(Date.parse(made.headers.get('upload-expires')) > Date.now())
      const patch = (headers, body) =>
        fetch(location, { method: 'PATCH', headers: { ...TUS, 'Content-Type': 'application/offset+octet-stream', ...headers }, body })
      assert.equal((await patch({ 'Upload-Offset': '0', 'Content-Type': 'text/plain' }, 'ab')).status, 415)
      assert.equal((await patch({ 'Upload-Offset': '1' }, 'ab')).status, 409)
      assert.equal((await patch({ 'Upload-Offset': '0' }, 'abcdefgh')).status, 413)
      const sha1 = (text) => crypto.createHash('sha1').update(text).digest('base64')
      assert.equal((await patch({ 'Upload-Offset': '0', 'Upload-Checksum': `sha1 ${sha1('xx')}` }, 'ab')).status, 460)
      assert.equal((await patch({ 'Upload-Offset': '0', 'Upload-Checksum': `crc32 AAAA` }, 'ab')).status, 400)
      const good = await patch({ 'Upload-Offset': '0', 'Upload-Checksum': `sha1 ${sha1('ab')}` }, 'ab')
      assert.equal(good.status, 204)
      assert.equal(good.headers.get('upload-offset'), '2')
      const head = await fetch(location, { method: 'HEAD', headers: TUS })
      assert.equal(head.headers.get('upload-offset'), '2')
      assert.equal(head.headers.get('upload-length'), '5')
      assert.equal(head.headers.get('cache-control'), 'no-store')
      assert.match(head.headers.get('upload-metadata'), /^filename /)
      assert.equal((await fetch(location, { method: 'DELETE', headers: TUS })).status, 204)
      assert.equal((await fetch(location, { method: 'HEAD', headers: TUS })).status, 404)
      for (const id of ['0'.repeat(32), '..%2f..%2fetc', 'x']) {
        assert.equal((await fetch(`${endpoint}/${id}`, { method: 'HEAD', headers: TUS })).status, 404, id)
      }
      assert.equal((await fetch(`${endpoint}/${'0'.repeat(32)}`, { method: 'PUT', headers: TUS })).status, 404)
    })
  })
}

describe('tus: the app decides', () => {
  it('authorize runs on every request, expiry answers 410, maxSize is Tus-Max-Size', async () => {
    const memory = fixtures.find((f) => f.name === 'memory') ?? fixtures[0]
    const { backend, cleanup } = await memory.create()
    const seen = []
    const handler = createTusHandler(backend, {
      maxSize: 1000,
      expiresIn: 1,
      keyFor: ({ request }) => `users/${request.headers['x-user']}/upload`,
      authorize: (req, upload) => {
        seen.push(upload === null ? 'create' : req.method)
        if (upload && !upload.key.startsWith(`users/${req.headers['x-user']}/`)) throw Object.assign(new Error('not yours'), { statusCode: 403 })
      },
    })
    const { url, server } = await listen(handler)
    try {
      const options = await fetch(url, { method: 'OPTIONS' })
      assert.equal(options.headers.get('tus-max-size'), '1000')
      const tooBig = await fetch(url, { method: 'POST', headers: { ...TUS, 'Upload-Length': '1001', 'X-User': 'a' } })
      assert.equal(tooBig.status, 413)
      const made = await fetch(url, { method: 'POST', headers: { ...TUS, 'Upload-Length': '10', 'X-User': 'a' } })
      const location = new URL(made.headers.get('location'), url).toString()
      assert.equal((await fetch(location, { method: 'HEAD', headers: { ...TUS, 'X-User': 'b' } })).status, 403)
      assert.equal((await fetch(location, { method: 'HEAD', headers: { ...TUS, 'X-User': 'a' } })).status, 200)
      assert.deepEqual(seen, ['create', 'HEAD', 'HEAD'])
      await new Promise((r) => setTimeout(r, 1500))
      assert.equal((await fetch(location, { method: 'HEAD', headers: { ...TUS, 'X-User': 'a' } })).status, 410)
    } finally {
      server.close()
      await cleanup()
    }
  })
})
