// The command-line tool, run as a user would: in a fresh folder, with and without configuration.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { LocalStorageBackend } from '../index.mjs'
import { s3Backend, tempDir } from './fixtures.mjs'
import { ACCESS_KEY, SECRET_KEY, startFaultProxy, startMoto } from './servers.mjs'

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
    assert.deepEqual(JSON.parse((await run(cwd, ['du', '--json', 'docs/'])).stdout), { prefix: 'docs/', bytes: 22, objects: 2 })
    assert.match((await run(cwd, ['du', 'docs/'])).stdout, /^22 B {2}2 objects {2}docs\//)
    const stat = JSON.parse((await run(cwd, ['stat', '--json', 'docs/hello.txt'])).stdout)
    assert.equal(stat.contentType, 'text/plain')
    assert.equal((await run(cwd, ['get', 'docs/stdin.bin'])).stdout, 'piped')
    const presign = await run(cwd, ['presign', 'docs/hello.txt', '--expires', '60'])
    assert.match(presign.stdout, /^http:\/\/127\.0\.0\.1:8790\/docs\/hello\.txt\?X-Method=GET/)
    assert.equal((await run(cwd, ['rm', 'docs/hello.txt', 'docs/stdin.bin'])).stdout, 'deleted docs/hello.txt\ndeleted docs/stdin.bin\n')
    const missing = await run(cwd, ['get', 'docs/hello.txt'])
    assert.equal(missing.code, 3)
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

/** The CLI started in the background: `done` resolves to { code, signal, stdout, stderr }. */
function start(cwd, args, env = {}) {
  const child = spawn(process.execPath, [cli, ...args], { cwd, env: { ...envWithout(), ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const done = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })))
  return { child, done }
}

/**
 * Starts `put --resumable`, waits until its state file names an upload of which `store` (the
 * same store, opened here) holds some bytes, then `cut()`s it; resolves to the upload's id and
 * how the run ended.
 */
async function cutMidUpload({ cwd, args, env, statePath, store, cut }) {
  const { child, done } = start(cwd, args, env)
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`the upload ended before it could be cut: ${(await done).stderr}`)
    }
    const state = await fs.readFile(statePath, 'utf8').then(JSON.parse, () => undefined)
    const stored = state && (await store.getUpload(state.id).catch(() => undefined))
    if (stored?.offset > 0) {
      await cut(child)
      return { id: state.id, stored: stored.offset, ended: await done }
    }
    await sleep(5)
  }
}

function resumedAt(stderr) {
  const match = /^resuming at (\d+) bytes$/m.exec(stderr)
  assert.ok(match, `no "resuming at" line in: ${stderr}`)
  return Number(match[1])
}

/** One line on stderr per problem, never a stack trace. */
function assertPlainError(result) {
  assert.doesNotMatch(result.stderr, /^\s+at /m, result.stderr)
  assert.doesNotMatch(result.stderr, /ERR_INVALID_ARG_TYPE|node:internal/, result.stderr)
}

/**
 * Runs the CLI on a pseudo-terminal (script(1)), as a person at a shell does, with standard input
 * from the file `input` if given; resolves to what the terminal showed, once it exits with `code`.
 */
async function onTerminal(cwd, args, input, code = 0) {
  const command = [process.execPath, cli, ...args].map((a) => `'${a}'`).join(' ') + (input ? ` < '${input}'` : '')
  const tty = spawn('script', ['-qec', command, '/dev/null'], { cwd, env: envWithout(), stdio: ['ignore', 'pipe', 'inherit'] })
  let screen = ''
  tty.stdout.on('data', (chunk) => (screen += chunk))
  assert.equal(await new Promise((resolve) => tty.once('close', resolve)), code, screen)
  return screen
}

const exists = (file) => fs.access(file).then(() => true, () => false)
const BIG = 40 << 20

