// Peak memory of many uploads at once against the memory budget: a measurement, not a test.
// Sends `--uploads` generated bodies of unknown length (`--mib` each, so multipart, 8 MiB × 4
// parts per upload) all at once and prints the process's peak RSS against its baseline and the
// budget as JSON. The server: s3s-fs (`--server s3s-fs`, the default), which keeps every part on
// disk, so each object is deleted once stored and the disk holds only the uploads in progress;
// or bench/sink's S3 sink (`--server sink`), which keeps nothing, for sizes the disk cannot hold.
// Build with `npm run build` (release) first.
// Usage: node bench/budget.mjs [--uploads 100] [--mib 64] [--budget-mib N | --budget-mib none] [--server sink]
// (`none`: a budget no upload reaches, as before there was one).
import { memoryBudget, S3StorageBackend, setMemoryBudget } from '../index.mjs'
import { fixtures } from '../__test__/fixtures.mjs'
import { patternSource } from '../__test__/generated.mjs'
import { buildSink, startSink } from './sink.mjs'

const MiB = 1 << 20
const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 ? process.argv[at + 1] : fallback
}
const uploads = Number(option('uploads', 100))
const size = Number(option('mib', 64)) * MiB
const budgetMib = option('budget-mib', undefined)
const server = option('server', 's3s-fs')
if (budgetMib === 'none') setMemoryBudget(2 ** 50)
else if (budgetMib !== undefined) setMemoryBudget(Number(budgetMib) * MiB)

// Uploads that share a budget finish together, and s3s-fs then takes longer than the default
// 20 s to answer a hundred CompleteMultipartUploads at once; a retry of one it did complete
// is refused (AccessDenied: it knows the upload no more).
const stallTimeout = 120
const { backend, cleanup } = server === 'sink' ? await startSinkServer() : await startS3sFs()

async function startS3sFs() {
  const s3sFs = fixtures.find((f) => f.name === 's3s-fs')
  const { place, cleanup } = await s3sFs.provision()
  return { backend: s3sFs.open(place, { stallTimeout }), cleanup }
}

async function startSinkServer() {
  await buildSink()
  const { child, port } = await startSink('s3-sink')
  const backend = new S3StorageBackend({
    bucket: 'sink', region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, stallTimeout,
    credentials: { accessKeyId: 'sink', secretAccessKey: 'sink' },
  })
  return { backend, cleanup: () => child.kill() }
}

// The baseline: the addon, the runtime and a connection pool warmed by one small upload.
await backend.upload({ key: 'warm-up', body: Buffer.alloc(1024), contentType: 'application/octet-stream' })
await backend.delete('warm-up')
const baseline = process.memoryUsage().rss
let peak = baseline
let mostWaiting = 0
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
  mostWaiting = Math.max(mostWaiting, memoryBudget().waiting)
}, 20)

const started = performance.now()
try {
  await Promise.all(
    Array.from({ length: uploads }, async (_, n) => {
      const key = `budget/${n}.bin`
      await backend.upload({ key, body: patternSource(size), contentType: 'application/octet-stream' })
      await backend.delete(key)
    }),
  )
} finally {
  clearInterval(sampler)
  await cleanup()
}
const seconds = (performance.now() - started) / 1000
const budget = memoryBudget()
console.log(
  JSON.stringify({
    uploads,
    mibEach: size / MiB,
    budgetMiB: budget.limit / MiB,
    budgetPeakMiB: budget.peak / MiB,
    mostWaiting,
    baselineMiB: Math.round(baseline / MiB),
    peakRssMiB: Math.round(peak / MiB),
    growthMiB: Math.round((peak - baseline) / MiB),
    seconds: Math.round(seconds),
    mibPerSecond: Math.round((uploads * size) / MiB / seconds),
  }),
)
