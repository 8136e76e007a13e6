// @raptscallions/storage/fastify: the ESM entry of the Fastify plugin, a re-export of the
// CommonJS module. The main ESM entry loads first: it hands an ESM-only @raptscallions/core's
// AppError over before the error classes are defined (see index.mjs).
import { createRequire } from 'node:module'
import './index.mjs'

const plugin = createRequire(import.meta.url)('./lib/fastify.js')

export { plugin as fastifyStorage }
export default plugin
