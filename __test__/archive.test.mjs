// downloadArchive on every store: zips that Info-ZIP's unzip accepts, holding the objects byte
// for byte; failures that never end as a zip that looks whole; a destroyed archive that lets go.
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { FileNotFoundError, InvalidArgumentError, InvalidKeyError, MemoryStorageBackend, StorageError } from '../index.mjs'
import { fixtures, tempDir } from './fixtures.mjs'
import { dosDate, entries, extract, save, unzipTest } from './zip.mjs'

const KiB = 1024
// Sizes at the edges: nothing, one byte, and either side of 64 KiB (a common buffer size).
const EDGE_SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1]

/** Counts calls of one backend method (the real one still runs). */
function countCalls(backend, method) {
  const original = backend[method].bind(backend)
  const calls = { count: 0 }
  backend[method] = (...args) => {
    calls.count++
    return original(...args)
  }
  return calls
}

/** Polls `condition` for up to 10 s: a server under load (moto, on shared cores) may take seconds to let a connection go. */
async function waitFor(condition, what) {
  for (let i = 0; i < 500; i++) {
    if (await condition()) return
    await sleep(20)
  }
  assert.fail(`timed out waiting until ${what}`)
}

for (const fixture of fixtures) {
  describe(`archive: ${fixture.name}`, () => {
    let backend
    let cleanup
    let held
    let dir
    let counter = 0
    const fresh = () => `z${++counter}`

    before(async () => {
      ;({ backend, cleanup, held } = await fixture.create())
      dir = await tempDir('archive')
    })
    after(async () => {
      await cleanup()
      await fs.rm(dir, { recursive: true, force: true })
    })

    it('archives a prefix, named relative to it, byte for byte and dated as the objects', async () => {
      const base = fresh()
      const objects = new Map(EDGE_SIZES.map((size) => [`${base}/docs/${size}.bin`, crypto.randomBytes(size)]))
      objects.set(`${base}/docs/nested/résumé ✓.txt`, Buffer.from('non-ASCII name'))
      for (const [key, body] of objects) await backend.put(key, body)
      // A sibling whose key starts with the prefix's text but not its folder stays out.
      await backend.put(`${base}/docs-old/x`, 'not mine')

      const file = await save(await backend.downloadArchive({ prefix: `${base}/docs/` }), path.join(dir, `${base}.zip`))
      const verdict = await unzipTest(file)
      assert.ok(verdict.ok, verdict.output)
      const files = await extract(file, path.join(dir, base))
      assert.deepEqual([...files.keys()].sort(), [...objects.keys()].map((k) => k.slice(`${base}/docs/`.length)).sort())
      for (const [key, body] of objects) assert.ok(files.get(key.slice(`${base}/docs/`.length)).equals(body), key)
      for (const entry of await entries(file)) {
        assert.equal(entry.method, 'stor')
        assert.equal(entry.date, dosDate((await backend.stat(`${base}/docs/${entry.name}`)).lastModified), entry.name)
      }
    })

    it('names entries from the prefix’s folder, or by whole keys with fullKeys', async () => {
      const base = fresh()
      for (const key of ['sub/a', 'sub-2/b', 'other/c']) await backend.put(`${base}/${key}`, key)
      const names = async (options) => {
        const file = await save(await backend.downloadArchive({ prefix: `${base}/sub` }, options), path.join(dir, `${fresh()}.zip`))
        return (await entries(file)).map((e) => e.name).sort()
      }
      assert.deepEqual(await names(), ['sub-2/b', 'sub/a'])
      assert.deepEqual(await names({ fullKeys: true }), [`${base}/sub-2/b`, `${base}/sub/a`])
    })

    it('archives named keys in their order, deflated when asked', async () => {
      const base = fresh()
      const keys = [`${base}/b.txt`, `${base}/a/one.txt`, `${base}/empty`]
      const bodies = [Buffer.from('b'.repeat(10_000)), crypto.randomBytes(70 * KiB), Buffer.alloc(0)]
      for (const [i, key] of keys.entries()) await backend.put(key, bodies[i])
      const file = await save(await backend.downloadArchive({ keys }, { compress: true }), path.join(dir, `${base}.zip`))
      assert.ok((await unzipTest(file)).ok)
      const listed = await entries(file)
      assert.deepEqual(listed.map((e) => e.name), keys)
      assert.equal(listed[0].method, 'defN')
      assert.ok((await fs.stat(file)).size < 70 * KiB + 2 * KiB, 'the repetitive entry was deflated')
      const files = await extract(file, path.join(dir, base))
      for (const [i, key] of keys.entries()) assert.ok(files.get(key).equals(bodies[i]), key)
    })

    it('fails with FileNotFoundError at a missing key, and what came out is no zip', async () => {
      const base = fresh()
      await backend.put(`${base}/first`, crypto.randomBytes(64 * KiB + 1))
      await backend.put(`${base}/last`, 'never reached')
      const archive = await backend.downloadArchive({ keys: [`${base}/first`, `${base}/missing`, `${base}/last`] })
      // Read as it comes, not through a file: a write stream destroyed by the failure drops
      // what it had not yet written, and the size would say nothing.
      const received = []
      const reading = (async () => {
        for await (const chunk of archive) received.push(chunk)
      })()
      await assert.rejects(reading, (error) => error instanceof FileNotFoundError && error.details.key === `${base}/missing`)
      const file = path.join(dir, `${base}.zip`)
      await fs.writeFile(file, Buffer.concat(received))
      assert.ok((await fs.stat(file)).size > 64 * KiB, 'the first entry was sent before the failure')
      const verdict = await unzipTest(file)
      assert.equal(verdict.ok, false, verdict.output)
      // Before any byte: a key no store takes, or a first object missing, rejects the call, so
      // a route answers it as it answers any error.
      await assert.rejects(backend.downloadArchive({ keys: [`${base}/first`, '../escape'] }), InvalidKeyError)
      await assert.rejects(backend.downloadArchive({ keys: [`${base}/missing`, `${base}/first`] }), FileNotFoundError)
    })

    it('destroyed early, closes the download in progress and opens no other', async () => {
      const base = fresh()
      await backend.put(`${base}/big`, Buffer.alloc(8 * 1024 * KiB, 1))
      await backend.put(`${base}/small`, 'small')
      const downloads = countCalls(backend, 'download')
      try {
        const archive = await backend.downloadArchive({ keys: [`${base}/big`, `${base}/small`] })
        await new Promise((resolve) => archive.once('readable', resolve))
        const during = await held?.()
        archive.destroy()
        await new Promise((resolve) => archive.once('close', resolve))
        if (held) await waitFor(async () => (await held()) < during, `the download is let go (${during} held while reading)`)
        await sleep(100)
        assert.equal(downloads.count, 1)
      } finally {
        delete backend.download
      }
    })
  })
}

