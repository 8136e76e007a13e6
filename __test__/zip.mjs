// Zips checked with Info-ZIP's unzip, the reader most archives meet, never with our own code.
import { execFile } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'

const run = promisify(execFile)
// In a UTF-8 locale unzip writes names flagged UTF-8 as they are.
const env = { ...process.env, LC_ALL: 'C.UTF-8' }

/** Writes an archive stream to `file`; rejects with the stream's error (the file keeps what came). */
export async function save(archive, file) {
  await pipeline(archive, createWriteStream(file))
  return file
}

/** `unzip -t`: whether every entry's CRC checks out and the directory is whole, and what it said. */
export async function unzipTest(file) {
  try {
    const { stdout } = await run('unzip', ['-t', file], { env, maxBuffer: 64 << 20 })
    return { ok: true, output: stdout }
  } catch (error) {
    return { ok: false, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }
  }
}

/** Extracts `file` into `dir` with unzip; resolves to Map(name → Buffer) of every file in it. */
export async function extract(file, dir) {
  await run('unzip', ['-q', file, '-d', dir], { env, maxBuffer: 64 << 20 })
  const files = new Map()
  for (const name of await fs.readdir(dir, { recursive: true })) {
    const full = path.join(dir, name)
    if ((await fs.stat(full)).isFile()) files.set(name, await fs.readFile(full))
  }
  return files
}

/** zipinfo's view: one { name, method, date } per entry, `date` the DOS time as written (yyyymmdd.hhmmss). */
export async function entries(file) {
  const { stdout } = await run('unzip', ['-Z', '-T', file], { env, maxBuffer: 64 << 20 })
  return stdout
    .split('\n')
    .map((line) => /^\S+\s+\S+\s+\S+\s+\d+\s+\S+\s+(\S+)\s+(\d{8}\.\d{6})\s(.*)$/.exec(line))
    .filter(Boolean)
    .map(([, method, date, name]) => ({ name, method, date }))
}

/** A Date as a zip entry carries it: UTC fields, seconds rounded down to even (DOS time). */
export function dosDate(date) {
  const pad = (n) => String(n).padStart(2, '0')
  const d = date
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}.${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds() & ~1)}`
}
