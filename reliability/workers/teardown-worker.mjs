// One worker_threads Worker of the teardown harness: it opens a backend and keeps a mix of
// native operations in flight until its parent terminates it. It never finishes on its own.
import fs from 'node:fs'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { parentPort, workerData } from 'node:worker_threads'
import { fixtures } from '../../__test__/fixtures.mjs'
import { ACCESS_KEY, SECRET_KEY } from '../../__test__/servers.mjs'

const MiB = 1 << 20
const CHUNK = 64 * 1024
const SEED = 'teardown/seed.bin'
const SEED_BYTES = 4 * MiB
const UPLOAD_BYTES = 8 * MiB

const { fixtureName, place, file, round, ops } = workerData
// On odd rounds an S3 store takes its credentials from an async provider (as an S3Client's)
// that expire within the refresh margin, so native code calls back into JS before every
// request: a teardown must find no such call in flight either.
const provider = async () => ({ accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, expiration: new Date(Date.now() + 60_000) })
const options = place.endpoint && round % 2 ? { credentials: provider } : undefined
const backend = fixtures.find((f) => f.name === fixtureName).open(place, options)

// Failures of an operation are reported, not thrown: only a crash of the process is a finding.
function forever(op, run) {
  ;(async () => {
    for (;;) {
      try {
        await run()
      } catch (error) {
        parentPort.postMessage({ type: 'op-error', op, message: String(error?.message ?? error) })
        await sleep(5)
      }
    }
  })()
}

// Told once, when the first chunk of an upload or a download has crossed the boundary.
let chunkSeen = false
function sawChunk() {
  if (!chunkSeen) parentPort.postMessage({ type: 'first-chunk' })
  chunkSeen = true
}

/** A streamed body that yields between chunks, so the upload is mid-flight most of its life. */
async function* slowBody() {
  for (let sent = 0; sent < UPLOAD_BYTES; sent += CHUNK) {
    yield Buffer.alloc(CHUNK, round & 0xff)
    sawChunk()
    await sleep(1)
  }
}

const slowSink = () =>
  new Writable({
    highWaterMark: CHUNK,
    write(_chunk, _encoding, done) {
      sawChunk()
      setTimeout(done, 1)
    },
  })

// A memory store is private to its backend, so every worker seeds its own; the others share one.
if (!(await backend.exists(SEED))) await backend.put(SEED, Buffer.alloc(SEED_BYTES, 7))

const operations = {
  // A few upload keys in rotation bound the disk that completed uploads can use.
  upload: () => backend.upload({ key: `teardown/up-${round % 4}.bin`, body: slowBody() }),
  // The addon reads the file itself; progress comes back to JS while it does.
  'upload-file': () => backend.upload({ key: `teardown/file-${round % 4}.bin`, body: fs.createReadStream(file), onProgress: sawChunk }),
  put: () => backend.put(`teardown/put-${round % 4}.bin`, Buffer.alloc(CHUNK, round & 0xff)),
  download: async () => pipeline(await backend.download(SEED), slowSink()),
  get: () => backend.get(SEED),
  stat: () => backend.stat(SEED),
  list: () => backend.list({ prefix: 'teardown/' }),
}
for (const op of ops) forever(op, operations[op])
parentPort.postMessage({ type: 'started' })
