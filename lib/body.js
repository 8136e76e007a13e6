'use strict'
// Upload bodies: every accepted shape becomes either one Buffer or an async run of Buffers
// that can be stopped, even while it waits for a chunk that never comes.

const { InvalidArgumentError } = require('./errors')

/** Buffer, Uint8Array (and other byte views), ArrayBuffer or string → a Buffer; else null. */
function asBuffer(value) {
  if (Buffer.isBuffer(value)) return value
  if (typeof value === 'string') return Buffer.from(value, 'utf8')
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (value instanceof ArrayBuffer) return Buffer.from(value)
  return null
}

function isStreamBody(body) {
  return body != null && (typeof body[Symbol.asyncIterator] === 'function' || typeof body.getReader === 'function')
}

/**
 * The chunks of a Node Readable, web ReadableStream or AsyncIterable, as Buffers, and a
 * `stop()` that ends the source (destroys a Readable, cancels a web stream, returns an
 * iterator) so nothing is left reading it once the upload has failed or been aborted.
 */
function bodyChunks(body) {
  // Web streams are async iterables too, but their iterator cannot be stopped mid-read.
  if (typeof body.getReader === 'function') {
    const reader = body.getReader()
    const stop = () => reader.cancel().catch(() => {})
    return { chunks: asBuffers(webStreamChunks(reader)), stop }
  }
  // A Readable read to its end before the upload (a framework's body parser got there first)
  // would store an empty object: refused instead.
  if (body.readableEnded === true || (body.readable === false && body.readableLength === 0 && body.destroyed === true)) {
    throw new InvalidArgumentError(
      'the body stream was already read to its end (in Fastify or Express, a body parser may have consumed it)',
      {},
    )
  }
  // A Readable already flowing (a 'data' listener attached) would run dry before the upload,
  // which awaits its store first, reads it: held still here, it waits, and its listeners still
  // see every chunk as the upload reads.
  if (body.readableFlowing === true && typeof body.pause === 'function') body.pause()
  const iterator = body[Symbol.asyncIterator]()
  const stop = () => {
    if (typeof body.destroy === 'function') body.destroy()
    // An async generator suspended in its own await only returns once that settles.
    else Promise.resolve(iterator.return?.()).catch(() => {})
  }
  return { chunks: asBuffers({ [Symbol.asyncIterator]: () => iterator }), stop }
}

async function* asBuffers(source) {
  for await (const chunk of source) {
    const buffer = asBuffer(chunk)
    if (buffer === null) {
      throw new InvalidArgumentError(`an upload body yielded a ${typeof chunk}; chunks must be bytes or strings`, {})
    }
    if (buffer.length > 0) yield buffer
  }
}

async function* webStreamChunks(reader) {
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield value
    }
  } finally {
    // Stopping early (an error, an abort) cancels the source.
    await reader.cancel().catch(() => {})
  }
}

module.exports = { asBuffer, isStreamBody, bodyChunks }
