// The Fastify plugin on a real Fastify server, and the serving helper it shares with plain
// `http` and Express, through real requests on 127.0.0.1.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import fastifyMultipart from '@fastify/multipart'
import { parse as parseDisposition } from 'content-disposition'
import express from 'express'
import Fastify from 'fastify'
import * as tus from 'tus-js-client'
import fastifyStorage from '@raptscallions/storage/fastify'
import { MemoryStorageBackend, serveObject } from '@raptscallions/storage'
import { fixtures, tempDir } from './fixtures.mjs'
import { freePort } from './servers.mjs'

const KiB = 1024
// @fastify/multipart's own cut-off in these apps, below the uploads' maxBytes.
const FILE_SIZE_LIMIT = 64 * KiB
const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex')

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { base: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((resolve) => server.close(resolve)) }
}

async function request(url, init) {
  const response = await fetch(url, init)
  const body = Buffer.from(await response.arrayBuffer())
  return { status: response.status, headers: response.headers, body, json: () => JSON.parse(body.toString()) }
}

function form(file, name = 'upload.txt', type = 'text/plain') {
  const data = new FormData()
  data.append('note', 'a field before the file')
  if (file !== undefined) data.append('file', new Blob([file], { type }), name)
  return data
}

/** The app's own error handler, set at the root before any plugin: what it answers is marked `app`. */
function appErrors(error, _request, reply) {
  reply.code(error.statusCode ?? 500).send({ app: true, message: error.message })
}

/** A Fastify app as the README shows one: the plugin in the scope of the routes that use it. */
async function fastifyApp(backend, port) {
  const app = Fastify()
  app.setErrorHandler(appErrors)
  await app.register(fastifyMultipart, { limits: { fileSize: FILE_SIZE_LIMIT } })
  app.post('/echo', async (request) => request.body)
  await app.register(async (files) => {
    await files.register(fastifyStorage, { backend })
    files.get('/objects/*', (request, reply) => reply.sendObject(request.params['*'], { downloadName: request.query.name }))
    files.post('/uploads/:name', async (request) => {
      const file = await request.file()
      return request.uploadFile(file, {
        key: `up/${request.params.name}`,
        maxBytes: Number(request.query.maxBytes ?? 1024 * KiB),
        allowedContentTypes: request.query.type ? [request.query.type] : undefined,
      })
    })
    // A limit the first chunk of the body passes: the file is cut off before the route sees it.
    files.post('/late-uploads/:name', async (request) => {
      const file = await request.file({ limits: { fileSize: 1000 } })
      await sleep(100)
      return request.uploadFile(file, { key: `up/${request.params.name}` })
    })
    files.get('/teapot', async () => {
      throw Object.assign(new Error('the app’s own'), { statusCode: 418 })
    })
  })
  await app.listen({ port, host: '127.0.0.1' })
  return { base: `http://127.0.0.1:${port}`, close: () => app.close() }
}

/** The object's key from `/objects/<key>`. */
const objectKey = (url) => new URL(url, 'http://x').pathname.slice('/objects/'.length).split('/').map(decodeURIComponent).join('/')

async function httpApp(backend) {
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, 'http://x').searchParams.get('name') ?? undefined
    serveObject(req, res, backend, objectKey(req.url), { downloadName: name }).catch((error) => {
      res.writeHead(error.statusCode ?? 500, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify(error))
    })
  })
  return listen(server)
}

async function expressApp(backend) {
  const app = express()
  app.get('/objects/*key', (req, res, next) => {
    serveObject(req, res, backend, req.params.key.join('/'), { downloadName: req.query.name }).catch(next)
  })
  app.use((error, _req, res, _next) => res.status(error.statusCode ?? 500).json(error))
  return listen(http.createServer(app))
}

const SELF_SIGNING = ['local', 'local without fsync', 'memory']