describe('CLI usage, errors and exit codes', () => {
  let cwd
  before(async () => {
    cwd = await tempDir('cli-usage')
    await fs.writeFile(path.join(cwd, 'note.txt'), 'a note')
  })
  after(() => fs.rm(cwd, { recursive: true, force: true }))

  it('--version prints the package version; --help and <command> --help print usage', async () => {
    const { version } = JSON.parse(await fs.readFile(new URL('../package.json', import.meta.url), 'utf8'))
    assert.deepEqual(await run(cwd, ['--version']), { code: 0, stdout: `${version}\n`, stderr: '' })
    const help = await run(cwd, ['--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /^ {2}cp <from> <to> /m)
    assert.match(help.stdout, /Exit codes: 0 done, 1 failed .* 2 usage .* 3 not found/s)
    for (const args of [['put', '--help'], ['help', 'put'], ['put', '-h']]) {
      const put = await run(cwd, args)
      assert.equal(put.code, 0, args.join(' '))
      assert.match(put.stdout, /^Usage: raptscallions-storage put \[options\] <key> \[file\|-\]/)
      assert.match(put.stdout, /--resumable/)
    }
  })

  it('usage errors exit with 2 and one plain line: missing arguments, unknown commands and flags, bad values', async () => {
    const cases = [
      [['put'], /put: put needs <key> \[file\|-\]/],
      [['stat', 'a', 'b'], /stat takes <key>; unexpected "b"/],
      [['ls', '--bogus'], /ls: unknown option --bogus/],
      [['put', 'k', 'note.txt', '--content-typo', 'x'], /unknown option --content-typo/],
      [['rm', '-x', 'k'], /unknown option -x/],
      [['stat', '--json=yes', 'k'], /--json' does not take an argument/],
      [['presign', 'k', '--expires', 'soon'], /--expires takes a whole number, not "soon"/],
      [['put', '--part-size', '1MiB', 'k', 'note.txt'], /--part-size goes with --resumable/],
      [['put', '--resumable', '--part-size', 'big', 'k', 'note.txt'], /--part-size takes a size such as 8MiB/],
      [['put', '--resumable', 'k', '-'], /--resumable needs a file, not standard input/],
      [['put', 'k', '.'], /\. is a folder: upload it with put -r/],
      [['put', '-r', 'site', 'note.txt'], /note\.txt is not a folder: upload it without -r/],
      [['rm', '--prefix', ''], /an empty --prefix would delete every object/],
      [['put', '../escape', 'note.txt'], /must not contain '\.' or '\.\.' segments \[INVALID_KEY\]/],
      [['bogus'], /unknown command "bogus"/],
    ]
    for (const [args, message] of cases) {
      const result = await run(cwd, args)
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, message)
      assertPlainError(result)
      assert.equal(result.stdout, '')
    }
    assert.equal((await run(cwd, ['ls'])).stdout, '', 'no usage error stored anything')
  })

  it('a missing local file or object exits with 3; a store or configuration error with 1', async () => {
    const noFile = await run(cwd, ['put', 'k', 'missing.bin'])
    assert.equal(noFile.code, 3)
    assert.equal(noFile.stderr, 'raptscallions-storage put: no such file or folder: missing.bin\n')
    const noFolder = await run(cwd, ['put', '-r', 'k', 'missing-folder'])
    assert.equal(noFolder.code, 3)
    assertPlainError(noFolder)
    const noObject = await run(cwd, ['stat', 'nothing/here'])
    assert.equal(noObject.code, 3)
    assert.match(noObject.stderr, /File not found in storage: nothing\/here \[FILE_NOT_FOUND\]/)
    const noResumable = await run(cwd, ['put', '--resumable', 'k', 'missing.bin'])
    assert.equal(noResumable.code, 3)
    assert.equal(await exists(path.join(cwd, 'missing.bin.rstorage-upload')), false)
    const config = await run(cwd, ['ls'], { STORAGE_BACKEND: 's3' })
    assert.equal(config.code, 1)
    assert.equal(config.stderr.split('\n').length, 2, config.stderr)
    assert.match(config.stderr, /^raptscallions-storage ls: Invalid storage configuration: STORAGE_S3_REGION: .*\[CONFIGURATION_ERROR\]$/m)
    // The budget is read when the package loads, not when a command opens the store. An empty
    // value is as invalid as 'abc', for every variable.
    for (const [name, value] of [['STORAGE_MEMORY_BUDGET_BYTES', 'abc'], ['STORAGE_MEMORY_BUDGET_BYTES', ''], ['STORAGE_LOCAL_PATH', '']]) {
      const bad = await run(cwd, ['ls'], { [name]: value })
      assert.equal(bad.code, 1, `${name}=${value}`)
      assert.match(bad.stderr, new RegExp(`^raptscallions-storage ls: Invalid storage configuration: ${name}: .*\\[CONFIGURATION_ERROR\\]\n$`))
    }
  })

  it('rm says what it deleted; a missing key is reported and exits with 3 unless --force', async () => {
    assert.equal((await run(cwd, ['put', 'keep/a.txt', 'note.txt'])).code, 0)
    const missing = await run(cwd, ['rm', 'no/such-key'])
    assert.deepEqual(missing, { code: 3, stdout: '', stderr: 'not found: no/such-key\n' })
    const mixed = await run(cwd, ['rm', 'keep/a.txt', 'no/such-key'])
    assert.deepEqual(mixed, { code: 3, stdout: 'deleted keep/a.txt\n', stderr: 'not found: no/such-key\n' })
    assert.equal((await run(cwd, ['stat', 'keep/a.txt'])).code, 3)
    assert.deepEqual(await run(cwd, ['rm', '-f', 'no/such-key']), { code: 0, stdout: '', stderr: '' })
  })

  it('content types come from mime-types; --content-type overrides them', async () => {
    const files = { 'clip.webm': 'video/webm', 'data.csv': 'text/csv', 'mod.mjs': 'text/javascript', 'blob.zzz': 'application/octet-stream' }
    for (const [name, type] of Object.entries(files)) {
      await fs.writeFile(path.join(cwd, name), 'x')
      assert.equal((await run(cwd, ['put', `types/${name}`, name])).code, 0)
      assert.equal(JSON.parse((await run(cwd, ['stat', '--json', `types/${name}`])).stdout).contentType, type, name)
    }
    assert.equal((await run(cwd, ['put', 'types/piped.csv', '-'], {}, 'a,b')).code, 0)
    assert.equal(JSON.parse((await run(cwd, ['stat', '--json', 'types/piped.csv'])).stdout).contentType, 'text/csv')
    assert.equal((await run(cwd, ['put', '--content-type', 'text/markdown', 'types/x', 'data.csv'])).code, 0)
    const stat = await run(cwd, ['stat', 'types/x'])
    assert.match(stat.stdout, /^content-type {2}text\/markdown$/m)
    assert.match(stat.stdout, /^size {10}1 \(1 B\)$/m)
    const put = JSON.parse((await run(cwd, ['put', '--json', 'types/y.csv', 'data.csv'])).stdout)
    assert.deepEqual(put, { key: 'types/y.csv', size: 1, etag: put.etag })
    assert.equal(typeof put.etag, 'string')
    assert.equal((await run(cwd, ['rm', '--prefix', 'types/'])).stdout, 'deleted 7 objects under types/\n')
  })

  it('put reads a FIFO to its end (no length to state), and refuses to resume one', async () => {
    const fifo = path.join(cwd, 'named.pipe')
    await exec('mkfifo', [fifo])
    const data = crypto.randomBytes(300_000)
    const putting = run(cwd, ['put', 'docs/from-fifo.bin', fifo])
    await fs.writeFile(fifo, data)
    const put = await putting
    assert.equal(put.code, 0, put.stderr)
    const local = new LocalStorageBackend({ root: path.join(cwd, 'storage/uploads') })
    assert.ok((await local.get('docs/from-fifo.bin')).equals(data))
    const resumed = await run(cwd, ['put', '--resumable', 'docs/from-fifo.bin', fifo])
    assert.equal(resumed.code, 2)
    assert.match(resumed.stderr, /--resumable needs a regular file/)
    await fs.rm(fifo)
  })

  it('put -r and get -r copy folders; --json output; rm --prefix', async () => {
    const tree = path.join(cwd, 'tree')
    await fs.mkdir(path.join(tree, 'sub/deeper'), { recursive: true })
    const files = { 'index.html': '<p>hi</p>', 'sub/a.txt': 'a', 'sub/deeper/b.json': '{"b":1}' }
    for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(tree, name), text)
    // Working files of this package's (a local store's folder, a half download, an upload's
    // state) are not the user's: never uploaded.
    await fs.mkdir(path.join(tree, '.rstorage/tmp'), { recursive: true })
    await fs.writeFile(path.join(tree, '.rstorage/tmp/x'), 'internal')
    await fs.writeFile(path.join(tree, 'sub/.a.txt.123.rstorage-part'), 'half')
    await fs.writeFile(path.join(tree, 'index.html.rstorage-upload'), '{}')
    const put = await run(cwd, ['put', '-r', '--json', 'site', 'tree'])
    assert.equal(put.code, 0, put.stderr)
    const lines = put.stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.deepEqual(lines.map((l) => l.key), ['site/index.html', 'site/sub/a.txt', 'site/sub/deeper/b.json'])
    const listed = (await run(cwd, ['ls', '--json', 'site/'])).stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.deepEqual(listed.map((o) => [o.key, o.size]), Object.entries(files).map(([name, text]) => [`site/${name}`, text.length]))
    const grouped = (await run(cwd, ['ls', '--json', '--delimiter', '/', 'site/'])).stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.deepEqual(grouped.map((o) => o.prefix ?? o.key), ['site/sub/', 'site/index.html'])
    assert.equal(JSON.parse((await run(cwd, ['stat', '--json', 'site/sub/deeper/b.json'])).stdout).contentType, 'application/json')

    const get = await run(cwd, ['get', '-r', 'site', 'copy'])
    assert.equal(get.code, 0, get.stderr)
    for (const [name, text] of Object.entries(files)) assert.equal(await fs.readFile(path.join(cwd, 'copy', name), 'utf8'), text)
    assert.equal((await run(cwd, ['get', '-r', 'nothing-here', 'copy'])).code, 3)
    assert.equal((await run(cwd, ['get', 'site/sub/a.txt', 'copy'])).code, 0, 'into a folder: under the key\'s name')
    assert.equal((await run(cwd, ['get', 'site/sub/a.txt', 'new/folders/a.txt'])).code, 0, 'folders are made')
    assert.equal(await fs.readFile(path.join(cwd, 'new/folders/a.txt'), 'utf8'), 'a')
    assert.deepEqual((await fs.readdir(path.join(cwd, 'copy'))).sort(), ['a.txt', 'index.html', 'sub'], 'no temp file is left')
    const missing = await run(cwd, ['get', 'site/none.txt', 'copy/none.txt'])
    assert.equal(missing.code, 3)
    assert.equal(await exists(path.join(cwd, 'copy/none.txt')), false)

    const rm = await run(cwd, ['rm', '--prefix', 'site/sub/'])
    assert.deepEqual(rm, { code: 0, stdout: 'deleted 2 objects under site/sub/\n', stderr: '' })
    assert.deepEqual((await run(cwd, ['ls', 'site/'])).stdout.trim().split('\n').length, 1)
  })

  it('serve refuses a base URL it cannot listen for', async () => {
    const https = await run(cwd, ['serve'], { STORAGE_LOCAL_BASE_URL: 'https://files.example.com/files' })
    assert.equal(https.code, 2)
    assert.match(https.stderr, /not plain HTTP.*--port/)
  })
})

describe('put --resumable on the local store', () => {
  let cwd
  let store
  let data
  before(async () => {
    cwd = await tempDir('cli-resumable')
    data = crypto.randomBytes(BIG)
    await fs.writeFile(path.join(cwd, 'big.bin'), data)
    store = new LocalStorageBackend({ root: path.join(cwd, 'storage/uploads') })
  })
  after(() => fs.rm(cwd, { recursive: true, force: true }))
  const statePath = () => path.join(cwd, 'big.bin.rstorage-upload')

  it('resumes after kill -9 at the offset the store kept, and stores the file byte for byte', async () => {
    const args = ['put', '--resumable', '--part-size', '1MiB', 'big/killed.bin', 'big.bin']
    const { ended } = await cutMidUpload({ cwd, args, statePath: statePath(), store, cut: (child) => child.kill('SIGKILL') })
    assert.equal(ended.signal, 'SIGKILL')
    assert.ok(await exists(statePath()), 'the state file outlives the killed run')
    assert.equal(await store.exists('big/killed.bin'), false)

    const again = await run(cwd, ['put', '--resumable', 'big/killed.bin', 'big.bin'])
    assert.equal(again.code, 0, again.stderr)
    const offset = resumedAt(again.stderr)
    assert.ok(offset > 0 && offset < BIG, `resumed at ${offset}`)
    assert.ok((await store.get('big/killed.bin')).equals(data), 'the object is the file')
    assert.equal(await exists(statePath()), false, 'the state file is removed on success')
    assert.match(again.stdout, /^big\/killed\.bin {2}"/)
  })

  it('draws progress (bytes, %, throughput, ETA) on stderr only when it is a terminal', async () => {
    const piped = await run(cwd, ['put', '--resumable', 'big/piped.bin', 'big.bin'])
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal(piped.stderr, '')
    const screen = await onTerminal(cwd, ['put', '--resumable', 'big/tty.bin', 'big.bin'])
    assert.match(screen, /\rput \[#{30}\] 40\.0 MiB \/ 40\.0 MiB 100% +[\d.]+ [KMG]iB\/s +ETA 0:00/)
    assert.match(screen, /big\/tty\.bin {2}"/)
  })

  it('put from standard input draws the bytes and throughput (no total to show) only on a terminal', async () => {
    const piped = await run(cwd, ['put', 'big/stdin-piped.bin', '-'], {}, data)
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal(piped.stderr, '')
    const screen = await onTerminal(cwd, ['put', 'big/stdin-tty.bin', '-'], 'big.bin')
    assert.match(screen, /\rput [\d.]+ MiB {2}[\d.]+ [KMG]iB\/s\x1b\[K/)
    assert.doesNotMatch(screen, /\rput \[/)
    assert.match(screen, /\r?\nbig\/stdin-tty\.bin {2}"/, 'the line is ended before the result')
    assert.ok((await store.get('big/stdin-tty.bin')).equals(data))
    // Unnamed, standard input is read from a pipe (above) or a file, but not from a terminal.
    const typing = await onTerminal(cwd, ['put', 'big/typed.bin'], undefined, 2)
    assert.match(typing, /put: put needs a file, or - to read standard input from a pipe/)
    assert.equal((await run(cwd, ['put', 'big/unnamed.bin'], {}, 'piped')).code, 0)
    assert.equal(await store.exists('big/typed.bin'), false)
  })

  it('Ctrl-C stops with 130 and keeps the upload; the next run resumes it', async () => {
    const args = ['put', '--resumable', '--part-size', '1MiB', 'big/interrupted.bin', 'big.bin']
    const { ended, id } = await cutMidUpload({ cwd, args, statePath: statePath(), store, cut: (child) => child.kill('SIGINT') })
    assert.equal(ended.code, 130, ended.stderr)
    assert.match(ended.stderr, /put: interrupted\nnote: the upload is kept \(\d+ of 41943040 bytes stored\): run the same command again to resume/)
    const kept = await store.getUpload(id)
    const again = await run(cwd, args)
    assert.equal(again.code, 0, again.stderr)
    assert.equal(resumedAt(again.stderr), kept.offset)
    assert.ok((await store.get('big/interrupted.bin')).equals(data))
  })

  it('starts anew when the file changed or the upload is gone', async () => {
    const args = ['put', '--resumable', '--part-size', '1MiB', 'big/changed.bin', 'big.bin']
    const cut = (child) => child.kill('SIGKILL')
    const first = await cutMidUpload({ cwd, args, statePath: statePath(), store, cut })
    const changed = crypto.randomBytes(BIG)
    await fs.writeFile(path.join(cwd, 'big.bin'), changed)
    const anew = await run(cwd, args)
    assert.equal(anew.code, 0, anew.stderr)
    assert.match(anew.stderr, /big\.bin changed, or goes elsewhere, since the upload [0-9a-f]+ began: starting anew/)
    assert.doesNotMatch(anew.stderr, /resuming/)
    assert.ok((await store.get('big/changed.bin')).equals(changed))
    // The replaced upload could never be finished: its bytes are not left to expire.
    await assert.rejects(store.getUpload(first.id), { code: 'UPLOAD_NOT_FOUND' })

    const second = await cutMidUpload({ cwd, args, statePath: statePath(), store, cut })
    await store.abortUpload(second.id)
    const gone = await run(cwd, args)
    assert.equal(gone.code, 0, gone.stderr)
    assert.match(gone.stderr, /the upload [0-9a-f]+ is gone \(expired or removed\): starting anew/)
    assert.ok((await store.get('big/changed.bin')).equals(changed))
    data = changed
  })
})

describe('CLI on S3 (moto) beside the local store', () => {
  let cwd
  let moto
  let s3
  let local
  let env
  before(async () => {
    cwd = await tempDir('cli-s3')
    moto = await startMoto('conformance-bucket')
    s3 = s3Backend(moto.endpoint)
    local = new LocalStorageBackend({ root: path.join(cwd, 'storage/uploads') })
    env = {
      STORAGE_S3_ENDPOINT: moto.endpoint,
      STORAGE_S3_REGION: 'us-east-1',
      STORAGE_S3_BUCKET: 'conformance-bucket',
      STORAGE_S3_ACCESS_KEY_ID: ACCESS_KEY,
      STORAGE_S3_SECRET_ACCESS_KEY: SECRET_KEY,
    }
  })
  after(async () => {
    await moto?.stop()
    await fs.rm(cwd, { recursive: true, force: true })
  })

  it('cp and mv between backends stream the bytes and keep the type and metadata', async () => {
    await local.upload({ key: 'docs/report.csv', body: 'a,b\n1,2\n', contentType: 'text/csv', metadata: { owner: 'ann' } })
    const cp = await run(cwd, ['cp', 'local:docs/report.csv', 's3:copied/report.csv'], env)
    assert.deepEqual(cp, { code: 0, stdout: 'copied local:docs/report.csv to s3:copied/report.csv\n', stderr: '' })
    const copied = await s3.stat('copied/report.csv')
    assert.equal(copied.contentType, 'text/csv')
    assert.deepEqual(copied.metadata, { owner: 'ann' })
    assert.equal((await s3.get('copied/report.csv')).toString(), 'a,b\n1,2\n')

    const within = await run(cwd, ['cp', 's3:copied/report.csv', 's3:copied/again.csv'], env)
    assert.equal(within.code, 0, within.stderr)
    const mv = await run(cwd, ['mv', 's3:copied/again.csv', 'moved/report.csv'], env)
    assert.equal(mv.code, 0, mv.stderr)
    assert.equal(await s3.exists('copied/again.csv'), false)
    assert.equal((await local.get('moved/report.csv')).toString(), 'a,b\n1,2\n')
    assert.deepEqual((await local.stat('moved/report.csv')).metadata, { owner: 'ann' })

    const big = crypto.randomBytes(20 << 20)
    await local.upload({ key: 'big/blob.bin', body: big })
    assert.equal((await run(cwd, ['cp', 'big/blob.bin', 's3:big/blob.bin'], env)).code, 0)
    assert.ok((await s3.get('big/blob.bin')).equals(big))

    const missing = await run(cwd, ['cp', 'local:no/such', 's3:x'], env)
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /File not found in storage: no\/such/)
    assert.equal(await s3.exists('x'), false)
    const listed = await run(cwd, ['ls', 's3:copied/'], env)
    assert.match(listed.stdout, /copied\/report\.csv\n$/)
    assert.deepEqual(await run(cwd, ['rm', 's3:copied/report.csv'], env), { code: 0, stdout: 'deleted s3:copied/report.csv\n', stderr: '' })
  })

  it('put --resumable resumes after kill -9 on S3', async () => {
    const data = crypto.randomBytes(BIG)
    await fs.writeFile(path.join(cwd, 'big.bin'), data)
    const statePath = path.join(cwd, 'big.bin.rstorage-upload')
    const args = ['put', '--resumable', 's3:big/resumed.bin', 'big.bin']
    const { ended } = await cutMidUpload({ cwd, args, env, statePath, store: s3, cut: (child) => child.kill('SIGKILL') })
    assert.equal(ended.signal, 'SIGKILL')
    const again = await run(cwd, args, env)
    assert.equal(again.code, 0, again.stderr)
    const offset = resumedAt(again.stderr)
    assert.ok(offset > 0 && offset < BIG, `resumed at ${offset}`)
    assert.ok((await s3.get('big/resumed.bin')).equals(data))
    assert.equal(await exists(statePath), false)
  })

  it('put --resumable fails on a store error with the upload kept, and resumes once the store is back', async () => {
    const data = crypto.randomBytes(BIG / 2)
    await fs.writeFile(path.join(cwd, 'half.bin'), data)
    const proxy = await startFaultProxy(moto.endpoint)
    try {
      const viaProxy = { ...env, STORAGE_S3_ENDPOINT: proxy.endpoint }
      const args = ['put', '--resumable', '--part-size', '1MiB', 's3:big/after-error.bin', 'half.bin']
      const statePath = path.join(cwd, 'half.bin.rstorage-upload')
      const { ended } = await cutMidUpload({
        cwd,
        args,
        env: viaProxy,
        statePath,
        store: s3,
        cut: () => Object.assign(proxy.faults, { failures: Infinity, status: 500 }),
      })
      assert.equal(ended.code, 1, ended.stderr)
      assert.match(ended.stderr, /\nnote: the upload is kept \(\d+ of 20971520 bytes stored\): run the same command again to resume\n$/)
      proxy.faults.failures = 0
      const again = await run(cwd, args, viaProxy)
      assert.equal(again.code, 0, again.stderr)
      assert.ok(resumedAt(again.stderr) > 0)
      assert.ok((await s3.get('big/after-error.bin')).equals(data))
    } finally {
      await proxy.close()
    }
  })

  it('sync migrates a local prefix to S3 with types and metadata, then between S3 prefixes by ETag, then to a folder', async () => {
    await local.upload({ key: 'photos/a.jpg', body: 'jpeg bytes', contentType: 'image/jpeg', metadata: { owner: 'ann' } })
    await local.upload({ key: 'photos/nested/b.txt', body: 'bee' })
    await local.upload({ key: 'photos/empty', body: '' })
    await local.upload({ key: 'photos/one', body: '1' })
    const names = ['a.jpg', 'empty', 'nested/b.txt', 'one']
    const up = await run(cwd, ['sync', 'local:photos', 's3:photos'], env)
    assert.equal(up.code, 0, up.stderr)
    assert.deepEqual(copiedBy(up.stdout), names.map((name) => `copy local:photos/${name} -> s3:photos/${name}`))
    assert.deepEqual(await objectsOf(s3, 'photos/'), await objectsOf(local, 'photos/'))
    const stat = await s3.stat('photos/a.jpg')
    assert.equal(stat.contentType, 'image/jpeg')
    assert.deepEqual(stat.metadata, { owner: 'ann' })
    assert.equal((await run(cwd, ['sync', 'local:photos', 's3:photos'], env)).stdout, '0 copied (0 bytes), 0 deleted, 4 unchanged\n')

    const within = await run(cwd, ['sync', 's3:photos', 's3:album'], env)
    assert.equal(within.code, 0, within.stderr)
    assert.deepEqual(await objectsOf(s3, 'album/'), await objectsOf(s3, 'photos/'))
    await sleep(1100) // a later second: the times alone would say "copy" below, and "keep" above
    await s3.upload({ key: 'photos/nested/b.txt', body: 'bee' }) // rewritten as it was: the same MD5
    await s3.upload({ key: 'photos/one', body: '2' })
    await s3.upload({ key: 'album/one', body: '3' }) // newer than its source, but not its bytes
    const byEtag = await run(cwd, ['sync', 's3:photos', 's3:album'], env)
    assert.equal(byEtag.code, 0, byEtag.stderr)
    assert.deepEqual(copiedBy(byEtag.stdout), ['copy s3:photos/one -> s3:album/one'])
    assert.equal((await s3.get('album/one')).toString(), '2')

    const down = await run(cwd, ['sync', 's3:album', 'album'], env)
    assert.equal(down.code, 0, down.stderr)
    assert.deepEqual(await treeOf(path.join(cwd, 'album')), await objectsOf(s3, 'album/'))
    assert.equal((await run(cwd, ['sync', 's3:album', 'album'], env)).stdout, '0 copied (0 bytes), 0 deleted, 4 unchanged\n')
  })

  it('sync to S3 cut by Ctrl-C leaves whole objects only; the next run copies the rest', async () => {
    const names = Array.from({ length: 16 }, (_, i) => `f${String(i).padStart(2, '0')}.bin`)
    const files = Object.fromEntries(names.map((name) => [name, crypto.randomBytes(1 << 20)]))
    await writeTree(path.join(cwd, 'upload'), files)
    const { child, done } = start(cwd, ['sync', 'upload', 's3:upload'], env)
    await new Promise((resolve) => child.stdout.once('data', resolve))
    child.kill('SIGINT')
    const cut = await done
    assert.equal(cut.code, 130, cut.stderr)
    const copiedFirst = copiedBy(cut.stdout).length
    assert.ok(copiedFirst > 0 && copiedFirst < 16, `${copiedFirst} copied before the cut`)
    const stored = []
    for await (const { key } of s3.listAll({ prefix: 'upload/' })) stored.push(key)
    assert.equal(stored.length, copiedFirst, stored.join(' '))
    for (const key of stored) assert.ok((await s3.get(key)).equals(files[key.slice('upload/'.length)]), key)

    const again = await run(cwd, ['sync', 'upload', 's3:upload'], env)
    assert.equal(again.code, 0, again.stderr)
    assert.equal(copiedBy(again.stdout).length, 16 - copiedFirst)
    for (const [name, data] of Object.entries(files)) assert.ok((await s3.get(`upload/${name}`)).equals(data), name)
  })
})

/** Writes `files` (path → content) under `dir`, making folders. */
async function writeTree(dir, files) {
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true })
    await fs.writeFile(path.join(dir, name), content)
  }
}

/** Every file under `dir` (temp files too), as path → content. */
async function treeOf(dir) {
  const entries = (await fs.readdir(dir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile())
  const files = entries.map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
  return Object.fromEntries(await Promise.all(files.sort().map(async (name) => [name, await fs.readFile(path.join(dir, name), 'utf8')])))
}

/** Every object under `prefix` in `store`, as name below the prefix → content. */
async function objectsOf(store, prefix) {
  const objects = {}
  for await (const { key } of store.listAll({ prefix })) objects[key.slice(prefix.length)] = (await store.get(key)).toString()
  return objects
}

const copiedBy = (stdout) => stdout.split('\n').filter((line) => line.startsWith('copy '))

describe('sync between folders and the local store', () => {
  let cwd
  let store
  // Nested folders, an empty file and a one-byte one.
  const files = { 'a.txt': 'alpha', 'empty.bin': '', 'one.bin': 'x', 'sub/b.txt': 'beta', 'sub/deeper/c.json': '{"c":3}' }
  before(async () => {
    cwd = await tempDir('cli-sync')
    store = new LocalStorageBackend({ root: path.join(cwd, 'storage/uploads') })
    await writeTree(path.join(cwd, 'site'), files)
  })
  after(() => fs.rm(cwd, { recursive: true, force: true }))

  it('copies a folder into a store, then only what changed: another size, or the same size modified later', async () => {
    await writeTree(path.join(cwd, 'changing'), files)
    const first = await run(cwd, ['sync', './changing', 'local:web'])
    assert.equal(first.code, 0, first.stderr)
    assert.deepEqual(copiedBy(first.stdout), Object.keys(files).map((name) => `copy ${path.join('changing', name)} -> local:web/${name}`))
    assert.match(first.stdout, /^5 copied \(17 bytes\), 0 deleted, 0 unchanged$/m)
    assert.deepEqual(await objectsOf(store, 'web/'), files)
    assert.equal((await store.stat('web/sub/deeper/c.json')).contentType, 'application/json')

    assert.deepEqual(await run(cwd, ['sync', './changing', 'local:web']), {
      code: 0,
      stdout: '0 copied (0 bytes), 0 deleted, 5 unchanged\n',
      stderr: '',
    })

    await fs.writeFile(path.join(cwd, 'changing/one.bin'), 'xy')
    await fs.writeFile(path.join(cwd, 'changing/sub/b.txt'), 'BETA')
    const later = new Date(Date.now() + 60_000) // the same size: only the time tells
    await fs.utimes(path.join(cwd, 'changing/sub/b.txt'), later, later)
    const changed = await run(cwd, ['sync', 'changing', 'local:web'])
    assert.equal(changed.code, 0, changed.stderr)
    assert.deepEqual(copiedBy(changed.stdout), ['copy changing/one.bin -> local:web/one.bin', 'copy changing/sub/b.txt -> local:web/sub/b.txt'])
    assert.match(changed.stdout, /^2 copied \(6 bytes\), 0 deleted, 3 unchanged$/m)
    assert.deepEqual(await objectsOf(store, 'web/'), { ...files, 'one.bin': 'xy', 'sub/b.txt': 'BETA' })
  })

  it('copies a store into a folder (made as needed), whole files only, and nothing again', async () => {
    await store.upload({ key: 'tree/a.txt', body: 'alpha' })
    await store.upload({ key: 'tree/z/one.bin', body: 'x' })
    await store.upload({ key: 'tree/z/empty', body: '' })
    const down = await run(cwd, ['sync', 'local:tree', 'backup/tree'])
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stdout, /^copy local:tree\/z\/one\.bin -> backup\/tree\/z\/one\.bin$/m)
    assert.match(down.stdout, /^3 copied \(6 bytes\), 0 deleted, 0 unchanged$/m)
    assert.deepEqual(await treeOf(path.join(cwd, 'backup/tree')), { 'a.txt': 'alpha', 'z/empty': '', 'z/one.bin': 'x' })
    const again = await run(cwd, ['sync', 'local:tree', 'backup/tree'])
    assert.equal(again.stdout, '0 copied (0 bytes), 0 deleted, 3 unchanged\n')
  })

  it('gives downloaded files the objects\' times: a sync of the folder back copies nothing', async () => {
    const hourAgo = new Date(Date.now() - 3_600_000)
    for (const [name, text] of Object.entries(files)) {
      await store.upload({ key: `round/${name}`, body: text })
      // The local store's time is its file's: an object stored before this second.
      await fs.utimes(path.join(cwd, 'storage/uploads/round', name), hourAgo, hourAgo)
    }
    const down = await run(cwd, ['sync', 'local:round', 'round-trip'])
    assert.match(down.stdout, /^5 copied \(17 bytes\), 0 deleted, 0 unchanged$/m)
    const { mtime } = await fs.stat(path.join(cwd, 'round-trip/sub/b.txt'))
    assert.equal(mtime.getTime(), (await store.stat('round/sub/b.txt')).lastModified.getTime())
    assert.deepEqual(await run(cwd, ['sync', 'round-trip', 'local:round']), {
      code: 0,
      stdout: '0 copied (0 bytes), 0 deleted, 5 unchanged\n',
      stderr: '',
    })
  })

  it('--delete removes what the source lacks, only under the destination prefix or folder', async () => {
    for (const key of ['mirror/a.txt', 'mirror/gone.txt', 'mirror/old/deep.txt', 'mirror-sibling/keep.txt', 'keep.txt']) {
      await store.upload({ key, body: 'x' })
    }
    const sync = await run(cwd, ['sync', '--delete', 'site', 'local:mirror'])
    assert.equal(sync.code, 0, sync.stderr)
    assert.match(sync.stdout, /^delete local:mirror\/gone\.txt\ndelete local:mirror\/old\/deep\.txt\n/m)
    assert.match(sync.stdout, /, 2 deleted, /)
    assert.deepEqual(Object.keys(await objectsOf(store, 'mirror/')).sort(), Object.keys(files).sort())
    assert.ok(await store.exists('mirror-sibling/keep.txt'))
    assert.ok(await store.exists('keep.txt'))

    await writeTree(path.join(cwd, 'backup'), { 'mirror/stray.txt': 'stray', 'beside.txt': 'beside' })
    const down = await run(cwd, ['sync', '--delete', 'local:mirror', 'backup/mirror'])
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stdout, /^delete backup\/mirror\/stray\.txt$/m)
    assert.deepEqual(Object.keys(await treeOf(path.join(cwd, 'backup/mirror'))).sort(), Object.keys(files).sort())
    assert.equal(await fs.readFile(path.join(cwd, 'backup/beside.txt'), 'utf8'), 'beside')
  })

  it('--dry-run prints the plan and changes nothing; --json prints one object per action', async () => {
    await store.upload({ key: 'plan/extra.txt', body: 'extra' })
    await store.upload({ key: 'plan/a.txt', body: 'other size' })
    const before = await objectsOf(store, 'plan/')
    const dry = await run(cwd, ['sync', '--dry-run', '--delete', 'site', 'local:plan'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.deepEqual(dry.stdout.trim().split('\n'), [
      ...Object.keys(files).map((name) => `copy ${path.join('site', name)} -> local:plan/${name}`),
      'delete local:plan/extra.txt',
      'dry run: 5 to copy (17 bytes), 1 to delete, 0 unchanged',
    ])
    assert.deepEqual(await objectsOf(store, 'plan/'), before)

    const json = await run(cwd, ['sync', '--json', '--delete', 'site', 'local:plan'])
    assert.equal(json.code, 0, json.stderr)
    const actions = json.stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.deepEqual(actions.at(0), { action: 'copy', source: 'site/a.txt', target: 'local:plan/a.txt', size: 5 })
    assert.deepEqual(actions.at(-2), { action: 'delete', target: 'local:plan/extra.txt' })
    assert.deepEqual(actions.at(-1), { action: 'summary', copied: 5, bytes: 17, deleted: 1, unchanged: 0, failed: 0, dryRun: false })
    assert.deepEqual(await objectsOf(store, 'plan/'), files)
  })

  it('refuses bad input: usage errors exit 2, a missing source 3, nothing changed', async () => {
    const cases = [
      [['sync', 'site'], 2, /sync needs <from> <to>/],
      [['sync', 'site', 'local:x', 'more'], 2, /sync takes <from> <to>; unexpected "more"/],
      [['sync', '--checksum', 'site', 'local:x'], 2, /unknown option --checksum/],
      [['sync', 'site', 'elsewhere'], 2, /neither site nor elsewhere names a store/],
      [['sync', 'local:web', 'local:web/inner'], 2, /local:web and local:web\/inner overlap/],
      [['sync', 'no-such-folder', 'local:x'], 3, /no such file or folder: no-such-folder/],
      [['sync', 'local:no-such-prefix', 'copy'], 3, /no objects under local:no-such-prefix/],
    ]
    for (const [args, code, message] of cases) {
      const result = await run(cwd, args)
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, message)
      assertPlainError(result)
      assert.equal(result.stdout, '')
    }
    assert.equal(await store.exists('x/a.txt'), false)
    assert.equal(await exists(path.join(cwd, 'copy')), false)
    const help = await run(cwd, ['sync', '--help'])
    assert.match(help.stdout, /^Usage: raptscallions-storage sync \[options\] <from> <to>/)
    assert.match(help.stdout, /ETags are MD5s .* modified in a later second/s)
    assert.match(help.stdout, /--delete .*\n.*--dry-run .*\n.*--json /)
  })

  it('reports an object that fails, goes on with the others and exits 1', async () => {
    await store.upload({ key: 'clash/a.txt/inner', body: 'a folder where a.txt goes' }) // the local store cannot hold both
    const result = await run(cwd, ['sync', 'site', 'local:clash'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^failed copy site\/a\.txt -> local:clash\/a\.txt: .*\[KEY_CONFLICT\]$/m)
    assert.match(result.stdout, /^4 copied \(12 bytes\), 0 deleted, 0 unchanged, 1 failed$/m)
    assert.equal((await store.get('clash/sub/deeper/c.json')).toString(), files['sub/deeper/c.json'])
    const json = await run(cwd, ['sync', '--json', 'site', 'local:clash'])
    assert.equal(json.code, 1)
    const [failed, summary] = json.stdout.trim().split('\n').map((line) => JSON.parse(line))
    assert.match(failed.error, /\[KEY_CONFLICT\]$/)
    assert.deepEqual(failed, { action: 'copy', source: 'site/a.txt', target: 'local:clash/a.txt', size: 5, error: failed.error })
    assert.equal(summary.failed, 1)
    assert.match(json.stderr, /^failed copy site\/a\.txt -> local:clash\/a\.txt: /m)
  })

  it('Ctrl-C stops with 130 and no partial file; the next run copies the rest', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `part-${String(i).padStart(2, '0')}.bin`)
    const many = Object.fromEntries(names.map((name) => [name, crypto.randomBytes(1 << 20).toString('hex')]))
    await Promise.all(Object.entries(many).map(([name, text]) => store.upload({ key: `many/${name}`, body: text })))
    const { child, done } = start(cwd, ['sync', 'local:many', 'many-copy'])
    await new Promise((resolve) => child.stdout.once('data', resolve))
    child.kill('SIGINT')
    const cut = await done
    assert.equal(cut.code, 130, cut.stderr)
    assert.match(cut.stderr, /sync: interrupted\nnote: \d+ of 24 copied: run the same sync again to go on\n$/)
    const kept = await treeOf(path.join(cwd, 'many-copy'))
    const copiedFirst = copiedBy(cut.stdout).length
    assert.ok(copiedFirst > 0 && copiedFirst < 24, `${copiedFirst} copied before the cut`)
    assert.equal(Object.keys(kept).length, copiedFirst, 'only the files reported copied, no temp file')
    for (const [name, text] of Object.entries(kept)) assert.equal(text, many[name], name)

    const again = await run(cwd, ['sync', 'local:many', 'many-copy'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(copiedBy(again.stdout).length, 24 - copiedFirst)
    assert.deepEqual(await treeOf(path.join(cwd, 'many-copy')), many)
  })

  it('draws one total progress line on stderr only when it is a terminal', async () => {
    await writeTree(path.join(cwd, 'big'), { 'a.bin': crypto.randomBytes(6 << 20), 'b.bin': crypto.randomBytes(6 << 20) })
    const piped = await run(cwd, ['sync', 'big', 'local:big-piped'])
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal(piped.stderr, '')
    const screen = await onTerminal(cwd, ['sync', 'big', 'local:big-tty'])
    assert.match(screen, /\rsync \[#{30}\] 12\.0 MiB \/ 12\.0 MiB 100% +[\d.]+ [KMG]iB\/s +ETA 0:00/)
    assert.match(screen, /^copy big\/b\.bin -> local:big-tty\/b\.bin\r?$/m)
    assert.match(screen, /^2 copied \(12582912 bytes\), 0 deleted, 0 unchanged\r?$/m)
  })
})
