// What each write of the crash harness stores, derived from its spec ({ id, key, size, pad })
// alone: the writer and the checker compute the same bytes, content type and metadata, so a
// stored object names the write it came from, and parts of two writes never look like one.
import crypto from 'node:crypto'

const BLOCK = 64 * 1024
const SEPARATOR = '|'

export function contentTypeOf({ id }) {
  return `application/x-crash.${id}`
}

export function metadataOf({ id, pad }) {
  // The padding repeats the id too, so a sidecar stitched from two writes cannot pass.
  return { write: id, pad: id.repeat(Math.ceil(pad / id.length)).slice(0, pad) }
}

/** `<id>|` then a pattern seeded by the id (cut short for bodies shorter than that). */
export function bodyOf({ id, size }) {
  const block = crypto.createHash('shake256', { outputLength: BLOCK }).update(id).digest()
  const body = Buffer.allocUnsafe(size)
  for (let at = 0; at < size; at += BLOCK) block.copy(body, at, 0, Math.min(BLOCK, size - at))
  body.write(`${id}${SEPARATOR}`, 0)
  return body
}

/** The id a body announces, when it is long enough to hold one. */
export function idInBody(body) {
  const end = body.subarray(0, 64).indexOf(SEPARATOR)
  return end > 0 ? body.subarray(0, end).toString('latin1') : undefined
}

export function digest(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex')
}
