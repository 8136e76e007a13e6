// An app in a pnpm-style workspace, tested with vitest: @raptscallions/core is a workspace
// package linked into the app's node_modules, this package is installed from its tarball.
// Vitest runs the linked core through its own module graph and leaves packages under
// node_modules to Node, so the app's AppError and the one our errors extend are two copies of
// one class. This proves the failure without a setting and the README's setting fixing it, on
// two vitest majors. (No change inside the package can fix it: vitest never lets a package in
// node_modules share its copy of another module unless the app says so.)
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tempDir } from './fixtures.mjs'
import { APP_ERROR, APP_ERROR_TYPES, exec, npmInstall, packTarball, repo, writeFiles } from './scratch.mjs'

const VITEST_VERSIONS = ['^3.2.4', '^4.1.12']

/** The vitest.config.ts the README gives, read from the README itself. */
async function readmeVitestConfig() {
  const readme = await fs.readFile(path.join(repo, 'README.md'), 'utf8')
  const config = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).find((code) => code.includes('vitest/config'))
  assert.ok(config, 'the README gives a vitest.config.ts')
  return config
}

// Two test files, so a second module graph in the same run is covered too.
const APP_TEST = `
import { AppError } from '@raptscallions/core'
import { FileNotFoundError, getBackend, resetStorage } from '@raptscallions/storage'
import { afterEach, expect, test } from 'vitest'

afterEach(() => resetStorage())

test('a missing object is the app\\'s AppError, 404', async () => {
  const error: unknown = await getBackend('memory').download('missing.txt').catch((e: unknown) => e)
  expect(error).toBeInstanceOf(FileNotFoundError)
  expect((error as FileNotFoundError).statusCode).toBe(404)
  expect(error).toBeInstanceOf(AppError)
})
`

describe('vitest in a workspace with a linked @raptscallions/core', { timeout: 300_000 }, () => {
  let work
  let tarball

  before(async () => {
    work = await tempDir('vitest-workspace')
    tarball = await packTarball(work)
  })
  after(() => fs.rm(work, { recursive: true, force: true }))

  for (const version of VITEST_VERSIONS) {
    it(`vitest ${version}: instanceof AppError fails without the setting and holds with it`, async () => {
      const workspace = path.join(work, `vitest-${version.replace(/\W/g, '')}`)
      const app = path.join(workspace, 'apps/api')
      await writeFiles(workspace, {
        'packages/core/package.json': {
          name: '@raptscallions/core', version: '1.0.0', type: 'module',
          exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
        },
        'packages/core/dist/index.js': `export class AppError extends Error {${APP_ERROR}}\n`,
        'packages/core/dist/index.d.ts': APP_ERROR_TYPES,
        'apps/api/test/errors.test.ts': APP_TEST,
        'apps/api/test/errors-again.test.ts': APP_TEST,
      })
      await npmInstall(app, {
        name: 'api', private: true, type: 'module',
        dependencies: { '@raptscallions/storage': `file:${tarball}` },
        devDependencies: { vitest: version },
      })
      // The workspace link, as pnpm (and npm workspaces) make it.
      await fs.symlink(path.relative(path.join(app, 'node_modules/@raptscallions'), path.join(workspace, 'packages/core')),
        path.join(app, 'node_modules/@raptscallions/core'))
      const vitest = (...args) =>
        exec(path.join(app, 'node_modules/.bin/vitest'), ['run', ...args], { cwd: app, env: { ...process.env, CI: 'true', NO_COLOR: '1' } })

      const failed = await vitest().then(() => undefined, (error) => error)
      assert.ok(failed, 'without the setting, the AppError check fails (if this passes, the README can drop the setting)')
      assert.match(failed.stdout + failed.stderr, /to be an instance of AppError/)
      assert.match(failed.stdout + failed.stderr, /2 failed/)

      await writeFiles(app, { 'vitest.config.ts': await readmeVitestConfig() })
      const { stdout } = await vitest()
      assert.match(stdout, /Tests\s+2 passed/)
      // It holds in the other pool, and with every test file in one module graph.
      assert.match((await vitest('--pool', 'threads')).stdout, /Tests\s+2 passed/)
      assert.match((await vitest('--no-isolate')).stdout, /Tests\s+2 passed/)
    })
  }
})
