// A resumable upload of `total` bytes in `pieces` appends on an S3 fixture, each piece made as
// it is sent; reports peak RSS growth, whether the object reads back identical, and what the
// bucket holds afterwards (objects, and multipart uploads where the server lists them).
import crypto from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { BUCKET, fixtures } from '../fixtures.mjs'
import { ACCESS_KEY, SECRET_KEY } from '../servers.mjs'

const [name, totalArg, piecesArg] = process.argv.slice(2)
const [total, pieces] = [Number(totalArg), Number(piecesArg)]
const fixture = fixtures.find((f) => f.name === name)
const { place, cleanup } = await fixture.provision()
const backend = fixture.open(place)
const raw = new S3Client({
  endpoint: place.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
})

const baseline = process.memoryUsage().rss
let peak = baseline
const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)

// A pattern regenerated per chunk rather than held, so the source costs no memory.
const block = crypto.randomBytes(1 << 16)
function piece(start, end) {
  let at = start
  return new Readable({
    read() {
      if (at >= end) return this.push(null)
      const chunk = Buffer.from(block.subarray(0, Math.min(block.length, end - at)))
      chunk.writeUInt32LE(at >>> 0, 0)
      at += chunk.length
      this.push(chunk)
    },
  })
}

const sent = crypto.createHash('sha256')
const upload = await backend.createUpload({ key: 'large/resumed.bin', length: total })
const step = Math.ceil(total / pieces)
for (let offset = 0; offset < total; offset += step) {
  const end = Math.min(total, offset + step)
  const body = piece(offset, end)
  body.on('data', (c) => sent.update(c))
  await backend.appendUpload(upload.id, { offset, body })
}
await backend.completeUpload(upload.id)
clearInterval(sampler)

const received = crypto.createHash('sha256')
let downloaded = 0
await pipeline(await backend.download('large/resumed.bin'), new Writable({
  write(chunk, _e, done) {
    downloaded += chunk.length
    received.update(chunk)
    done()
  },
}))
// The completed upload's state stays (its bytes gone) until swept.
const keys = async () => ((await raw.send(new ListObjectsV2Command({ Bucket: BUCKET }))).Contents ?? []).map((o) => o.Key)
const afterCompletion = await keys()
await backend.deleteExpiredUploads(new Date(Date.now() + 86_400_000))
const afterSweep = await keys()
const uploads = fixture.name === 'moto' ? (await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [] : undefined
await cleanup()
console.log(JSON.stringify({
  downloaded,
  identical: sent.digest('hex') === received.digest('hex'),
  rssGrowthMB: Math.round((peak - baseline) / 1e6),
  afterCompletion,
  afterSweep,
  multipartUploads: uploads?.length,
}))
