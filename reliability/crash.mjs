// Crash harness for the local store: a child writes in a loop and is killed with SIGKILL at a
// random moment; then the store must open, every key must hold exactly one write it may hold
// (its last acknowledged one, or the one in flight at the kill) with that write's bytes, content
// type and metadata, and no temp file may outlive the next open.
//
// Kills at random times rarely land inside a commit's few microseconds, so some children run
// under strace with every syscall that makes a file visible (rename, link, unlink; in
// store-creation trials write too) held for a few milliseconds before it runs: the parent's kill
// still comes at a random time, but often lands between two steps of a commit. Only syscall
// kinds are named, nothing of the store's layout.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import { LocalStorageBackend } from '../index.mjs'
import { bodyOf, contentTypeOf, digest, idInBody, metadataOf } from './writes.mjs'

const WORKER = fileURLToPath(new URL('./workers/crash-writer.mjs', import.meta.url))
const KEYS = ['hot/a', 'hot/b', 'stream/a', 'stream/b', 'deep/x/y/z/c', 'mixed/1', 'mixed/2']
const DEFAULT_CONTENT_TYPE = 'application/octet-stream'
/** How long a store may take after opening to clear what killed writers left in its temp folder. */
const GRACE_MS = 2000
/** How long each stretched syscall is held. */
const STRETCH_MS = 4
// Not fsync: on a durable store it takes milliseconds anyway, and holding it only dilutes the
// chance that a kill lands between two renames.
const COMMIT_SYSCALLS = ['rename', 'renameat', 'renameat2', 'link', 'linkat', 'unlink', 'unlinkat']
// Store creation writes files it has just created: holding writes too lets a kill fall between.
const CREATE_SYSCALLS = [...COMMIT_SYSCALLS, 'write', 'pwrite64']
/** Room the store's own files may take: a secret, locks, and a sidecar per live key. */
const BASE_BUDGET = 64 * 1024
const MAX_EXAMPLES_PER_KIND = 3

const uniform = (low, high) => low + Math.random() * (high - low)
const logUniform = (low, high) => Math.exp(uniform(Math.log(low), Math.log(high)))

/** How a trial runs its child, and when (after which report, how many ms later) it kills it. */
function planTrial(freshRoot) {
  const r = Math.random()
  // Before, while or just after the store opens (or is created).
  const startup = { name: 'startup', stretch: null, from: 'spawn', delay: uniform(0, 400) }
  if (freshRoot) {
    // The kill falls among the first few held syscalls once the store starts opening.
    const delay = uniform(0, 3 * STRETCH_MS)
    return r < 0.75 ? { name: 'creation, stretched', stretch: CREATE_SYSCALLS, from: 'opening', delay } : startup
  }
  if (r < 0.15) return startup
  if (r < 0.6) return { name: 'writes, stretched', stretch: COMMIT_SYSCALLS, from: 'open', delay: logUniform(5, 500) }
  return { name: 'writes', stretch: null, from: 'open', delay: logUniform(5, 500) }
}

/**
 * Each hot key has a lane that overwrites it back to back (small bodies, large metadata: commits
 * close together); one or two more lanes share the other keys. Each key has one lane, so at most
 * one write in flight.
 */
function laneKeys() {
  const others = KEYS.filter((key) => !key.startsWith('hot/')).sort(() => Math.random() - 0.5)
  const lanes = Array.from({ length: 1 + Math.floor(Math.random() * 2) }, () => [])
  others.forEach((key, i) => lanes[i % lanes.length].push(key))
  return [...KEYS.filter((key) => key.startsWith('hot/')).map((key) => [key]), ...lanes]
}

/** Every regular file under a folder, with its size; a missing folder has none. */
async function filesUnder(dir) {
  let entries
  try {
    entries = await fs.readdir(dir, { withFileTypes: true, recursive: true })
  } catch (error) {
    if (error.code === 'ENOENT') return []
    throw error
  }
  const files = []
  for (const entry of entries.filter((e) => e.isFile())) {
    const file = path.join(entry.parentPath ?? entry.path, entry.name)
    const stat = await fs.stat(file).catch(() => null) // a store may remove it meanwhile
    if (stat) files.push({ file, size: stat.size })
  }
  return files
}

const internalDir = (root) => path.join(root, '.rstorage')
const tempDir = (root) => path.join(root, '.rstorage', 'tmp')

async function readObject(store, key) {
  let stream
  try {
    stream = await store.download(key)
  } catch (error) {
    if (error.code === 'FILE_NOT_FOUND') return null
    throw error
  }
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  return { info: stream.info, body: Buffer.concat(chunks) }
}

class CrashRun {
  failures = {}
  examples = []
  stats = { acknowledged: 0, inFlightFound: 0, freshRoots: 0, stretched: 0 }
  /** Per root: for each key, the write it must hold (`committed`) and the one in flight. */
  roots = []
  /** Temp files seen right after an open, to look for again once the grace has passed. */
  pendingTempChecks = []
  /** Each trial's plan name, for the examples. */
  plans = []
  specs = new Map()
  digests = new Map()

