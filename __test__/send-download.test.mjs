// sendDownload on every store, behind a route of an app's own: a redirect to a signed URL that
// works where the store signs its own, the object streamed with its headers where it does not.
import assert from 'node:assert/strict'
import contentDisposition from 'content-disposition'
import http from 'node:http'
import { after, before, describe, it } from 'node:test'
import { InvalidArgumentError, MemoryStorageBackend, sendDownload } from '../index.mjs'
import { fixtures } from './fixtures.mjs'

/** An app route: GET /download?key=…&name=…&redirect=false answered by sendDownload. */
async function startApp(backend) {
  const server = http.createServer((req, res) => {
    const q = new URL(req.url, 'http://app').searchParams
    const options = { filename: q.get('name') ?? undefined, redirect: q.get('redirect') !== 'false' }
    sendDownload(backend, q.get('key'), req, res, options).catch((error) => {
      res.writeHead(599, { 'Content-Type': 'text/plain' })
      res.end(`${error.name}: ${error.message}`)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}/download`
  return {
    url: (params) => `${base}?${new URLSearchParams(params)}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

const CONTENT = Buffer.from('0123456789 a downloadable report')
/** The name a browser saves a download as, read from Content-Disposition (RFC 6266; filename* first). */
function savedAs(header) {
  const { type, parameters } = contentDisposition.parse(header)
  assert.equal(type, 'attachment')
  return parameters.filename
}

for (const fixture of fixtures) {
  const selfServed = ['local', 'local without fsync', 'memory'].includes(fixture.name)
  describe(`sendDownload: ${fixture.name}`, () => {
    let backend
    let cleanup
    let app
    const key = 'reports/résumé 2024.txt'

    before(async () => {
      ;({ backend, cleanup } = await fixture.create())
      app = await startApp(backend)
      await backend.put(key, CONTENT, { contentType: 'text/plain' })
    })
    after(async () => {
      await app.close()
      await cleanup()
    })

    if (selfServed) {
      it('streams the object with its type, length, ETag and a download name', async () => {
        const response = await fetch(app.url({ key }), { redirect: 'manual' })
        assert.equal(response.status, 200)
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), CONTENT)
        assert.equal(response.headers.get('content-type'), 'text/plain')
        assert.equal(response.headers.get('content-length'), String(CONTENT.length))
        assert.equal(response.headers.get('etag'), (await backend.stat(key)).etag)
        assert.equal(savedAs(response.headers.get('content-disposition')), 'résumé 2024.txt')
        assert.equal(response.headers.get('accept-ranges'), 'bytes')
      })

      it('answers a Range with 206, If-None-Match with 304, HEAD without a body', async () => {
        const ranged = await fetch(app.url({ key }), { headers: { Range: 'bytes=2-5' } })
        assert.equal(ranged.status, 206)
        assert.equal(await ranged.text(), '2345')
        assert.equal(ranged.headers.get('content-range'), `bytes 2-5/${CONTENT.length}`)
        assert.equal(savedAs(ranged.headers.get('content-disposition')), 'résumé 2024.txt')
        const unsatisfiable = await fetch(app.url({ key }), { headers: { Range: 'bytes=999-' } })
        assert.equal(unsatisfiable.status, 416)
        const { etag } = await backend.stat(key)
        assert.equal((await fetch(app.url({ key }), { headers: { 'If-None-Match': etag } })).status, 304)
        const head = await fetch(app.url({ key }), { method: 'HEAD' })
        assert.equal(head.status, 200)
        assert.equal(head.headers.get('content-length'), String(CONTENT.length))
      })
    } else {
      it('redirects to a signed URL that serves the object', async () => {
        const response = await fetch(app.url({ key }), { redirect: 'manual' })
        assert.equal(response.status, 302)
        assert.equal(response.headers.get('cache-control'), 'no-store')
        const target = await fetch(response.headers.get('location'))
        assert.equal(target.status, 200)
        assert.deepEqual(Buffer.from(await target.arrayBuffer()), CONTENT)
        if (fixture.responseOverrides) assert.equal(savedAs(target.headers.get('content-disposition')), 'résumé 2024.txt')
      })

      it('streams instead with redirect: false, and serves HEAD itself', async () => {
        const response = await fetch(app.url({ key, redirect: 'false', name: 'plain.txt' }), { redirect: 'manual' })
        assert.equal(response.status, 200)
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), CONTENT)
        assert.equal(savedAs(response.headers.get('content-disposition')), 'plain.txt')
        const ranged = await fetch(app.url({ key, redirect: 'false' }), { headers: { Range: 'bytes=-4' } })
        assert.equal(ranged.status, 206)
        assert.equal(await ranged.text(), 'port')
        const head = await fetch(app.url({ key }), { method: 'HEAD', redirect: 'manual' })
        assert.equal(head.status, 200)
        assert.equal(head.headers.get('content-length'), String(CONTENT.length))
      })
    }

    it('answers a missing key with a 404 and JSON, an invalid key with a 400', async () => {
      const missing = await fetch(app.url({ key: 'reports/nothing-here' }), { redirect: 'manual' })
      assert.equal(missing.status, 404)
      assert.match(missing.headers.get('content-type'), /^application\/json/)
      assert.deepEqual(await missing.json(), { error: { code: 'FILE_NOT_FOUND', message: 'Not found' } })
      const invalid = await fetch(app.url({ key: '../escape' }), { redirect: 'manual' })
      assert.equal(invalid.status, 400)
      assert.equal((await invalid.json()).error.code, 'INVALID_KEY')
    })
  })
}

describe('sendDownload arguments', () => {
  it('names files as RFC 6266 says, with RFC 5987 encoding where ASCII would not do', async () => {
    const backend = new MemoryStorageBackend()
    await backend.put('k', 'x')
    const app = await startApp(backend)
    try {
      for (const name of ['plain.pdf', 'quote"and\\back%20.txt', "it's (1)*.txt", '日本語.txt', "l'été (1).txt", 'line\r\nbreak']) {
        const response = await fetch(app.url({ key: 'k', name }))
        const header = response.headers.get('content-disposition')
        assert.match(header, /^[\x20-\x7e]+$/, 'the header itself is plain ASCII')
        assert.equal(savedAs(header), name)
      }
    } finally {
      await app.close()
    }
  })

  it('rejects wrong arguments and sends nothing', async () => {
    const backend = new MemoryStorageBackend()
    const res = new http.ServerResponse(new http.IncomingMessage(null))
    const req = { method: 'GET', headers: {} }
    await assert.rejects(sendDownload(backend, 'k', req, res, { expiresIn: '60' }), InvalidArgumentError)
    await assert.rejects(sendDownload(backend, 'k', req, res, { filename: 7 }), InvalidArgumentError)
    await assert.rejects(sendDownload(backend, 'k', req, res, { redirect: 'no' }), InvalidArgumentError)
    await assert.rejects(sendDownload({}, 'k', req, res), InvalidArgumentError)
    assert.equal(res.headersSent, false)
  })
})
