// Drop-in proof: the packed package, installed into scratch ESM-TypeScript and CommonJS apps
// that have their own @raptscallions/core, type-checks and runs there.
import assert from 'node:assert/strict'
import fs from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tempDir } from './fixtures.mjs'
import { APP_ERROR, APP_ERROR_TYPES, exec, npmInstall as install, packTarball, repo, writeFiles as write } from './scratch.mjs'

const tsc = path.join(repo, 'node_modules/typescript/bin/tsc')


const ESM_APP = `
import { Readable } from 'node:stream'
import { AppError } from '@raptscallions/core'
import {
  FileNotFoundError, LocalStorageBackend, StorageError, getBackend, registerBackend, resetAll,
  storageConfig, s3ConfigSchema,
  type IStorageBackend, type BackendFactory, type UploadParams, type UploadResult, type SignedUrl,
  type SignedUrlOptions, type StorageConfig, type S3Config, type StorageErrorCodeType,
} from '@raptscallions/storage'

class EchoBackend implements IStorageBackend {
  async upload(params: UploadParams): Promise<UploadResult> { return { key: params.key } }
  async download(key: string): Promise<Readable> { return Readable.from([key]) }
  async delete(_key: string): Promise<void> {}
  async exists(_key: string): Promise<boolean> { return true }
  async getSignedUrl(key: string, options?: SignedUrlOptions): Promise<SignedUrl> {
    return { url: 'https://example.test/' + key + '?' + (options?.method ?? 'GET'), expiresAt: new Date().toISOString() }
  }
}

const factory: BackendFactory<EchoBackend> = () => new EchoBackend()
const config: StorageConfig = storageConfig
const s3: S3Config | undefined = s3ConfigSchema.safeParse({}).success ? undefined : undefined
const code: StorageErrorCodeType = 'FILE_NOT_FOUND'

resetAll()
registerBackend('echo', factory)
registerBackend('local', () => new LocalStorageBackend(process.argv[2]))
const local = getBackend('local')
const uploaded = await local.upload({ key: 'a/b.txt', body: Buffer.from('drop-in'), contentType: 'text/plain' })
let text = ''
for await (const chunk of await local.download(uploaded.key)) text += chunk
const signed = await local.getSignedUrl('a/b.txt', { expiresIn: 60 })
// A built-in id is typed as the package's StorageBackend: its extended methods need no cast,
// and options built with optional fields that may be undefined pass exactOptionalPropertyTypes.
const maxBytes: number | undefined = process.env.NO_SUCH_LIMIT ? Number(process.env.NO_SUCH_LIMIT) : undefined
const info = await local.stat(uploaded.key)
// The store STORAGE_BACKEND names (local here) is typed with its extended methods too.
const fromEnvironment = await getBackend().stat(uploaded.key)
await local.upload({ key: 'a/typed.txt', body: 'x', maxBytes, contentType: undefined })
const custom = getBackend<EchoBackend>('echo')
const echo = await custom.getSignedUrl('k', { method: 'PUT' })
try {
  await local.download('missing.txt')
} catch (error) {
  if (error instanceof FileNotFoundError && error instanceof AppError && !(error instanceof StorageError) && error.code === code) {
    // Each class's code and details are typed: no cast to read the key.
    const missingKey: string = error.details.key
    const exact: 'FILE_NOT_FOUND' = error.code
    void missingKey, exact
    console.log(JSON.stringify({ text, size: info.size, signed: signed.url.startsWith('http'), echo: echo.url, backend: config.STORAGE_BACKEND, s3, json: error.toJSON(), fromEnvironment: fromEnvironment.size }))
  }
}
`

