'use strict'
// The process-wide memory budget for upload part buffers: every upload of every store waits
// for its share rather than go past it. Set from STORAGE_MEMORY_BUDGET_BYTES when the package
// loads, or by setMemoryBudget(); unset, an eighth of the machine's (or container's) memory,
// between 64 MiB and 1 GiB.

const native = require('./addon')
const { readMemoryBudgetEnv } = require('./config')
const { callNativeSync } = require('./native')
const { optionalCount } = require('./options')
const { InvalidArgumentError } = require('./errors')

function setMemoryBudget(bytes) {
  if (bytes == null) throw new InvalidArgumentError('setMemoryBudget needs a number of bytes', {})
  const checked = optionalCount(bytes, 'bytes', { min: 1 })
  callNativeSync(() => native.setMemoryBudget(checked))
}

/** The budget in bytes: its limit, what is in use, the most in use since it was set, and uploads waiting. */
function memoryBudget() {
  return callNativeSync(() => native.memoryBudget())
}

const fromEnv = readMemoryBudgetEnv()
if (fromEnv !== undefined) setMemoryBudget(fromEnv)

module.exports = { setMemoryBudget, memoryBudget }
