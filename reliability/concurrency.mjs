// Concurrency harness for one store: bursts of 1,000 concurrent uploads, reads and deletes,
// run round after round in a child process that samples file descriptors and RSS to see
// whether they level off; then 50 writers racing one key and 50 `ifNotExists` racers on fresh
// keys.
//
//   runConcurrency({ fixtureName: 'memory', log: console.log }) → figures (see the end of the file)
//
// Nothing here throws on a defect: every error or mismatch is counted by kind, the first of
// each kind kept as an example, so one run shows everything that is wrong.
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { FileAlreadyExistsError } from '../index.mjs'
import { fixtures } from '../__test__/fixtures.mjs'

const KiB = 1024
const MAX_BODY = 256 * KiB
/** Sizes every burst includes: empty, one byte, either side of the JS layer's 64 KiB coalescing, the largest. */
const EDGE_SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, MAX_BODY]
const CONTENT_TYPES = ['application/octet-stream', 'text/plain', 'image/png', 'application/json']
/** A hang, not a slow answer: past the S3 client's own 60 s read timeout, so its error shows first. */
const OP_DEADLINE_MS = 90_000
const MAX_EXAMPLES = 12

const RACE_ROUNDS = 5
const CREATE_RACE_BODIES = ['buffer', 'stream', 'mixed', 'buffer', 'stream', 'mixed']
/** Case 1 runs this many times, in a child process; the level-off verdict reads rounds 5 to the last. */
const BURST_ROUNDS = 8
/** Rounds that warm up connection pools, thread pools and allocator arenas: one-offs, not leaks. */
const WARM_ROUNDS = 4
const CHILD_TIMEOUT_MS = 360_000
/** Let closed sockets and finished blocking threads go before sampling. */
const SETTLE_MS = 1_000
/**
 * Level-off limits on the growth from round 5 to the last (the first rounds warm connection
 * pools, thread pools and allocator arenas, and the allocator may hand memory back between
 * them: on moto, round 2 once read 157 MB between 181 and 191, and once the warm-up lasted
 * four rounds, 163, 165, 170, 184, 210, 212, where every other store starts near 210), read off
 * a least-squares line through rounds 5…8 so that one noisy sample can neither make nor hide
 * a trend.
 * Descriptors are exact: healthy stores show the same count every round, while a leak of one
 * descriptor per hundred operations adds 50 a round (150 over three). RSS after a GC moves
 * by up to ~20 MB from round to round on a healthy store (fitted growth measured on memory
 * and local: −10 to 30 MB over 15 runs), while keeping one copy of what a round reads with
 * `get` (~21 MB a round) measured 53–71 MB. 40 MB sits between the two.
 */
export const LIMITS = { fdGrowth: 16, rssGrowthMB: 40 }

/** Counts failures by kind and keeps the first example of each kind. */
class Tally {
  counts = {}
  examples = []

  add(kind, detail = {}) {
    if (!(kind in this.counts) && this.examples.length < MAX_EXAMPLES) this.examples.push({ kind, ...detail })
    this.counts[kind] = (this.counts[kind] ?? 0) + 1
  }

  merge(other) {
    for (const [kind, count] of Object.entries(other.counts)) this.counts[kind] = (this.counts[kind] ?? 0) + count
    for (const example of other.examples) {
      if (!this.examples.some((e) => e.kind === example.kind) && this.examples.length < MAX_EXAMPLES) this.examples.push(example)
    }
  }
}

class DeadlineError extends Error {
  name = 'DeadlineError'
}

function withDeadline(promise) {
  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`no answer within ${OP_DEADLINE_MS / 1000} s`)), OP_DEADLINE_MS)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

const describeError = (error) => `${error?.name ?? typeof error}${error?.code ? ` ${error.code}` : ''}`
const errorDetail = (error) => ({ error: String(error?.message ?? error).slice(0, 300), statusCode: error?.statusCode })

