/// <reference types="node" />
import type { Readable } from 'node:stream'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { z } from 'zod'

// ---------------------------------------------------------------- the interface

export interface IStorageBackend {
  upload(params: UploadParams): Promise<UploadResult>
  download(key: string): Promise<Readable>
  delete(key: string): Promise<void>
  exists(key: string): Promise<boolean>
  getSignedUrl(key: string, options?: SignedUrlOptions): Promise<SignedUrl>
}

export type BackendFactory<T extends IStorageBackend = IStorageBackend> = () => T

export interface UploadParams {
  /** Unique storage key for the file. */
  key: string
  /** File content. */
  body: Buffer | Readable
  /** MIME type. */
  contentType: string
  /** The body's exact length; a body of another length is refused and nothing is stored. */
  contentLength?: number | undefined
  metadata?: Record<string, string> | undefined
}

export interface UploadResult {
  key: string
  etag?: string | undefined
  url?: string | undefined
}

export interface SignedUrlOptions {
  /** Seconds until expiration (default: the backend's, 900). */
  expiresIn?: number | undefined
  method?: 'GET' | 'PUT' | undefined
  /** PUT: the Content-Type the uploader must send (it is signed). */
  contentType?: string | undefined
}

export interface SignedUrl {
  url: string
  /** ISO 8601 expiration timestamp. */
  expiresAt: string
  /** Headers the request must carry (names lowercase): a PUT's signed content type, Azure's `x-ms-blob-type`. */
  headers?: Record<string, string> | undefined
}

// ---------------------------------------------------------------- Part B options and results

export interface Progress {
  loaded: number
  total?: number | undefined
}

/** Every body an upload accepts; the length is optional. */
export type UploadBody =
  | Buffer
  | Uint8Array
  | ArrayBuffer
  | string
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>

export interface UploadOptions {
  contentType?: string | undefined
  contentLength?: number | undefined
  metadata?: Record<string, string> | undefined
  /** Refuse to overwrite an existing object (FileAlreadyExistsError, 409). */
  ifNotExists?: boolean | undefined
  /** Overwrite only the version with this ETag (optimistic concurrency); else PreconditionFailedError (412). */
  ifMatch?: string | undefined
  /** Largest accepted body, enforced while streaming (FileTooLargeError, 413). */
  maxBytes?: number | undefined
  /** Allowed MIME types (`image/png`, `image/*`); the content itself is sniffed too (InvalidFileTypeError). */
  allowedContentTypes?: string[] | undefined
  /**
   * Refuse a body that would take the objects under `prefix` (the key's, or a folder above it)
   * past `maxBytes` together (QuotaExceededError, 403); the object it replaces is not counted.
   * Checked, not reserved: concurrent uploads can each fit alone and overrun together.
   */
  quota?: { prefix: string; maxBytes: number } | undefined
  onProgress?: ((progress: Progress) => void) | undefined
  signal?: AbortSignal | undefined
}

export interface ExtendedUploadParams extends Omit<UploadParams, 'body' | 'contentType'>, UploadOptions {
  body: UploadBody
  contentType?: string | undefined
}

export interface ByteRange {
  start: number
  /** Inclusive, as in HTTP; omitted: to the end. */
  end?: number | undefined
}

export interface DownloadOptions {
  range?: ByteRange | undefined
  signal?: AbortSignal | undefined
  onProgress?: ((progress: Progress) => void) | undefined
}

export interface ObjectInfo {
  key: string
  size: number
  contentType: string
  etag?: string | undefined
  lastModified: Date
  metadata: Record<string, string>
}

/** A download: a Readable that also tells what it carries. */
export interface DownloadStream extends Readable {
  info: ObjectInfo & { range: { start: number; end: number }; contentLength: number }
}

export interface ListOptions {
  prefix?: string | undefined
  delimiter?: string | undefined
  cursor?: string | undefined
  limit?: number | undefined
}

export interface ListedObject {
  key: string
  size: number
  lastModified: Date
  etag?: string | undefined
}

export interface ListPage {
  objects: ListedObject[]
  prefixes: string[]
  /** Set when more results follow. */
  cursor?: string | undefined
}

export interface ExtendedSignedUrlOptions extends SignedUrlOptions {
  /** GET: the Content-Type the response carries. */
  responseContentType?: string | undefined
  /** GET: the Content-Disposition the response carries (a download file name). */
  responseContentDisposition?: string | undefined
  /**
   * PUT (local and memory stores): the largest body the handler accepts for this URL. It is
   * signed, so the uploader cannot lift it. S3 cannot bound a presigned PUT and refuses it.
   */
  maxBytes?: number | undefined
  /**
   * PUT (local and memory stores): the types the handler accepts for this URL, checked on the
   * declared type and the sniffed content. S3 refuses it: sign a `contentType` instead.
   */
  allowedContentTypes?: string[] | undefined
}

/**
 * What `downloadArchive` puts in the zip: the objects named (in this order), or every object
 * under a prefix (in key order; `''` is the whole store, and an undefined prefix is refused).
 */
export type ArchiveSource = { keys: string[] } | { prefix: string }

