// Scratch apps for the packaging tests: the packed package installed with npm into a new folder,
// as an app installs it.
import { execFile } from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const exec = promisify(execFile)
export const repo = fileURLToPath(new URL('..', import.meta.url))

/** The body of @raptscallions/core's AppError class, and its types, for the scratch apps' own core. */
export const APP_ERROR = `
  constructor(message, code, statusCode = 500, details) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.statusCode = statusCode
    this.details = details
    Object.setPrototypeOf(this, new.target.prototype)
  }
  toJSON() { return { message: this.message, code: this.code, statusCode: this.statusCode, details: this.details } }
`

export const APP_ERROR_TYPES =
  'export declare class AppError extends Error { code: string; statusCode: number; details: unknown; constructor(m: string, c: string, s?: number, d?: unknown); toJSON(): Record<string, unknown> }\n'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

/** Writes `files` ({ relative path: text, or an object written as JSON }) under `dir`. */
export async function writeFiles(dir, files) {
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true })
    await fs.writeFile(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2))
  }
}

/** `npm pack` of this repository into `dir`; resolves to the tarball's path. */
export async function packTarball(dir) {
  const { stdout } = await exec(npm, ['pack', '--silent', '--pack-destination', dir], { cwd: repo })
  return path.join(dir, stdout.trim().split('\n').at(-1))
}

/** Writes `app/package.json` and runs `npm install` there (local folders copied, not linked). */
export async function npmInstall(app, pkg) {
  await writeFiles(app, { 'package.json': pkg })
  await exec(npm, ['install', '--install-links', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app })
}
