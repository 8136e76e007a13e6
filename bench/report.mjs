// Turns the samples into a table (stdout), the targets' verdicts, BENCHMARKS.md and ratios.svg.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { limitOf } from './limits.mjs'

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')
const MiB = 1 << 20

function median(samples) {
  const sorted = [...samples].sort((a, b) => a.wallMs - b.wallMs)
  return sorted[Math.floor(sorted.length / 2)]
}

/**
 * One peer's figures for one workload: rate is MiB/s for transfers, operations/s otherwise;
 * tusCpu and tusRss are the tus server's, in the tus rows.
 */
function figures(item, peer) {
  const s = median(item.samples[peer])
  const seconds = s.wallMs / 1000
  const rate = item.bytes ? item.bytes / MiB / seconds : s.ops / seconds
  const server = s.serverCpuMs === undefined ? undefined : s.serverCpuMs / 1000
  const tusCpu = s.tusCpuMs === undefined ? undefined : s.tusCpuMs / 1000
  return {
    peer, seconds, rate, unit: item.bytes ? 'MiB/s' : 'ops/s', cpu: s.cpuMs / 1000, server, rss: s.maxRssMB, ops: s.ops,
    tusCpu, tusRss: s.tusRssMB, p50: s.p50Ms, p99: s.p99Ms,
  }
}

