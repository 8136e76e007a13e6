'use strict'
// How the CLI tells what failed: one line on stderr, and an exit code by kind of failure.

/** Exit codes; the usage text and the README list them. */
const EXIT = { ok: 0, failed: 1, usage: 2, notFound: 3, interrupted: 130 }

/** Wrong arguments or options: exit code 2, with a pointer to the command's help. */
class UsageError extends Error {
  constructor(message, command) {
    super(message)
    this.command = command
  }
}

// Node's own wording ("ENOENT: no such file or directory, open 'x'") said plainly.
const FILE_ERRORS = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'not permitted',
  EISDIR: 'is a folder',
  ENOTDIR: 'not a folder',
  ENOSPC: 'no space left on the device',
}

/** One line: the message and the error's code, without a stack. */
function describe(error) {
  if (error?.syscall && error.path && FILE_ERRORS[error.code]) return `${FILE_ERRORS[error.code]}: ${error.path}`
  const code = error?.code && !error.syscall ? ` [${error.code}]` : ''
  return `${error?.message ?? error}${code}`
}

function exitCodeFor(error) {
  if (error instanceof UsageError) return EXIT.usage
  switch (error?.code) {
    case 'INVALID_KEY':
    case 'INVALID_ARGUMENT':
      return EXIT.usage // what was typed: a key or a value the store refuses
    case 'FILE_NOT_FOUND':
    case 'ENOENT':
      return EXIT.notFound
    case 'ABORTED':
      return EXIT.interrupted
    default:
      return EXIT.failed
  }
}

module.exports = { EXIT, UsageError, describe, exitCodeFor }
