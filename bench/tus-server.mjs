// A tus server in its own process, so that its CPU and peak RSS are its own:
// `node bench/tus-server.mjs <raptscallions-tus|tus-server>` listens on 127.0.0.1 and prints
// "ready <port>". Either stores each upload under the key its client names as `filename`.
import http from 'node:http'

const env = JSON.parse(process.env.BENCH_ENV)

// Each imports only its own modules, so neither server's RSS carries the other's.
const handlers = {
  // This package's tus handler over its S3 store, with its defaults.
  'raptscallions-tus': async () => {
    const { createTusHandler } = await import('../index.mjs')
    const { backendFor } = await import('./peers/raptscallions.mjs')
    return createTusHandler(backendFor(env), { path: '/files', keyFor: ({ metadata }) => metadata.filename })
  },
  // @tus/server with @tus/s3-store (each PATCH a multipart part), its S3 client set up as the
  // aws-sdk peer's.
  'tus-server': async () => {
    const { Server } = await import('@tus/server')
    const { S3Store } = await import('@tus/s3-store')
    const { clientConfig } = await import('./peers/s3-client-config.mjs')
    const datastore = new S3Store({
      partSize: 8 << 20,
      // The same client settings as the aws-sdk peer's.
      s3ClientConfig: { bucket: env.bucket, ...clientConfig(env) },
    })
    const server = new Server({ path: '/files', datastore, namingFunction: (_req, metadata) => metadata.filename })
    return (req, res) => server.handle(req, res)
  },
}

const server = http.createServer(await handlers[process.argv[2]]())
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`))
