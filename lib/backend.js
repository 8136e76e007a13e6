'use strict'
// StorageBackend: the JS face of every native store. It adds Node streams, AbortSignal,
// progress callbacks and error classes around the native calls; the stores live in Rust.

const { Readable } = require('node:stream')
const { NativeStorage, generateStorageKey } = require('./addon')
const { downloadArchive } = require('./archive')
const { asBuffer, isStreamBody, bodyChunks, isUntouchedFileStream, plainFileStream, prematureClose, whenDestroyed } = require('./body')
const { AbortError, InvalidArgumentError } = require('./errors')
const { callNative, callNativeSync, fromNative } = require('./native')
const options = require('./options')

const { checkKey } = options

const DEFAULT_SIGNED_URL_EXPIRATION = 900
/** Where `raptscallions-storage serve` listens unless told otherwise; self-signed URLs point there. */
const DEFAULT_SIGNED_URL_BASE = 'http://127.0.0.1:8790'
// Small chunks from an iterator are merged up to this size before crossing to Rust.
const COALESCE_BYTES = 64 * 1024

/** The native store behind a backend (a promise while it opens); for this package's own modules (the URL handler). */
const kNative = Symbol('nativeStorage')
const kBaseUrl = Symbol('signedUrlBase')

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

function toUploadInfo(info) {
  return {
    id: info.id,
    key: info.key,
    offset: info.offset,
    length: info.length ?? undefined,
    expiresAt: new Date(info.expiresAtMs),
    contentType: info.contentType ?? undefined,
    metadata: info.metadata,
    completed: info.completed,
  }
}

/** The chunks until the source fails; the failure goes to `onError` and the run just ends. */
async function* untilFailure(chunks, onError) {
  try {
    yield* chunks
  } catch (error) {
    onError(error)
  }
}

async function* oneChunk(buffer) {
  yield buffer
}

