// Streams 1 GiB up and back down through pipelines and reports peak RSS growth as JSON.
import crypto from 'node:crypto'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fixtures } from '../fixtures.mjs'
import { patternSource } from '../generated.mjs'

const [name] = process.argv.slice(2)
const TOTAL = 1 << 30

const { backend, cleanup } = await fixtures.find((f) => f.name === name).create()
const baseline = process.memoryUsage().rss
let peak = baseline
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 20)

const upHash = crypto.createHash('sha256')
const src = patternSource(TOTAL)
src.on('data', (c) => upHash.update(c))
let uploaded = 0
await backend.upload({ key: 'large/1gib.bin', body: src, contentType: 'application/octet-stream', onProgress: (p) => (uploaded = p.loaded) })

const downHash = crypto.createHash('sha256')
let downloaded = 0
await pipeline(
  await backend.download('large/1gib.bin'),
  new Writable({
    write(chunk, _enc, done) {
      downloaded += chunk.length
      downHash.update(chunk)
      done()
    },
  }),
)
clearInterval(sampler)
peak = Math.max(peak, process.memoryUsage().rss)
await backend.delete('large/1gib.bin')
await cleanup()
console.log(
  JSON.stringify({
    uploaded,
    downloaded,
    digestsMatch: upHash.digest('hex') === downHash.digest('hex'),
    rssGrowthMB: Math.round((peak - baseline) / 1e6),
  }),
)
