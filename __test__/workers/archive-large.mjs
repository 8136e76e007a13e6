// Archives one object of a fixture's store (at the place the parent made) into a zip file, and
// reports as JSON the peak RSS growth of this process while archiving, and the time it took.
import { fixtures } from '../fixtures.mjs'
import { save } from '../zip.mjs'

const [name, place, key, file] = process.argv.slice(2)
const backend = fixtures.find((f) => f.name === name).open(JSON.parse(place))
await backend.ready()
// An empty archive first, so that loading the zip modules is not counted as the archive's memory.
for await (const _chunk of await backend.downloadArchive({ keys: [] }));

const baseline = process.memoryUsage().rss
let peak = baseline
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss)
}, 20)
const started = Date.now()
await save(await backend.downloadArchive({ keys: [key] }), file)
const seconds = (Date.now() - started) / 1000
clearInterval(sampler)
peak = Math.max(peak, process.memoryUsage().rss)
console.log(JSON.stringify({ rssGrowthMiB: Math.round((peak - baseline) / 2 ** 20), seconds }))
