'use strict'
// Upload bodies: every accepted shape becomes either one Buffer or an async run of Buffers.

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

/** The chunks of a Node Readable, web ReadableStream or AsyncIterable, as Buffers. */
async function* chunksOf(body) {
  const source = typeof body[Symbol.asyncIterator] === 'function' ? body : webStreamChunks(body)
  for await (const chunk of source) {
    const buffer = asBuffer(chunk)
    if (buffer === null) {
      throw new InvalidArgumentError(`an upload body yielded a ${typeof chunk}; chunks must be bytes or strings`, {})
    }
    if (buffer.length > 0) yield buffer
  }
}

async function* webStreamChunks(stream) {
  const reader = stream.getReader()
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

module.exports = { asBuffer, isStreamBody, chunksOf }
