'use strict'
// StorageBackend: the JS face of every native store. It adds Node streams, AbortSignal,
// progress callbacks and error classes around the native calls; the stores live in Rust.

const { Readable } = require('node:stream')
const { NativeStorage, generateStorageKey } = require('../binding.js')
const { asBuffer, isStreamBody, chunksOf } = require('./body')
const { AbortError, InvalidArgumentError, InvalidKeyError } = require('./errors')
const { callNative, callNativeSync, fromNative } = require('./native')

const DEFAULT_SIGNED_URL_EXPIRATION = 900
/** Where `raptscallions-storage serve` listens unless told otherwise; self-signed URLs point there. */
const DEFAULT_SIGNED_URL_BASE = 'http://127.0.0.1:8790'
// Small chunks from an iterator are merged up to this size before crossing to Rust.
const COALESCE_BYTES = 64 * 1024

/** The native store behind a backend; for this package's own modules (the URL handler). */
const kNative = Symbol('nativeStorage')
const kBaseUrl = Symbol('signedUrlBase')

function checkKey(key, name = 'key') {
  if (typeof key !== 'string') throw new InvalidKeyError(`${name} must be a string`, { key: String(key) })
  return key
}

function abortErrorFor(signal) {
  return new AbortError('The operation was aborted', { reason: String(signal.reason ?? 'aborted') })
}

function toObjectInfo(info) {
  return {
    key: info.key,
    size: info.size,
    contentType: info.contentType,
    etag: info.etag ?? undefined,
    lastModified: new Date(info.lastModifiedMs),
    metadata: info.metadata,
  }
}

function toRange(range) {
  if (range == null) return undefined
  if (typeof range !== 'object' || !Number.isInteger(range.start)) {
    throw new InvalidArgumentError('range must be { start, end? } with integer offsets (end inclusive)', {})
  }
  return { start: range.start, end: range.end ?? undefined }
}

function uploadSettings(params) {
  return {
    contentType: params.contentType ?? undefined,
    metadata: params.metadata ?? undefined,
    ifNotExists: params.ifNotExists ?? undefined,
    contentLength: params.contentLength ?? undefined,
    maxBytes: params.maxBytes ?? undefined,
    allowedContentTypes: params.allowedContentTypes ?? undefined,
  }
}

/** A Node Readable fed by a native reader, one large chunk per read; destroying it cancels. */
class NativeReadable extends Readable {
  #reader
  #loaded = 0
  #onProgress

  constructor(reader, onProgress) {
    super()
    this.#reader = reader
    this.#onProgress = onProgress
    const { object, start, end } = reader.info
    this.info = { ...toObjectInfo(object), range: { start, end: end - 1 }, contentLength: end - start }
  }

  _read() {
    this.#reader.read().then(
      (chunk) => {
        if (chunk === null) {
          this.push(null)
          return
        }
        this.#loaded += chunk.length
        this.#onProgress?.({ loaded: this.#loaded, total: this.info.contentLength })
        this.push(chunk)
      },
      (error) => this.destroy(fromNative(error)),
    )
  }

  _destroy(error, callback) {
    this.#reader.cancel()
    callback(error)
  }
}

class StorageBackend {
  #native
  #pending
  #expiresIn

  /**
   * Backends are built by their subclasses (LocalStorageBackend, S3StorageBackend, …), from a
   * native store or a promise of one (when its settings must be read asynchronously first).
   */
  constructor(native, { baseUrl, signedUrlExpiration = DEFAULT_SIGNED_URL_EXPIRATION } = {}) {
    if (!(native instanceof NativeStorage) && typeof native?.then !== 'function') {
      throw new InvalidArgumentError('StorageBackend is built by a store class such as LocalStorageBackend', {})
    }
    if (!Number.isInteger(signedUrlExpiration) || signedUrlExpiration <= 0) {
      throw new InvalidArgumentError('signedUrlExpiration must be a positive integer (seconds)', {})
    }
    if (native instanceof NativeStorage) {
      this.#native = native
      this[kNative] = native
    } else {
      this.#pending = native.then((resolved) => (this.#native = resolved))
      this.#pending.catch(() => {}) // reported by the first call that needs it
    }
    this.#expiresIn = signedUrlExpiration
    this[kBaseUrl] = baseUrl
  }