function targets(results) {
  const out = []
  const find = (group, label) => results.find((r) => r.group === group && (!label || r.name.includes(label)))
  // `item`: the row the figure comes from, for what limits it when the target is not met.
  let item
  const add = (label, value, target, atLeast = true, unit = 'x') =>
    out.push({ label, value, target, atLeast, unit, item, pass: atLeast ? value >= target : value <= target })
  const ratio = (row, a, b, key) => {
    item = row
    return figures(row, a)[key] / figures(row, b)[key]
  }
  // A run with --only has some groups and not others.
  const small = find('small')
  if (small) {
    add('small objects: ops/s vs OpenDAL', ratio(small, 'raptscallions', 'opendal', 'rate'), 1.25)
    add('small objects: ops/s vs AWS SDK', ratio(small, 'raptscallions', 'aws-sdk', 'rate'), 4)
    const own = figures(small, 'raptscallions')
    add('small objects: client CPU per op', (own.cpu * 1000) / own.ops, 0.15, false, ' ms')
  }
  const uploads = results.filter((r) => r.group === 'upload')
  for (const up of uploads) {
    const size = up.name.replace('upload ', '')
    for (const [ours, how] of [['raptscallions', ''], ['raptscallions-unsigned', ', unsigned payload']]) {
      add(`upload ${size}${how}: throughput vs AWS SDK`, ratio(up, ours, 'aws-sdk', 'rate'), 1.3)
      add(`upload ${size}${how}: throughput vs OpenDAL`, ratio(up, ours, 'opendal', 'rate'), 1.3)
      add(`upload ${size}${how}: client CPU vs AWS SDK`, ratio(up, ours, 'aws-sdk', 'cpu'), 1 / 3, false)
    }
  }
  const largest = uploads.at(-1)
  if (largest) add(`upload ${largest.name.replace('upload ', '')}: peak RSS`, figures(largest, 'raptscallions').rss, 100, false, ' MB')
  for (const down of results.filter((r) => r.group === 'download')) {
    const size = down.name.replace('download ', '')
    add(`download ${size}: throughput vs curl`, ratio(down, 'raptscallions', 'curl', 'rate'), 0.95)
    add(`download ${size}: client CPU vs curl`, ratio(down, 'raptscallions', 'curl', 'cpu'), 2, false)
  }
  // The client-bound rows, over HTTPS on the sink.
  const sinkSmall = find('sink small')
  if (sinkSmall) {
    add('sink over HTTP, small objects: ops/s vs OpenDAL', ratio(sinkSmall, 'raptscallions-unsigned', 'opendal', 'rate'), 2)
    add('HTTPS sink, small objects: ops/s vs AWS SDK', ratio(sinkSmall, 'raptscallions', 'aws-sdk', 'rate'), 8)
    const perOp = (peer) => figures(sinkSmall, peer).cpu / figures(sinkSmall, peer).ops
    add('sink over HTTP, small objects: client CPU per op vs OpenDAL', perOp('raptscallions-unsigned') / perOp('opendal'), 0.5, false)
  }
  const sinkUpload = find('sink upload')
  if (sinkUpload) {
    const size = sinkUpload.name.replace('HTTPS sink: upload ', '')
    add(`HTTPS sink, upload ${size}: throughput vs AWS SDK`, ratio(sinkUpload, 'raptscallions', 'aws-sdk', 'rate'), 1.5)
    add(`sink over HTTP, upload ${size}: throughput vs OpenDAL`, ratio(sinkUpload, 'raptscallions-unsigned', 'opendal', 'rate'), 1.3)
    add(`HTTPS sink, upload ${size}: client CPU vs AWS SDK`, ratio(sinkUpload, 'raptscallions', 'aws-sdk', 'cpu'), 1 / 3, false)
  }
  const sinkDownload = find('sink download')
  if (sinkDownload) {
    const size = sinkDownload.name.replace('HTTPS sink: download ', '')
    add(`HTTPS sink, download ${size}: throughput vs curl`, ratio(sinkDownload, 'raptscallions', 'curl', 'rate'), 0.9)
    add(`HTTPS sink, download ${size}: client CPU vs curl`, ratio(sinkDownload, 'raptscallions', 'curl', 'cpu'), 1.5, false)
  }
  // Scale: no target in numbers, but not behind either peer.
  for (const item of ['sink list', 'sink deleteprefix', 'sink concurrent'].map((group) => find(group)).filter(Boolean)) {
    const name = item.name.replace('HTTPS sink: ', 'HTTPS sink, ')
    add(`${name}: vs AWS SDK`, ratio(item, 'raptscallions', 'aws-sdk', 'rate'), 1.0)
    add(`${name.replace('HTTPS sink', 'sink over HTTP')}: vs OpenDAL`, ratio(item, 'raptscallions-unsigned', 'opendal', 'rate'), 1.0)
    if (item.group === 'sink concurrent') add(`${name}: peak RSS vs AWS SDK`, ratio(item, 'raptscallions', 'aws-sdk', 'rss'), 1.0, false)
  }
  const presign = find('presign')
  if (presign) add('signed URLs: rate vs OpenDAL', ratio(presign, 'raptscallions', 'opendal', 'rate'), 4)
  // Each further store beside its official SDK, on the same emulator: no target, but not behind.
  for (const [store, ours, sdk] of [['azure', 'raptscallions-azure', 'azure-sdk'], ['gcs', 'raptscallions-gcs', 'gcs-sdk']]) {
    for (const item of results.filter((r) => r.group.startsWith(`${store} `))) {
      add(`${item.name}: vs ${sdk}`, ratio(item, ours, sdk, 'rate'), 1.0)
      if (!item.group.endsWith('presign')) add(`${item.name}: client CPU vs ${sdk}`, ratio(item, ours, sdk, 'cpu'), 1.0, false)
    }
  }
  // The tus handler beside @tus/server with @tus/s3-store, on the same s3s-fs: the same.
  for (const item of results.filter((r) => r.group === 'tus')) {
    add(`${item.name}: vs @tus/server`, ratio(item, 'raptscallions-tus', 'tus-server', 'rate'), 1.0)
    add(`${item.name}: tus server CPU vs @tus/server`, ratio(item, 'raptscallions-tus', 'tus-server', 'tusCpu'), 1.0, false)
    add(`${item.name}: tus server peak RSS vs @tus/server`, ratio(item, 'raptscallions-tus', 'tus-server', 'tusRss'), 1.0, false)
  }
  for (const item of results.filter((r) => r.group.startsWith('local'))) {
    if (item.group === 'local list') {
      add(`${item.name}: vs a recursive fs.readdir and stat`, ratio(item, 'raptscallions-local', 'fs', 'rate'), 1.0)
    } else if (item.group === 'local small') {
      add(`${item.name}: vs fs/promises`, ratio(item, 'raptscallions-local', 'fs', 'rate'), 1.0)
      add(`${item.name}, without fsync as fs: vs fs/promises`, ratio(item, 'raptscallions-local-nofsync', 'fs', 'rate'), 1.0)
    } else {
      add(`${item.name}: vs fs streams`, ratio(item, 'raptscallions-local', 'fs', 'rate'), 0.9)
    }
  }
  return out
}

