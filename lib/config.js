'use strict'
// Configuration from environment variables, validated with zod, parsed on first use.

const { z } = require('zod')
const { ConfigurationError } = require('./errors')

const positiveInt = (fallback) => z.coerce.number().int().positive().default(fallback)

const commonConfigSchema = z.object({
  STORAGE_BACKEND: z.string().min(1).default('local'),
  STORAGE_MAX_FILE_SIZE_BYTES: positiveInt(10 * 1024 * 1024),
  STORAGE_QUOTA_BYTES: positiveInt(1024 * 1024 * 1024),
  // The longest a signed URL may last, on every store.
  STORAGE_SIGNED_URL_EXPIRATION_SECONDS: z.coerce.number().int().positive().max(604_800, 'at most 604800 (7 days)').default(15 * 60),
})

/** Read once, when the package loads: the memory budget is the process's, not a backend's. */
const memoryBudgetConfigSchema = z.object({
  STORAGE_MEMORY_BUDGET_BYTES: z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
})

const localConfigSchema = z.object({
  // Empty is refused, as every other variable's empty value is, rather than taken for no root.
  STORAGE_LOCAL_PATH: z.string().min(1, 'the root folder must not be empty; unset, it is ./storage/uploads').default('./storage/uploads'),
  /** Where the signed-URL handler is reachable; local signed URLs point there. */
  STORAGE_LOCAL_BASE_URL: z.string().url().optional(),
  /** Shared by every process that signs or verifies local URLs; kept in the store if unset. */
  STORAGE_LOCAL_SIGNING_SECRET: z.string().min(16, 'a signing secret must be at least 16 characters').optional(),
})

const memoryConfigSchema = z.object({
  /** Where the app serves the memory store's signed URLs (createSignedUrlHandler), as for local. */
  STORAGE_MEMORY_BASE_URL: z.string().url().optional(),
})

const s3ConfigSchema = z.object({
  STORAGE_S3_ENDPOINT: z.string().url().optional(),
  STORAGE_S3_REGION: z.string().min(1, 'S3 region is required'),
  STORAGE_S3_BUCKET: z.string().min(1, 'S3 bucket name is required'),
  STORAGE_S3_ACCESS_KEY_ID: z.string().min(1, 'S3 access key ID is required'),
  STORAGE_S3_SECRET_ACCESS_KEY: z.string().min(1, 'S3 secret access key is required'),
})

/** An account name with its key or a SAS token, or else a connection string that holds them. */
const azureConfigSchema = z
  .object({
    STORAGE_AZURE_ACCOUNT_NAME: z.string().min(1).optional(),
    STORAGE_AZURE_ACCESS_KEY: z.string().min(1).optional(),
    STORAGE_AZURE_SAS_TOKEN: z.string().min(1).optional(),
    STORAGE_AZURE_CONNECTION_STRING: z.string().min(1).optional(),
    // Optional here and required below, so that every missing field is reported in one pass
    // (zod runs the refinement only when the object itself parsed).
    STORAGE_AZURE_CONTAINER: z.string().optional(),
    /** Azurite or a sovereign cloud, e.g. http://127.0.0.1:10000/devstoreaccount1. */
    STORAGE_AZURE_ENDPOINT: z.string().url().optional(),
    /** A service principal (Microsoft Entra ID), as the Azure SDKs read it: instead of a key. */
    AZURE_TENANT_ID: z.string().optional(),
    AZURE_CLIENT_ID: z.string().optional(),
    AZURE_CLIENT_SECRET: z.string().optional(),
  })
  .superRefine((env, ctx) => {
    if (!env.STORAGE_AZURE_CONTAINER) {
      ctx.addIssue({ code: 'custom', path: ['STORAGE_AZURE_CONTAINER'], message: 'Azure container name is required' })
    }
    if (env.STORAGE_AZURE_CONNECTION_STRING) return
    if (!env.STORAGE_AZURE_ACCOUNT_NAME) {
      ctx.addIssue({ code: 'custom', path: ['STORAGE_AZURE_ACCOUNT_NAME'], message: 'Azure account name is required' })
    }
    const servicePrincipal = env.AZURE_TENANT_ID && env.AZURE_CLIENT_ID && env.AZURE_CLIENT_SECRET
    if (!env.STORAGE_AZURE_ACCESS_KEY && !env.STORAGE_AZURE_SAS_TOKEN && !servicePrincipal) {
      ctx.addIssue({ code: 'custom', path: ['STORAGE_AZURE_ACCESS_KEY'], message: 'Azure access key is required' })
    }
  })