for (const fixture of fixtures.filter((f) => ['local', 'memory'].includes(f.name))) {
  describe(`archive of many objects: ${fixture.name}`, () => {
    const COUNT = 1500 // two listing pages (1,000 objects a page)
    let backend
    let cleanup
    let dir
    const bodies = new Map()

    before(async () => {
      ;({ backend, cleanup } = await fixture.create())
      dir = await tempDir('archive-many')
      for (let i = 0; i < COUNT; i++) {
        const key = `many/${String(i).padStart(4, '0')}.txt`
        bodies.set(key, crypto.randomBytes(i % 200))
        await backend.put(key, bodies.get(key))
      }
    })
    after(async () => {
      await cleanup()
      await fs.rm(dir, { recursive: true, force: true })
    })

    it(`archives ${COUNT} objects, listing page by page`, { timeout: 120_000 }, async () => {
      const lists = countCalls(backend, 'list')
      try {
        const file = await save(await backend.downloadArchive({ prefix: 'many/' }), path.join(dir, 'many.zip'))
        assert.equal(lists.count, 2)
        assert.ok((await unzipTest(file)).ok)
        const files = await extract(file, path.join(dir, 'many'))
        assert.equal(files.size, COUNT)
        for (const [key, body] of bodies) assert.ok(files.get(key.slice('many/'.length)).equals(body), key)
      } finally {
        delete backend.list
      }
    })

    it('destroyed early, stops listing and opens no more downloads', async () => {
      const lists = countCalls(backend, 'list')
      const downloads = countCalls(backend, 'download')
      try {
        const archive = await backend.downloadArchive({ prefix: 'many/' })
        // Unread, the archive holds still once its buffers are full, well inside the first page.
        await new Promise((resolve) => archive.once('readable', resolve))
        await sleep(100)
        archive.destroy()
        await new Promise((resolve) => archive.once('close', resolve))
        await sleep(10)
        const opened = downloads.count
        assert.ok(opened > 0 && opened < 1000, `${opened} downloads`)
        await sleep(200)
        assert.equal(downloads.count, opened)
        assert.equal(lists.count, 1)
      } finally {
        delete backend.list
        delete backend.download
      }
    })
  })
}

for (const fixture of fixtures.filter((f) => f.name === 'local')) {
  describe(`archive failing mid-entry: ${fixture.name}`, () => {
    it('a read that fails inside an entry destroys the archive with the store’s error, and what came out is no zip', async () => {
      const { backend, cleanup } = await fixture.create()
      const dir = await tempDir('archive-cut')
      try {
        await backend.put('cut/big', Buffer.alloc(16 * 1024 * KiB, 1))
        await backend.put('cut/after', 'never reached')
        const archive = await backend.downloadArchive({ keys: ['cut/big', 'cut/after'] })
        await new Promise((resolve) => archive.once('readable', resolve))
        // Cut the file under the open download: the local store reads past the new end and fails.
        await fs.truncate(path.join(backend.root, 'cut/big'), 1024 * KiB)
        const file = path.join(dir, 'cut.zip')
        await assert.rejects(save(archive, file), (error) => error instanceof StorageError && /shrank/.test(error.message))
        assert.equal((await unzipTest(file)).ok, false)
      } finally {
        await cleanup()
        await fs.rm(dir, { recursive: true, force: true })
      }
    })
  })
}

describe('archive arguments', () => {
  it('takes { keys } or { prefix } and options of the right types', async () => {
    const backend = new MemoryStorageBackend()
    for (const source of [undefined, {}, { keys: [], prefix: 'a' }, { keys: 'a' }]) {
      await assert.rejects(backend.downloadArchive(source), InvalidArgumentError, JSON.stringify(source))
    }
    await assert.rejects(backend.downloadArchive({ keys: ['ok', 7] }), InvalidKeyError)
    await assert.rejects(backend.downloadArchive({ prefix: undefined }), InvalidKeyError)
    await assert.rejects(backend.downloadArchive({ keys: [] }, { compress: 'yes' }), InvalidArgumentError)
    await assert.rejects(backend.downloadArchive({ keys: [] }, { fullKeys: 1 }), InvalidArgumentError)
  })

  it('an archive of nothing is an empty zip', async () => {
    const dir = await tempDir('archive-empty')
    try {
      const file = await save(await new MemoryStorageBackend().downloadArchive({ prefix: 'nothing/' }), path.join(dir, 'empty.zip'))
      assert.equal((await fs.readFile(file)).length, 22, 'just the end of central directory record')
    } finally {
      await fs.rm(dir, { recursive: true, force: true })
    }
  })
})