function table(item) {
  const rows = item.peers.map((p) => figures(item, p))
  const orDash = (value) => value ?? '–'
  // [heading, cell, the figure it needs]: a column shows when some peer has that figure.
  const columns = [
    ['wall s', (r) => r.seconds.toFixed(2)],
    [rows[0].unit, (r) => r.rate.toFixed(r.rate < 100 ? 1 : 0)],
    ['tus server CPU s', (r) => orDash(r.tusCpu?.toFixed(2)), 'tusCpu'],
    ['tus server peak RSS MB', (r) => orDash(r.tusRss), 'tusRss'],
    ['p50 ms', (r) => orDash(r.p50?.toFixed(0)), 'p50'],
    ['p99 ms', (r) => orDash(r.p99?.toFixed(0)), 'p99'],
    ['CPU s', (r) => r.cpu.toFixed(2)],
    ['server CPU s', (r) => orDash(r.server?.toFixed(2)), 'server'],
    ['peak RSS MB', (r) => r.rss],
  ].filter(([, , figure]) => !figure || rows.some((r) => r[figure] !== undefined))
  const lines = [`| ${item.name} | ${columns.map(([heading]) => heading).join(' | ')} |`, `|---|${columns.map(() => '---:|').join('')}`]
  for (const r of rows) lines.push(`| ${r.peer} | ${columns.map(([, cell]) => cell(r)).join(' | ')} |`)
  return lines.join('\n')
}

