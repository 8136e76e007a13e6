// Benchmarks this package side by side with its peers, in one run: on one s3s-fs on 127.0.0.1
// (a real server), and over HTTPS on an S3 sink that does next to no work (bench/sink), with the
// server and the clients pinned to different cores, so that those figures are the clients'.
// Each measurement is its own process; runs alternate the peers' order. Prints a table and
// writes BENCHMARKS.md with bench/ratios.svg.  Usage: node bench/run.mjs [--runs 3] [--quick]
// [--only tus|sink] (only those rows: printed, BENCHMARKS.md left as it is).
import { execFile, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { AzureBlobStorageBackend, GcsStorageBackend, S3StorageBackend } from '../index.mjs'
import {
  ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, SECRET_KEY, makeTestCa, startAzurite, startFakeGcs, startS3sFs, startTokenServer,
} from '../__test__/servers.mjs'
import { gcsTestKey } from '../__test__/fixtures.mjs'
import { writeReport } from './report.mjs'
import { buildSink, startSink } from './sink.mjs'

const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
const flag = (name) => process.argv.indexOf(`--${name}`)
const runs = flag('runs') > 0 ? Number(process.argv[flag('runs') + 1]) : 3
const quick = flag('quick') > 0
const only = flag('only') > 0 ? process.argv[flag('only') + 1] : undefined
if (flag('only') > 0 && !['tus', 'sink'].includes(only)) throw new Error('--only takes one group: tus or sink')
const MiB = 1 << 20
const sizes = quick ? [{ label: '64 MiB', bytes: 64 * MiB }] : [{ label: '256 MiB', bytes: 256 * MiB }, { label: '1 GiB', bytes: 1024 * MiB }]
const SMALL = quick ? '200,4096,32' : '1000,4096,32'
const PRESIGN = quick ? 20_000 : 100_000

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rstorage-bench-'))
const bucket = 'bench-bucket'
const server = await startS3sFs(path.join(work, 's3'), bucket)
// The emulators join these when their rows run.
const stops = [() => server.stop()]
const env = {
  endpoint: server.endpoint,
  bucket,
  accessKey: ACCESS_KEY,
  secretKey: SECRET_KEY,
  localRoot: path.join(work, 'local'),
}
const ours = new S3StorageBackend({ bucket, region: 'us-east-1', endpoint: server.endpoint, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } })

/** The input of `bytes` random bytes, made once (the tus rows reuse the upload rows' file). */
function makeFile(bytes) {
  const file = path.join(work, `input-${bytes}.bin`)
  if (fs.existsSync(file)) return file
  const fd = fs.openSync(file, 'w')
  for (let written = 0; written < bytes; written += MiB) fs.writeSync(fd, crypto.randomBytes(Math.min(MiB, bytes - written)))
  fs.closeSync(fd)
  return file
}

// On the sink, the server and its TLS terminator run on the last core and every client on the
// others, so that neither takes the other's CPU.
const cores = os.cpus().length
const SERVER_CORE = String(cores - 1)
const CLIENT_CORES = cores > 1 ? `0-${cores - 2}` : '0'
const pinned = (pin, core, command, args) => (pin ? ['taskset', ['-c', core, command, ...args]] : [command, args])

async function nodeClient(peer, workload, arg, item) {
  const clientEnv = item.peerEnv?.[peer] ?? item.env ?? env
  const [command, args] = pinned(item.pin, CLIENT_CORES, process.execPath, [path.join(here, 'client.mjs'), peer, workload, String(arg)])
  const { stdout } = await run(command, args, {
    // Node and the AWS SDK, OpenDAL (rustls, native roots) and this package trust the sink's CA.
    env: { ...process.env, BENCH_ENV: JSON.stringify(clientEnv), ...(clientEnv.caFile ? { NODE_EXTRA_CA_CERTS: clientEnv.caFile, SSL_CERT_FILE: clientEnv.caFile } : {}) },
    maxBuffer: 1 << 20,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1))
}

