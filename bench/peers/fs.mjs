// Node's own fs: streams for large files, fs/promises for small ones (the local baseline).
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'

export function create(env) {
  const at = (key) => path.join(env.localRoot, key)
  const ensure = (key) => fsp.mkdir(path.dirname(at(key)), { recursive: true })
  return {
    upload: async (file, key) => {
      await ensure(key)
      await pipeline(fs.createReadStream(file), fs.createWriteStream(at(key)))
    },
    download: async (key) => fs.createReadStream(at(key)),
    put: async (key, data) => {
      await ensure(key)
      await fsp.writeFile(at(key), data)
    },
    get: (key) => fsp.readFile(at(key)),
    head: (key) => fsp.stat(at(key)),
    delete: (key) => fsp.unlink(at(key)),
    // A recursive readdir, then each file's size and time, 32 stat calls at a time: what a
    // listing of keys, sizes and dates takes with fs alone.
    count: async (prefix) => {
      const entries = await fsp.readdir(at(prefix), { recursive: true, withFileTypes: true })
      const files = entries.filter((entry) => entry.isFile())
      let next = 0
      await Promise.all(Array.from({ length: 32 }, async () => {
        while (next < files.length) {
          const entry = files[next++]
          await fsp.stat(path.join(entry.parentPath ?? entry.path, entry.name))
        }
      }))
      return files.length
    },
  }
}
