// The concurrency harness (reliability/concurrency.mjs) against every store: it runs once per
// store, then each check below reads its figures, so every failing check shows at once.
// One store: --test-name-pattern="concurrency: moto" (the harness starts with the first check
// that runs, so filtered-out stores cost nothing).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LIMITS, runConcurrency } from '../reliability/concurrency.mjs'
import { fixtures } from './fixtures.mjs'

const explain = (figures) => `examples: ${JSON.stringify(figures.examples, null, 1)}`

async function runAndLog(store) {
  const figures = await runConcurrency({ fixtureName: store, log: (line) => console.log(`# ${store}: ${line}`) })
  console.log(`# ${store} figures: ${JSON.stringify(figures)}`)
  return figures
}

for (const fixture of fixtures) {
  describe(`concurrency: ${fixture.name}`, () => {
    let running
    const run = () => (running ??= runAndLog(fixture.name))

    it('1,000 concurrent uploads, reads and deletes, five rounds: no error, every byte and field intact', async () => {
      const figures = await run()
      assert.deepEqual(figures.failures, {}, explain(figures))
    })

    const raced = fixture.atomicMetadata ? ' and its metadata' : ' (bytes only: metadata is written separately here)'
    it(`50 writers racing one key leave one writer's whole object${raced}`, async () => {
      const figures = await run()
      assert.deepEqual(figures.raceFailures, {}, explain(figures))
    })

    const oneWinner = fixture.atomicCreate ? 'exactly one wins' : 'one or more win (this server checks, then writes)'
    it(`50 ifNotExists racers: ${oneWinner}, the rest get FileAlreadyExistsError, a winner is stored`, async () => {
      const figures = await run()
      const expected = fixture.atomicCreate ? (n) => n === 1 : (n) => n >= 1
      assert.ok(figures.ifNotExistsWinners.every(expected), `winners per key: ${figures.ifNotExistsWinners}`)
      const failures = Object.keys(figures.ifNotExistsFailures).filter((kind) => fixture.atomicCreate || !/\d+ winners/.test(kind))
      assert.deepEqual(failures, [], explain(figures))
    })

    it(`open descriptors level off (fitted growth over rounds 5–8 ≤ ${LIMITS.fdGrowth})`, async () => {
      const figures = await run()
      assert.ok(figures.levelOff, 'the rounds did not all run')
      assert.ok(figures.levelOff.fdsLevelOff, `fds after each round: ${figures.fds}; growth ${figures.levelOff.fdGrowth}`)
    })

    it(`RSS levels off (fitted growth over rounds 5–8 < ${LIMITS.rssGrowthMB} MB)`, async () => {
      const figures = await run()
      assert.ok(figures.levelOff, 'the rounds did not all run')
      assert.ok(figures.levelOff.rssLevelsOff, `RSS MB after each round: ${figures.rssMB}; growth ${figures.levelOff.rssGrowthMB} MB`)
    })
  })
}
