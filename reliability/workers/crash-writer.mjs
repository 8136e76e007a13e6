// Writes to a local store until it is killed. Each lane writes its own keys one write at a
// time; every write is reported before it starts and again once acknowledged, and each report
// reaches the pipe before the lane goes on, so the parent knows every acknowledged write.
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { LocalStorageBackend } from '../../index.mjs'
import { bodyOf, contentTypeOf, metadataOf } from '../writes.mjs'

const { root, durable, trial, lanes } = JSON.parse(process.argv[2])
const MiB = 1 << 20
const SIZES = [0, 1, 8191, 65535, 65537, MiB, 3 * MiB + 17]
const TINY_SIZES = [0, 1, 100, 8191]
// Metadata up to what every store accepts (2 KiB, names and values together).
const PADS = [0, 100, 1000, 1900]

const pick = (list) => list[Math.floor(Math.random() * list.length)]
const report = (message) => fs.writeSync(1, `${JSON.stringify(message)}\n`)

/** Hot keys take many small overwrites with large metadata; other keys take bodies of every size. */
function plan(key, id) {
  if (key.startsWith('hot/')) return { id, key, size: pick(TINY_SIZES), pad: pick(PADS), source: 'buffer' }
  const size = Math.random() < 0.15 ? Math.floor(Math.random() * 8 * MiB) : pick(SIZES)
  const source = pick(size <= MiB ? ['buffer', 'generator', 'readable', 'web'] : ['generator', 'readable', 'web'])
  return { id, key, size, pad: pick(PADS.slice(0, 3)), source }
}

/** Splits a body into chunks: single bytes, fixed sizes around 64 KiB, or random sizes. */
function chunksOf(body) {
  const sizing = pick(body.length <= 8191 ? ['byte', 'fixed', 'random'] : ['fixed', 'random'])
  const fixed = pick([4096, 65535, 65536, 65537, MiB])
  const chunks = []
  for (let at = 0; at < body.length; ) {
    const size = sizing === 'byte' ? 1 : sizing === 'fixed' ? fixed : 1 + Math.floor(Math.random() * 300_000)
    chunks.push(body.subarray(at, at + size))
    at += size
  }
  return chunks
}

/** The body as a Buffer, an async generator, a Node Readable or a web ReadableStream. */
function sourceOf(spec, body) {
  const chunks = chunksOf(body)
  async function* generate() {
    yield* chunks
  }
  switch (spec.source) {
    case 'buffer':
      return body
    case 'generator':
      return generate()
    case 'readable':
      return Readable.from(generate(), { objectMode: false })
    case 'web': {
      let next = 0
      return new ReadableStream({
        pull(controller) {
          if (next < chunks.length) controller.enqueue(chunks[next++])
          else controller.close()
        },
      })
    }
  }
}

async function lane(store, index, keys) {
  for (let seq = 0; ; seq++) {
    const spec = plan(pick(keys), `${trial}.${index}.${seq}`)
    report({ t: 'begin', spec })
    const body = sourceOf(spec, bodyOf(spec))
    await store.upload({ key: spec.key, body, contentType: contentTypeOf(spec), metadata: metadataOf(spec) })
    report({ t: 'ack', id: spec.id })
  }
}

report({ t: 'opening', pid: process.pid })
const store = new LocalStorageBackend({ root, durable })
report({ t: 'open' })
try {
  await Promise.all(lanes.map((keys, index) => lane(store, index, keys)))
} catch (error) {
  report({ t: 'error', message: String(error?.stack ?? error) })
  process.exit(1)
}
