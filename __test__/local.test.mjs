// What only the local store has: files on disk, a root that keys cannot leave, durable renames.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  ConfigurationError,
  ContentLengthMismatchError,
  InvalidKeyError,
  KeyConflictError,
  LocalStorageBackend,
  FileNotFoundError,
  PermissionDeniedError,
  createSignedUrlHandler,
} from '../index.mjs'
import { tempDir } from './fixtures.mjs'

/**
 * The temp files left in a local store. A failed body ends the native upload at once; its writer
 * thread removes the temp file moments later (an abort does not wait for it): given a second.
 */
async function tempsLeft(root) {
  let left = []
  for (let i = 0; i < 100; i++) {
    left = await fs.readdir(path.join(root, '.rstorage/tmp'))
    if (left.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return left
}

async function* failing() {
  yield Buffer.alloc(1024 * 1024)
  throw new Error('client went away')
}

describe('local store', () => {
  let root
  let outside
  let backend

  before(async () => {
    root = await tempDir('local-only')
    outside = await tempDir('outside')
    backend = new LocalStorageBackend(root)
  })
  after(async () => {
    await fs.rm(root, { recursive: true, force: true })
    await fs.rm(outside, { recursive: true, force: true })
  })

  it('keeps objects as plain files under the root', async () => {
    await backend.put('docs/readme.txt', 'plain file', { contentType: 'text/plain' })
    assert.equal(await fs.readFile(path.join(root, 'docs/readme.txt'), 'utf8'), 'plain file')
  })

  it('writes a plain object without a sidecar, and refuses a durable option that is not a boolean', async () => {
    const own = await tempDir('plain')
    try {
      const store = new LocalStorageBackend(own)
      const { etag } = await store.upload({ key: 'plain/blob.bin', body: Buffer.from('bytes'), contentType: 'application/octet-stream' })
      assert.equal((await store.stat('plain/blob.bin')).etag, etag)
      assert.deepEqual(await fs.readdir(path.join(own, '.rstorage/sidecars')), [])
      assert.throws(() => new LocalStorageBackend({ root: own, durable: 'yes' }), { code: 'INVALID_ARGUMENT' })
    } finally {
      await fs.rm(own, { recursive: true, force: true })
    }
  })

  it('serves files other tools put there, with a default content type', async () => {
    await fs.mkdir(path.join(root, 'dropped'), { recursive: true })
    await fs.writeFile(path.join(root, 'dropped/by-hand.bin'), 'abc')
    const info = await backend.stat('dropped/by-hand.bin')
    assert.equal(info.size, 3)
    assert.equal(info.contentType, 'application/octet-stream')
    assert.match(info.etag, /^".+"$/)
    assert.equal((await backend.get('dropped/by-hand.bin')).toString(), 'abc')
  })

  it('ignores metadata left over from a file that was replaced behind its back', async () => {
    await backend.put('swapped.txt', 'original', { contentType: 'text/plain', metadata: { v: '1' } })
    await fs.rm(path.join(root, 'swapped.txt'))
    await fs.writeFile(path.join(root, 'swapped.txt'), 'replaced')
    const info = await backend.stat('swapped.txt')
    assert.equal(info.contentType, 'application/octet-stream')
    assert.deepEqual(info.metadata, {})
  })

  it('leaves no temp files behind after failed writes', async () => {
    await assert.rejects(backend.upload({ key: 'failed.bin', body: failing(), contentType: 'x/y' }), /client went away/)
    const long = (async function* () {
      yield Buffer.alloc(1024 * 1024)
    })()
    await assert.rejects(backend.upload({ key: 'long.bin', body: long, contentType: 'x/y', contentLength: 1 }), ContentLengthMismatchError)
    assert.deepEqual(await tempsLeft(root), [])
    assert.equal(await backend.exists('failed.bin'), false)
  })

  it('never follows symlinks out of the root', async () => {
    await fs.writeFile(path.join(outside, 'secret.txt'), 'top secret')
    await fs.symlink(outside, path.join(root, 'escape'))
    await fs.symlink(path.join(outside, 'secret.txt'), path.join(root, 'link.txt'))
    const symlinked = (e) => e instanceof PermissionDeniedError && e.statusCode === 403 && /symlink/.test(e.message)
    await assert.rejects(backend.get('escape/secret.txt'), symlinked)
    await assert.rejects(backend.get('link.txt'), FileNotFoundError)
    await assert.rejects(backend.put('escape/planted.txt', 'x'), symlinked)
    assert.deepEqual(await fs.readdir(outside), ['secret.txt'])
    const listed = (await backend.list()).objects.map((o) => o.key)
    assert.ok(!listed.some((k) => k.startsWith('escape') || k === 'link.txt'), listed.join())
  })

  it('refuses keys the filesystem cannot hold, and its own folder', async () => {
    await assert.rejects(backend.put('x'.repeat(256), 'x'), InvalidKeyError)
    await assert.rejects(backend.put('.rstorage/tmp/evil', 'x'), InvalidKeyError)
    await backend.put('file-here', 'x')
    await assert.rejects(backend.put('file-here/below', 'x'), (e) => e instanceof KeyConflictError && e.statusCode === 409)
  })

  it('a destroyed download closes its file at once', async () => {
    await backend.put('held.bin', Buffer.alloc(8 * 1024 * 1024, 1))
    const file = path.join(backend.root, 'held.bin')
    const openHandles = async () => {
      const fds = await fs.readdir('/proc/self/fd')
      const targets = await Promise.all(fds.map((fd) => fs.readlink(`/proc/self/fd/${fd}`).catch(() => '')))
      return targets.filter((t) => t === file).length
    }
    const stream = await backend.download('held.bin')
    await new Promise((resolve) => stream.once('readable', resolve))
    assert.equal(await openHandles(), 1)
    stream.destroy()
    await new Promise((resolve) => stream.once('close', resolve))
    for (let i = 0; i < 50 && (await openHandles()) > 0; i++) await new Promise((r) => setTimeout(r, 10))
    assert.equal(await openHandles(), 0)
  })

  it('prunes folders emptied by deletes', async () => {
    await backend.put('deep/er/still/obj', 'x')
    await backend.delete('deep/er/still/obj')
    await assert.rejects(fs.stat(path.join(root, 'deep')), { code: 'ENOENT' })
  })

  it('shares its signing secret with every backend on the same root', async () => {
    const server = http.createServer()
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const baseUrl = `http://127.0.0.1:${server.address().port}`
    try {
      await backend.put('docs/readme.txt', 'plain file', { contentType: 'text/plain' })
      const signer = new LocalStorageBackend({ root, baseUrl })
      const verifier = new LocalStorageBackend({ root, baseUrl })
      server.on('request', createSignedUrlHandler(verifier))
      const { url } = await signer.getSignedUrl('docs/readme.txt')
      assert.equal(await (await fetch(url)).text(), 'plain file')
      const strangerRoot = await tempDir('stranger')
      const stranger = new LocalStorageBackend({ root: strangerRoot, baseUrl })
      const refused = await fetch((await stranger.getSignedUrl('docs/readme.txt')).url)
      assert.equal(refused.status, 403)
      await refused.body?.cancel()
      await fs.rm(strangerRoot, { recursive: true, force: true })
    } finally {
      server.close()
    }
  })

  it('never lists, reads or deletes its own files, in any spelling of their folder', async () => {
    await backend.put('visible.txt', 'x')
    const everything = []
    for await (const o of backend.listAll()) everything.push(o.key)
    assert.ok(everything.includes('visible.txt'))
    assert.ok(!everything.some((k) => k.toLowerCase().startsWith('.rstorage')), everything.join())
    for (const prefix of ['.rstorage/', '.rstorage/meta/', '.RStorage/', '.rstorage/signing-secret']) {
      await assert.rejects(backend.list({ prefix }), InvalidKeyError, prefix)
    }
    assert.deepEqual((await backend.list({ prefix: '.rs' })).objects, [])
    for (const key of ['.rstorage/signing-secret', '.RSTORAGE/signing-secret', '.r\u017ftorage/locks/0', '.rs\u200btorage/x']) {
      await assert.rejects(backend.get(key), InvalidKeyError, key)
      await assert.rejects(backend.delete(key), InvalidKeyError, key)
      await assert.rejects(backend.put(key, 'x'), InvalidKeyError, key)
    }
    await fs.access(path.join(root, '.rstorage/signing-secret'))
  })

  it('a listing prefix with a segment no filesystem can name is a bad key (400), not a 500', async () => {
    await assert.rejects(backend.list({ prefix: `a/${'x'.repeat(300)}/` }), (e) => e instanceof InvalidKeyError && e.statusCode === 400)
  })

  it('a move that fails keeps the source whole, with its content type and metadata', async () => {
    await backend.put('blocker', 'a file where a folder would be')
    await backend.put('mover.txt', 'payload', { contentType: 'text/csv', metadata: { kept: 'yes' } })
    const sidecars = async () => {
      const entries = await fs.readdir(path.join(root, '.rstorage/sidecars'), { recursive: true, withFileTypes: true })
      return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name)).sort()
    }
    const before = await sidecars()
    await assert.rejects(backend.move('mover.txt', 'blocker/inside.txt'), KeyConflictError)
    await assert.rejects(backend.put('blocker/typed.txt', 'x', { contentType: 'text/plain', metadata: { a: 'b' } }), KeyConflictError)
    assert.deepEqual(await sidecars(), before, 'a failed write or move left a sidecar behind')
    const info = await backend.stat('mover.txt')
    assert.equal(info.contentType, 'text/csv')
    assert.deepEqual(info.metadata, { kept: 'yes' })
    await backend.move('mover.txt', 'moved/mover.txt')
    assert.equal((await backend.stat('moved/mover.txt')).contentType, 'text/csv')
  })

  it('opens off the event loop: the constructor returns at once and ready() reports a root it cannot use', async () => {
    const file = path.join(root, 'not-a-folder')
    await fs.writeFile(file, 'x')
    const started = process.hrtime.bigint()
    const broken = new LocalStorageBackend(path.join(file, 'store'))
    assert.ok(process.hrtime.bigint() - started < 50_000_000n)
    const unusable = (e) => e instanceof ConfigurationError && e.statusCode === 500 && e.message.includes(file)
    await assert.rejects(broken.ready(), unusable)
    await assert.rejects(broken.put('k', 'x'), unusable)
  })

  it('opens a store whose signing secret a crash left empty, and replaces it', async () => {
    const own = await tempDir('empty-secret')
    try {
      await fs.mkdir(path.join(own, '.rstorage'), { recursive: true })
      await fs.writeFile(path.join(own, '.rstorage/signing-secret'), '')
      const store = new LocalStorageBackend(own)
      await store.ready()
      const { url } = await store.getSignedUrl('k')
      assert.match(url, /X-Signature=[0-9a-f]{64}/)
      assert.match(await fs.readFile(path.join(own, '.rstorage/signing-secret'), 'utf8'), /^[0-9a-f]{64}$/)
      const again = new LocalStorageBackend(own)
      assert.equal((await again.getSignedUrl('k', { expiresIn: 60 })).url.length, (await store.getSignedUrl('k', { expiresIn: 60 })).url.length)
    } finally {
      await fs.rm(own, { recursive: true, force: true })
    }
  })

  it('sweeps the temp files of dead writers when it opens, never one a live writer holds', async () => {
    const own = await tempDir('sweep')
    let holder
    try {
      await new LocalStorageBackend(own).ready()
      const tmp = path.join(own, '.rstorage/tmp')
      await fs.writeFile(path.join(tmp, 'abandoned'), Buffer.alloc(1000))
      await fs.writeFile(path.join(tmp, 'held'), Buffer.alloc(1000))
      // Another process holding its temp file's lock, as a live writer does.
      // -o: the lock stays with flock itself, not with the command it runs.
      holder = spawn('flock', ['-o', path.join(tmp, 'held'), 'sleep', '30'], { stdio: 'ignore' })
      await new Promise((resolve) => setTimeout(resolve, 200))
      const reopened = new LocalStorageBackend(own)
      await reopened.ready()
      assert.deepEqual(await fs.readdir(tmp), ['held'])
      holder.kill('SIGKILL')
      await new Promise((resolve) => holder.once('exit', resolve))
      assert.equal(await reopened.deleteIncompleteUploads(), 1)
      assert.deepEqual(await fs.readdir(tmp), [])
    } finally {
      holder?.kill('SIGKILL')
      await fs.rm(own, { recursive: true, force: true })
    }
  })

  it('a failed or cancelled write leaves no temp file, even when the body fails before the writer starts', async () => {
    for (let i = 0; i < 50; i++) {
      const body = (async function* () {
        if (i % 2) yield Buffer.alloc(10)
        throw new Error('client went away')
      })()
      await assert.rejects(backend.upload({ key: `early-${i}`, body }), /client went away/)
    }
    assert.deepEqual(await tempsLeft(root), [])
  })
})
