'use strict'
// Upload bodies: every accepted shape becomes either one Buffer or an async run of Buffers
// that can be stopped, even while it waits for a chunk that never comes.

const fs = require('node:fs')
const { finished } = require('node:stream')
const { InvalidArgumentError } = require('./errors')

// Where a ReadStream keeps the fs it reads with (its `fs` option), found by handing one a
// stand-in whose open never finishes; undefined on a Node that keeps it elsewhere, and then
// every stream is read in JS.
const kFs = (() => {
  const standIn = { open() {}, read() {}, close() {} }
  const probe = fs.createReadStream('', { fs: standIn })
  return Object.getOwnPropertySymbols(probe).find((symbol) => probe[symbol] === standIn)
})()

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

/**
 * A plain `fs.ReadStream` nothing has read from, once its file is open: `{ fd, start, end }`
 * for the addon to read the file itself (no JS chunks, no copies), else null. Plain: the
 * real fs, bytes not decoded to strings, closed when done; nobody listening to its data.
 * Rejects with the stream's own error when the file cannot be opened.
 */
async function plainFileStream(body) {
  if (!isUntouchedFileStream(body)) return null
  if (body.pending) await opened(body)
  // Destroyed while it opened: the upload fails as if the stream had been read.
  if (body.destroyed) throw body.errored ?? prematureClose()
  if (!isUntouchedFileStream(body) || typeof body.fd !== 'number') return null
  return { fd: body.fd, start: body.start ?? null, end: Number.isFinite(body.end) ? body.end : null }
}

/** Whether `body` is an fs.ReadStream the addon may read itself: see plainFileStream. */
function isUntouchedFileStream(body) {
  return (
    kFs !== undefined &&
    body !== null &&
    typeof body === 'object' &&
    Object.getPrototypeOf(body) === fs.ReadStream.prototype &&
    body[kFs] === fs &&
    body.autoClose === true &&
    body.readableEncoding === null &&
    body.bytesRead === 0 &&
    body.readableLength === 0 &&
    body.readableDidRead === false &&
    body.readableFlowing !== true &&
    !body.destroyed &&
    body.listenerCount('data') === 0 &&
    body.listenerCount('readable') === 0
  )
}

function opened(stream) {
  return new Promise((resolve, reject) => {
    const done = finished(stream, (error) => reject(error ?? prematureClose()))
    stream.once('ready', () => {
      done()
      resolve()
    })
  })
}

/**
 * Calls `onEnd(error)` if the stream is destroyed or fails (the app destroyed it, its own
 * signal fired) while the addon reads its file; returns the function that stops watching.
 */
function whenDestroyed(stream, onEnd) {
  return finished(stream, (error) => onEnd(error ?? prematureClose()))
}

/** What reading a stream destroyed before its end throws. */
function prematureClose() {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })
}

module.exports = { asBuffer, isStreamBody, bodyChunks, isUntouchedFileStream, plainFileStream, prematureClose, whenDestroyed }