function svg(verdicts) {
  const rowHeight = 26
  const width = 860
  const labelWidth = 330
  const barWidth = width - labelWidth - 120
  const height = verdicts.length * rowHeight + 40
  const rows = verdicts.map((v, i) => {
    const y = 30 + i * rowHeight
    // Scale each row to its own target, so bars of different kinds sit side by side.
    const scale = barWidth / (Math.max(v.value, v.target) * 1.15)
    const color = v.pass ? '#2e7d32' : '#c62828'
    const fmt = (n) => (n >= 10 ? n.toFixed(0) : n.toFixed(2))
    return [
      `<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end">${v.label}</text>`,
      `<rect x="${labelWidth}" y="${y + 3}" width="${Math.max(1, v.value * scale).toFixed(1)}" height="16" fill="${color}"/>`,
      `<line x1="${labelWidth + v.target * scale}" x2="${labelWidth + v.target * scale}" y1="${y}" y2="${y + 22}" stroke="#000" stroke-dasharray="3,2"/>`,
      `<text x="${labelWidth + Math.max(v.value, v.target) * scale + 6}" y="${y + 15}">${fmt(v.value)}${v.unit} (${v.atLeast ? '≥' : '≤'} ${fmt(v.target)})</text>`,
    ].join('')
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-weight="bold">@raptscallions/storage against its targets (bar: measured; dashed line: target; green: met)</text>
${rows.join('\n')}
</svg>
`
}

export function writeReport(results, { runs, quick, only }) {
  const verdicts = targets(results)
  const tables = results.map(table).join('\n\n')
  const verdictLines = ['| target | measured | wanted | met |', '|---|---:|---:|:---:|']
  for (const v of verdicts) {
    const fmt = (n) => (n >= 10 ? n.toFixed(0) : n.toFixed(2))
    verdictLines.push(`| ${v.label} | ${fmt(v.value)}${v.unit} | ${v.atLeast ? '≥' : '≤'} ${fmt(v.target)}${v.unit} | ${v.pass ? 'yes' : 'no'} |`)
  }
  const limits = verdicts
    .filter((v) => !v.pass)
    .map((v) => `- **${v.label}** (${v.value >= 10 ? v.value.toFixed(0) : v.value.toFixed(2)}${v.unit}): ${limitOf(v, figures) ?? 'not yet known.'}`)
  process.stdout.write(`${tables}\n\n${verdictLines.join('\n')}\n\n${limits.join('\n')}\n`)
  // Some rows only: the report keeps the others as they were measured, beside their own runs.
  if (only) {
    process.stderr.write(`--only ${only}: BENCHMARKS.md and bench/ratios.svg left as they are\n`)
    return
  }
  fs.writeFileSync(path.join(root, 'bench', 'ratios.svg'), svg(verdicts))
  const md = `# Benchmarks

Measured by \`node bench/run.mjs${quick ? ' --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} cores,
${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}. One s3s-fs on 127.0.0.1 shares the cores with the
clients; each figure is the median of ${runs} runs, each measurement its own process, the peers'
order alternating from run to run; before each, dirty pages are flushed and its input files read
into the page cache. CPU is the client
process's (all threads), RSS its peak; server CPU is what the server (s3s-fs; Azurite or
fake-gcs-server for the Azure and GCS rows) spent answering that client.
The machines are shared and noisy: read the ratios, not the absolute times.

The clients: \`raptscallions\` is this package with its defaults (over plain HTTP it signs each
body's SHA-256, as the AWS SDK does); \`raptscallions-unsigned\` sets \`signPayload: false\`, which
sends bodies as OpenDAL does; \`raptscallions-local\` is the local store (fsync before each write
is acknowledged) and \`raptscallions-local-nofsync\` the same with \`durable: false\`, which writes
as \`fs\` does. \`aws-sdk\` is @aws-sdk/client-s3 with lib-storage's \`Upload\` (8 MiB parts, 4 at
a time), \`opendal\` its Node binding 0.49.2, \`curl\` a presigned URL (the server's raw limit),
\`fs\` Node's streams and fs/promises; \`raptscallions-azure\` is this package's Azure store and
\`azure-sdk\` @azure/storage-blob (\`uploadStream\` with 8 MiB blocks, 4 at a time), both on one
Azurite; \`raptscallions-gcs\` is this package's GCS store and \`gcs-sdk\` @google-cloud/storage
(\`createWriteStream\`, resumable, 8 MiB chunks), both on one fake-gcs-server.

The rows headed "HTTPS sink" measure the clients rather than a server: every client goes over
HTTPS (a rustls terminator of \`bench/sink\`, with a CA made for the run) to an S3 sink of
\`bench/sink\` that checks no signature, counts and drops what it is sent and makes downloads of
one repeated buffer, so it spends next to nothing per request or byte. The sink and its
terminator run on one core and the clients on the other (\`taskset\`); server CPU there is the
sink's and the terminator's together (TLS is most of it). \`raptscallions\` there runs with its
defaults, which over HTTPS send the payload unsigned. \`opendal\` goes to the sink over plain
HTTP: its Node binding trusts only the roots compiled into it and cannot be given the run's CA.
So that it is set against a client doing the same work, \`raptscallions-unsigned\` there is this
package over plain HTTP too, sending bodies unsigned as OpenDAL does; the targets against
OpenDAL compare those two, the others \`raptscallions\` over HTTPS. The list and deletePrefix rows count keys
per second; the uploads-at-once row gives each upload's latency.

The tus rows send one file with tus-js-client (8 MiB PATCHes, a process of its own) through a
tus server in a process of its own, on the one s3s-fs: \`raptscallions-tus\` is this package's
\`createTusHandler\` over its S3 store, \`tus-server\` @tus/server with @tus/s3-store (8 MiB
parts). The tus server's CPU over the upload and its peak RSS have columns of their own; CPU and
RSS are the client's, server CPU s3s-fs's. Our handler stores each PATCH as an object of its
own and, at the end, has S3 copy them into the parts of a multipart upload (UploadPartCopy: the
copy is the server's work, not the process's); @tus/s3-store sends each PATCH as a part of a
multipart upload (through a temp file on disk) and keeps an \`.info\` object.

![ratios](bench/ratios.svg)

## Targets

${verdictLines.join('\n')}

### What holds back the targets not met

${limits.join('\n')}

## Figures

${tables}
`
  fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), md)
}
