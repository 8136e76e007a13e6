// Worker teardown harness: terminates worker_threads Workers while they are in the middle of
// native storage operations, and counts how often that crashes the process hosting them.
//
// Rounds run in child processes (workers/teardown-child.mjs), a batch of rounds per child, so a
// segfault or abort is observed here instead of taking this process down. A round fails when
// its child dies during it (by a signal, with a non-zero exit code, or by hanging past the
// deadline) or when a Rust panic is printed during it. A child that dies leaves the rest of its
// batch to a new child, so every trial is one terminated Worker.
import { spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fixtures } from '../__test__/fixtures.mjs'

const childScript = fileURLToPath(new URL('./workers/teardown-child.mjs', import.meta.url))
const PANIC = /panicked|entered unreachable/
const TAIL_LINES = 20
/** The operations each Worker keeps in flight (see workers/teardown-worker.mjs). */
export const OPERATIONS = ['upload', 'upload-file', 'put', 'download', 'get', 'stat', 'list']
/** The file `upload-file` sends (as an fs.ReadStream, which the addon reads itself). */
const FILE_BYTES = 8 << 20

/** Runs a child for `rounds` rounds; resolves with its exit, output and whether it hung. */
function runChild(config, deadlineMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [childScript, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (text) => (stdout += text))
    child.stderr.setEncoding('utf8').on('data', (text) => (stderr += text))
    let hung = false
    const timer = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, deadlineMs)
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, hung, stdout, stderr })
    })
  })
}

/**
 * Splits a child's stderr by its round markers: [{ round, timing, lines }]. Output before the
 * first marker goes with the first round, output after the last `@@done` (the child's exit)
 * with the last.
 */
function roundsOf(stderr) {
  const rounds = []
  const preamble = []
  for (const line of stderr.split('\n')) {
    const start = /^@@round (\d+) (.*)$/.exec(line)
    if (start) rounds.push({ round: Number(start[1]), timing: JSON.parse(start[2]), lines: rounds.length ? [] : preamble })
    else if (line !== '' && !/^@@done \d+$/.test(line)) (rounds.at(-1)?.lines ?? preamble).push(line)
  }
  return { rounds, preamble }
}

const tail = (lines) => lines.slice(-TAIL_LINES).join('\n')

/**
 * Terminates `trials` Workers mid-operation against the named fixture; `ops` narrows the mix
 * (to tell which operations crash). Resolves to { store, trials, crashes, details, byMode,
 * opErrors, workerErrors, mainErrors, ms }: `details` has one entry per failed round
 * ({ round, mainBusy, timing, reason, signal, code, stderrTail }), `byMode` splits trials and
 * crashes between rounds with the child's main thread idle and busy on the addon, and the
 * error counts are operations that failed without crashing anything.
 */
export async function runTeardown({
  fixtureName,
  trials,
  log = () => {},
  ops = OPERATIONS,
  // Small enough that even a short run has batches of both kinds.
  batchSize = Math.max(1, Math.min(25, Math.ceil(trials / 2))),
}) {
  const fixture = fixtures.find((f) => f.name === fixtureName)
  if (!fixture) throw new Error(`no fixture named ${fixtureName}`)
  const unknown = ops.filter((op) => !OPERATIONS.includes(op))
  if (unknown.length > 0) throw new Error(`unknown operations: ${unknown.join(', ')}`)
  const started = Date.now()
  const { place, cleanup } = await fixture.provision()
  const fileDir = await fs.mkdtemp(path.join(os.tmpdir(), 'rstorage-teardown-'))
  const file = path.join(fileDir, 'body.bin')
  await fs.writeFile(file, Buffer.alloc(FILE_BYTES, 5))
  const details = []
  const byMode = { idle: { trials: 0, crashes: 0 }, busy: { trials: 0, crashes: 0 } }
  const opErrors = {}
  let workerErrors = 0
  let mainErrors = 0
  try {
    for (let batch = 0; batch * batchSize < trials; batch++) {
      // Alternate so both kinds of teardown get exercised: another env still on the runtime, or none.
      const mainBusy = batch % 2 === 1
      const end = Math.min((batch + 1) * batchSize, trials)
      const mode = byMode[mainBusy ? 'busy' : 'idle']
      mode.trials += end - batch * batchSize
      // A child that dies leaves the rest of its batch to a new one.
      for (let next = batch * batchSize; next < end; ) {
        const rounds = end - next
        const config = { fixtureName, place, file, firstRound: next, rounds, ops, mainBusy }
        const result = await runChild(config, 30_000 + rounds * 3_000)
        const died = result.signal !== null || result.code !== 0
        const reason = result.hung ? 'hang' : result.signal ? 'signal' : 'exit code'
        const { rounds: attempted, preamble } = roundsOf(result.stderr)
        for (const [i, segment] of attempted.entries()) {
          // Rounds run one after another, so a child that died did so in (or after) its last round.
          const crashedHere = died && i === attempted.length - 1
          const panicked = segment.lines.some((line) => PANIC.test(line))
          if (!panicked && !crashedHere) continue
          mode.crashes++
          details.push({
            round: segment.round,
            mainBusy,
            timing: segment.timing,
            reason: crashedHere ? reason : 'panic',
            signal: crashedHere ? result.signal : null,
            code: crashedHere ? result.code : null,
            stderrTail: tail(segment.lines),
          })
        }
        if (attempted.length === 0) {
          // The child died before its first round: count it once, or this loop would never end.
          mode.crashes++
          const { signal, code } = result
          details.push({ round: next, mainBusy, timing: null, reason, signal, code, stderrTail: tail(preamble) })
          next++
        } else {
          next += attempted.length
        }
        const summary = died ? null : JSON.parse(result.stdout.trim().split('\n').at(-1))
        for (const [op, count] of Object.entries(summary?.opErrors ?? {})) opErrors[op] = (opErrors[op] ?? 0) + count
        workerErrors += summary?.workerErrors ?? 0
        mainErrors += summary?.mainErrors ?? 0
        const death = died ? ` (child: ${reason} ${result.signal ?? result.code})` : ''
        log(`${fixtureName}: ${next}/${trials} rounds, ${details.length} crashed${death}`)
      }
    }
  } finally {
    await cleanup()
    await fs.rm(fileDir, { recursive: true, force: true })
  }
  const ms = Date.now() - started
  return { store: fixtureName, trials, crashes: details.length, details, byMode, opErrors, workerErrors, mainErrors, ms }
}

// `node reliability/teardown.mjs [fixture…] [--trials N] [--ops get,stat]`: the same runs outside
// the test runner, with every failed round printed.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { trials: { type: 'string', default: '200' }, ops: { type: 'string' } },
  })
  const names = positionals.length > 0 ? positionals : fixtures.map((f) => f.name)
  for (const fixtureName of names) {
    const result = await runTeardown({
      fixtureName,
      trials: Number(values.trials),
      ops: values.ops?.split(',') ?? OPERATIONS,
      log: (line) => console.error(line),
    })
    const { details, ...summary } = result
    console.log(JSON.stringify(summary))
    for (const d of details) console.log(JSON.stringify(d))
  }
}
