// Peak memory of many uploads at once against the memory budget: a measurement, not a test.
// Starts one s3s-fs, sends `--uploads` generated bodies of unknown length (`--mib` each, so
// multipart, 8 MiB × 4 parts per upload) all at once, deletes each object once it is stored
// (the disk holds only the uploads in progress), and prints the process's peak RSS against
// its baseline and the budget as JSON. Build with `npm run build` (release) first.
// Usage: node bench/budget.mjs [--uploads 100] [--mib 64] [--budget-mib N | --budget-mib none]
// (`none`: a budget no upload reaches, as before there was one).
import { memoryBudget, setMemoryBudget } from '../index.mjs'
import { fixtures } from '../__test__/fixtures.mjs'
import { patternSource } from '../__test__/generated.mjs'

const MiB = 1 << 20
const option = (name, fallback) => {
  const at = process.argv.indexOf(`--${name}`)
  return at > 0 ? process.argv[at + 1] : fallback
}
const uploads = Number(option('uploads', 100))
const size = Number(option('mib', 64)) * MiB
const budgetMib = option('budget-mib', undefined)
if (budgetMib === 'none') setMemoryBudget(2 ** 50)
else if (budgetMib !== undefined) setMemoryBudget(Number(budgetMib) * MiB)

const s3sFs = fixtures.find((f) => f.name === 's3s-fs')
const { place, cleanup } = await s3sFs.provision()
const backend = s3sFs.open(place, {
  // Uploads that share a budget finish together, and s3s-fs then takes longer than the default
  // 20 s to answer a hundred CompleteMultipartUploads at once; a retry of one it did complete
  // is refused (AccessDenied: it knows the upload no more).
  stallTimeout: 120,
})

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
