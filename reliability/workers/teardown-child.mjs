// A child process of the teardown harness: starts one Worker per round, terminates it mid-flight
// and waits for it to exit, round after round. It runs in its own process so that a crash in
// the addon kills this child, which the parent observes, rather than the test runner.
//
// Protocol: before a round `@@round <n> <timing JSON>` and after it `@@done <n>` go to stderr.
// On Linux, writes to a piped stderr are synchronous, so a Rust panic message printed during a
// round lands between that round's markers. The last stdout line is a JSON summary.
//
// With `mainBusy`, this thread also loads the addon and keeps operations going on the same
// storage, so a worker's teardown happens while another env still uses the shared runtime.
// Without it no env is left when a worker goes, so each teardown is also the runtime's last.
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'

const { fixtureName, place, file, firstRound, rounds, ops, mainBusy } = JSON.parse(process.argv[2])
const workerUrl = new URL('./teardown-worker.mjs', import.meta.url)
const MAX_DELAY_MS = 50
// A worker that never reaches its trigger (it failed first) is terminated after this anyway.
const FALLBACK_MS = 10_000

// Only streams have chunks to wait for.
const streams = ['upload', 'upload-file', 'download'].some((op) => ops.includes(op))

/** When to terminate: after a delay from the spawn, from 'started', or at the first chunk. */
function pickTiming() {
  const roll = Math.random()
  const delay = Math.floor(Math.random() * (MAX_DELAY_MS + 1))
  if (roll < 0.15) return { after: 'spawn', delay }
  if (roll < 0.3 && streams) return { after: 'first-chunk', delay: 0 }
  return { after: 'started', delay }
}

const opErrors = {}
let workerErrors = 0
let mainErrors = 0

async function runRound(round) {
  const timing = pickTiming()
  process.stderr.write(`@@round ${round} ${JSON.stringify(timing)}\n`)
  const worker = new Worker(workerUrl, { workerData: { fixtureName, place, file, round, ops } })
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  let timer
  const terminate = (delay) => {
    clearTimeout(timer)
    timer = setTimeout(() => worker.terminate(), delay)
  }
  terminate(timing.after === 'spawn' ? timing.delay : FALLBACK_MS)
  worker.on('message', (message) => {
    if (message.type === timing.after) terminate(timing.delay)
    else if (message.type === 'op-error') opErrors[message.op] = (opErrors[message.op] ?? 0) + 1
  })
  worker.on('error', () => {
    workerErrors++
  })
  await exited
  clearTimeout(timer)
  process.stderr.write(`@@done ${round}\n`)
}

let stopMain = false
const mainLoops = []
if (mainBusy) {
  const { fixtures } = await import('../../__test__/fixtures.mjs')
  const backend = fixtures.find((f) => f.name === fixtureName).open(place)
  const seed = 'teardown/main-seed.bin'
  await backend.put(seed, Buffer.alloc(1 << 20, 3))
  const loop = async (op) => {
    while (!stopMain) {
      await op().catch(() => {
        mainErrors++
        return sleep(5)
      })
    }
  }
  mainLoops.push(loop(() => backend.get(seed)), loop(() => backend.stat(seed)), loop(() => backend.list({ prefix: 'teardown/' })))
}

for (let round = firstRound; round < firstRound + rounds; round++) await runRound(round)
stopMain = true
await Promise.all(mainLoops)
console.log(JSON.stringify({ opErrors, workerErrors, mainErrors }))
