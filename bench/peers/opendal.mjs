// OpenDAL's Node binding (0.49.2: later builds need a newer glibc than Debian 12 has).
import fs from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Operator } from 'opendal'

export function create(env) {
  const op = new Operator('s3', {
    bucket: env.bucket,
    region: 'us-east-1',
    endpoint: env.endpoint,
    access_key_id: env.accessKey,
    secret_access_key: env.secretKey,
    root: '/',
  })
  return {
    upload: async (file, key) => {
      const writer = await op.writer(key, { chunk: BigInt(8 << 20), concurrent: 4 })
      await pipeline(fs.createReadStream(file), writer.createWriteStream())
    },
    download: async (key) => (await op.reader(key)).createReadStream(),
    put: (key, data) => op.write(key, data),
    get: (key) => op.read(key),
    head: (key) => op.stat(key),
    delete: (key) => op.delete(key),
    presign: (key) => op.presignRead(key, 900),
    count: async (prefix) => (await op.list(prefix, { recursive: true })).length,
    deletePrefix: (prefix) => op.removeAll(prefix),
  }
}