/** mulberry32: a burst's sizes are reproducible from its seed. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function sameRecord(a, b) {
  const keys = Object.keys(a ?? {})
  return keys.length === Object.keys(b ?? {}).length && keys.every((k) => a[k] === b[k])
}

function firstDifference(got, expected) {
  const n = Math.min(got.length, expected.length)
  for (let i = 0; i < n; i++) if (got[i] !== expected[i]) return i
  return n
}

async function readAll(stream) {
  const parts = []
  for await (const chunk of stream) parts.push(chunk)
  return Buffer.concat(parts)
}

/** Chunks of `data`, yielding to the event loop between them so concurrent uploads interleave. */
async function* chunked(data, size) {
  for (let at = 0; at < data.length; at += size) {
    yield data.subarray(at, at + size)
    await tick()
  }
}

/** A streamed body in one of the shapes `upload` accepts. */
function streamBody(data, shape, chunkSize) {
  if (shape === 'readable') return Readable.from(chunked(data, chunkSize))
  if (shape === 'web') return Readable.toWeb(Readable.from(chunked(data, chunkSize)))
  return chunked(data, chunkSize)
}

const digestOf = (data) => crypto.createHash('sha256').update(data).digest('hex').slice(0, 16)

/** The objects of one burst: distinct keys, sizes 0–256 KiB (mostly small), four body shapes. */
function planBurst(count, prefix, seed) {
  const rand = random(seed)
  const shapes = ['buffer', 'readable', 'iterable', 'web']
  return Array.from({ length: count }, (_, i) => {
    // Log-uniform: every power of two as likely, so about half are under 1 KiB; ~21 KiB on average.
    const size = i < EDGE_SIZES.length ? EDGE_SIZES[i] : Math.floor(Math.exp(rand() * Math.log(MAX_BODY + 1))) - 1
    const data = crypto.randomBytes(size)
    return {
      key: `${prefix}/${String(i).padStart(4, '0')}-${size}.bin`,
      data,
      shape: shapes[i % shapes.length],
      chunkSize: [KiB, 16 * KiB, 64 * KiB + 7][i % 3],
      statedLength: i % 8 >= 4,
      contentType: i % 5 === 4 ? `application/x-burst-${i}` : CONTENT_TYPES[i % CONTENT_TYPES.length],
      // Every fifth object has no metadata: the store must then report none.
      metadata: i % 5 === 0 ? undefined : { index: String(i), size: String(size), digest: digestOf(data) },
    }
  })
}

function uploadObject(backend, o) {
  const options = { contentType: o.contentType, metadata: o.metadata }
  if (o.shape === 'buffer') return backend.put(o.key, o.data, options)
  return backend.upload({
    key: o.key,
    body: streamBody(o.data, o.shape, o.chunkSize),
    contentLength: o.statedLength ? o.data.length : undefined,
    ...options,
  })
}

/** The fields of `info` that do not match what object `o` was uploaded with. */
function wrongFields(info, o) {
  const wrong = []
  if (info.size !== o.data.length) wrong.push('size')
  if (info.contentType !== o.contentType) wrong.push('contentType')
  if (!sameRecord(info.metadata, o.metadata ?? {})) wrong.push('metadata')
  if (info.etag !== o.etag) wrong.push('etag')
  if (!(info.lastModified instanceof Date) || Math.abs(info.lastModified - Date.now()) > 10 * 60_000) wrong.push('lastModified')
  return wrong
}

/** Runs `task` on every item at once; a rejection is counted as `${phase}: <error class>`. */
async function allAtOnce(items, phase, tally, task) {
  await Promise.all(
    items.map((item) =>
      withDeadline(task(item)).catch((error) => tally.add(`${phase}: ${describeError(error)}`, { key: item.key, ...errorDetail(error) })),
    ),
  )
}