for (const fixture of fixtures) {
  const selfSigning = SELF_SIGNING.includes(fixture.name)

  describe(`Fastify plugin and serveObject: ${fixture.name}`, { timeout: 120_000 }, () => {
    let backend
    let cleanup
    const servers = {}
    let counter = 0
    const fresh = (name = 'obj.txt') => `f${++counter}/${name}`

    before(async () => {
      const provisioned = await fixture.provision()
      const port = await freePort()
      backend = fixture.open(provisioned.place, selfSigning ? { baseUrl: `http://127.0.0.1:${port}/files` } : undefined)
      servers.fastify = await fastifyApp(backend, port)
      servers.http = await httpApp(backend)
      servers.express = await expressApp(backend)
      cleanup = provisioned.cleanup
    })
    after(async () => {
      for (const server of Object.values(servers)) await server.close()
      await cleanup()
    })

    for (const kind of ['fastify', 'http', 'express']) {
      describe(`serving in ${kind}`, () => {
        const objectUrl = (key, query = '') => `${servers[kind].base}/objects/${key}${query}`

        it('sends the object with its type, length and validators, and HEAD the same headers', async () => {
          const key = fresh()
          await backend.put(key, 'hello, served world', { contentType: 'text/plain' })
          const info = await backend.stat(key)
          const got = await request(objectUrl(key))
          assert.equal(got.status, 200)
          assert.equal(got.body.toString(), 'hello, served world')
          assert.equal(got.headers.get('content-type'), 'text/plain')
          assert.equal(got.headers.get('content-length'), '19')
          assert.equal(got.headers.get('etag'), info.etag)
          assert.equal(got.headers.get('last-modified'), info.lastModified.toUTCString())
          assert.equal(got.headers.get('x-content-type-options'), 'nosniff')
          const head = await request(objectUrl(key), { method: 'HEAD' })
          assert.equal(head.status, 200)
          assert.equal(head.headers.get('content-length'), '19')
          assert.equal(head.headers.get('etag'), info.etag)
          assert.equal(head.body.length, 0)
        })

        it('answers one range with 206, past the end with 416, and honours If-Range', async () => {
          const key = fresh()
          await backend.put(key, '0123456789abcdefghij')
          const { etag } = await backend.stat(key)
          const part = await request(objectUrl(key), { headers: { Range: 'bytes=5-9' } })
          assert.equal(part.status, 206)
          assert.equal(part.body.toString(), '56789')
          assert.equal(part.headers.get('content-range'), 'bytes 5-9/20')
          assert.equal(part.headers.get('content-length'), '5')
          const suffix = await request(objectUrl(key), { headers: { Range: 'bytes=-3' } })
          assert.equal(suffix.body.toString(), 'hij')
          const past = await request(objectUrl(key), { headers: { Range: 'bytes=20-' } })
          assert.equal(past.status, 416)
          assert.equal(past.headers.get('content-range'), 'bytes */20')
          const current = await request(objectUrl(key), { headers: { Range: 'bytes=0-1', 'If-Range': etag } })
          assert.equal(current.status, 206)
          const replaced = await request(objectUrl(key), { headers: { Range: 'bytes=0-1', 'If-Range': '"another-version"' } })
          assert.equal(replaced.status, 200)
          assert.equal(replaced.body.toString(), '0123456789abcdefghij')
        })

        it('answers 304 on a matching If-None-Match or a later If-Modified-Since', async () => {
          const key = fresh()
          await backend.put(key, 'cached')
          const { etag, lastModified } = await backend.stat(key)
          const byTag = await request(objectUrl(key), { headers: { 'If-None-Match': `"other", ${etag}` } })
          assert.equal(byTag.status, 304)
          assert.equal(byTag.headers.get('etag'), etag)
          assert.equal(byTag.body.length, 0)
          assert.equal((await request(objectUrl(key), { headers: { 'If-None-Match': '"other"' } })).status, 200)
          const since = (ms) => ({ headers: { 'If-Modified-Since': new Date(ms).toUTCString() } })
          assert.equal((await request(objectUrl(key), since(lastModified.getTime() + 1000))).status, 304)
          assert.equal((await request(objectUrl(key), since(lastModified.getTime() - 60_000))).status, 200)
          // A conditional range request for a current copy is a 304, not the range.
          const rangeToo = await request(objectUrl(key), { headers: { 'If-None-Match': etag, Range: 'bytes=0-1' } })
          assert.equal(rangeToo.status, 304)
        })

        it('names a download, non-ASCII names as RFC 8187 filename* with an ASCII fallback', async () => {
          const key = fresh('report.pdf')
          await backend.put(key, 'pdf bytes', { contentType: 'application/pdf' })
          for (const name of ['report.pdf', 'Résumé «final» 日本.pdf', 'quote"semi;colon.txt']) {
            const got = await request(objectUrl(key, `?name=${encodeURIComponent(name)}`))
            assert.equal(got.status, 200)
            const header = got.headers.get('content-disposition')
            assert.match(header, /^attachment; filename=/)
            assert.equal(parseDisposition(header).parameters.filename, name)
            assert.match(header, /^[\x20-\x7e]*$/, 'the header itself is ASCII')
          }
          const unicode = (await request(objectUrl(key, `?name=${encodeURIComponent('日本.pdf')}`))).headers.get('content-disposition')
          assert.equal(unicode, `attachment; filename="??.pdf"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.pdf`)
        })

        it('reports a missing object as a 404 FileNotFoundError', async () => {
          const key = fresh('missing.txt')
          const got = await request(objectUrl(key))
          assert.equal(got.status, 404)
          assert.deepEqual(got.json(), { message: `File not found in storage: ${key}`, code: 'FILE_NOT_FOUND', statusCode: 404, details: { key } })
        })
      })
    }

    describe('Fastify: errors, multipart uploads', () => {
      const url = (pathname) => `${servers.fastify.base}${pathname}`

      it('leaves the app’s own errors to the app’s error handler', async () => {
        const got = await request(url('/teapot'))
        assert.equal(got.status, 418)
        assert.deepEqual(got.json(), { app: true, message: 'the app’s own' })
        const missing = await request(url('/objects/'))
        assert.equal(missing.status, 400, 'the empty key is an InvalidKeyError')
        assert.equal(missing.json().code, 'INVALID_KEY')
      })

      it('stores a multipart file within the limits, byte for byte', async () => {
        const bytes = randomBytes(FILE_SIZE_LIMIT)
        const got = await request(url('/uploads/exact.bin'), { method: 'POST', body: form(bytes, 'exact.bin', 'application/octet-stream') })
        assert.equal(got.status, 200, got.body.toString())
        const result = got.json()
        assert.equal(result.key, 'up/exact.bin')
        assert.deepEqual(await backend.get('up/exact.bin'), bytes)
        assert.equal((await backend.stat('up/exact.bin')).contentType, 'application/octet-stream')
      })

      it('never stores a file @fastify/multipart cut off at its fileSize: 413, nothing at the key', async () => {
        for (const [route, limit] of [['/uploads/cut.bin', FILE_SIZE_LIMIT], ['/late-uploads/cut-late.bin', 1000]]) {
          const key = `up/${route.split('/').at(-1)}`
          const got = await request(url(route), { method: 'POST', body: form(randomBytes(limit + 1), 'cut.bin') })
          assert.equal(got.status, 413, route)
          assert.deepEqual(got.json(), {
            message: `The file is larger than the ${limit} bytes accepted here`,
            code: 'FILE_TOO_LARGE',
            statusCode: 413,
            details: { maxBytes: limit },
          })
          assert.equal(await backend.exists(key), false, route)
        }
        // Much larger than the limit, so that most of the body is still on its way.
        const big = await request(url('/uploads/big.bin'), { method: 'POST', body: form(randomBytes(4096 * KiB), 'big.bin') })
        assert.equal(big.status, 413)
        assert.equal(await backend.exists('up/big.bin'), false)
      })

      it('refuses a file over maxBytes or of a type not allowed, and stores nothing', async () => {
        const tooBig = await request(url('/uploads/quota.bin?maxBytes=1000'), { method: 'POST', body: form(randomBytes(2000)) })
        assert.equal(tooBig.status, 413)
        assert.equal(tooBig.json().code, 'FILE_TOO_LARGE')
        assert.equal(await backend.exists('up/quota.bin'), false)
        const html = await request(url('/uploads/page.html?type=image/png'), { method: 'POST', body: form('<html>', 'page.html', 'text/html') })
        assert.equal(html.status, 400)
        assert.equal(html.json().code, 'INVALID_FILE_TYPE')
        assert.equal(await backend.exists('up/page.html'), false)
        const png = await request(url('/uploads/pixel.png?type=image/png'), { method: 'POST', body: form(PNG, 'pixel.png', 'image/png') })
        assert.equal(png.status, 200)
        assert.deepEqual(await backend.get('up/pixel.png'), PNG)
      })

      it('answers a form without a file with a 400', async () => {
        const got = await request(url('/uploads/none.txt'), { method: 'POST', body: form(undefined) })
        assert.equal(got.status, 400)
        assert.equal(got.json().code, 'INVALID_ARGUMENT')
      })

      it('answers a form cut before its closing boundary with a 400, and stores nothing', async () => {
        // Whole as sent (its Content-Length is what it holds): the client's form is what ends early.
        const body = Buffer.concat([
          Buffer.from('--cut\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\nContent-Type: text/plain\r\n\r\n'),
          randomBytes(10 * KiB),
        ])
        const got = await new Promise((resolve, reject) => {
          const headers = { 'Content-Type': 'multipart/form-data; boundary=cut', 'Content-Length': body.length }
          const sent = http.request(url('/uploads/unfinished.txt'), { method: 'POST', headers }, (response) => {
            const chunks = []
            response.on('data', (chunk) => chunks.push(chunk))
            response.on('end', () => resolve({ status: response.statusCode, json: () => JSON.parse(Buffer.concat(chunks)) }))
          })
          sent.on('error', reject).end(body)
        })
        assert.equal(got.status, 400)
        assert.equal(got.json().code, 'INVALID_ARGUMENT')
        assert.equal(await backend.exists('up/unfinished.txt'), false)
      })
    })

    if (!selfSigning) return

    describe('Fastify: signed URLs', () => {
      const put = (url, body, headers = {}, init = {}) => request(url, { method: 'PUT', body, headers, ...init })
      const bodies = {
        json: [JSON.stringify({ a: 1, list: [1, 2, 3], text: 'ünïcödé' }), 'application/json'],
        text: ['plain text, not parsed\n'.repeat(100), 'text/plain; charset=utf-8'],
        binary: [randomBytes(2048 * KiB), 'application/octet-stream'],
        'no type': [randomBytes(1000), undefined],
      }

      for (const [name, [body, type]] of Object.entries(bodies)) {
        it(`takes a signed PUT of a ${name} body through Fastify, byte for byte`, async () => {
          const key = fresh(`${name.replace(' ', '-')}.bin`)
          const { url } = await backend.getSignedUrl(key, { method: 'PUT' })
          const got = await put(url, body, type ? { 'Content-Type': type } : {})
          assert.equal(got.status, 200, got.body.toString())
          assert.ok(got.headers.get('etag'))
          const back = await request((await backend.getSignedUrl(key)).url)
          assert.equal(back.status, 200)
          assert.deepEqual(back.body, Buffer.from(body))
          assert.equal(back.headers.get('content-type'), type ?? 'application/octet-stream')
        })
      }

      it('takes a chunked signed PUT (no Content-Length), byte for byte', async () => {
        const parts = [Buffer.from('{"chunked":'), randomBytes(100 * KiB).toString('hex'), Buffer.from('"}')].map((p) => Buffer.from(p))
        for (const type of ['application/json', 'text/plain', 'application/octet-stream']) {
          const key = fresh('chunked.json')
          const { url } = await backend.getSignedUrl(key, { method: 'PUT' })
          const stream = new ReadableStream({
            start(controller) {
              for (const part of parts) controller.enqueue(part)
              controller.close()
            },
          })
          const got = await put(url, stream, { 'Content-Type': type }, { duplex: 'half' })
          assert.equal(got.status, 200, got.body.toString())
          assert.deepEqual(await backend.get(key), Buffer.concat(parts))
        }
      })

      it('leaves the app’s own body parsers alone outside its routes', async () => {
        const got = await request(`${servers.fastify.base}/echo`, { method: 'POST', body: '{"parsed":true}', headers: { 'Content-Type': 'application/json' } })
        assert.deepEqual(got.json(), { parsed: true })
      })

      it('serves signed GETs with ranges, conditions and HEAD, and keeps the upload guards', async () => {
        const key = fresh()
        await backend.put(key, '0123456789')
        const { url } = await backend.getSignedUrl(key)
        const part = await request(url, { headers: { Range: 'bytes=2-4' } })
        assert.equal(part.status, 206)
        assert.equal(part.body.toString(), '234')
        assert.equal((await request(url, { headers: { Range: 'bytes=10-' } })).status, 416)
        assert.equal((await request(url, { headers: { 'If-None-Match': part.headers.get('etag') } })).status, 304)
        const head = await request(url, { method: 'HEAD' })
        assert.equal(head.headers.get('content-length'), '10')
        const guarded = await backend.getSignedUrl(fresh('a.png'), { method: 'PUT', maxBytes: 10 })
        const refused = await put(guarded.url, randomBytes(100))
        assert.equal(refused.status, 413)
        assert.deepEqual(refused.json(), { error: { code: 'FILE_TOO_LARGE', message: 'The body is larger than this URL accepts' } })
        const tampered = new URL(url)
        tampered.searchParams.set('X-Expires', String(Number(tampered.searchParams.get('X-Expires')) + 1))
        assert.equal((await request(tampered)).status, 403)
      })
    })
  })
}