export interface ArchiveOptions {
  /** Deflate the entries (zlib level 1, the fastest); default false: stored as they are, no CPU spent. */
  compress?: boolean | undefined
  /**
   * With `prefix`: name entries by their whole keys. By default they are named relative to the
   * prefix's folder (the prefix up to its last `/`): `{ prefix: 'reports/2024/' }` makes
   * `reports/2024/q1.pdf` the entry `q1.pdf`.
   */
  fullKeys?: boolean | undefined
}

/** For deletes that may reach every object: `{ all: true }` lets the empty prefix mean the whole store. */
export interface BulkScope {
  all?: boolean | undefined
}

// ---------------------------------------------------------------- backends

export declare class StorageBackend implements IStorageBackend {
  protected constructor(native: unknown, options?: { baseUrl?: string | undefined; signedUrlExpiration?: number | undefined })
  upload(params: UploadParams | ExtendedUploadParams): Promise<UploadResult>
  download(key: string, options?: DownloadOptions): Promise<DownloadStream>
  delete(key: string): Promise<void>
  exists(key: string): Promise<boolean>
  getSignedUrl(key: string, options?: ExtendedSignedUrlOptions): Promise<SignedUrl>
  stat(key: string): Promise<ObjectInfo>
  list(options?: ListOptions): Promise<ListPage>
  listAll(options?: Omit<ListOptions, 'delimiter'>): AsyncIterable<ListedObject>
  copy(from: string, to: string): Promise<void>
  move(from: string, to: string): Promise<void>
  /** Deletes every key, going on past failures; resolves to the count deleted. */
  deleteMany(keys: string[]): Promise<number>
  /** What the objects under `prefix` take (the whole store with ''), counted from the listing. */
  usage(prefix?: string): Promise<{ bytes: number; objects: number }>
  /** Deletes every object under a prefix; the empty prefix needs `{ all: true }`. */
  deletePrefix(prefix: string, scope?: BulkScope): Promise<number>
  /** Deletes the objects under a prefix last modified before `date`; the empty prefix needs `{ all: true }`. */
  deleteOlderThan(prefix: string, date: Date | string | number, scope?: BulkScope): Promise<number>
  get(key: string, options?: { range?: ByteRange | undefined }): Promise<Buffer>
  put(key: string, data: UploadBody, options?: UploadOptions): Promise<UploadResult>
  /**
   * Removes what uploads that never finished left behind before `date` (default now): S3
   * multipart uploads (whose parts S3 keeps and bills), a local store's temp files of killed
   * writers. Resolves to how many went.
   */
  deleteIncompleteUploads(date?: Date | string | number): Promise<number>
  /** Resolves once the store is open; rejects with the reason it cannot be (a folder it cannot create, say). */
  ready(): Promise<void>
  /**
   * The `maxBytes` of every upload, resumable upload and self-served PUT URL that states none:
   * the `maxUploadBytes` option, or STORAGE_MAX_FILE_SIZE_BYTES (when set) for backends built
   * from the environment. Undefined: no limit.
   */
  readonly maxUploadBytes: number | undefined

  /**
   * Starts a resumable upload (tus-style): its bytes come in any number of `appendUpload`
   * calls, from any process, then `completeUpload` stores the object. State lives in the
   * store itself, so a restarted process or another instance resumes it.
   */
  createUpload(params: CreateUploadParams): Promise<ResumableUpload>
  /** The upload as it is now (`completed` once stored); UploadNotFoundError once aborted or swept, UploadExpiredError after its expiry. */
  getUpload(id: string): Promise<ResumableUpload>
  /**
   * Appends `body` at `offset`, which must be the upload's offset now (else
   * UploadOffsetMismatchError, whose `details.offset` is the right one). Of two racing appends
   * at one offset exactly one wins. A body that fails part-way keeps what arrived (unless a
   * checksum was given) and its error is thrown with `upload`, the new state.
   */
  appendUpload(id: string, params: AppendUploadParams): Promise<ResumableUpload>
  /** States the length of an upload created without one. */
  declareUploadLength(id: string, length: number): Promise<ResumableUpload>
  /**
   * Stores the object, under the guards the upload was created with (sniffed type, maxBytes,
   * ifNotExists); an upload of deferred length ends where it is. Its bytes are gone after; the
   * upload itself is kept, `completed`, until it expires, and completing it again answers the same.
   */
  completeUpload(id: string): Promise<CompletedUpload>
  /** Discards an upload and every byte it holds. */
  abortUpload(id: string): Promise<void>
  /**
   * A zip of the objects `{ keys }` names (entries named by their keys), or of every object
   * under `{ prefix }` (named relative to the prefix's folder unless `fullKeys`), each entry
   * dated by the object's last modification. Objects are read one at a time and the listing a
   * page at a time, in bounded memory whatever the sizes; ZIP64 records are added where sizes,
   * offsets or the entry count need them. A failure (a missing key: FileNotFoundError) destroys
   * the stream with the error, so the archive never ends as a truncated zip; destroying the
   * stream stops the download in progress and the listing. Rejects, before any byte, for wrong
   * arguments, a key no store takes, or a first object that cannot be read.
   */
  downloadArchive(source: ArchiveSource, options?: ArchiveOptions): Promise<Readable>
  /** Removes unfinished uploads: last changed before `olderThan`, or (without it) past their own expiry. Resolves to how many went. */
  deleteExpiredUploads(olderThan?: Date | string | number): Promise<number>
}