/** curl through GNU time: the raw limit of the server. */
async function curl(args, item) {
  const curlArgs = ['-sS', '-f', '-o', '/dev/null', ...(item.env?.caFile ? ['--cacert', item.env.caFile] : []), ...args]
  const [command, pinnedArgs] = pinned(item.pin, CLIENT_CORES, 'curl', curlArgs)
  const { stderr } = await run('/usr/bin/time', ['-f', '%e %U %S %M', command, ...pinnedArgs])
  const [wall, user, sys, rssKb] = stderr.trim().split('\n').at(-1).split(' ').map(Number)
  return { wallMs: wall * 1000, cpuMs: (user + sys) * 1000, maxRssMB: Math.round(rssKb / 1024) }
}

const TICK_MS = 10 // Linux's USER_HZ: /proc reports CPU time in 1/100 s

/** CPU milliseconds a process has used so far (undefined off Linux). */
function cpuMsOf(pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return undefined
  }
}

/** A live process's peak RSS in MB (undefined off Linux). */
function peakRssMBOf(pid) {
  try {
    return Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024)
  } catch {
    return undefined
  }
}

/**
 * One upload through a tus server: a fresh server process (bench/tus-server.mjs) and a fresh
 * tus-js-client process; adds the server's CPU over the upload and its peak RSS to the client's
 * figures, and the key the object was stored under.
 */