/** Case 1: every upload at once, then every read at once, then every delete at once. */
async function burst(backend, { count, prefix, seed, tally }) {
  const objects = planBurst(count, prefix, seed)
  const ms = {}
  let started = performance.now()
  await allAtOnce(objects, 'upload', tally, async (o) => {
    o.etag = (await uploadObject(backend, o)).etag
  })
  ms.upload = performance.now() - started

  // 1,000 concurrent readers, each reading its object three ways in turn: get (bytes),
  // download (bytes and the stream's info), stat (fields). Every byte and field is checked.
  const checkBytes = (op, o, got) => {
    if (!got.equals(o.data)) {
      tally.add(`${op}: bytes differ`, { key: o.key, size: o.data.length, gotSize: got.length, firstDifference: firstDifference(got, o.data) })
    }
  }
  const checkFields = (op, o, info) => {
    for (const field of wrongFields(info, o)) {
      tally.add(`${op}: ${field} differs`, { key: o.key, expected: field === 'size' ? o.data.length : o[field], got: info[field] })
    }
  }
  started = performance.now()
  await allAtOnce(objects, 'read', tally, async (o) => {
    checkBytes('get', o, await backend.get(o.key))
    const stream = await backend.download(o.key)
    checkFields('download', o, stream.info)
    checkBytes('download', o, await readAll(stream))
    checkFields('stat', o, await backend.stat(o.key))
  })
  ms.read = performance.now() - started

  started = performance.now()
  await allAtOnce(objects, 'delete', tally, (o) => backend.delete(o.key))
  ms.delete = performance.now() - started
  try {
    for await (const left of backend.listAll({ prefix: `${prefix}/` })) tally.add('delete: object still listed', { key: left.key })
  } catch (error) {
    tally.add(`list: ${describeError(error)}`, errorDetail(error))
  }
  for (const phase in ms) ms[phase] = Math.round(ms[phase])
  return { ops: objects.length * 5 + 1, ms }
}

/** Racer `id`'s object: every byte is `id` and the size is its own, so a mix of racers shows. */
const racerSize = (id) => 32 * KiB + id * 7919
const racerBytes = (id) => Buffer.alloc(racerSize(id), id)
const racerFields = (id) => ({ contentType: `application/x-racer-${id}`, metadata: { racer: String(id) } })

/** Reads back a raced key: whose bytes it holds, and which parts do not all belong to that racer. */
async function racedObject(backend, key, etagOf, atomicMetadata) {
  const [data, info] = await Promise.all([backend.get(key), backend.stat(key)])
  const id = data.length > 0 ? data[0] : 0
  const wrong = []
  if (data.length !== racerSize(id) || !data.equals(racerBytes(id))) wrong.push('bytes')
  if (info.size !== data.length) wrong.push('size')
  if (atomicMetadata) {
    const fields = racerFields(id)
    if (info.contentType !== fields.contentType) wrong.push('contentType')
    if (!sameRecord(info.metadata, fields.metadata)) wrong.push('metadata')
    if (info.etag !== etagOf(id)) wrong.push('etag')
  }
  const found = {
    racer: id,
    size: data.length,
    firstDifference: firstDifference(data, racerBytes(id)),
    contentType: info.contentType,
    metadata: info.metadata,
  }
  return { id, wrong, found }
}

/** Case 2: `writers` streamed uploads to one key at once, `rounds` times (round 1 creates it, later rounds overwrite). */
async function writerRaces(backend, { writers, rounds, atomicMetadata, tally }) {
  const key = 'race/one-key.bin'
  let ops = 0
  for (let round = 1; round <= rounds; round++) {
    const ids = Array.from({ length: writers }, (_, i) => i + 1) // ids from 1: a zero-filled hole is no writer's
    const etags = new Map()
    await allAtOnce(ids.map((id) => ({ id, key })), 'race upload', tally, async ({ id }) => {
      const body = streamBody(racerBytes(id), id % 2 ? 'readable' : 'iterable', 16 * KiB)
      etags.set(id, (await backend.upload({ key, body, ...racerFields(id) })).etag)
    })
    try {
      const { wrong, found } = await racedObject(backend, key, (id) => etags.get(id), atomicMetadata)
      for (const part of wrong) tally.add(`race: ${part} not the winner's`, { round, ...found })
    } catch (error) {
      tally.add(`race read: ${describeError(error)}`, { round, ...errorDetail(error) })
    }
    ops += writers + 2
  }
  return { ops }
}

const isAlreadyExists = (error) =>
  error instanceof FileAlreadyExistsError && error.code === 'FILE_ALREADY_EXISTS' && error.statusCode === 409

