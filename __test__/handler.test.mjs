// The signed-URL handler of the stores that sign their own URLs (local, memory), as an
// anonymous client on the internet meets it.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { fixtures } from './fixtures.mjs'

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex')
const ELF = Buffer.concat([Buffer.from('7f454c46020101000000000000000000020003e0', 'hex'), Buffer.alloc(60)])

async function status(url, init) {
  const response = await fetch(url, init)
  const body = await response.text()
  return { status: response.status, headers: response.headers, body }
}

for (const fixture of fixtures.filter((f) => ['local', 'memory'].includes(f.name))) {
  describe(`signed-URL handler: ${fixture.name}`, () => {
    let backend
    let cleanup
    let counter = 0
    const fresh = (name = 'obj') => `h${++counter}/${name}`

    before(async () => {
      ;({ backend, cleanup } = await fixture.create())
    })
    after(() => cleanup())

    it('verifies a signature only as it was spelled (no uppercase twin)', async () => {
      const key = fresh()
      await backend.put(key, 'secret')
      const { url } = await backend.getSignedUrl(key)
      assert.equal((await status(url)).status, 200)
      const signature = new URL(url).searchParams.get('X-Signature')
      assert.match(signature, /[a-f]/, 'a signature with letters to uppercase')
      assert.equal((await status(url.replace(signature, signature.toUpperCase()))).status, 403)
    })

    it('answers ranges as RFC 9110 does: 416 past the end, 206 clamped, 200 for what it cannot parse', async () => {
      const key = fresh()
      await backend.put(key, '0123456789abcdefghij')
      const { url } = await backend.getSignedUrl(key)
      const cases = [
        ['bytes=100-', 416, undefined],
        ['bytes=99999999999999999999-', 416, undefined],
        ['bytes=-0', 416, undefined],
        ['bytes=5-99999999999999999999', 206, '56789abcdefghij'],
        ['bytes=15-', 206, 'fghij'],
        ['bytes=-3', 206, 'hij'],
        ['bytes=abc', 200, '0123456789abcdefghij'],
        ['bytes=1-2,5-6', 200, '0123456789abcdefghij'],
      ]
      for (const [range, expected, text] of cases) {
        const got = await status(url, { headers: { Range: range } })
        assert.equal(got.status, expected, range)
        if (expected === 416) assert.equal(got.headers.get('content-range'), 'bytes */20', range)
        if (text !== undefined) assert.equal(got.body, text, range)
      }
    })

    it('serves uploaded content so that no browser sniffs it or runs its script on the app origin', async () => {
      const key = fresh('page.svg')
      const { url: putUrl } = await backend.getSignedUrl(key, { method: 'PUT' })
      const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
      assert.equal((await status(putUrl, { method: 'PUT', body: svg, headers: { 'Content-Type': 'image/svg+xml' } })).status, 200)
      const { url } = await backend.getSignedUrl(key)
      for (const init of [{}, { method: 'HEAD' }, { headers: { Range: 'bytes=0-4' } }]) {
        const { headers } = await status(url, init)
        assert.equal(headers.get('x-content-type-options'), 'nosniff')
        assert.match(headers.get('content-security-policy'), /sandbox/)
      }
    })

    it('enforces the upload guards a PUT URL was signed with, and they cannot be lifted', async () => {
      const key = fresh('avatar.png')
      const { url } = await backend.getSignedUrl(key, { method: 'PUT', maxBytes: 100, allowedContentTypes: ['image/png'] })
      const put = (target, body, type = 'image/png') => status(target, { method: 'PUT', body, headers: { 'Content-Type': type } })
      const tooBig = await put(url, Buffer.concat([PNG, Buffer.alloc(100)]))
      assert.equal(tooBig.status, 413)
      assert.equal(JSON.parse(tooBig.body).error.code, 'FILE_TOO_LARGE')
      assert.equal((await put(url, PNG, 'text/html')).status, 400)
      assert.equal(JSON.parse((await put(url, ELF)).body).error.code, 'INVALID_FILE_TYPE')
      assert.equal(await backend.exists(key), false)
      const lifted = new URL(url)
      lifted.searchParams.set('X-Max-Bytes', '100000')
      assert.equal((await put(lifted, Buffer.concat([PNG, Buffer.alloc(100)]))).status, 403)
      lifted.searchParams.delete('X-Max-Bytes')
      lifted.searchParams.delete('X-Allowed-Types')
      assert.equal((await put(lifted, ELF)).status, 403)
      assert.equal((await put(url, PNG)).status, 200)
      assert.deepEqual(await backend.get(key), PNG)
    })

    it('tells anonymous clients the code and a plain message, nothing of the inside', async () => {
      const missing = await status((await backend.getSignedUrl(fresh('nothing-here'))).url)
      assert.equal(missing.status, 404)
      assert.deepEqual(JSON.parse(missing.body), { error: { code: 'FILE_NOT_FOUND', message: 'Not found' } })
      const short = await status((await backend.getSignedUrl(fresh(), { method: 'PUT' })).url, {
        method: 'PUT',
        body: 'abc',
        headers: { 'Content-Length': '3' },
      })
      assert.equal(short.status, 200)
      const refused = await status((await backend.getSignedUrl(fresh(), { method: 'PUT', maxBytes: 1 })).url, { method: 'PUT', body: 'abc' })
      assert.doesNotMatch(refused.body, /bytes|limit|\//)
    })
  })
}
