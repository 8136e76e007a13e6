// bench/sink's servers (the S3 sink, the TLS terminator), built and started for a measurement.
import { execFile, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const here = (file) => fileURLToPath(new URL(`./sink/${file}`, import.meta.url))

/** Builds bench/sink (release); quick once built. */
export async function buildSink() {
  await promisify(execFile)('cargo', ['build', '--release', '--quiet', '--manifest-path', here('Cargo.toml')])
}

/**
 * Starts one of bench/sink's servers (pinned to `core` when given); resolves to its child
 * process and port once it says `ready <port>`.
 */
export async function startSink(binary, args = [], { core } = {}) {
  const program = here(`target/release/${binary}`)
  const [command, argv] = core === undefined ? [program, args] : ['taskset', ['-c', core, program, ...args]]
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise((resolve, reject) => {
    child.stdout.once('data', (line) => resolve(Number(/ready (\d+)/.exec(String(line))[1])))
    child.once('exit', (code) => reject(new Error(`${binary} exited with ${code}`)))
  })
  return { child, port }
}