export interface CreateUploadParams {
  key: string
  /** Total bytes; leave out to state it later (declareUploadLength) or at completion. */
  length?: number | undefined
  /** Seconds the upload lives after its last change (default 86400). */
  expiresIn?: number | undefined
  contentType?: string | undefined
  metadata?: Record<string, string> | undefined
  ifNotExists?: boolean | undefined
  maxBytes?: number | undefined
  allowedContentTypes?: string[] | undefined
}

export interface AppendUploadParams {
  offset: number
  body: UploadBody
  /** The digest the body must have (tus's checksum extension); digest as bytes or base64. */
  checksum?: { algorithm: 'sha1' | 'sha256' | 'md5'; digest: Buffer | Uint8Array | string } | undefined
  onProgress?: ((progress: Progress) => void) | undefined
  /** Aborting keeps nothing of this append. */
  signal?: AbortSignal | undefined
}

export interface ResumableUpload {
  /** 128 random bits, hex: knowing it is what lets a client resume. */
  id: string
  key: string
  /** Bytes stored so far. */
  offset: number
  length?: number | undefined
  expiresAt: Date
  contentType?: string | undefined
  metadata: Record<string, string>
  /**
   * The object is stored. A completed upload is kept, without its bytes, until it expires, so
   * that a client asking again hears it is done and `completeUpload` asked again answers the same.
   */
  completed: boolean
}

export interface CompletedUpload {
  key: string
  size: number
  etag?: string | undefined
}

export interface LocalStorageBackendOptions {
  root: string
  /** Where the signed-URL handler is reachable (default http://127.0.0.1:8790). */
  baseUrl?: string | undefined
  /** Shared by every process that signs or verifies URLs; default: a secret kept in the store. */
  signingSecret?: string | undefined
  signedUrlExpiration?: number | undefined
  /** The default `maxBytes` of uploads (see `StorageBackend.maxUploadBytes`). */
  maxUploadBytes?: number | undefined
  /**
   * fsync each write before it is acknowledged (default true). With false, writes are still
   * atomic and survive a crash of the process, but not a power loss.
   */
  durable?: boolean | undefined
}

export declare class LocalStorageBackend extends StorageBackend {
  constructor(root: string)
  constructor(options: LocalStorageBackendOptions)
  readonly root: string
}

export declare function createLocalBackend(): LocalStorageBackend

export interface MemoryStorageBackendOptions {
  baseUrl?: string | undefined
  signingSecret?: string | undefined
  signedUrlExpiration?: number | undefined
  /** The default `maxBytes` of uploads (see `StorageBackend.maxUploadBytes`). */
  maxUploadBytes?: number | undefined
}

export declare class MemoryStorageBackend extends StorageBackend {
  constructor(options?: MemoryStorageBackendOptions)
  /** Empties the store: every object and unfinished resumable upload (a test's reset). */
  clear(): Promise<void>
}

/** A memory backend; its signed URLs point at STORAGE_MEMORY_BASE_URL when set. */
export declare function createMemoryBackend(): MemoryStorageBackend

/** What every cloud store (S3, Azure, GCS) takes beside its own settings. */
export interface CloudStoreOptions {
  /** Default signed URL expiration in seconds. */
  signedUrlExpiration?: number | undefined
  /** The default `maxBytes` of uploads (see `StorageBackend.maxUploadBytes`). */
  maxUploadBytes?: number | undefined
  /** Seconds a transfer may move no bytes before it fails with StorageTimeoutError (default 20). */
  stallTimeout?: number | undefined
  /**
   * PEM certificates to trust beyond the system's (an on-premises server's or an emulator's CA);
   * the files NODE_EXTRA_CA_CERTS and AWS_CA_BUNDLE name are trusted too. A server whose
   * certificate is trusted by none is a ConfigurationError, never accepted.
   */
  caCertificates?: string | undefined
}

export interface S3StorageBackendOptions extends CloudStoreOptions {
  /** Multipart part size in bytes (default 8 MiB, at least 5 MiB). */
  partSize?: number | undefined
  /** Parts uploaded at once (default 4); memory for an upload is at most partSize × queueSize, within the process's memory budget (setMemoryBudget). */
  queueSize?: number | undefined
  /**
   * Sign each body's SHA-256 (default: over plain HTTP only). Unsigned bodies go as
   * UNSIGNED-PAYLOAD, which saves hashing every byte on both ends; TLS protects them in transit.
   */
  signPayload?: boolean | undefined
}

export interface S3Credentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string | undefined
}

/** As the AWS SDK takes them: asked again shortly before what it gave expires. */
export type S3CredentialsProvider = () => Promise<S3Credentials & { expiration?: Date | undefined }>