/** Case 3: `racers` uploads with ifNotExists to each fresh key; exactly one may succeed. */
async function createRaces(backend, { racers, bodies, atomicMetadata, tally }) {
  const winnersPerKey = []
  let ops = 0
  for (const [n, bodyKind] of bodies.entries()) {
    const key = `create/${n}-${bodyKind}.bin`
    const winners = []
    const etags = new Map()
    await Promise.all(
      Array.from({ length: racers }, (_, i) => i + 1).map(async (id) => {
        const streamed = bodyKind === 'stream' || (bodyKind === 'mixed' && id % 2 === 0)
        const body = streamed ? streamBody(racerBytes(id), 'readable', 16 * KiB) : racerBytes(id)
        try {
          etags.set(id, (await withDeadline(backend.upload({ key, body, ifNotExists: true, ...racerFields(id) }))).etag)
          winners.push(id)
        } catch (error) {
          if (!isAlreadyExists(error)) tally.add(`ifNotExists: rejected with ${describeError(error)}`, { key, racer: id, ...errorDetail(error) })
        }
      }),
    )
    winnersPerKey.push(winners.length)
    if (winners.length !== 1) tally.add(`ifNotExists: ${winners.length} winners`, { key, bodyKind, winners })
    try {
      const { id, wrong, found } = await racedObject(backend, key, (racer) => etags.get(racer), atomicMetadata)
      if (!winners.includes(id)) tally.add('ifNotExists: stored object is not a winner\'s', { key, winners, ...found })
      for (const part of wrong) tally.add(`ifNotExists: ${part} not the winner's`, { key, ...found })
    } catch (error) {
      tally.add(`ifNotExists read: ${describeError(error)}`, { key, ...errorDetail(error) })
    }
    ops += racers + 2
  }
  return { ops, winnersPerKey }
}

const openFds = () => fs.readdirSync('/proc/self/fd').length

/**
 * Cases 1 and 4, in a child process so the samples see only this work: a burst per round,
 * then descriptors and RSS once the round has settled.
 */
async function burstRounds({ fixtureName, rounds, scale }) {
  const { backend, cleanup } = await fixtures.find((f) => f.name === fixtureName).create()
  // Stopped by the parent's timeout: stop the store's server too, or it outlives us.
  process.once('SIGTERM', () => cleanup().finally(() => process.exit(1)))
  const tally = new Tally()
  const result = { ops: 0, fds: [], rssMB: [], roundMs: [], gc: typeof globalThis.gc === 'function' }
  for (let round = 1; round <= rounds; round++) {
    const { ops, ms } = await burst(backend, { count: Math.round(1000 * scale), prefix: `round-${round}`, seed: round, tally })
    result.ops += ops
    result.roundMs.push(ms)
    await sleep(SETTLE_MS)
    for (let i = 0; i < 2; i++) {
      globalThis.gc?.()
      await tick()
    }
    result.fds.push(openFds())
    result.rssMB.push(Math.round(process.memoryUsage().rss / 1e6))
  }
  await cleanup()
  return { ...result, failures: tally.counts, examples: tally.examples }
}

const thisFile = fileURLToPath(import.meta.url)

async function burstRoundsInChild({ fixtureName, rounds, scale }) {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', thisFile, '--rounds', fixtureName, String(rounds), String(scale)],
    { timeout: CHILD_TIMEOUT_MS, maxBuffer: 1 << 20 },
  )
  return JSON.parse(stdout.trim().split('\n').at(-1))
}

/** Growth over the rounds after the warm ones, along a least-squares line through them. */
function fittedGrowth(series) {
  const ys = series.slice(WARM_ROUNDS)
  const meanX = (ys.length - 1) / 2
  const meanY = ys.reduce((sum, y) => sum + y, 0) / ys.length
  let sxy = 0
  let sxx = 0
  ys.forEach((y, x) => {
    sxy += (x - meanX) * (y - meanY)
    sxx += (x - meanX) ** 2
  })
  return Math.round((sxy / sxx) * (ys.length - 1))
}

function levelOff(fds, rssMB) {
  const fdGrowth = fittedGrowth(fds)
  const rssGrowthMB = fittedGrowth(rssMB)
  return { fdGrowth, fdsLevelOff: fdGrowth <= LIMITS.fdGrowth, rssGrowthMB, rssLevelsOff: rssGrowthMB < LIMITS.rssGrowthMB, limits: LIMITS }
}

