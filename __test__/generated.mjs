// Bodies made as they are read, for the memory measurements: a pseudo-random pattern
// regenerated per chunk rather than held, so a source of any length costs no memory.
import crypto from 'node:crypto'
import { Readable } from 'node:stream'

const CHUNK = 64 * 1024
const block = crypto.randomBytes(CHUNK)

/** `total` bytes (a multiple of 64 KiB) of the pattern, each chunk numbered. */
export function patternSource(total) {
  let sent = 0
  return new Readable({
    read() {
      if (sent >= total) return this.push(null)
      const chunk = Buffer.from(block)
      chunk.writeUInt32LE(sent / CHUNK, 0)
      sent += CHUNK
      this.push(chunk)
    },
  })
}