const gcsConfigSchema = z.object({
  STORAGE_GCS_PROJECT_ID: z.string().min(1, 'GCS project ID is required'),
  STORAGE_GCS_BUCKET: z.string().min(1, 'GCS bucket name is required'),
  STORAGE_GCS_KEY_FILE_PATH: z.string().optional(),
  /** An emulator or private endpoint (http://127.0.0.1:4443); without a key file, anonymous. */
  STORAGE_GCS_ENDPOINT: z.string().url().optional(),
})

const aliyunConfigSchema = z.object({
  STORAGE_ALIYUN_REGION: z.string().min(1, 'Aliyun region is required'),
  STORAGE_ALIYUN_BUCKET: z.string().min(1, 'Aliyun bucket name is required'),
  STORAGE_ALIYUN_ACCESS_KEY_ID: z.string().min(1, 'Aliyun access key ID is required'),
  STORAGE_ALIYUN_SECRET_ACCESS_KEY: z.string().min(1, 'Aliyun secret access key is required'),
})

// --- the registry of per-backend schemas ---

const backendConfigSchemas = new Map()

function registerBackendConfig(identifier, schema) {
  if (schema == null || typeof schema.parse !== 'function') {
    throw new ConfigurationError(`The config schema for "${identifier}" must have a parse() method`, {
      backend: identifier,
    })
  }
  backendConfigSchemas.set(identifier, schema)
}

function getBackendConfigSchema(identifier) {
  return backendConfigSchemas.get(identifier)
}

function isBackendConfigRegistered(identifier) {
  return backendConfigSchemas.has(identifier)
}

function getRegisteredBackendConfigs() {
  return Array.from(backendConfigSchemas.keys())
}

function resetConfigRegistry() {
  backendConfigSchemas.clear()
}

function registerBuiltInConfigs() {
  registerBackendConfig('local', localConfigSchema)
  registerBackendConfig('memory', memoryConfigSchema)
  registerBackendConfig('s3', s3ConfigSchema)
  registerBackendConfig('azure', azureConfigSchema)
  registerBackendConfig('gcs', gcsConfigSchema)
  registerBackendConfig('aliyun', aliyunConfigSchema)
}

// --- parsing ---

function issuesOf(error) {
  if (Array.isArray(error?.issues)) {
    return error.issues.map((issue) => ({
      field: Array.isArray(issue.path) && issue.path.length > 0 ? issue.path.join('.') : '(unknown)',
      message: issue.message,
    }))
  }
  return [{ field: '(unknown)', message: String(error?.message ?? error) }]
}

/** Runs any schema (zod or just an object with parse) and collects its issues. */
function check(schema, input) {
  if (typeof schema.safeParse === 'function') {
    const result = schema.safeParse(input)
    return result.success ? { data: result.data, issues: [] } : { data: undefined, issues: issuesOf(result.error) }
  }
  try {
    return { data: schema.parse(input), issues: [] }
  } catch (error) {
    return { data: undefined, issues: issuesOf(error) }
  }
}

function fail(issues, backend) {
  const summary = issues.map((i) => `${i.field}: ${i.message}`).join('; ')
  return new ConfigurationError(`Invalid storage configuration: ${summary}`, { issues, backend })
}

