// kill -9 during writes and store creation: the local store must open afterwards, keep every
// acknowledged write whole (bytes, content type and metadata of one write), and clear its temp
// files on the next open. See reliability/crash.mjs.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runCrash } from '../reliability/crash.mjs'

const TRIALS = 100

describe('local store under kill -9', () => {
  for (const durable of [true, false]) {
    it(`${TRIALS} kills, durable: ${durable}`, { timeout: 600_000 }, async () => {
      const started = performance.now()
      const report = await runCrash({ trials: TRIALS, durable, log: (line) => console.log(`# ${line}`) })
      const seconds = ((performance.now() - started) / 1000).toFixed(1)
      const { failures, leftovers, stats } = report
      console.log(`# durable: ${durable}: ${TRIALS} trials in ${seconds} s; failures ${JSON.stringify(failures)}`)
      console.log(`# leftovers ${JSON.stringify(leftovers)}; ${JSON.stringify(stats)}`)
      assert.deepEqual(failures, {}, JSON.stringify(report.examples, null, 2))
      assert.equal(leftovers.tempFiles, 0)
      assert.ok(leftovers.bytes <= leftovers.budget, `${leftovers.bytes} bytes left under .rstorage/`)
    })
  }
})
