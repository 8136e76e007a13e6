/// <reference types="node" />
import type { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import type { ServeObjectOptions, StorageBackend, TusHandlerOptions, UploadOptions, UploadResult } from './index'

declare module 'fastify' {
  interface FastifyReply {
    /**
     * Sends the object at `key` (from the plugin's backend unless `backend` is given), as
     * `serveObject` does: Range (206, 416), If-None-Match and If-Modified-Since (304), If-Range,
     * a download name. Returns the reply, as `reply.send` does (`return reply.sendObject(key)`).
     * A missing object is a FileNotFoundError, answered by the plugin's error handler (404).
     */
    sendObject(key: string, options?: fastifyStorage.SendObjectOptions): FastifyReply
  }

  interface FastifyRequest {
    /**
     * Streams one file of @fastify/multipart (`await request.file()`) into the backend, under
     * `maxBytes` and `allowedContentTypes`. A file that @fastify/multipart cut off at its own
     * `limits.fileSize` is never stored: FileTooLargeError (413), nothing left at the key. No
     * file (`undefined`) is an InvalidArgumentError (400).
     */
    uploadFile(file: fastifyStorage.MultipartFileLike | undefined, options: fastifyStorage.UploadFileOptions): Promise<UploadResult>
  }
}

type FastifyStorage = FastifyPluginAsync<fastifyStorage.FastifyStorageOptions>

declare namespace fastifyStorage {
  export interface FastifyStorageOptions {
    /** The backend of `reply.sendObject` and `request.uploadFile`; a local or memory backend's signed URLs are served too. */
    backend: StorageBackend
    /**
     * The path the signed-URL routes answer under, from the server's root (default: the path of
     * the backend's baseUrl, which its signed URLs carry). Only for local and memory backends.
     */
    prefix?: string | undefined
    /**
     * Mounts the tus server (`createTusHandler`) at `tus.path` in the plugin's scope (default
     * `/files`), request bodies left unread for it; on any backend.
     */
    tus?: TusHandlerOptions | undefined
  }

  export interface SendObjectOptions extends ServeObjectOptions {
    /** Another backend than the plugin's. */
    backend?: StorageBackend | undefined
  }

  export interface UploadFileOptions extends Omit<UploadOptions, 'contentLength'> {
    key: string
    /** Another backend than the plugin's. */
    backend?: StorageBackend | undefined
  }

  /** What `request.uploadFile` reads of @fastify/multipart's MultipartFile. */
  export interface MultipartFileLike {
    file: Readable & { truncated: boolean; bytesRead: number }
    mimetype: string
  }

  /**
   * The plugin: `app.register(fastifyStorage, { backend })`. It is not encapsulated: its reply
   * and request helpers, and its error handler (this package's 4xx errors as
   * `statusCode` + `toJSON()`; every other error passed on to the handler before it), hold in
   * the scope that registers it.
   */
  export const fastifyStorage: FastifyStorage
  export { fastifyStorage as default }
}

declare function fastifyStorage(...params: Parameters<FastifyStorage>): ReturnType<FastifyStorage>
export = fastifyStorage
