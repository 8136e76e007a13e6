// A panic in native code (a bug of ours) must reach JS as a typed error and leave the process,
// and the addon, working: never an abort, never an untyped rejection.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, it } from 'node:test'
import { MemoryStorageBackend, StorageError } from '../index.mjs'

const require = createRequire(import.meta.url)
const { panicForTesting } = require('../binding.js')
const { callNative } = require('../lib/native.js')

describe('panics at the native boundary', () => {
  for (const place of ['sync', 'async', 'blocking']) {
    it(`a ${place} panic is a StorageError (500), and the addon still works after it`, async () => {
      await assert.rejects(
        callNative(() => panicForTesting(place)),
        (error) => {
          assert.ok(error instanceof StorageError, `${error}`)
          assert.equal(error.statusCode, 500)
          assert.equal(error.code, 'STORAGE_ERROR')
          assert.match(error.message, new RegExp(`deliberate panic \\(${place}\\)`))
          return true
        },
      )
      const store = new MemoryStorageBackend()
      await store.put('after-the-panic', 'still here')
      assert.equal((await store.get('after-the-panic')).toString(), 'still here')
    })
  }
})