export interface S3StorageBackendConfig extends S3StorageBackendOptions {
  bucket: string
  region: string
  /** A custom endpoint (MinIO, R2, B2, Spaces); path-style addressing unless forcePathStyle is false. */
  endpoint?: string | undefined
  forcePathStyle?: boolean | undefined
  credentials?: S3Credentials | S3CredentialsProvider | undefined
}

/** The parts of an AWS SDK v3 `S3Client` this package reads (region, endpoint, path style, credentials). */
export interface S3ClientLike {
  send(...args: any[]): Promise<unknown>
  config: object
}

/** S3 and S3-compatible services, in native code (aws-sdk-s3). */
export declare class S3StorageBackend extends StorageBackend {
  constructor(options: S3StorageBackendConfig)
  constructor(s3Client: S3ClientLike, bucket: string, options?: S3StorageBackendOptions)
  readonly bucket: string
}

/** An S3 backend from STORAGE_S3_* (path-style whenever an endpoint is set). */
export declare function createS3Backend(): S3StorageBackend

export interface AzureBlobStorageBackendOptions extends CloudStoreOptions {
  /** The container (3–63 lowercase letters, digits and single hyphens). */
  container: string
  /** `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…` as the portal gives it, or `UseDevelopmentStorage=true`. */
  connectionString?: string | undefined
  accountName?: string | undefined
  /** The account key (base64): signs requests and SAS URLs. */
  accountKey?: string | undefined
  /** A SAS token instead of the key: requests work within its permissions; it cannot sign URLs. */
  sasToken?: string | undefined
  /**
   * Microsoft Entra ID instead of a key: a TokenCredential (e.g. @azure/identity's
   * DefaultAzureCredential: managed identity, workload identity, the Azure CLI), asked again
   * shortly before its token expires; signed URLs then use a user delegation key. With no key, token nor credential, a
   * service principal from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET is used.
   */
  credential?: { getToken(scopes: string | string[]): Promise<{ token: string; expiresOnTimestamp: number } | null> } | undefined
  /** Default `https://<account>.blob.core.windows.net`; Azurite: `http://127.0.0.1:10000/devstoreaccount1`. */
  endpoint?: string | undefined
  /** Block size in bytes (default 8 MiB); memory for an upload is at most partSize × queueSize, within the process's memory budget (setMemoryBudget). */
  partSize?: number | undefined
  /** Blocks uploaded at once (default 4). */
  queueSize?: number | undefined
}

/**
 * Azure Blob Storage (block blobs), in native code. Metadata names that are not C# identifiers
 * (Azure's rule, e.g. `x-trace`) are stored as `rsc_<hex>` and read back as given. A signed PUT
 * URL needs the returned `headers` (`x-ms-blob-type: BlockBlob`) on the upload.
 */
export declare class AzureBlobStorageBackend extends StorageBackend {
  constructor(options: AzureBlobStorageBackendOptions)
  readonly container: string
}

/** An Azure backend from STORAGE_AZURE_*. */
export declare function createAzureBackend(): AzureBlobStorageBackend

export interface AliyunOssStorageBackendConfig extends S3StorageBackendOptions {
  /** The region id, e.g. `cn-hangzhou` (`oss-cn-hangzhou` is taken too). */
  region: string
  bucket: string
  credentials?: S3Credentials | S3CredentialsProvider | undefined
  /** The `-internal` endpoint, from inside Alibaba Cloud. */
  internal?: boolean | undefined
  /** Default `https://s3.oss-<region>.aliyuncs.com`. */
  endpoint?: string | undefined
}

/** Aliyun OSS through its S3-compatible API, virtual-hosted (OSS refuses path-style requests). */
export declare class AliyunOssStorageBackend extends S3StorageBackend {
  constructor(options: AliyunOssStorageBackendConfig)
}

/** An Aliyun OSS backend from STORAGE_ALIYUN_*. */
export declare function createAliyunBackend(): AliyunOssStorageBackend

/** A service-account key, as in the JSON key file Google hands out (never kept on the backend). */
export interface GcsServiceAccountKey {
  type?: 'service_account' | undefined
  client_email: string
  private_key: string
  token_uri?: string | undefined
  [field: string]: unknown
}

export interface GcsStorageBackendOptions extends CloudStoreOptions {
  bucket: string
  projectId?: string | undefined
  /** A service-account key file (JSON); or give its content as `credentials`. */
  keyFilename?: string | undefined
  credentials?: GcsServiceAccountKey | undefined
  /**
   * An emulator or private endpoint (`http://127.0.0.1:4443`). With an endpoint and no key:
   * anonymous (emulators only). With neither: application default credentials
   * (`GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's file, then the metadata server on Google Cloud).
   */
  endpoint?: string | undefined
  /** Resumable upload chunk size in bytes (default 8 MiB, a multiple of 256 KiB). */
  partSize?: number | undefined
  /** Chunks read ahead while one is sent (default 4); memory for an upload is at most partSize × queueSize, within the process's memory budget (setMemoryBudget). */
  queueSize?: number | undefined
}