describe('Fastify plugin: errors after a route set its type', () => {
  it('answers a zip of a missing object with a 404 in JSON, not a 500', async () => {
    const backend = new MemoryStorageBackend()
    const app = Fastify()
    await app.register(fastifyStorage, { backend })
    app.get('/zip', async (_request, reply) => reply.type('application/zip').send(await backend.downloadArchive({ keys: ['nope.txt'] })))
    const answer = await app.inject({ url: '/zip' })
    assert.equal(answer.statusCode, 404)
    assert.match(answer.headers['content-type'], /^application\/json/)
    assert.equal(answer.json().code, 'FILE_NOT_FOUND')
  })
})

describe('Fastify plugin: tus', () => {
  it('serves tus-js-client under a prefix, beside JSON routes, with bodies left to the handler', async () => {
    const backend = new MemoryStorageBackend({ baseUrl: 'http://127.0.0.1:1/api/signed' })
    const app = Fastify()
    app.post('/echo', async (request) => request.body)
    // What an app's hooks do: who the user is, and headers such as CORS's.
    app.addHook('onRequest', async (request, reply) => {
      request.user = { id: request.headers['x-user'] ?? 'anonymous' }
      reply.header('access-control-allow-origin', '*')
    })
    const finished = []
    const authorized = []
    await app.register(
      async (api) => {
        await api.register(fastifyStorage, {
          backend,
          tus: {
            path: '/uploads',
            keyFor: ({ metadata, request }) => `tus/${request.user.id}/${metadata.filename}`,
            authorize: (request, upload) => {
              authorized.push(request.user.id)
              if (upload && !upload.key.startsWith(`tus/${request.user.id}/`)) throw Object.assign(new Error('not yours'), { statusCode: 403 })
            },
            onUploadFinish: (request, u) => finished.push([request.user.id, u.key]),
          },
        })
      },
      { prefix: '/api' },
    )
    await app.listen({ port: 0, host: '127.0.0.1' })
    try {
      const base = `http://127.0.0.1:${app.server.address().port}`
      const data = randomBytes(300_000)
      await new Promise((resolve, reject) => {
        const upload = new tus.Upload(data, {
          endpoint: `${base}/api/uploads`,
          chunkSize: 100_000,
          retryDelays: [],
          metadata: { filename: 'via-fastify.bin' },
          headers: { 'X-User': 'u1' },
          onError: reject,
          onSuccess: resolve,
        })
        upload.start()
      })
      assert.ok((await backend.get('tus/u1/via-fastify.bin')).equals(data))
      assert.deepEqual(finished, [['u1', 'tus/u1/via-fastify.bin']], 'the hooks get Fastify\'s request')
      assert.ok(authorized.length >= 4 && authorized.every((id) => id === 'u1'))
      const created = await fetch(`${base}/api/uploads`, { method: 'POST', headers: { 'Tus-Resumable': '1.0.0', 'Upload-Length': '1', 'X-User': 'u2' } })
      assert.equal(created.status, 201)
      assert.equal(created.headers.get('access-control-allow-origin'), '*', 'the app hooks\' headers are kept')
      const theirs = new URL(created.headers.get('location'), base)
      assert.equal((await fetch(theirs, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0', 'X-User': 'u1' } })).status, 403)
      const echoed = await fetch(`${base}/echo`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' })
      assert.deepEqual(await echoed.json(), { a: 1 }, 'the app keeps its own body parsing')
      const bad = await fetch(`${base}/api/uploads`, { method: 'POST', headers: { 'Upload-Length': '1' } })
      assert.equal(bad.status, 412, 'the protocol answers as tus says')
    } finally {
      await app.close()
    }
  })
})

describe('Fastify plugin: registration', () => {
  it('leaves URLs signed for the root path to their own handler, and refuses those it could not serve', async () => {
    // The default base URL has no path: routes there would take every path, so none are made,
    // and the plugin's helpers still work (a test app on the memory store).
    const rooted = Fastify()
    const memory = new MemoryStorageBackend()
    rooted.register(fastifyStorage, { backend: memory })
    rooted.get('/x', (_request, reply) => reply.sendObject('x'))
    await memory.put('x', 'served')
    assert.equal((await rooted.inject({ url: '/x' })).body, 'served')
    assert.equal((await rooted.inject({ url: '/other' })).statusCode, 404)
    const overlapping = Fastify()
    overlapping.register(fastifyStorage, { backend: new MemoryStorageBackend({ baseUrl: 'http://h/files' }), tus: { path: '/files' } })
    await assert.rejects(overlapping.ready(), /tus routes \(\/files\) would overlap/)
    const scoped = Fastify()
    scoped.register(async (api) => api.register(fastifyStorage, { backend: new MemoryStorageBackend({ baseUrl: 'http://h/files' }) }), { prefix: '/api' })
    await assert.rejects(scoped.ready(), /cannot be served from a scope under \/api/)
    await assert.rejects(Fastify().register(fastifyStorage, {}).ready(), { code: 'INVALID_ARGUMENT' })
  })

  it('mounts the signed routes under a scope prefix, at the path of the URLs', async () => {
    const backend = new MemoryStorageBackend({ baseUrl: 'http://127.0.0.1/api/files' })
    const app = Fastify()
    await app.register(async (api) => api.register(fastifyStorage, { backend }), { prefix: '/api' })
    await backend.put('k/x.txt', 'scoped')
    const { url } = await backend.getSignedUrl('k/x.txt')
    const got = await app.inject({ url: new URL(url).pathname + new URL(url).search })
    assert.equal(got.statusCode, 200)
    assert.equal(got.body, 'scoped')
    await app.close()
  })

  it('is the same plugin from require() and import, and type-checks', async () => {
    const { createRequire } = await import('node:module')
    const required = createRequire(import.meta.url)('@raptscallions/storage/fastify')
    assert.equal(required, fastifyStorage)
    assert.equal(required.fastifyStorage, fastifyStorage)
    const repo = fileURLToPath(new URL('..', import.meta.url))
    const dir = await tempDir('fastify-types')
    try {
      const modules = path.join(repo, 'node_modules')
      await fs.writeFile(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022',
            typeRoots: [path.join(modules, '@types')], types: ['node'],
            paths: {
              '@raptscallions/storage': [path.join(repo, 'index.d.ts')],
              '@raptscallions/storage/fastify': [path.join(repo, 'fastify.d.ts')],
              fastify: [path.join(modules, 'fastify/fastify.d.ts')],
              '@fastify/multipart': [path.join(modules, '@fastify/multipart/types/index.d.ts')],
            },
          },
          files: ['app.mts'],
        }),
      )
      await fs.writeFile(path.join(dir, 'app.mts'), TYPED_APP)
      await promisify(execFile)(process.execPath, [path.join(modules, 'typescript/bin/tsc'), '-p', dir])
    } finally {
      await fs.rm(dir, { recursive: true, force: true })
    }
  })
})

const TYPED_APP = `
import Fastify from 'fastify'
import fastifyMultipart from '@fastify/multipart'
import fastifyStorage from '@raptscallions/storage/fastify'
import { MemoryStorageBackend, type UploadResult } from '@raptscallions/storage'

const app = Fastify()
await app.register(fastifyMultipart)
await app.register(fastifyStorage, { backend: new MemoryStorageBackend({ baseUrl: 'http://localhost:3000/files' }) })
app.get<{ Params: { id: string } }>('/avatars/:id', (request, reply) =>
  reply.sendObject(\`avatars/\${request.params.id}\`, { downloadName: 'avatar.png', headers: { 'Cache-Control': 'private' } }))
app.post('/avatars', async (request): Promise<UploadResult> =>
  request.uploadFile(await request.file(), { key: 'avatars/1', maxBytes: 1_000_000, allowedContentTypes: ['image/*'] }))
`