  /** The native store, once it exists. */
  #store() {
    return this.#native ?? this.#pending
  }

  /**
   * Stores a body at a key. Buffers, strings and byte arrays go in one call; streams
   * (Readable, web ReadableStream, AsyncIterable) go chunk by chunk with backpressure.
   */
  async upload(params) {
    if (params == null || typeof params !== 'object') throw new InvalidArgumentError('upload takes { key, body, … }', {})
    const key = checkKey(params.key)
    const { signal, onProgress } = params
    if (signal?.aborted) throw abortErrorFor(signal)
    const settings = uploadSettings(params)
    const buffer = asBuffer(params.body)
    if (buffer !== null) {
      const native = await this.#store()
      const result = await callNative(() => native.put(key, buffer, settings))
      onProgress?.({ loaded: buffer.length, total: buffer.length })
      return { key, etag: result.etag ?? undefined }
    }
    if (!isStreamBody(params.body)) {
      throw new InvalidArgumentError(
        'body must be a Buffer, Uint8Array, string, Readable, ReadableStream or AsyncIterable',
        { key },
      )
    }
    const native = await this.#store()
    const writer = callNativeSync(() => native.openWriter(key, settings))
    const onAbort = () => writer.abort()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await pump(chunksOf(params.body), writer, (loaded) => onProgress?.({ loaded, total: settings.contentLength }))
      const result = await callNative(() => writer.close())
      return { key, etag: result.etag ?? undefined }
    } catch (error) {
      writer.abort()
      // Settle only once the store has discarded the upload (temp file, multipart parts).
      await writer.close().catch(() => {})
      throw signal?.aborted ? abortErrorFor(signal) : fromNative(error)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** A Readable of the object (or a byte range of it); a missing key rejects first. */
  async download(key, { range, signal, onProgress } = {}) {
    checkKey(key)
    if (signal?.aborted) throw abortErrorFor(signal)
    const reader = await callNative(async () => (await this.#store()).openReader(key, toRange(range)))
    const stream = new NativeReadable(reader, onProgress)
    if (signal) {
      if (signal.aborted) stream.destroy(abortErrorFor(signal))
      else {
        const onAbort = () => stream.destroy(abortErrorFor(signal))
        signal.addEventListener('abort', onAbort, { once: true })
        stream.once('close', () => signal.removeEventListener('abort', onAbort))
      }
    }
    return stream
  }

  async delete(key) {
    await callNative(async () => (await this.#store()).delete(checkKey(key)))
  }

  async exists(key) {
    return callNative(async () => (await this.#store()).exists(checkKey(key)))
  }

  /** A time-limited URL; it does not check that the object exists. */
  async getSignedUrl(key, options = {}) {
    const settings = {
      method: options.method ?? 'GET',
      expiresIn: options.expiresIn ?? this.#expiresIn,
      contentType: options.contentType ?? undefined,
      responseContentType: options.responseContentType ?? undefined,
      responseContentDisposition: options.responseContentDisposition ?? undefined,
    }
    const native = this.#native ?? (await this.#pending)
    const signed = callNativeSync(() => native.signUrl(checkKey(key), settings))
    return { url: signed.url, expiresAt: new Date(signed.expiresAtMs).toISOString() }
  }

  async stat(key) {
    return toObjectInfo(await callNative(async () => (await this.#store()).stat(checkKey(key))))
  }

  /** One page of a listing; pass `cursor` back for the next. */
  async list({ prefix = '', delimiter, cursor, limit } = {}) {
    const page = await callNative(async () =>
      (await this.#store()).list({ prefix, delimiter: delimiter ?? undefined, cursor: cursor ?? undefined, limit: limit ?? undefined }),
    )
    return {
      objects: page.objects.map((o) => ({
        key: o.key,
        size: o.size,
        lastModified: new Date(o.lastModifiedMs),
        etag: o.etag ?? undefined,
      })),
      prefixes: page.prefixes,
      cursor: page.cursor ?? undefined,
    }
  }

  /** Every object under a prefix, page after page. */
  async *listAll(options = {}) {
    let cursor = options.cursor
    do {
      const page = await this.list({ ...options, cursor })
      yield* page.objects
      cursor = page.cursor
    } while (cursor)
  }

  async copy(from, to) {
    await callNative(async () => (await this.#store()).copy(checkKey(from, 'from'), checkKey(to, 'to')))
  }

  async move(from, to) {
    await callNative(async () => (await this.#store()).rename(checkKey(from, 'from'), checkKey(to, 'to')))
  }

  /** Deletes every key, going on past failures; resolves to the count deleted. */
  async deleteMany(keys) {
    if (!Array.isArray(keys)) throw new InvalidArgumentError('deleteMany takes an array of keys', {})
    return callNative(async () => (await this.#store()).deleteMany(keys.map((k) => checkKey(k))))
  }

  async deletePrefix(prefix) {
    return callNative(async () => (await this.#store()).deletePrefix(checkKey(prefix, 'prefix')))
  }

  async deleteOlderThan(prefix, date) {
    const time = date instanceof Date ? date.getTime() : new Date(date).getTime()
    if (Number.isNaN(time)) throw new InvalidArgumentError('deleteOlderThan takes a valid date', {})
    return callNative(async () => (await this.#store()).deleteOlderThan(checkKey(prefix, 'prefix'), time))
  }

  /** The whole object (or a range) as one Buffer: for small objects. */
  async get(key, { range } = {}) {
    return callNative(async () => (await this.#store()).read(checkKey(key), toRange(range)))
  }

  /** `upload` for small objects: put(key, data, { contentType, metadata, … }). */
  async put(key, data, options = {}) {
    return this.upload({ ...options, key, body: data })
  }
}

/** Feeds chunks to a native writer, merging small ones; a write waits only when the queue is full. */
async function pump(chunks, writer, onProgress) {
  let loaded = 0
  let pending = []
  let pendingBytes = 0
  const flush = async () => {
    const chunk = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes)
    pending = []
    pendingBytes = 0
    if (!writer.tryWrite(chunk)) await writer.write(chunk)
    loaded += chunk.length
    onProgress(loaded)
  }
  for await (const chunk of chunks) {
    pending.push(chunk)
    pendingBytes += chunk.length
    if (pendingBytes >= COALESCE_BYTES) await flush()
  }
  if (pendingBytes > 0) await flush()
}

function generateKey({ prefix = '', filename } = {}) {
  return callNativeSync(() => generateStorageKey(prefix, filename ?? undefined))
}

module.exports = { StorageBackend, generateKey, kNative, kBaseUrl, DEFAULT_SIGNED_URL_BASE }