/** Rejects once `signal` aborts; `dispose()` stops listening. */
function abortion(signal) {
  let onAbort
  const promise = new Promise((_resolve, reject) => {
    onAbort = () => reject(abortErrorFor(signal))
    // Aborted while the call awaited its store: no event will come.
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  promise.catch(() => {})
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) }
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
        try {
          this.#onProgress?.({ loaded: this.#loaded, total: this.info.contentLength })
        } catch (error) {
          // A throwing callback fails the download, as it fails an upload.
          this.destroy(error)
          return
        }
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
  #maxUploadBytes

  /**
   * Backends are built by their subclasses (LocalStorageBackend, S3StorageBackend, …), from a
   * native store or a promise of one (when its settings must be read asynchronously first).
   */
  constructor(native, { baseUrl, signedUrlExpiration = DEFAULT_SIGNED_URL_EXPIRATION, maxUploadBytes } = {}) {
    if (!(native instanceof NativeStorage) && typeof native?.then !== 'function') {
      throw new InvalidArgumentError('StorageBackend is built by a store class such as LocalStorageBackend', {})
    }
    if (!Number.isInteger(signedUrlExpiration) || signedUrlExpiration <= 0) {
      throw new InvalidArgumentError('signedUrlExpiration must be a positive integer (seconds)', {})
    }
    if (native instanceof NativeStorage) {
      this.#native = native
    } else {
      this.#pending = callNative(() => native).then((resolved) => (this.#native = resolved))
      this.#pending.catch(() => {}) // reported by the first call that needs it
    }
    this[kNative] = () => this.#store()
    this.#expiresIn = signedUrlExpiration
    this.#maxUploadBytes = options.optionalCount(maxUploadBytes, 'maxUploadBytes', { min: 1 })
    this[kBaseUrl] = baseUrl
  }

  /**
   * The `maxBytes` of every upload, resumable upload and self-served PUT URL that states none
   * (the `maxUploadBytes` option; STORAGE_MAX_FILE_SIZE_BYTES, when set, for backends built from
   * the environment); undefined: no limit.
   */
  get maxUploadBytes() {
    return this.#maxUploadBytes
  }

  /** The native store, once it exists. */
  #store() {
    return this.#native ?? this.#pending
  }

  /** Resolves once the store is open (a local folder made, an S3Client's settings read); rejects with why it cannot be. */
  async ready() {
    await this.#store()
  }

  /**
   * Stores a body at a key. Buffers, strings and byte arrays go in one call; streams
   * (Readable, web ReadableStream, AsyncIterable) go chunk by chunk with backpressure.
   */
  async upload(params) {
    if (params == null || typeof params !== 'object') throw new InvalidArgumentError('upload takes { key, body, … }', {})
    const key = checkKey(params.key)
    const signal = options.optionalSignal(params.signal)
    const onProgress = options.optionalFunction(params.onProgress, 'onProgress')
    if (signal?.aborted) throw abortErrorFor(signal)
    const settings = options.uploadSettings(params)
    settings.maxBytes ??= this.#maxUploadBytes
    const buffer = asBuffer(params.body)
    // With a signal, a buffer goes the streamed way, where an abort ends the upload at once.
    if (buffer !== null && !signal) {
      const native = await this.#store()
      const result = await callNative(() => native.put(key, buffer, settings))
      onProgress?.({ loaded: buffer.length, total: buffer.length })
      return { key, etag: result.etag ?? undefined }
    }
    const body = buffer !== null ? oneChunk(buffer) : params.body
    if (buffer !== null) settings.contentLength ??= buffer.length
    // A file stream's file is read by the addon itself. Only such a stream is awaited here:
    // any other goes to #send at once, which must hold a flowing stream still before an await.
    const file = buffer === null && isUntouchedFileStream(body) ? await this.#opening(body, signal) : null
    if (file !== null) {
      const open = (native) => native.uploadFile(key, settings, file.fd, file.start, file.end)
      const result = await this.#sendFile(body, file, open, { signal, onProgress, total: settings.contentLength })
      if (result !== null) return { key, etag: result.etag ?? undefined }
    }
    const result = await this.#send(body, (native) => native.upload(key, settings), {
      signal,
      onProgress,
      total: settings.contentLength,
    })
    return { key, etag: result.etag ?? undefined }
  }

  /**
   * Streams `body` into the native writer `open` makes, with backpressure; resolves to what
   * the writer's close reports. `keepWhatArrived`: a body that fails part-way still ends the
   * write normally (an append keeps what arrived), and its error is thrown after.
   */
  async #send(body, open, { signal, onProgress, total, keepWhatArrived = false }) {
    if (!isStreamBody(body)) {
      throw new InvalidArgumentError('body must be a Buffer, Uint8Array, string, Readable, ReadableStream or AsyncIterable', {})
    }
    // Taken before any await, so that a stream already flowing is held still (see bodyChunks).
    let { chunks, stop } = bodyChunks(body)
    let sourceError
    if (keepWhatArrived) chunks = untilFailure(chunks, (error) => (sourceError = error))
    let writer
    try {
      const native = await this.#store()
      writer = callNativeSync(() => open(native))
    } catch (error) {
      stop()
      throw error
    }
    // An abort must end the upload even while the body is silent: wait for either.
    const aborted = signal && abortion(signal)
    try {
      const pumping = pump(chunks, writer, (loaded) => onProgress?.({ loaded, total }))
      pumping.catch(() => {}) // after an abort, its late failure is no news
      await (aborted ? Promise.race([pumping, aborted.promise]) : pumping)
      // The store may still be sending (a server slow to answer): the abort ends that too.
      const closing = callNative(() => writer.close())
      closing.catch(() => {})
      const result = await (aborted ? Promise.race([closing, aborted.promise]) : closing)
      if (sourceError !== undefined) throw Object.assign(sourceError, { upload: toUploadInfo(result.upload) })
      return result
    } catch (error) {
      if (error === sourceError) throw error
      writer.abort()
      stop()
      // Settle once the native upload has ended; what it leaves (a local temp file, multipart
      // parts) is discarded by the store in the background right after.
      await writer.close().catch(() => {})
      throw signal?.aborted ? abortErrorFor(signal) : fromNative(error)
    } finally {
      aborted?.dispose()
    }
  }

  /**
   * `plainFileStream(body)`, ended by an abort while the file opens (a FIFO opens only once a
   * writer comes): the stream is then destroyed, as a body is when an upload is aborted.
   */
  async #opening(body, signal) {
    const aborted = signal && abortion(signal)
    try {
      return await (aborted ? Promise.race([plainFileStream(body), aborted.promise]) : plainFileStream(body))
    } catch (error) {
      if (signal?.aborted) body.destroy()
      throw error
    } finally {
      aborted?.dispose()
    }
  }

  /**
   * Uploads a plain file stream (see `plainFileStream`) whose file the addon reads itself;
   * resolves to null, the stream untouched, when the addon will not (not a regular file).
   * Until the file is read to its end, destroying the stream (the app, its own signal, an
   * onProgress) fails the upload, as it would fail a stream read in JS; the signal can stop it
   * until it is stored. Progress is reported as the addon reads, the last report before the
   * store commits. Then the stream ends, as reading it to its end would have ended it.
   */
  async #sendFile(body, file, open, { signal, onProgress, total }) {
    let writer
    try {
      const native = await this.#store()
      // Destroyed meanwhile: its descriptor may be closed, or already another file's.
      if (body.destroyed || body.fd !== file.fd) throw body.errored ?? prematureClose()
      writer = callNativeSync(() => open(native))
    } catch (error) {
      body.destroy()
      throw error
    }
    if (writer === null) return null
    // What stopped the upload; the writer's own calls then reject, and this is what is thrown.
    let stoppedBy
    const stop = (reason) => {
      stoppedBy ??= reason
      writer.abort()
    }
    const onAbort = () => stop(abortErrorFor(signal))
    if (signal?.aborted) onAbort()
    else signal?.addEventListener('abort', onAbort, { once: true })
    let stopWatching = whenDestroyed(body, stop)
    let stored = false
    try {
      for (let reported = 0, done = false; !done; ) {
        const progress = await callNative(() => writer.progress())
        done = progress.done
        if (onProgress && progress.loaded > reported) onProgress({ loaded: (reported = progress.loaded), total })
        // A destroy without an error tells nothing to a stream made with `emitClose: false`.
        if (body.destroyed) stop(body.errored ?? prematureClose())
        if (stoppedBy !== undefined) throw stoppedBy
      }
      // Read to its end: the stream is done with, as one read in JS would be.
      stopWatching()
      stopWatching = () => {}
      const result = await callNative(() => writer.close())
      stored = true
      return result
    } catch (error) {
      writer.abort()
      await writer.close().catch(() => {})
      throw stoppedBy ?? fromNative(error)
    } finally {
      signal?.removeEventListener('abort', onAbort)
      // The upload has reported the stream's error: its 'error' event, still to come, must not
      // become an uncaught exception once nothing watches it.
      body.on('error', () => {})
      stopWatching()
      if (stored && !body.destroyed) {
        body.push(null)
        body.resume()
      } else {
        body.destroy()
      }
    }
  }

  /**
   * Starts a resumable upload of `key` (tus-style): send its bytes in any number of
   * `appendUpload` calls, from any process, then `completeUpload`. `length` may be left out and
   * stated later. The upload lives in the store itself for `expiresIn` seconds after its last
   * change (default 24 hours).
   */
  async createUpload(params) {
    if (params == null || typeof params !== 'object') throw new InvalidArgumentError('createUpload takes { key, length?, … }', {})
    const key = checkKey(params.key)
    const length = options.optionalCount(params.length, 'length')
    const expiresIn = options.optionalCount(params.expiresIn, 'expiresIn', { min: 1 })
    const settings = options.uploadSettings(params)
    settings.maxBytes ??= this.#maxUploadBytes
    return toUploadInfo(await callNative(async () => (await this.#store()).createUpload(key, length, expiresIn, settings)))
  }

  /** A resumable upload's offset, length, expiry and whether it is completed; UploadNotFoundError once aborted or swept. */
  async getUpload(id) {
    return toUploadInfo(await callNative(async () => (await this.#store()).uploadStatus(options.uploadId(id))))
  }

  /**
   * Appends `body` at `offset`, which must be the upload's offset now (else
   * UploadOffsetMismatchError, whose details give the right one). With `checksum`
   * ({ algorithm: 'sha1' | 'sha256' | 'md5', digest: Buffer or base64 }), a body with another
   * digest is refused and nothing of it kept. Without one, a body that fails part-way (a client
   * that went away) keeps what arrived, and its error (with `upload`, the new state) is thrown.
   */
  async appendUpload(id, params) {
    options.uploadId(id)
    if (params == null || typeof params !== 'object') throw new InvalidArgumentError('appendUpload takes (id, { offset, body, … })', {})
    const offset = options.optionalCount(params.offset, 'offset')
    if (offset === undefined) throw new InvalidArgumentError('appendUpload needs the offset the body starts at', {})
    const signal = options.optionalSignal(params.signal)
    const onProgress = options.optionalFunction(params.onProgress, 'onProgress')
    if (signal?.aborted) throw abortErrorFor(signal)
    const { algorithm, digest } = options.checksum(params.checksum)
    const buffer = asBuffer(params.body)
    const body = buffer !== null ? oneChunk(buffer) : params.body
    const result = await this.#send(body, (native) => native.appendUpload(id, offset, algorithm, digest), {
      signal,
      onProgress,
      total: buffer?.length,
      keepWhatArrived: true,
    })
    return toUploadInfo(result.upload)
  }

  /** States the length of an upload created without one. */
  async declareUploadLength(id, length) {
    options.uploadId(id)
    const count = options.optionalCount(length, 'length')
    if (count === undefined) throw new InvalidArgumentError('declareUploadLength needs a length', {})
    return toUploadInfo(await callNative(async () => (await this.#store()).declareUploadLength(id, count)))
  }

  /**
   * Makes the object of an upload's bytes, under the guards it was created with (type sniffing,
   * maxBytes, ifNotExists); an upload of deferred length ends where it is. Its bytes are gone
   * after; the upload is kept, completed, until it expires (completing it again answers the same).
   */
  async completeUpload(id) {
    options.uploadId(id)
    const done = await callNative(async () => (await this.#store()).completeUpload(id))
    return { key: done.key, size: done.size, etag: done.etag ?? undefined }
  }

  /** Discards an upload and every byte it holds. */
  async abortUpload(id) {
    options.uploadId(id)
    await callNative(async () => (await this.#store()).abortUpload(id))
  }

  /**
   * Removes resumable uploads left unfinished: with a date, those last changed before it;
   * without, those past their own expiry. Resolves to how many went.
   */
  async deleteExpiredUploads(olderThan) {
    let time
    if (olderThan !== undefined) {
      time = olderThan instanceof Date ? olderThan.getTime() : new Date(olderThan).getTime()
      if (Number.isNaN(time)) throw new InvalidArgumentError('deleteExpiredUploads takes a valid date', {})
    }
    return callNative(async () => (await this.#store()).deleteExpiredUploads(time))
  }

  /** A Readable of the object (or a byte range of it); a missing key rejects first. */
  async download(key, downloadOptions) {
    checkKey(key)
    downloadOptions ??= {}
    const signal = options.optionalSignal(downloadOptions.signal)
    const onProgress = options.optionalFunction(downloadOptions.onProgress, 'onProgress')
    const range = options.range(downloadOptions.range)
    if (signal?.aborted) throw abortErrorFor(signal)
    const opening = callNative(async () => (await this.#store()).download(key, range))
    let reader
    if (signal) {
      // The server may be slow to answer: an abort rejects at once, and a reader that opens
      // after it is let go.
      const aborted = abortion(signal)
      try {
        reader = await Promise.race([opening, aborted.promise])
      } catch (error) {
        if (signal.aborted) opening.then((late) => late.cancel(), () => {})
        throw error
      } finally {
        aborted.dispose()
      }
    } else {
      reader = await opening
    }
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

  /**
   * A zip of the objects `{ keys: [...] }` names, or of every object under `{ prefix }`, as a
   * Readable that reads one object at a time. Any failure (a missing key) destroys it with the
   * error; destroying it stops the download in progress and the listing.
   */
  async downloadArchive(source, archiveOptions = {}) {
    return downloadArchive(this, options.archiveSettings(source, archiveOptions))
  }

  async delete(key) {
    await callNative(async () => (await this.#store()).delete(checkKey(key)))
  }

  async exists(key) {
    return callNative(async () => (await this.#store()).exists(checkKey(key)))
  }

  /** A time-limited URL; it does not check that the object exists. */
  async getSignedUrl(key, signOptions = {}) {
    checkKey(key)
    const settings = options.signSettings(signOptions, this.#expiresIn)
    // Only the URLs this package serves can carry the guard (S3 and the others cannot).
    if (settings.method === 'PUT' && this[kBaseUrl]) settings.maxBytes ??= this.#maxUploadBytes
    const native = this.#native ?? (await this.#pending)
    // At once when the signing key is at hand; a promise when credentials must be fetched first.
    const signed = await callNative(() => native.signUrl(key, settings))
    // `headers`: what the request must carry besides (a PUT's signed content type; Azure's blob type).
    return { url: signed.url, expiresAt: new Date(signed.expiresAtMs).toISOString(), headers: { ...signed.headers } }
  }

  async stat(key) {
    return toObjectInfo(await callNative(async () => (await this.#store()).stat(checkKey(key))))
  }

  /** One page of a listing; pass `cursor` back for the next. */
  async list(listOptions = {}) {
    const settings = options.listSettings(listOptions)
    const page = await callNative(async () => (await this.#store()).list(settings))
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
  async *listAll(listOptions = {}) {
    let cursor = listOptions.cursor
    do {
      const page = await this.list({ ...listOptions, cursor })
      yield* page.objects
      cursor = page.cursor
    } while (cursor)
  }

  async copy(from, to) {
    await callNative(async () => (await this.#store()).copy(checkKey(from, 'from'), checkKey(to, 'to')))
  }

  async move(from, to) {
    await callNative(async () => (await this.#store()).move(checkKey(from, 'from'), checkKey(to, 'to')))
  }

  /** Deletes every key, going on past failures; resolves to the count deleted. */
  async deleteMany(keys) {
    if (!Array.isArray(keys)) throw new InvalidArgumentError('deleteMany takes an array of keys', {})
    return callNative(async () => (await this.#store()).deleteMany(keys.map((k) => checkKey(k))))
  }

  /**
   * What the objects under `prefix` take (the whole store with ''): `{ bytes, objects }`,
   * counted from the listing, so its cost grows with the number of objects.
   */
  async usage(prefix = '') {
    if (typeof prefix !== 'string') throw new InvalidArgumentError('usage takes a prefix (a string)', {})
    return callNative(async () => (await this.#store()).usage(prefix))
  }

  /** Deletes every object under a prefix; the empty prefix (everything) needs `{ all: true }`. */
  async deletePrefix(prefix, scope) {
    checkKey(prefix, 'prefix')
    const all = options.bulkScope(scope)
    return callNative(async () => (await this.#store()).deletePrefix(prefix, all))
  }

  /** Deletes the objects under a prefix modified before `date`; the empty prefix needs `{ all: true }`. */
  async deleteOlderThan(prefix, date, scope) {
    checkKey(prefix, 'prefix')
    const all = options.bulkScope(scope)
    const time = date instanceof Date ? date.getTime() : new Date(date).getTime()
    if (Number.isNaN(time)) throw new InvalidArgumentError('deleteOlderThan takes a valid date', {})
    return callNative(async () => (await this.#store()).deleteOlderThan(prefix, time, all))
  }

  /**
   * Removes what uploads that never finished left behind before `date` (S3: aborts multipart
   * uploads begun before it, whose parts S3 otherwise keeps; local: temp files of killed
   * writers); resolves to how many went.
   */
  async deleteIncompleteUploads(date = new Date()) {
    const time = date instanceof Date ? date.getTime() : new Date(date).getTime()
    if (Number.isNaN(time)) throw new InvalidArgumentError('deleteIncompleteUploads takes a valid date', {})
    return callNative(async () => (await this.#store()).deleteIncompleteUploads(time))
  }

  /** The whole object (or a range) as one Buffer: for small objects. */
  async get(key, getOptions) {
    checkKey(key)
    const range = options.range(getOptions?.range)
    return callNative(async () => (await this.#store()).get(key, range))
  }

  /** `upload` for small objects: put(key, data, { contentType, metadata, … }). */
  async put(key, data, putOptions = {}) {
    return this.upload({ ...putOptions, key, body: data })
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
