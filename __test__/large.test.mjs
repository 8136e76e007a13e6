// A 1 GiB object through Node stream pipelines: resident memory must stay bounded.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fixtures } from './fixtures.mjs'

const run = promisify(execFile)
const worker = fileURLToPath(new URL('./workers/stream-1gib.mjs', import.meta.url))
const LIMIT_MB = 150

for (const fixture of fixtures.filter((f) => f.streamsToDisk)) {
  describe(`1 GiB streaming: ${fixture.name}`, () => {
    it(`uploads and downloads 1 GiB of unknown length with < ${LIMIT_MB} MB RSS growth`, { timeout: 600_000 }, async () => {
      // A child process, so the measurement sees only this transfer.
      const { stdout } = await run(process.execPath, [worker, fixture.name], { maxBuffer: 1 << 20 })
      const report = JSON.parse(stdout.trim().split('\n').at(-1))
      console.log(`# ${fixture.name}: ${JSON.stringify(report)}`)
      assert.equal(report.uploaded, 1 << 30)
      assert.equal(report.downloaded, 1 << 30)
      assert.equal(report.digestsMatch, true)
      assert.ok(report.rssGrowthMB < LIMIT_MB, `RSS grew by ${report.rssGrowthMB} MB`)
    })
  })
}

const resumeWorker = fileURLToPath(new URL('./workers/resume-large.mjs', import.meta.url))
const RESUMED = {
  // s3s-fs keeps objects on disk: the full gibibyte, in 100 appends.
  's3s-fs': { total: 1 << 30, pieces: 100 },
  // moto keeps them in RAM (and lists multipart uploads): less of it, as many appends.
  moto: { total: 200 << 20, pieces: 100 },
}
for (const fixture of fixtures.filter((f) => RESUMED[f.name])) {
  const { total, pieces } = RESUMED[fixture.name]
  describe(`resumable upload at scale: ${fixture.name}`, () => {
    it(`${total >> 20} MiB in ${pieces} appends: bounded memory, identical bytes, nothing left behind`, { timeout: 900_000 }, async () => {
      const { stdout } = await run(process.execPath, [resumeWorker, fixture.name, String(total), String(pieces)], { maxBuffer: 1 << 20 })
      const report = JSON.parse(stdout.trim().split('\n').at(-1))
      console.log(`# ${fixture.name}: ${JSON.stringify(report)}`)
      assert.equal(report.downloaded, total)
      assert.equal(report.identical, true)
      assert.ok(report.rssGrowthMB < LIMIT_MB, `RSS grew by ${report.rssGrowthMB} MB`)
      assert.deepEqual(report.afterCompletion.filter((k) => k !== 'large/resumed.bin').map((k) => k.replace(/[0-9a-f]{32}/, 'ID')), ['.resumable-uploads/ID/state'], 'no segment is left, only the state marked done')
      assert.deepEqual(report.afterSweep, ['large/resumed.bin'], 'nothing is left once it expired')
      if (report.multipartUploads !== undefined) assert.equal(report.multipartUploads, 0, 'no multipart upload is left')
    })
  })
}
