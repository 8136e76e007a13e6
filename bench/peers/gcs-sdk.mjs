// @google-cloud/storage: createWriteStream (resumable, 8 MiB chunks), as an app on GCS writes.
import fs from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Storage } from '@google-cloud/storage'

export function create(env) {
  const storage = new Storage({ apiEndpoint: env.gcs.endpoint, projectId: 'bench', credentials: env.gcs.credentials })
  const file = (key) => storage.bucket(env.bucket).file(key)
  return {
    upload: (path, key) => pipeline(fs.createReadStream(path), file(key).createWriteStream({ resumable: true, chunkSize: 8 << 20 })),
    download: async (key) => file(key).createReadStream(),
    put: (key, data) => file(key).save(data, { resumable: false }),
    get: async (key) => (await file(key).download())[0],
    head: (key) => file(key).getMetadata(),
    delete: (key) => file(key).delete(),
    presign: (key) => file(key).getSignedUrl({ version: 'v4', action: 'read', expires: Date.now() + 900_000 }),
  }
}