function parseAndValidateConfig(env = process.env) {
  const common = check(commonConfigSchema, {
    STORAGE_BACKEND: env.STORAGE_BACKEND,
    STORAGE_MAX_FILE_SIZE_BYTES: env.STORAGE_MAX_FILE_SIZE_BYTES,
    STORAGE_QUOTA_BYTES: env.STORAGE_QUOTA_BYTES,
    STORAGE_SIGNED_URL_EXPIRATION_SECONDS: env.STORAGE_SIGNED_URL_EXPIRATION_SECONDS,
  })
  const backendId = common.data?.STORAGE_BACKEND ?? (env.STORAGE_BACKEND || 'local')
  const schema = getBackendConfigSchema(backendId)
  // A backend without a schema reads its own settings.
  const backend = schema ? check(schema, { ...env }) : { data: {}, issues: [] }
  const issues = [...common.issues, ...backend.issues]
  if (issues.length > 0) throw fail(issues, backendId)
  return Object.freeze({ ...common.data, backend: Object.freeze({ ...backend.data }) })
}

/** One backend's settings from the environment, whichever backend is selected. */
function readBackendEnv(identifier, schema, env = process.env) {
  const result = check(schema, { ...env })
  if (result.issues.length > 0) throw fail(result.issues, identifier)
  return result.data
}

/** STORAGE_MEMORY_BUDGET_BYTES, when set; an invalid value is a ConfigurationError. */
function readMemoryBudgetEnv(env = process.env) {
  const result = check(memoryBudgetConfigSchema, { STORAGE_MEMORY_BUDGET_BYTES: env.STORAGE_MEMORY_BUDGET_BYTES })
  if (result.issues.length > 0) throw fail(result.issues)
  return result.data.STORAGE_MEMORY_BUDGET_BYTES
}

let configInstance

function loadConfig() {
  if (configInstance === undefined) configInstance = parseAndValidateConfig()
  return configInstance
}

/**
 * What every backend built from the environment takes from its common keys: the signed URLs'
 * expiry, and STORAGE_MAX_FILE_SIZE_BYTES, when it is set, as the default `maxBytes` of every
 * upload (unset, its documented default is reported but not imposed on existing apps' uploads).
 */
function configuredBackendDefaults(env = process.env) {
  return {
    signedUrlExpiration: storageConfig.STORAGE_SIGNED_URL_EXPIRATION_SECONDS,
    maxUploadBytes: env.STORAGE_MAX_FILE_SIZE_BYTES === undefined ? undefined : storageConfig.STORAGE_MAX_FILE_SIZE_BYTES,
  }
}

function resetStorageConfig() {
  configInstance = undefined
}

function readOnly() {
  throw new TypeError('storageConfig is read-only; set environment variables and call resetStorageConfig()')
}

const storageConfig = new Proxy(
  {},
  {
    get(_target, prop) {
      if (typeof prop === 'symbol') return undefined
      return loadConfig()[prop]
    },
    has: (_target, prop) => prop in loadConfig(),
    ownKeys: () => Reflect.ownKeys(loadConfig()),
    getOwnPropertyDescriptor(_target, prop) {
      const descriptor = Reflect.getOwnPropertyDescriptor(loadConfig(), prop)
      return descriptor && { ...descriptor, configurable: true }
    },
    set: readOnly,
    defineProperty: readOnly,
    deleteProperty: readOnly,
  },
)

function getBackendConfig() {
  return loadConfig().backend
}

registerBuiltInConfigs()

module.exports = {
  commonConfigSchema,
  localConfigSchema,
  memoryConfigSchema,
  s3ConfigSchema,
  azureConfigSchema,
  gcsConfigSchema,
  aliyunConfigSchema,
  registerBackendConfig,
  getBackendConfigSchema,
  isBackendConfigRegistered,
  getRegisteredBackendConfigs,
  resetConfigRegistry,
  registerBuiltInConfigs,
  storageConfig,
  resetStorageConfig,
  configuredBackendDefaults,
  getBackendConfig,
  readBackendEnv,
  readMemoryBudgetEnv,
}