const CJS_APP = `
const { Readable } = require('node:stream')
const { AppError } = require('@raptscallions/core')
const storage = require('@raptscallions/storage')

async function main() {
  const backend = new storage.LocalStorageBackend({ root: process.argv[2] })
  storage.registerBackend('disk', () => backend)
  const b = storage.getBackend('disk')
  await b.upload({ key: 'c.txt', body: Readable.from(['common', 'js']), contentType: 'text/plain' })
  const chunks = []
  for await (const chunk of await b.download('c.txt')) chunks.push(chunk)
  let notRegistered
  try { storage.getBackend('nope') } catch (e) { notRegistered = e }
  let missing
  try { await b.download('gone') } catch (e) { missing = e }
  console.log(JSON.stringify({
    text: Buffer.concat(chunks).toString(),
    cached: storage.isBackendCached('disk'),
    notRegistered: notRegistered instanceof storage.BackendNotRegisteredError && notRegistered instanceof AppError,
    missing: missing instanceof storage.FileNotFoundError && missing instanceof AppError && missing.statusCode === 404,
    sameAppError: storage.AppError === AppError,
  }))
}
main()
`

describe('drop-in: the packed package in other apps', { timeout: 300_000 }, () => {
  let work
  let tarball

  before(async () => {
    work = await tempDir('dropin')
    tarball = await packTarball(work)
  })
  after(() => fs.rm(work, { recursive: true, force: true }))

  it('ships the addon, the loader, both entries, the Fastify entry and the types', async () => {
    const { stdout } = await exec('tar', ['-tzf', tarball])
    const files = ['index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'bin/cli.js', 'lib/backend.js']
    for (const file of [...files, 'fastify.mjs', 'fastify.d.ts', 'lib/fastify.js', 'lib/serve.js']) {
      assert.match(stdout, new RegExp(`^package/${file.replace('.', '\\.')}$`, 'm'))
    }
    assert.match(stdout, /^package\/storage\.[\w-]+\.node$/m)
  })

  it('an ESM TypeScript app type-checks against the contract types and runs', async () => {
    const app = path.join(work, 'esm-app')
    await write(app, {
      'core/package.json': { name: '@raptscallions/core', version: '1.0.0', type: 'module', exports: { '.': { types: './index.d.ts', default: './index.js' } } },
      'core/index.js': `export class AppError extends Error {${APP_ERROR}}\n`,
      'core/index.d.ts': APP_ERROR_TYPES,
      'tsconfig.json': {
        compilerOptions: {
          strict: true, exactOptionalPropertyTypes: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', outDir: 'dist',
          typeRoots: [path.join(repo, 'node_modules/@types')], types: ['node'],
        },
        files: ['app.ts'],
      },
      'app.ts': ESM_APP,
    })
    await install(app, {
      name: 'esm-app', private: true, type: 'module',
      dependencies: { '@raptscallions/storage': `file:${tarball}`, '@raptscallions/core': 'file:./core' },
    })
    await exec(process.execPath, [tsc, '-p', app])
    const { stdout } = await exec(process.execPath, [path.join(app, 'dist/app.js'), path.join(app, 'data')], { cwd: app })
    const result = JSON.parse(stdout)
    assert.equal(result.text, 'drop-in')
    assert.equal(result.size, 7)
    assert.equal(result.fromEnvironment, 7)
    assert.equal(result.signed, true)
    assert.equal(result.echo, 'https://example.test/k?PUT')
    assert.equal(result.backend, 'local')
    assert.deepEqual(result.json, { message: 'File not found in storage: missing.txt', code: 'FILE_NOT_FOUND', statusCode: 404, details: { key: 'missing.txt' } })
  })

  it('a CommonJS app requires it and its errors extend the app AppError', async () => {
    const app = path.join(work, 'cjs-app')
    await write(app, {
      'core/package.json': { name: '@raptscallions/core', version: '1.0.0', main: 'index.js' },
      'core/index.js': `class AppError extends Error {${APP_ERROR}}\nmodule.exports = { AppError }\n`,
      'app.cjs': CJS_APP,
    })
    await install(app, {
      name: 'cjs-app', private: true,
      dependencies: { '@raptscallions/storage': `file:${tarball}`, '@raptscallions/core': 'file:./core' },
    })
    const { stdout } = await exec(process.execPath, [path.join(app, 'app.cjs'), path.join(app, 'data')], { cwd: app })
    assert.deepEqual(JSON.parse(stdout), { text: 'commonjs', cached: true, notRegistered: true, missing: true, sameAppError: true })
  })
})
