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
  }
}
