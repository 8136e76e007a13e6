// This package, on S3 (s3s-fs) or on the local filesystem.
import fs from 'node:fs'
import { LocalStorageBackend, S3StorageBackend } from '../../index.mjs'

export function create(env, { local = false } = {}) {
  const backend = local
    ? new LocalStorageBackend({ root: env.localRoot })
    : new S3StorageBackend({
        bucket: env.bucket,
        region: 'us-east-1',
        endpoint: env.endpoint,
        credentials: { accessKeyId: env.accessKey, secretAccessKey: env.secretKey },
      })
  return {
    upload: (file, key) => backend.upload({ key, body: fs.createReadStream(file), contentType: 'application/octet-stream' }),
    download: (key) => backend.download(key),
    put: (key, data) => backend.put(key, data, { contentType: 'application/octet-stream' }),
    get: (key) => backend.get(key),
    head: (key) => backend.stat(key),
    delete: (key) => backend.delete(key),
    presign: (key) => backend.getSignedUrl(key, { expiresIn: 900 }),
  }
}
