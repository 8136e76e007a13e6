// One tus upload in its own process: `node bench/tus-client.mjs <endpoint> <file> <filename>`,
// with tus-js-client in 8 MiB PATCHes and no retries (a failed PATCH fails the measurement).
// Prints { wallMs, cpuMs, maxRssMB } as JSON, as client.mjs does.
import fs from 'node:fs'
import * as tus from 'tus-js-client'

const [endpoint, file, filename] = process.argv.slice(2)
const cpu = process.cpuUsage()
const start = process.hrtime.bigint()
await new Promise((resolve, reject) => {
  new tus.Upload(fs.createReadStream(file), {
    endpoint,
    chunkSize: 8 << 20,
    retryDelays: [],
    metadata: { filename, filetype: 'application/octet-stream' },
    // Its message names the request and the answer; the error itself prints thousands of lines.
    onError: (error) => reject(new Error(error.message)),
    onSuccess: resolve,
  }).start()
})
const wallMs = Number(process.hrtime.bigint() - start) / 1e6
const used = process.cpuUsage(cpu)
const maxRssMB = Math.round(process.resourceUsage().maxRSS / 1024)
process.stdout.write(`${JSON.stringify({ wallMs, cpuMs: (used.user + used.system) / 1000, maxRssMB })}\n`)