/**
 * Runs the four cases against one fixture and returns:
 * { store, ops, failures, examples, raceRounds, raceFailures, ifNotExistsWinners,
 *   ifNotExistsFailures, fds, rssMB, roundMs, levelOff, metadataChecked, ms }
 * `failures` counts case 1 over every round, `raceFailures` case 2, `ifNotExistsFailures`
 * case 3; `examples` holds the first of each kind across all three. `levelOff` is null when
 * the rounds did not all run. `scale` multiplies the burst size and the number of racers
 * (1: 1,000 and 50).
 */
export async function runConcurrency({ fixtureName, scale = 1, log = () => {} }) {
  const fixture = fixtures.find((f) => f.name === fixtureName)
  if (!fixture) throw new Error(`no fixture named ${fixtureName}`)
  const { atomicMetadata } = fixture
  const racers = Math.max(2, Math.round(50 * scale))
  const failures = new Tally()
  const raceFailures = new Tally()
  const ifNotExistsFailures = new Tally()
  const ms = {}
  const timed = async (name, fn) => {
    const started = performance.now()
    try {
      return await fn()
    } finally {
      ms[name] = Math.round(performance.now() - started)
    }
  }

  let rounds
  try {
    rounds = await timed('bursts', () => burstRoundsInChild({ fixtureName, rounds: BURST_ROUNDS, scale }))
  } catch (error) {
    failures.add(`bursts: child failed (${error.signal ?? error.code ?? error.name})`, { error: String(error.stderr || error.message).slice(-600) })
    rounds = { ops: 0, fds: [], rssMB: [], roundMs: [], failures: {}, examples: [] }
  }
  failures.merge({ counts: rounds.failures, examples: rounds.examples })
  const phaseMs = rounds.roundMs.map((r) => `${r.upload}/${r.read}/${r.delete}`).join(', ')
  log(`${BURST_ROUNDS} bursts of ${Math.round(1000 * scale)} (upload/read/delete ms: ${phaseMs}): failures ${JSON.stringify(failures.counts)}`)
  log(`fds after each round ${JSON.stringify(rounds.fds)}, RSS MB ${JSON.stringify(rounds.rssMB)}`)

  const { backend, cleanup } = await fixture.create()
  let races, creates
  try {
    races = await timed('race', () => writerRaces(backend, { writers: racers, rounds: RACE_ROUNDS, atomicMetadata, tally: raceFailures }))
    const checked = atomicMetadata ? '' : ' (bytes only: this store writes metadata separately)'
    log(`${racers} writers × ${RACE_ROUNDS} rounds${checked}: failures ${JSON.stringify(raceFailures.counts)}`)
    creates = await timed('ifNotExists', () =>
      createRaces(backend, { racers, bodies: CREATE_RACE_BODIES, atomicMetadata, tally: ifNotExistsFailures }),
    )
    log(`ifNotExists × ${racers} racers: winners ${JSON.stringify(creates.winnersPerKey)}, failures ${JSON.stringify(ifNotExistsFailures.counts)}`)
  } finally {
    await cleanup()
  }

  const examples = new Tally()
  for (const tally of [failures, raceFailures, ifNotExistsFailures]) examples.merge(tally)
  return {
    store: fixtureName,
    ops: rounds.ops + races.ops + creates.ops,
    failures: failures.counts,
    examples: examples.examples,
    raceRounds: RACE_ROUNDS,
    raceFailures: raceFailures.counts,
    ifNotExistsWinners: creates.winnersPerKey,
    ifNotExistsFailures: ifNotExistsFailures.counts,
    fds: rounds.fds,
    rssMB: rounds.rssMB,
    roundMs: rounds.roundMs,
    levelOff: rounds.fds.length === BURST_ROUNDS ? levelOff(rounds.fds, rounds.rssMB) : null,
    metadataChecked: atomicMetadata,
    ms,
  }
}

if (process.argv[1] === thisFile && process.argv[2] === '--rounds') {
  const [fixtureName, rounds, scale] = process.argv.slice(3)
  console.log(JSON.stringify(await burstRounds({ fixtureName, rounds: Number(rounds), scale: Number(scale) })))
}
