// The command-line tool, run as a user would: in a fresh folder, with and without configuration.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { tempDir } from './fixtures.mjs'

const cli = fileURLToPath(new URL('../bin/cli.js', import.meta.url))
const exec = promisify(execFile)

function envWithout() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STORAGE_')))
}

async function run(cwd, args, env = {}, input) {
  const child = exec(process.execPath, [cli, ...args], { cwd, env: { ...envWithout(), ...env } })
  if (input !== undefined) child.child.stdin.end(input)
  try {
    const { stdout, stderr } = await child
    return { code: 0, stdout, stderr }
  } catch (error) {
    return { code: error.code, stdout: error.stdout, stderr: error.stderr }
  }
}

describe('raptscallions-storage CLI', () => {
  let cwd
  before(async () => {
    cwd = await tempDir('cli')
  })
  after(() => fs.rm(cwd, { recursive: true, force: true }))

  it('doctor passes on the default local backend with no configuration', async () => {
    const { code, stdout } = await run(cwd, ['doctor'])
    assert.equal(code, 0, stdout)
    for (const step of ['config', 'open', 'write', 'read back', 'stat', 'signed URL', 'delete']) {
      assert.match(stdout, new RegExp(`^PASS  ${step}`, 'm'))
    }
    assert.match(stdout, /doctor: all checks passed/)
    assert.ok((await fs.stat(path.join(cwd, 'storage/uploads'))).isDirectory())
  })

  it('doctor fails with a clear line per step and a non-zero exit', async () => {
    const bad = await run(cwd, ['doctor'], { STORAGE_BACKEND: 's3', STORAGE_QUOTA_BYTES: '0' })
    assert.equal(bad.code, 1)
    assert.match(bad.stdout, /^FAIL  config .*STORAGE_QUOTA_BYTES.*STORAGE_S3_REGION/m)
    assert.match(bad.stdout, /^SKIP  write/m)
    const unknown = await run(cwd, ['doctor'], { STORAGE_BACKEND: 'nope' })
    assert.equal(unknown.code, 1)
    assert.match(unknown.stdout, /^FAIL  open .*not registered: "nope"/m)
    const unwritable = await run(cwd, ['doctor'], { STORAGE_LOCAL_PATH: '/proc/no-such-place' })
    assert.equal(unwritable.code, 1)
    assert.match(unwritable.stdout, /^FAIL  open /m)
  })

  it('puts, lists, stats, gets, presigns and removes', async () => {
    await fs.writeFile(path.join(cwd, 'hello.txt'), 'hello from a file')
    const put = await run(cwd, ['put', 'docs/hello.txt', 'hello.txt'])
    assert.equal(put.code, 0, put.stderr)
    const fromStdin = await run(cwd, ['put', 'docs/stdin.bin', '-'], {}, 'piped')
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    const ls = await run(cwd, ['ls', 'docs/'])
    assert.match(ls.stdout, /17 .* docs\/hello\.txt/)
    assert.match(ls.stdout, /docs\/stdin\.bin/)
    const stat = JSON.parse((await run(cwd, ['stat', 'docs/hello.txt'])).stdout)
    assert.equal(stat.contentType, 'text/plain')
    assert.equal((await run(cwd, ['get', 'docs/stdin.bin'])).stdout, 'piped')
    const presign = await run(cwd, ['presign', 'docs/hello.txt', '--expires', '60'])
    assert.match(presign.stdout, /^http:\/\/127\.0\.0\.1:8790\/docs\/hello\.txt\?X-Method=GET/)
    assert.equal((await run(cwd, ['rm', 'docs/hello.txt', 'docs/stdin.bin'])).stdout.trim(), 'deleted 2')
    const missing = await run(cwd, ['get', 'docs/hello.txt'])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /File not found in storage: docs\/hello\.txt \[FILE_NOT_FOUND\]/)
    assert.equal((await run(cwd, ['bogus'])).code, 2)
  })

  it('serve answers the signed URLs that presign prints', async () => {
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address()
        probe.close(() => resolve(port))
      })
    })
    const env = { ...envWithout(), STORAGE_LOCAL_BASE_URL: `http://127.0.0.1:${port}/files` }
    await fs.writeFile(path.join(cwd, 'served.txt'), 'served by the CLI')
    assert.equal((await run(cwd, ['put', 'served.txt', 'served.txt'], env)).code, 0)
    const url = (await run(cwd, ['presign', 'served.txt'], env)).stdout.trim()
    assert.ok(url.startsWith(`http://127.0.0.1:${port}/files/served.txt?`), url)
    const server = spawn(process.execPath, [cli, 'serve'], { cwd, env })
    try {
      await new Promise((resolve, reject) => {
        server.stdout.once('data', resolve)
        server.once('exit', (code) => reject(new Error(`serve exited with ${code}`)))
      })
      const response = await fetch(url)
      assert.equal(response.status, 200)
      assert.equal(await response.text(), 'served by the CLI')
      const tampered = await fetch(url.replace('served.txt?', 'other.txt?'))
      assert.equal(tampered.status, 403)
      await tampered.body?.cancel()
    } finally {
      server.kill('SIGTERM')
    }
  })
})
