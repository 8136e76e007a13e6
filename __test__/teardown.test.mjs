// Terminating a Worker in the middle of native operations must never crash the process:
// every env has to tear down cleanly while the other envs go on. See reliability/teardown.mjs.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runTeardown } from '../reliability/teardown.mjs'
import { fixtures } from './fixtures.mjs'

const TRIALS = 200

for (const fixture of fixtures) {
  describe(`worker teardown: ${fixture.name}`, () => {
    it(`survives ${TRIALS} Workers terminated mid-operation`, { timeout: 600_000 }, async () => {
      const result = await runTeardown({ fixtureName: fixture.name, trials: TRIALS })
      const { idle, busy } = result.byMode
      console.log(
        `# ${fixture.name}: ${result.crashes}/${result.trials} crashed in ${(result.ms / 1000).toFixed(1)} s ` +
          `(main thread idle ${idle.crashes}/${idle.trials}, busy ${busy.crashes}/${busy.trials})`,
      )
      for (const d of result.details) {
        const how = d.reason === 'panic' ? 'panic' : `${d.reason} ${d.signal ?? d.code}`
        console.log(`#   round ${d.round} (${JSON.stringify(d.timing)}): ${how}: ${d.stderrTail.split('\n').slice(-3).join(' | ')}`)
      }
      assert.equal(result.crashes, 0, `${result.crashes} of ${result.trials} terminated Workers crashed the process`)
    })
  })
}