async function tusUpload(peer, file) {
  const child = spawn(process.execPath, [path.join(here, 'tus-server.mjs'), peer], {
    env: { ...process.env, BENCH_ENV: JSON.stringify(env) },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  // Shown only if the upload fails (it also holds the AWS SDK's warning about Node 20).
  let log = ''
  child.stderr.on('data', (chunk) => (log += chunk))
  try {
    const port = await new Promise((resolve, reject) => {
      child.stdout.once('data', (line) => resolve(Number(/ready (\d+)/.exec(String(line))[1])))
      child.once('exit', (code) => reject(new Error(`the ${peer} server exited with ${code}: ${log}`)))
    })
    const key = `${peer}-${crypto.randomUUID()}.bin`
    const before = cpuMsOf(child.pid)
    const { stdout } = await run(process.execPath, [path.join(here, 'tus-client.mjs'), `http://127.0.0.1:${port}/files`, file, key]).catch((error) => {
      throw new Error(`${error.message}\nthe ${peer} server said: ${log}`)
    })
    const sample = JSON.parse(stdout.trim().split('\n').at(-1))
    const cpu = cpuMsOf(child.pid)
    return { ...sample, key, tusCpuMs: cpu === undefined ? undefined : cpu - before, tusRssMB: peakRssMBOf(child.pid) }
  } finally {
    child.kill('SIGKILL')
  }
}

async function sha256(stream) {
  const hash = crypto.createHash('sha256')
  await pipeline(stream, hash)
  return hash.digest('hex')
}

const nodeClients = ['raptscallions', 'raptscallions-unsigned', 'raptscallions-local', 'raptscallions-local-nofsync', 'raptscallions-azure', 'raptscallions-gcs', 'aws-sdk', 'azure-sdk', 'gcs-sdk', 'opendal', 'fs']
const peers = {
  ...Object.fromEntries(nodeClients.map((name) => [name, (workload, arg, item) => nodeClient(name, workload, arg, item)])),
  'raptscallions-tus': (_workload, file) => tusUpload('raptscallions-tus', file),
  'tus-server': (_workload, file) => tusUpload('tus-server', file),
  curl: async (workload, arg, item) => {
    const signer = item.signer ?? ours
    if (workload === 'upload') {
      const { url } = await signer.getSignedUrl('large/curl', { method: 'PUT', expiresIn: 3600 })
      return curl(['-T', arg, url], item)
    }
    const { url } = await signer.getSignedUrl(arg, { expiresIn: 3600 })
    return curl([url], item)
  },
}

const plan = []
// The rows on s3s-fs and the emulators, with the sources their downloads read.
if (only === undefined) {
  const azurite = await startAzurite(bucket)
  const fakeGcs = await startFakeGcs(bucket)
  // Google's published test service account, its tokens from a local endpoint (for signing; the
  // emulator checks neither tokens nor signatures).
  const tokenServer = await startTokenServer((await gcsTestKey('')).private_key)
  const gcsCredentials = await gcsTestKey(tokenServer.uri)
  stops.push(() => azurite.stop(), () => fakeGcs.stop(), () => tokenServer.close())
  env.azure = { endpoint: azurite.endpoint, account: AZURITE_ACCOUNT, key: AZURITE_KEY, container: bucket }
  env.gcs = { endpoint: fakeGcs.endpoint, credentials: gcsCredentials }
  const oursOnAzure = new AzureBlobStorageBackend({ accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container: bucket, endpoint: azurite.endpoint })
  const oursOnGcs = new GcsStorageBackend({ bucket, endpoint: fakeGcs.endpoint, credentials: gcsCredentials })
  for (const { label, bytes } of sizes) {
    const file = makeFile(bytes)
    const source = `large/source-${bytes}`
    await ours.upload({ key: source, body: fs.createReadStream(file), contentType: 'application/octet-stream' })
    fs.mkdirSync(path.join(env.localRoot, 'large'), { recursive: true })
    fs.copyFileSync(file, path.join(env.localRoot, source))
    // `inputs`: files read during the measurement, brought into the page cache before each one.
    const [s3Copy, localCopy] = [path.join(work, 's3', bucket, source), path.join(env.localRoot, source)]
    plan.push({ group: 'upload', name: `upload ${label}`, bytes, arg: file, inputs: [file], peers: ['raptscallions', 'raptscallions-unsigned', 'aws-sdk', 'opendal', 'curl'] })
    plan.push({ group: 'download', name: `download ${label}`, bytes, arg: source, inputs: [s3Copy], peers: ['raptscallions', 'aws-sdk', 'opendal', 'curl'] })
    plan.push({ group: 'local upload', name: `local upload ${label}`, bytes, arg: file, inputs: [file], peers: ['raptscallions-local', 'fs'] })
    plan.push({ group: 'local download', name: `local download ${label}`, bytes, arg: source, inputs: [localCopy], peers: ['raptscallions-local', 'fs'] })
  }
  // Azure on Azurite and GCS on fake-gcs-server (emulators, slower than the clients: their CPU is
  // shown), one size, each beside its official SDK.
  for (const [store, title, ours, emulator] of [['azure', 'Azure', oursOnAzure, azurite], ['gcs', 'GCS', oursOnGcs, fakeGcs]]) {
    const { label, bytes } = sizes[0]
    const file = path.join(work, `input-${bytes}.bin`)
    const source = `large/source-${bytes}`
    await ours.upload({ key: source, body: fs.createReadStream(file) })
    const peers = [`raptscallions-${store}`, `${store}-sdk`]
    const server = emulator
    plan.push({ group: `${store} upload`, name: `${title} upload ${label}`, bytes, arg: file, inputs: [file], peers, server })
    plan.push({ group: `${store} download`, name: `${title} download ${label}`, bytes, arg: source, peers, server })
    plan.push({ group: `${store} small`, name: `${title} small objects (${SMALL.split(',')[0]} × 4 KiB, 32 at a time)`, arg: SMALL, peers, server })
    plan.push({ group: `${store} presign`, name: `${title}: ${PRESIGN.toLocaleString('en')} signed GET URLs`, arg: PRESIGN, peers })
  }
  plan.push({ group: 'small', name: `small objects (${SMALL.split(',')[0]} × 4 KiB, 32 at a time)`, arg: SMALL, peers: ['raptscallions', 'aws-sdk', 'opendal'] })
  plan.push({ group: 'local small', name: `local small objects (${SMALL.split(',')[0]} × 4 KiB)`, arg: SMALL, peers: ['raptscallions-local', 'raptscallions-local-nofsync', 'fs'] })
  plan.push({ group: 'presign', name: `${PRESIGN.toLocaleString('en')} signed GET URLs`, arg: PRESIGN, peers: ['raptscallions', 'aws-sdk', 'opendal'] })
  // A folder tree of small files for the local listing: 100 folders of 1,000 files.
  const LOCAL_FILES = quick ? 20_000 : 100_000
  for (let i = 0; i < LOCAL_FILES; i++) {
    const folder = path.join(env.localRoot, 'tree', String(Math.floor(i / 1000)).padStart(3, '0'))
    if (i % 1000 === 0) fs.mkdirSync(folder, { recursive: true })
    fs.writeFileSync(path.join(folder, `${String(i).padStart(6, '0')}.txt`), 'x')
  }
  const counted = (peer, sample) => {
    if (sample.ops !== LOCAL_FILES) throw new Error(`${peer} listed ${sample.ops} of ${LOCAL_FILES} files`)
  }
  plan.push({ group: 'local list', name: `local listing of ${LOCAL_FILES.toLocaleString('en')} files`, arg: 'tree/', peers: ['raptscallions-local', 'fs'], check: counted })
}
/** A process of bench/sink's, pinned to the server's core, stopped with the run. */
async function startSinkProcess(binary, args) {
  const sink = await startSink(binary, args, { core: SERVER_CORE })
  stops.push(() => sink.child.kill())
  return sink
}

// The client-bound rows: every client over HTTPS (a TLS terminator of bench/sink's, with a CA
// made for the run) on the S3 sink; the server's CPU is the sink's and the terminator's.
if (only === undefined || only === 'sink') {
  await buildSink()
  const ca = await makeTestCa()
  stops.push(() => fs.rmSync(ca.dir, { recursive: true, force: true }))
  const sink = await startSinkProcess('s3-sink', [])
  const proxy = await startSinkProcess('tls-proxy', [`127.0.0.1:${sink.port}`, ca.certFile, ca.keyFile])
  const sinkEnv = { endpoint: `https://127.0.0.1:${proxy.port}`, bucket: 'sink', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, caFile: path.join(ca.dir, 'ca.pem') }
  const server = { pids: [sink.child.pid, proxy.child.pid] }
  const seed = (prefix, count, size) => fetch(`http://127.0.0.1:${sink.port}/_seed?prefix=${prefix}&count=${count}&size=${size}`, { method: 'POST' })
  const onSink = new S3StorageBackend({
    bucket: 'sink', region: 'us-east-1', endpoint: sinkEnv.endpoint, caCertificates: ca.caPem,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
  })
  // OpenDAL's Node binding trusts only the roots compiled into it (webpki-roots): it cannot be
  // given the run's CA, so it reaches the sink over plain HTTP, and so does this package beside
  // it, as it sends bodies (unsigned), for the figures set against OpenDAL's.
  const plain = { ...sinkEnv, endpoint: `http://127.0.0.1:${sink.port}`, caFile: undefined }
  const peerEnv = { opendal: plain, 'raptscallions-unsigned': plain }
  const common = { env: sinkEnv, peerEnv, pin: true, server, signer: onSink }
  const trio = ['raptscallions', 'aws-sdk', 'raptscallions-unsigned', 'opendal']
  const { label, bytes } = sizes.at(-1)
  const file = makeFile(bytes)
  await seed('source/', 1, bytes) // the object every download reads: source/00000000
  const [LIST, DELETE, CONCURRENT] = quick ? [20_000, 2_000, 64] : [100_000, 10_000, 256]
  await seed('list/', LIST, 1)
  const expect = (count) => (peer, sample) => {
    if (sample.ops !== count) throw new Error(`${peer} counted ${sample.ops} of ${count}`)
  }
  plan.push(
    { ...common, group: 'sink small', name: `HTTPS sink: small objects (${SMALL.split(',')[0]} × 4 KiB, 32 at a time)`, arg: SMALL, peers: trio },
    { ...common, group: 'sink upload', name: `HTTPS sink: upload ${label}`, bytes, arg: file, inputs: [file], peers: [...trio, 'curl'] },
    { ...common, group: 'sink download', name: `HTTPS sink: download ${label}`, bytes, arg: 'source/00000000', peers: [...trio, 'curl'] },
    { ...common, group: 'sink list', name: `HTTPS sink: list ${LIST.toLocaleString('en')} keys`, arg: 'list/', peers: trio, check: expect(LIST) },
    {
      ...common, group: 'sink deleteprefix', name: `HTTPS sink: deletePrefix of ${DELETE.toLocaleString('en')} keys`, arg: `delete/,${DELETE}`, peers: trio,
      prepare: () => seed('delete/', DELETE, 1),
      check: async (peer) => {
        for await (const _ of onSink.listAll({ prefix: 'delete/' })) throw new Error(`${peer} left keys under delete/`)
      },
    },
    {
      ...common, group: 'sink concurrent', name: `HTTPS sink: ${CONCURRENT} uploads of 4 MiB at once`, bytes: CONCURRENT * 4 * MiB,
      arg: `${CONCURRENT},${4 * MiB},${CONCURRENT}`, peers: trio,
    },
  )
}

// One file through a tus server in 8 MiB PATCHes, this package's handler beside @tus/server with
// @tus/s3-store, both on the one s3s-fs. Each object is checked after its upload (outside the
// figures): its size every time, its bytes once per server, so that a broken server cannot win.
if (only === undefined || only === 'tus') {
  const { label, bytes } = sizes[0]
  const file = makeFile(bytes)
  const digest = await sha256(fs.createReadStream(file))
  const checked = new Set()
  const check = async (peer, { key }) => {
    const { size } = await ours.stat(key)
    if (size !== bytes) throw new Error(`${peer} stored ${size} bytes of ${bytes}`)
    if (!checked.has(peer)) {
      if ((await sha256(await ours.download(key))) !== digest) throw new Error(`${peer} stored other bytes than were sent`)
      checked.add(peer)
    }
    await ours.delete(key)
  }
  plan.push({ group: 'tus', name: `tus upload ${label} (8 MiB PATCHes)`, bytes, arg: file, inputs: [file], peers: ['raptscallions-tus', 'tus-server'], check })
}

const workloadOf = (group) => group.split(' ').at(-1)

/** Reads a file through, so that whoever is measured next finds it in the page cache. */
function warm(file) {
  const fd = fs.openSync(file, 'r')
  const buffer = Buffer.allocUnsafe(MiB)
  while (fs.readSync(fd, buffer, 0, MiB, null) > 0);
  fs.closeSync(fd)
}

const results = plan.map((item) => ({
  ...item,
  server: item.server ?? (item.group.startsWith('local') || item.group.endsWith('presign') ? undefined : server),
  samples: Object.fromEntries(item.peers.map((p) => [p, []])),
}))
for (let r = 0; r < runs; r++) {
  for (const item of results) {
    // Alternate who goes first, so no peer always meets a warm (or cold) server.
    const order = item.peers.map((_, i) => item.peers[(i + r) % item.peers.length])
    for (const peer of order) {
      // Earlier writes' dirty pages are flushed first, so no measurement pays for another's, and
      // every peer starts with its input cached: whoever went first would otherwise read cold.
      await run('sync')
      for (const file of item.inputs ?? []) warm(file)
      await item.prepare?.()
      const serverCpuMs = () => (item.server?.pids ?? [item.server?.child.pid]).reduce((sum, pid) => sum + (pid ? cpuMsOf(pid) : NaN), 0)
      const serverBefore = item.server && serverCpuMs()
      const sample = await peers[peer](workloadOf(item.group), item.arg, item)
      if (serverBefore !== undefined && !Number.isNaN(serverBefore)) sample.serverCpuMs = serverCpuMs() - serverBefore
      await item.check?.(peer, sample)
      item.samples[peer].push(sample)
      process.stderr.write(`run ${r + 1}/${runs}  ${item.name.padEnd(44)} ${peer.padEnd(20)} ${(sample.wallMs / 1000).toFixed(2)} s\n`)
    }
  }
}
for (const stop of stops) await stop()
fs.rmSync(work, { recursive: true, force: true })
writeReport(results, { runs, quick, only })
