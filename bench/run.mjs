// Benchmarks this package side by side with its peers, in one run, on one s3s-fs on 127.0.0.1.
// Each measurement is its own process; runs alternate the peers' order. Prints a table and
// writes BENCHMARKS.md with bench/ratios.svg.  Usage: node bench/run.mjs [--runs 3] [--quick]
import { execFile } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { AzureBlobStorageBackend, GcsStorageBackend, S3StorageBackend } from '../index.mjs'
import { ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, SECRET_KEY, startAzurite, startFakeGcs, startS3sFs, startTokenServer } from '../__test__/servers.mjs'
import { gcsTestKey } from '../__test__/fixtures.mjs'
import { writeReport } from './report.mjs'

const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
const flag = (name) => process.argv.indexOf(`--${name}`)
const runs = flag('runs') > 0 ? Number(process.argv[flag('runs') + 1]) : 3
const quick = flag('quick') > 0
const MiB = 1 << 20
const sizes = quick ? [{ label: '64 MiB', bytes: 64 * MiB }] : [{ label: '256 MiB', bytes: 256 * MiB }, { label: '1 GiB', bytes: 1024 * MiB }]
const SMALL = quick ? '200,4096,32' : '1000,4096,32'
const PRESIGN = quick ? 20_000 : 100_000

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rstorage-bench-'))
const bucket = 'bench-bucket'
const server = await startS3sFs(path.join(work, 's3'), bucket)
const azurite = await startAzurite(bucket)
const fakeGcs = await startFakeGcs(bucket)
// Google's published test service account, its tokens from a local endpoint (for signing; the
// emulator checks neither tokens nor signatures).
const tokenServer = await startTokenServer((await gcsTestKey('')).private_key)
const gcsCredentials = await gcsTestKey(tokenServer.uri)
const env = {
  endpoint: server.endpoint,
  bucket,
  accessKey: ACCESS_KEY,
  secretKey: SECRET_KEY,
  localRoot: path.join(work, 'local'),
  azure: { endpoint: azurite.endpoint, account: AZURITE_ACCOUNT, key: AZURITE_KEY, container: bucket },
  gcs: { endpoint: fakeGcs.endpoint, credentials: gcsCredentials },
}
const oursOnAzure = new AzureBlobStorageBackend({ accountName: AZURITE_ACCOUNT, accountKey: AZURITE_KEY, container: bucket, endpoint: azurite.endpoint })
const oursOnGcs = new GcsStorageBackend({ bucket, endpoint: fakeGcs.endpoint, credentials: gcsCredentials })
const ours = new S3StorageBackend({ bucket, region: 'us-east-1', endpoint: server.endpoint, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } })

function makeFile(bytes) {
  const file = path.join(work, `input-${bytes}.bin`)
  const fd = fs.openSync(file, 'w')
  for (let written = 0; written < bytes; written += MiB) fs.writeSync(fd, crypto.randomBytes(Math.min(MiB, bytes - written)))
  fs.closeSync(fd)
  return file
}

async function nodeClient(peer, workload, arg) {
  const { stdout } = await run(process.execPath, [path.join(here, 'client.mjs'), peer, workload, String(arg)], {
    env: { ...process.env, BENCH_ENV: JSON.stringify(env) },
    maxBuffer: 1 << 20,
  })
  return JSON.parse(stdout.trim().split('\n').at(-1))
}

/** curl through GNU time: the raw limit of the server. */
async function curl(args) {
  const { stderr } = await run('/usr/bin/time', ['-f', '%e %U %S %M', 'curl', '-sS', '-f', '-o', '/dev/null', ...args])
  const [wall, user, sys, rssKb] = stderr.trim().split('\n').at(-1).split(' ').map(Number)
  return { wallMs: wall * 1000, cpuMs: (user + sys) * 1000, maxRssMB: Math.round(rssKb / 1024) }
}

const nodeClients = ['raptscallions', 'raptscallions-unsigned', 'raptscallions-local', 'raptscallions-local-nofsync', 'raptscallions-azure', 'raptscallions-gcs', 'aws-sdk', 'azure-sdk', 'gcs-sdk', 'opendal', 'fs']
const peers = {
  ...Object.fromEntries(nodeClients.map((name) => [name, (workload, arg) => nodeClient(name, workload, arg)])),
  curl: async (workload, arg) => {
    if (workload === 'upload') {
      const { url } = await ours.getSignedUrl('large/curl', { method: 'PUT', expiresIn: 3600 })
      return curl(['-T', arg, url])
    }
    const { url } = await ours.getSignedUrl(arg, { expiresIn: 3600 })
    return curl([url])
  },
}

const plan = []
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

const workloadOf = (group) => group.split(' ').at(-1)
const TICK_MS = 10 // Linux's USER_HZ: /proc reports CPU time in 1/100 s

/** Reads a file through, so that whoever is measured next finds it in the page cache. */
function warm(file) {
  const fd = fs.openSync(file, 'r')
  const buffer = Buffer.allocUnsafe(MiB)
  while (fs.readSync(fd, buffer, 0, MiB, null) > 0);
  fs.closeSync(fd)
}

/** CPU seconds a server has used so far (undefined off Linux). */
function serverCpuMs(which) {
  try {
    const fields = fs.readFileSync(`/proc/${which.child.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return undefined
  }
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
      const serverBefore = item.server && serverCpuMs(item.server)
      const sample = await peers[peer](workloadOf(item.group), item.arg)
      if (serverBefore !== undefined) sample.serverCpuMs = serverCpuMs(item.server) - serverBefore
      item.samples[peer].push(sample)
      process.stderr.write(`run ${r + 1}/${runs}  ${item.name.padEnd(44)} ${peer.padEnd(20)} ${(sample.wallMs / 1000).toFixed(2)} s\n`)
    }
  }
}
await server.stop()
await azurite.stop()
await fakeGcs.stop()
await tokenServer.close()
fs.rmSync(work, { recursive: true, force: true })
writeReport(results, { runs, quick })