/** Google Cloud Storage, in native code on the JSON API; V4 signed URLs need a service-account key. */
export declare class GcsStorageBackend extends StorageBackend {
  constructor(options: GcsStorageBackendOptions)
  readonly bucket: string
  readonly projectId?: string | undefined
}

/** A GCS backend from STORAGE_GCS_* (STORAGE_GCS_ENDPOINT for an emulator). */
export declare function createGcsBackend(): GcsStorageBackend

/** `prefix/YYYY/MM/<uuid>.<ext>`. */
export declare function generateKey(options?: { prefix?: string | undefined; filename?: string | undefined }): string

/** Serves self-signed URLs (local, memory): GET/HEAD with Range and ETag, PUT uploads. */
export declare function createSignedUrlHandler(
  backend: StorageBackend,
  options?: { basePath?: string | undefined },
): (req: IncomingMessage, res: ServerResponse) => void

export interface TusHandlerOptions {
  /** Where the handler is mounted (default "/files"); uploads live at `<path>/<id>`. */
  path?: string | undefined
  /** The key an upload is stored at: the app's choice, never the client's. Default `uploads/YYYY/MM/<uuid>.<ext>`. */
  keyFor?: ((upload: { metadata: Record<string, string>; length?: number | undefined; request: IncomingMessage }) => string | Promise<string>) | undefined
  /** Runs on every request (`upload` is null on creation); throw to refuse (its `statusCode`, else 403). */
  authorize?: ((request: IncomingMessage, upload: ResumableUpload | null) => void | Promise<void>) | undefined
  onUploadFinish?: (
    request: IncomingMessage,
    upload: { id: string; key: string; size: number; etag?: string | undefined; metadata: Record<string, string>; contentType?: string | undefined },
  ) => void | Promise<void>
  /** Largest upload in bytes (Tus-Max-Size); default the backend's `maxUploadBytes`. */
  maxSize?: number | undefined
  /** Seconds an upload lives after its last change (default 86400). */
  expiresIn?: number | undefined
  allowedContentTypes?: string[] | undefined
  ifNotExists?: boolean | undefined
}

/**
 * A tus 1.0 server (creation, creation-with-upload, creation-defer-length, termination,
 * expiration, checksum) over any backend, for `http.createServer`, Express or Fastify.
 */
