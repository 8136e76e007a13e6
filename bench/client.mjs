// One measurement in its own process: `node bench/client.mjs <peer> <workload> <arg>`.
// Prints { wallMs, cpuMs, maxRssMB, ... } as JSON; CPU and peak RSS cover every thread.
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

const [peerName, workload, arg] = process.argv.slice(2)
const env = JSON.parse(process.env.BENCH_ENV)
// `raptscallions-<variant>` is this package in another configuration (see peers/raptscallions.mjs).
const [moduleName, variant] = peerName.startsWith('raptscallions-') ? ['raptscallions', peerName.slice(14)] : [peerName]
const module = await import(`./peers/${moduleName}.mjs`)
const peer = module.create(env, { variant })

async function pool(count, concurrency, task) {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await task(next++)
  }))
}

function measure(fn) {
  return async () => {
    const cpu = process.cpuUsage()
    const start = process.hrtime.bigint()
    const extra = await fn()
    const wallMs = Number(process.hrtime.bigint() - start) / 1e6
    const used = process.cpuUsage(cpu)
    return { wallMs, cpuMs: (used.user + used.system) / 1000, ...extra }
  }
}

const workloads = {
  // arg: a file to upload as a stream of unknown length.
  upload: measure(async () => {
    await peer.upload(arg, `large/${peerName}`)
  }),
  // arg: the key to download through a Node stream.
  download: measure(async () => {
    let bytes = 0
    const stream = await peer.download(arg)
    await pipeline(stream, new Writable({ write: (chunk, _e, done) => ((bytes += chunk.length), done()) }))
    return { bytes }
  }),
  // arg: "count,size,concurrency"; put, get, head, delete each key; one figure per phase.
  small: async () => {
    const [count, size, concurrency] = arg.split(',').map(Number)
    const data = Buffer.alloc(size, 7)
    const key = (i) => `small/${peerName}/${i}`
    const phases = {}
    for (const [name, op] of [['put', (i) => peer.put(key(i), data)], ['get', (i) => peer.get(key(i))], ['head', (i) => peer.head(key(i))], ['delete', (i) => peer.delete(key(i))]]) {
      phases[name] = await measure(() => pool(count, concurrency, op))()
    }
    const total = Object.values(phases).reduce((a, p) => ({ wallMs: a.wallMs + p.wallMs, cpuMs: a.cpuMs + p.cpuMs }), { wallMs: 0, cpuMs: 0 })
    return { ...total, ops: count * 4, phases }
  },
  // arg: "count,size,concurrency"; that many puts at once, each of a buffer of its own (as
  // bodies of different requests are), with their latencies.
  concurrent: measure(async () => {
    const [count, size, concurrency] = arg.split(',').map(Number)
    const latencies = []
    await pool(count, concurrency, async (i) => {
      const data = Buffer.alloc(size, i)
      const start = performance.now()
      await peer.put(`concurrent/${peerName}/${i}`, data)
      latencies.push(performance.now() - start)
    })
    latencies.sort((a, b) => a - b)
    const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]
    return { ops: count, p50Ms: at(0.5), p99Ms: at(0.99) }
  }),
  // arg: a prefix; every key under it listed and counted.
  list: measure(async () => ({ ops: await peer.count(arg) })),
  // arg: "prefix,count"; every object under the prefix deleted.
  deleteprefix: measure(async () => {
    const [prefix, count] = arg.split(',')
    await peer.deletePrefix(prefix)
    return { ops: Number(count) }
  }),
  // arg: how many signed GET URLs to make.
  presign: measure(async () => {
    const count = Number(arg)
    for (let i = 0; i < count; i++) await peer.presign(`signed/${i % 1000}.bin`)
    return { ops: count }
  }),
}

const result = await workloads[workload]()
result.maxRssMB = Math.round(process.resourceUsage().maxRSS / 1024)
process.stdout.write(`${JSON.stringify(result)}\n`)
