// @azure/storage-blob: uploadStream (8 MiB blocks, 4 at a time), as an app on Azure writes.
import fs from 'node:fs'
import { BlobSASPermissions, BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob'

export function create(env) {
  const credential = new StorageSharedKeyCredential(env.azure.account, env.azure.key)
  const container = new BlobServiceClient(env.azure.endpoint, credential).getContainerClient(env.azure.container)
  const blob = (key) => container.getBlockBlobClient(key)
  return {
    upload: (file, key) => blob(key).uploadStream(fs.createReadStream(file), 8 << 20, 4),
    download: async (key) => (await blob(key).download()).readableStreamBody,
    put: (key, data) => blob(key).uploadData(data),
    get: (key) => blob(key).downloadToBuffer(),
    head: (key) => blob(key).getProperties(),
    delete: (key) => blob(key).delete(),
    presign: (key) => blob(key).generateSasUrl({ permissions: BlobSASPermissions.parse('r'), expiresOn: new Date(Date.now() + 900_000) }),
  }
}