export declare function createTusHandler(
  backend: StorageBackend,
  options?: TusHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void
export interface ServeObjectOptions {
  /** The Content-Type to send instead of the stored one. */
  contentType?: string | undefined
  /**
   * Sends the object as a download under this file name: `Content-Disposition: attachment`
   * (RFC 6266), a non-ASCII name as an RFC 8187 `filename*` with an ASCII fallback.
   */
  downloadName?: string | undefined
  /** Headers to add or to put in place of this function's (Cache-Control; a Content-Security-Policy of your own). */
  headers?: Record<string, string> | undefined
}

/**
 * Answers a GET or HEAD in plain `http` or Express with the object at `key`: Content-Type,
 * Content-Length, ETag, Last-Modified; 206 for one range (416 past the end); 304 on
 * If-None-Match or If-Modified-Since; If-Range; `nosniff` and a sandboxing CSP, so uploaded
 * HTML or SVG never runs on your origin. Rejects before anything is sent when the object
 * cannot be read (FileNotFoundError, …): answer that yourself (Express: `.catch(next)`).
 */
export declare function serveObject(
  req: IncomingMessage,
  res: ServerResponse,
  backend: StorageBackend,
  key: string,
  options?: ServeObjectOptions,
): Promise<void>

export interface SendDownloadOptions {
  /** The name the client saves the file as (Content-Disposition: attachment); default the key's last segment. */
  filename?: string | undefined
  /** Seconds the redirect's signed URL lasts (default: the backend's signed URL expiration). */
  expiresIn?: number | undefined
  /** false: stream the object through this process even where the store could serve it by redirect. Default true. */
  redirect?: boolean | undefined
}

/**
 * Answers a download request for `key`: a 302 to a signed GET URL on stores that sign their own
 * (S3, Azure, GCS: the bytes bypass this process), or the object streamed here (local and memory
 * stores, or `redirect: false`) with Content-Type, Content-Length, ETag, Range (206) and
 * If-None-Match (304). Both carry `Content-Disposition: attachment` with the file name (RFC 6266;
 * a name that is not plain ASCII, or holds `"`, `\` or `%`, in RFC 5987 form too). What the
 * client caused is answered as the signed-URL handler answers it (a missing key: 404
 * `{ error: { code: 'FILE_NOT_FOUND', … } }`); anything else (a wrong argument, a store that is
 * down or cannot sign) rejects with nothing sent. Resolves once the answer is sent.
 */
export declare function sendDownload(
  backend: StorageBackend,
  key: string,
  req: IncomingMessage,
  res: ServerResponse,
  options?: SendDownloadOptions,
): Promise<void>

// ---------------------------------------------------------------- memory budget

/** The memory budget for upload part buffers, in bytes. */
export interface MemoryBudget {
  limit: number
  inUse: number
  /** The most in use since the limit was last set. */
  peak: number
  /** Uploads that hold no buffer and wait for one (one that holds some waits for those to come back). */
  waiting: number
}

/**
 * Sets the bytes the part buffers of all uploads in the process (every store, every backend
 * instance) may take together, counted in whole KiB. An upload that would go past it waits for
 * buffers to be freed; each upload can always go on with one part, so a budget smaller than a
 * part slows uploads down to one part at a time, never to a halt. Bodies that fit one request
 * and take no part buffer (under 1 MiB) are not counted. Lowered below what is in use, the new
 * limit holds once enough buffers are freed. Default: STORAGE_MEMORY_BUDGET_BYTES, or else an
 * eighth of the machine's (or its container's) memory, between 64 MiB and 1 GiB.
 */
export declare function setMemoryBudget(bytes: number): void
/** The budget as it stands: for tests and metrics. */
export declare function memoryBudget(): MemoryBudget

// ---------------------------------------------------------------- registry and factory

export declare function registerBackend<T extends IStorageBackend>(identifier: string, factory: BackendFactory<T>): void
export declare function getBackendFactory(identifier: string): BackendFactory
export declare function isBackendRegistered(identifier: string): boolean
export declare function getRegisteredBackends(): string[]
export declare function resetRegistry(): void
/** The ids this package registers its stores under. */
export type BuiltInBackendId = 'local' | 'memory' | 's3' | 'azure' | 'aliyun' | 'gcs'
/** The class each built-in id's factory makes. */
export interface BuiltInBackends {
  local: LocalStorageBackend
  memory: MemoryStorageBackend
  s3: S3StorageBackend
  azure: AzureBlobStorageBackend
  aliyun: AliyunOssStorageBackend
  gcs: GcsStorageBackend
}
/**
 * The backend for an id; without one, the id STORAGE_BACKEND names (default "local").
 * A built-in store's id gives its class (`getBackend('memory').clear()`), every extended method
 * typed. An app that registers a class of its own under such an id names it:
 * `getBackend<MyBackend>('s3')`.
 */
export declare function getBackend<K extends BuiltInBackendId>(identifier: K): BuiltInBackends[K]
/** The store STORAGE_BACKEND names, one of the built-in ones (an app whose own class it names: `getBackend<MyBackend>()`). */
export declare function getBackend(): StorageBackend
export declare function getBackend<T extends IStorageBackend = IStorageBackend>(identifier?: string): T
export declare function isBackendCached(identifier: string): boolean
export declare function resetFactory(): void
export declare function resetAll(): void
/** Registers the built-in stores again, every BuiltInBackendId (they are registered on load). */
export declare function registerBuiltInBackends(): void
/**
 * One call for a test's reset: cached backends dropped, the registry back to the built-in stores,
 * configuration read again from the environment. (`resetAll()` empties the registry, as the
 * contract says; tests then had to call `registerBuiltInBackends()` too.)
 */
export declare function resetStorage(): void

// ---------------------------------------------------------------- errors

export type ErrorDetails = Record<string, unknown> | string | undefined

export declare class AppError extends Error {
  readonly code: string
  readonly statusCode: number
  readonly details: ErrorDetails
  constructor(message: string, code: string, statusCode?: number, details?: ErrorDetails)
  toJSON(): Record<string, unknown>
}

export declare const StorageErrorCode: Readonly<{
  STORAGE_ERROR: 'STORAGE_ERROR'
  QUOTA_EXCEEDED: 'QUOTA_EXCEEDED'
  FILE_NOT_FOUND: 'FILE_NOT_FOUND'
  INVALID_FILE_TYPE: 'INVALID_FILE_TYPE'
  BACKEND_NOT_REGISTERED: 'BACKEND_NOT_REGISTERED'
  CONFIGURATION_ERROR: 'CONFIGURATION_ERROR'
  INVALID_KEY: 'INVALID_KEY'
  FILE_ALREADY_EXISTS: 'FILE_ALREADY_EXISTS'
  PRECONDITION_FAILED: 'PRECONDITION_FAILED'
  KEY_CONFLICT: 'KEY_CONFLICT'
  PERMISSION_DENIED: 'PERMISSION_DENIED'
  STORAGE_UNAVAILABLE: 'STORAGE_UNAVAILABLE'
  STORAGE_TIMEOUT: 'STORAGE_TIMEOUT'
  CONTENT_LENGTH_MISMATCH: 'CONTENT_LENGTH_MISMATCH'
  INVALID_RANGE: 'INVALID_RANGE'
  INVALID_ARGUMENT: 'INVALID_ARGUMENT'
  ABORTED: 'ABORTED'
  UPLOAD_NOT_FOUND: 'UPLOAD_NOT_FOUND'
  UPLOAD_EXPIRED: 'UPLOAD_EXPIRED'
  UPLOAD_OFFSET_MISMATCH: 'UPLOAD_OFFSET_MISMATCH'
  UPLOAD_INCOMPLETE: 'UPLOAD_INCOMPLETE'
  CHECKSUM_MISMATCH: 'CHECKSUM_MISMATCH'
  FILE_TOO_LARGE: 'FILE_TOO_LARGE'
}>

export type StorageErrorCodeType = (typeof StorageErrorCode)[keyof typeof StorageErrorCode]

export type Details = Record<string, unknown>

/** Every error of this package's own; `code` is one of StorageErrorCode. */
export declare class StorageError extends AppError {
  readonly code: StorageErrorCodeType
  readonly details: Details
  constructor(message: string, details?: Details)
}

export declare class QuotaExceededError extends AppError {
  readonly code: 'QUOTA_EXCEEDED'
  readonly details: { currentUsage?: number | undefined; quotaLimit?: number | undefined; requestedSize?: number | undefined; prefix?: string | undefined } & Details
  constructor(
    message?: string,
    details?: { currentUsage?: number | undefined; quotaLimit?: number | undefined; requestedSize?: number | undefined } & Record<string, unknown>,
  )
}

export declare class FileNotFoundError extends AppError {
  readonly code: 'FILE_NOT_FOUND'
  readonly details: { key: string }
  constructor(key: string)
}

export declare class InvalidFileTypeError extends AppError {
  readonly code: 'INVALID_FILE_TYPE'
  readonly details: { providedType: string; allowedTypes: string[] | undefined }
  constructor(providedType: string, allowedTypes?: string[])
}

export declare class BackendNotRegisteredError extends AppError {
  readonly code: 'BACKEND_NOT_REGISTERED'
  readonly details: { requestedBackend: string; availableBackends: string[] }
  constructor(identifier: string, availableBackends: string[])
}

export declare class ConfigurationError extends AppError {
  readonly code: 'CONFIGURATION_ERROR'
  readonly details: { issues?: Array<{ field: string; message: string }>; backend?: string } & Details
  constructor(
    message: string,
    details?: { issues?: Array<{ field: string; message: string }>; backend?: string } & Record<string, unknown>,
  )
}

/** 400: a key that is empty, absolute, has `..`, backslashes, control characters, or is over 1024 bytes. */
export declare class InvalidKeyError extends StorageError {
  readonly code: 'INVALID_KEY'
  readonly details: { key: string; reason: string } & Details
}
/** 409: `ifNotExists` and the key is taken. */
export declare class FileAlreadyExistsError extends StorageError {
  readonly code: 'FILE_ALREADY_EXISTS'
  readonly details: { key: string }
  constructor(key: string)
}
/** 412: `ifMatch` named another version (or none is there). */
export declare class PreconditionFailedError extends StorageError {
  readonly code: 'PRECONDITION_FAILED'
  readonly details: { key: string; reason: string } & Details
}
/** 409: the local store cannot hold a key and a folder of other keys under one name (S3 can). */
export declare class KeyConflictError extends StorageError {
  readonly code: 'KEY_CONFLICT'
  readonly details: { key: string; reason: string } & Details
}
/** 403: the store refused our credentials or the operation. */
export declare class PermissionDeniedError extends StorageError {
  readonly code: 'PERMISSION_DENIED'
}
/** 503: the store is down or unreachable; safe to retry. */
export declare class StorageUnavailableError extends StorageError {
  readonly code: 'STORAGE_UNAVAILABLE' | 'STORAGE_TIMEOUT'
  readonly retryable: true
}
/** 503: the store did not answer in time. */
export declare class StorageTimeoutError extends StorageUnavailableError {
  readonly code: 'STORAGE_TIMEOUT'
}
/** 400: a stated contentLength the body did not match; nothing was stored. */
export declare class ContentLengthMismatchError extends StorageError {
  readonly code: 'CONTENT_LENGTH_MISMATCH'
  readonly details: { expected: number; actual: number } & Details
}
/** 416 */
export declare class InvalidRangeError extends StorageError {
  readonly code: 'INVALID_RANGE'
  readonly details: { start: number; end: number | null; size: number } & Details
}
/** 400: an argument of the wrong type or value; `details.option` names it where there is one. */
export declare class InvalidArgumentError extends StorageError {
  readonly code: 'INVALID_ARGUMENT'
  readonly details: { option?: string | undefined } & Details
}
/** An AbortSignal fired; name "AbortError". */
export declare class AbortError extends StorageError {
  readonly code: 'ABORTED'
  readonly details: { reason?: string | undefined } & Details
}
/** 404: no resumable upload with this id (completed, aborted or never made). */
export declare class UploadNotFoundError extends StorageError {
  readonly code: 'UPLOAD_NOT_FOUND'
  readonly details: { uploadId: string } & Details
}
/** 410: the resumable upload outlived its expiry. */
export declare class UploadExpiredError extends StorageError {
  readonly code: 'UPLOAD_EXPIRED'
  readonly details: { uploadId: string } & Details
}
/** 409: an append at another offset than the upload's; `details.offset` is the right one. */
export declare class UploadOffsetMismatchError extends StorageError {
  readonly code: 'UPLOAD_OFFSET_MISMATCH'
  readonly details: { uploadId: string; offset: number; given: number } & Details
}
/** 409: completing an upload that lacks bytes, or is being completed. */
export declare class UploadIncompleteError extends StorageError {
  readonly code: 'UPLOAD_INCOMPLETE'
  readonly details: { uploadId: string; reason: string } & Details
}
/** 460 (tus): the body's digest is not the one given; nothing of it was kept. */
export declare class ChecksumMismatchError extends StorageError {
  readonly code: 'CHECKSUM_MISMATCH'
  readonly details: { algorithm: string } & Details
}
/** 413: a body over a size limit (maxBytes, an upload's length, a multipart file past @fastify/multipart's `fileSize`); nothing was stored. */
export declare class FileTooLargeError extends StorageError {
  readonly code: 'FILE_TOO_LARGE'
  readonly details: { maxBytes: number } & Details
  constructor(message: string, details: { maxBytes: number })
}

// ---------------------------------------------------------------- configuration

export declare const commonConfigSchema: z.ZodObject<{
  STORAGE_BACKEND: z.ZodDefault<z.ZodString>
  STORAGE_MAX_FILE_SIZE_BYTES: z.ZodDefault<z.ZodNumber>
  STORAGE_QUOTA_BYTES: z.ZodDefault<z.ZodNumber>
  STORAGE_SIGNED_URL_EXPIRATION_SECONDS: z.ZodDefault<z.ZodNumber>
}>
export declare const memoryConfigSchema: z.ZodObject<{
  STORAGE_MEMORY_BASE_URL: z.ZodOptional<z.ZodString>
}>
export declare const localConfigSchema: z.ZodObject<{
  STORAGE_LOCAL_PATH: z.ZodDefault<z.ZodString>
  STORAGE_LOCAL_BASE_URL: z.ZodOptional<z.ZodString>
  STORAGE_LOCAL_SIGNING_SECRET: z.ZodOptional<z.ZodString>
}>
export declare const s3ConfigSchema: z.ZodObject<{
  STORAGE_S3_ENDPOINT: z.ZodOptional<z.ZodString>
  STORAGE_S3_REGION: z.ZodString
  STORAGE_S3_BUCKET: z.ZodString
  STORAGE_S3_ACCESS_KEY_ID: z.ZodString
  STORAGE_S3_SECRET_ACCESS_KEY: z.ZodString
}>
export declare const azureConfigSchema: z.ZodEffects<z.ZodObject<{
  STORAGE_AZURE_ACCOUNT_NAME: z.ZodOptional<z.ZodString>
  STORAGE_AZURE_ACCESS_KEY: z.ZodOptional<z.ZodString>
  STORAGE_AZURE_SAS_TOKEN: z.ZodOptional<z.ZodString>
  STORAGE_AZURE_CONNECTION_STRING: z.ZodOptional<z.ZodString>
  STORAGE_AZURE_CONTAINER: z.ZodOptional<z.ZodString>
  STORAGE_AZURE_ENDPOINT: z.ZodOptional<z.ZodString>
  AZURE_TENANT_ID: z.ZodOptional<z.ZodString>
  AZURE_CLIENT_ID: z.ZodOptional<z.ZodString>
  AZURE_CLIENT_SECRET: z.ZodOptional<z.ZodString>
}>>
export declare const gcsConfigSchema: z.ZodObject<{
  STORAGE_GCS_PROJECT_ID: z.ZodString
  STORAGE_GCS_BUCKET: z.ZodString
  STORAGE_GCS_KEY_FILE_PATH: z.ZodOptional<z.ZodString>
  STORAGE_GCS_ENDPOINT: z.ZodOptional<z.ZodString>
}>
export declare const aliyunConfigSchema: z.ZodObject<{
  STORAGE_ALIYUN_REGION: z.ZodString
  STORAGE_ALIYUN_BUCKET: z.ZodString
  STORAGE_ALIYUN_ACCESS_KEY_ID: z.ZodString
  STORAGE_ALIYUN_SECRET_ACCESS_KEY: z.ZodString
}>

export type CommonConfig = z.infer<typeof commonConfigSchema>
export type LocalConfig = z.infer<typeof localConfigSchema>
export type S3Config = z.infer<typeof s3ConfigSchema>
export type AzureConfig = z.infer<typeof azureConfigSchema>
export type GcsConfig = z.infer<typeof gcsConfigSchema>
export type AliyunConfig = z.infer<typeof aliyunConfigSchema>

export interface StorageConfig extends CommonConfig {
  /** The selected backend's own settings. */
  backend: Record<string, unknown>
}

/** A backend's config schema: a zod schema, or any object with `parse`. */
export interface ConfigSchema<T = unknown> {
  parse(input: unknown): T
}

/** Parsed on first property access, cached, read-only. */
export declare const storageConfig: Readonly<StorageConfig>
export declare function resetStorageConfig(): void
export declare function getBackendConfig<T extends Record<string, unknown>>(): T
export declare function registerBuiltInConfigs(): void
export declare function registerBackendConfig(identifier: string, schema: ConfigSchema): void
export declare function getBackendConfigSchema(identifier: string): ConfigSchema | undefined
export declare function isBackendConfigRegistered(identifier: string): boolean
export declare function getRegisteredBackendConfigs(): string[]
export declare function resetConfigRegistry(): void
