// The process-wide memory budget for part buffers: uploads side by side wait for it rather
// than go past it, and all of them complete, byte for byte.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { InvalidArgumentError, memoryBudget, setMemoryBudget } from '../index.mjs'
import { fixtures } from './fixtures.mjs'

const run = promisify(execFile)
const MIB = 1 << 20
const PART = 5 * MIB
// Room for two parts of 5 MiB, not three: twenty uploads that would each hold four.
const BUDGET = 12 * MIB
const UPLOADS = 20
const LENGTH = 14 * MIB

/** `length` bytes of upload `n`'s own pattern, of unknown length (so: multipart), and their digest. */
function generated(n, length) {
  const hash = createHash('sha256')
  const chunks = function* () {
    for (let at = 0; at < length; at += 64 * 1024) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, length - at), (n * 7 + at / 1024) % 251)
      hash.update(chunk)
      yield chunk
    }
  }
  return { body: Readable.from(chunks()), digest: () => hash.digest('hex') }
}

/** memoryBudget() in a fresh process with STORAGE_MEMORY_BUDGET_BYTES `value` (the budget is read when the package loads). */
async function budgetIn(value) {
  const { STORAGE_MEMORY_BUDGET_BYTES: _, ...env } = process.env
  if (value !== undefined) env.STORAGE_MEMORY_BUDGET_BYTES = value
  const script = `import('${new URL('../index.mjs', import.meta.url)}').then((s) => console.log(JSON.stringify(s.memoryBudget())), (e) => console.log(JSON.stringify({ error: e.name, message: e.message })))`
  const { stdout } = await run(process.execPath, ['-e', script], { env })
  return JSON.parse(stdout)
}

describe('memory budget: setting it', () => {
  it('takes a whole number of bytes, at least 1, counted in whole KiB', () => {
    setMemoryBudget(3 * MIB + 1)
    assert.equal(memoryBudget().limit, 3 * MIB + 1024)
    for (const wrong of [0, -1, 1.5, '5', undefined, Number.MAX_SAFE_INTEGER + 2]) {
      assert.throws(() => setMemoryBudget(wrong), InvalidArgumentError, String(wrong))
    }
  })

  it('is read from STORAGE_MEMORY_BUDGET_BYTES when the package loads', async () => {
    assert.equal((await budgetIn(String(96 * MIB))).limit, 96 * MIB)
    const wrong = await budgetIn('lots')
    assert.equal(wrong.error, 'ConfigurationError')
    assert.match(wrong.message, /STORAGE_MEMORY_BUDGET_BYTES/)
  })

  it('is sized from the machine by default: between 64 MiB and 1 GiB, nothing in use', async () => {
    const { limit, inUse, peak, waiting } = await budgetIn(undefined)
    assert.ok(limit >= 64 * MIB && limit <= 1024 * MIB, `${limit}`)
    assert.deepEqual({ inUse, peak, waiting }, { inUse: 0, peak: 0, waiting: 0 })
  })
})

for (const fixture of fixtures.filter((f) => f.name === 's3s-fs')) {
  describe(`memory budget: ${fixture.name}`, () => {
    let provisioned
    let backend
    before(async () => {
      provisioned = await fixture.provision()
      backend = fixture.open(provisioned.place, { partSize: PART, queueSize: 4 })
    })
    after(() => provisioned?.cleanup())

    it(`${UPLOADS} uploads of ${LENGTH / MIB} MiB at once never take more than ${BUDGET / MIB} MiB of part buffers, and all arrive whole`, { timeout: 300_000 }, async () => {
      setMemoryBudget(BUDGET)
      let sampledMost = 0
      let sampledWaiting = 0
      const sampler = setInterval(() => {
        const { inUse, waiting } = memoryBudget()
        sampledMost = Math.max(sampledMost, inUse)
        sampledWaiting = Math.max(sampledWaiting, waiting)
      }, 5)
      const sent = Array.from({ length: UPLOADS }, (_, n) => ({ key: `budget/${n}.bin`, ...generated(n, LENGTH) }))
      try {
        await Promise.all(sent.map(({ key, body }) => backend.upload({ key, body, contentType: 'application/octet-stream' })))
      } finally {
        clearInterval(sampler)
      }
      const budget = memoryBudget()
      console.log(`# budget ${JSON.stringify(budget)}; sampled: at most ${sampledMost} in use, ${sampledWaiting} waiting`)
      assert.ok(sampledMost <= BUDGET, `${sampledMost} bytes in use`)
      assert.ok(budget.peak > 0 && budget.peak <= BUDGET, `peak ${budget.peak}`)
      assert.deepEqual({ inUse: budget.inUse, waiting: budget.waiting }, { inUse: 0, waiting: 0 })
      for (const { key, digest } of sent) {
        const stored = await backend.get(key)
        assert.equal(stored.length, LENGTH, key)
        assert.equal(createHash('sha256').update(stored).digest('hex'), digest(), key)
      }
    })
  })
}
