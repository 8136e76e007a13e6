// @aws-sdk/client-s3 with @aws-sdk/lib-storage's Upload (8 MiB parts, queue 4).
import fs from 'node:fs'
import {
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client, paginateListObjectsV2,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { clientConfig } from './s3-client-config.mjs'

export function create(env) {
  const client = new S3Client(clientConfig(env))
  const Bucket = env.bucket
  return {
    upload: (file, Key) =>
      new Upload({ client, params: { Bucket, Key, Body: fs.createReadStream(file) }, partSize: 8 << 20, queueSize: 4 }).done(),
    download: async (Key) => (await client.send(new GetObjectCommand({ Bucket, Key }))).Body,
    put: (Key, Body) => client.send(new PutObjectCommand({ Bucket, Key, Body })),
    get: async (Key) => (await client.send(new GetObjectCommand({ Bucket, Key }))).Body.transformToByteArray(),
    head: (Key) => client.send(new HeadObjectCommand({ Bucket, Key })),
    delete: (Key) => client.send(new DeleteObjectCommand({ Bucket, Key })),
    presign: (Key) => getSignedUrl(client, new GetObjectCommand({ Bucket, Key }), { expiresIn: 900 }),
    count: async (Prefix) => {
      let count = 0
      for await (const page of paginateListObjectsV2({ client }, { Bucket, Prefix })) count += page.KeyCount ?? 0
      return count
    },
    // A page listed, its keys deleted in one DeleteObjects, as the SDK's users write it.
    deletePrefix: async (Prefix) => {
      let count = 0
      for await (const page of paginateListObjectsV2({ client }, { Bucket, Prefix })) {
        if (!page.Contents?.length) continue
        await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: page.Contents.map(({ Key }) => ({ Key })), Quiet: true } }))
        count += page.Contents.length
      }
      return count
    },
  }
}