  constructor(durable, log) {
    this.durable = durable
    this.log = log
  }

  fail(kind, trial, detail) {
    this.failures[kind] = (this.failures[kind] ?? 0) + 1
    if (this.examples.filter((e) => e.kind === kind).length < MAX_EXAMPLES_PER_KIND) {
      const example = { kind, trial, plan: this.plans[trial], ...detail }
      this.examples.push(example)
      this.log(`trial ${trial} (${example.plan}): ${kind} ${JSON.stringify(detail)}`)
    }
  }

  async newRoot() {
    // A path that does not exist yet: creating it is part of what gets killed.
    const root = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'rstorage-crash-')), 'store')
    const keys = new Map(KEYS.map((key) => [key, { committed: null, inFlight: null, seen: null }]))
    this.root = { root, keys, unknownKeys: new Set() }
    this.roots.push(this.root)
    this.stats.freshRoots += 1
  }

  async trial(trial) {
    const freshRoot = !this.root || this.root.unopenable || Math.random() < 0.3
    if (freshRoot) await this.newRoot()
    const plan = planTrial(freshRoot)
    this.plans[trial] = plan.name
    const exit = await this.runChild(trial, plan)
    if (exit.error) this.fail('writer-error', trial, { message: exit.error })

    let store
    try {
      store = new LocalStorageBackend({ root: this.root.root, durable: this.durable })
    } catch (error) {
      this.root.unopenable = true
      this.fail('unopenable', trial, { killedAfterMs: exit.killedAfterMs, message: error.message })
      return
    }
    // Kept alive until the next open: a store may clear its temp folder in the background.
    this.root.store = store
    const temps = await filesUnder(tempDir(this.root.root))
    if (temps.length > 0) {
      this.pendingTempChecks.push({ trial, files: temps.map((t) => t.file), due: Date.now() + GRACE_MS })
    }
    await this.verify(trial, store)
    await this.checkTemps(false)
  }

  /** Runs one writer and kills it as planned; resolves once it is gone and all it said is read. */
  async runChild(trial, plan) {
    const lanes = laneKeys()
    const config = JSON.stringify({ root: this.root.root, durable: this.durable, trial, lanes })
    const command = plan.stretch
      ? ['strace', ['-f', '--seccomp-bpf', '-qq', '-o', '/dev/null', '-e', `trace=${plan.stretch}`,
          '-e', `inject=${plan.stretch}:delay_enter=${STRETCH_MS}ms`, process.execPath, WORKER, config]]
      : [process.execPath, [WORKER, config]]
    if (plan.stretch) this.stats.stretched += 1
    const child = spawn(...command, { stdio: ['ignore', 'pipe', 'pipe'] })
    const started = performance.now()
    let pid = plan.stretch ? null : child.pid
    let killedAt = null
    let error = null
    let stderr = ''
    let timer
    const kill = () => {
      killedAt = performance.now()
      try {
        // The writer itself, not strace: a tracer killed first would let its tracee run on.
        process.kill(pid, 'SIGKILL')
      } catch (e) {
        if (e.code !== 'ESRCH') throw e
      }
    }
    const arm = () => (timer = setTimeout(kill, plan.delay))
    if (plan.from === 'spawn') arm()
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const keys = this.root.keys
    const closed = once(child, 'close')
    for await (const line of readline.createInterface({ input: child.stdout })) {
      const message = JSON.parse(line)
      if (message.t === 'opening') {
        pid = message.pid
        if (plan.from === 'opening') arm()
      } else if (message.t === 'open') {
        if (plan.from === 'open') arm()
      } else if (message.t === 'begin') {
        this.specs.set(message.spec.id, message.spec)
        keys.get(message.spec.key).inFlight = message.spec
      } else if (message.t === 'ack') {
        const spec = this.specs.get(message.id)
        const state = keys.get(spec.key)
        state.committed = spec
        state.inFlight = null
        this.stats.acknowledged += 1
      } else if (message.t === 'error') {
        error = message.message
      }
    }
    await closed
    clearTimeout(timer)
    if (killedAt === null) {
      error ??= stderr.trim().split('\n').slice(-3).join(' | ') || `exited with ${child.exitCode}`
    }
    return { error, killedAfterMs: killedAt && Math.round(killedAt - started) }
  }

  expectedDigest(spec) {
    if (!this.digests.has(spec.id)) this.digests.set(spec.id, digest(bodyOf(spec)))
    return this.digests.get(spec.id)
  }

  /**
   * Which write a stored body came from: the id it announces; else (a body too short to hold
   * one) the first write of the key with these very bytes, trying the write its metadata names
   * and the writes it may hold before the rest.
   */
  writeOfBody(key, body, claimed, allowed) {
    const id = idInBody(body)
    if (id !== undefined) return this.specs.get(id)
    const hash = digest(body)
    const candidates = [this.specs.get(claimed), ...allowed, ...this.specs.values()]
    return candidates.find((s) => s?.key === key && s.size === body.length && this.expectedDigest(s) === hash)
  }

  /** Checks every key against what it may hold; each bad state is counted once, when first seen. */
  async verify(trial, store) {
    for (const [key, state] of this.root.keys) {
      const allowed = [state.committed, state.inFlight].filter(Boolean)
      const stored = await readObject(store, key)
      const seen = stored ? `${stored.info.etag}:${stored.info.size}:${stored.info.contentType}` : 'absent'
      const { kind, write, detail } = this.judge(key, stored, state.committed, allowed)
      if (kind && seen !== state.seen) this.fail(kind, trial, { key, allowed: allowed.map((s) => s.id), ...detail })
      if (!kind && write && write === state.inFlight) this.stats.inFlightFound += 1
      state.seen = seen
      // What it holds now is what later trials compare against.
      state.committed = write ?? null
      state.inFlight = null
    }
    for await (const { key, size } of store.listAll()) {
      if (this.root.keys.has(key) || this.root.unknownKeys.has(key)) continue
      this.root.unknownKeys.add(key)
      this.fail('unknown-key', trial, { key, size })
    }
  }

  /**
   * The failure kind (if any) of what a key holds, and the write its bytes came from. `torn`:
   * bytes that are no write of this key; `mixed`: one write's bytes with another's content type
   * or metadata; `stale`: a write older than the last acknowledged one.
   */
  judge(key, stored, committed, allowed) {
    if (!stored) return { kind: committed ? 'lost' : null }
    const { info, body } = stored
    const write = this.writeOfBody(key, body, info.metadata.write, allowed)
    const got = { bytesOf: write?.id ?? 'no write', contentType: info.contentType, metadataWrite: info.metadata.write }
    if (!write || write.key !== key || body.length !== write.size || digest(body) !== this.expectedDigest(write)) {
      return { kind: 'torn', detail: { ...got, size: body.length } }
    }
    if (info.contentType === DEFAULT_CONTENT_TYPE && Object.keys(info.metadata).length === 0) {
      return { kind: 'metadata-lost', write, detail: got }
    }
    if (info.contentType !== contentTypeOf(write) || !isDeepStrictEqual(info.metadata, metadataOf(write))) {
      return { kind: 'mixed', write, detail: got }
    }
    if (!allowed.includes(write)) return { kind: 'stale', write, detail: got }
    return { write }
  }

  /** Temp files that were there at an open and are still there once the grace has passed. */
  async checkTemps(all) {
    const due = this.pendingTempChecks.filter((c) => all || c.due <= Date.now())
    this.pendingTempChecks = this.pendingTempChecks.filter((c) => !due.includes(c))
    for (const check of due) {
      await sleep(Math.max(0, check.due - Date.now()))
      const kept = (await Promise.all(check.files.map((f) => fs.stat(f).catch(() => null)))).filter(Boolean)
      if (kept.length > 0) {
        const bytes = kept.reduce((sum, s) => sum + s.size, 0)
        this.fail('temp-files-kept', check.trial, { files: kept.length, bytes })
      }
    }
  }

  /** Opens every root once more and measures what is left after the grace; removes the roots. */
  async finish(trials) {
    await this.checkTemps(true)
    for (const state of this.roots) {
      if (!state.unopenable) state.store = new LocalStorageBackend({ root: state.root, durable: this.durable })
    }
    const deadline = Date.now() + GRACE_MS
    const leftovers = { tempFiles: 0, bytes: 0, budget: 0 }
    for (const { root, keys } of this.roots) {
      let temps = await filesUnder(tempDir(root))
      while (temps.length > 0 && Date.now() < deadline) {
        await sleep(50)
        temps = await filesUnder(tempDir(root))
      }
      leftovers.tempFiles += temps.length
      leftovers.bytes += (await filesUnder(internalDir(root))).reduce((sum, f) => sum + f.size, 0)
      leftovers.budget += BASE_BUDGET
      for (const { committed } of keys.values()) if (committed) leftovers.budget += 2 * (committed.pad + 1024)
      await fs.rm(path.dirname(root), { recursive: true, force: true })
    }
    const { durable, failures, stats, examples } = this
    return { trials, durable, failures, leftovers, stats, examples }
  }
}

/**
 * Runs `trials` kill-and-check rounds against stores opened with `durable`; `log` hears about
 * the first few failures of each kind as they are found.
 */
export async function runCrash({ trials, durable, log = () => {} }) {
  try {
    execFileSync('strace', ['-V'], { stdio: 'ignore' })
  } catch {
    throw new Error('the crash harness needs strace (apt-get install strace) to stretch commits')
  }
  const run = new CrashRun(durable, log)
  for (let trial = 0; trial < trials; trial++) await run.trial(trial)
  return run.finish(trials)
}
