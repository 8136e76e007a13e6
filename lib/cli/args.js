'use strict'
// The CLI's commands, options and help texts, and their strict parsing (node:util parseArgs).

const { parseArgs } = require('node:util')
const { UsageError } = require('./errors')

const PROGRAM = 'raptscallions-storage'

/**
 * Each command: its arguments (`args`, `min`/`max` positionals), what it does (`summary`, and
 * for its own help any `details`), and its options (parseArgs's `type`/`short`, plus `arg` and
 * `describe` for the help).
 */
const COMMANDS = {
  doctor: { args: '', summary: 'check the configured backend end to end', min: 0, max: 0, options: {} },
  put: {
    args: '<key> [file|-]',
    summary: 'upload a file, standard input (-) or, with -r, a folder',
    min: 1,
    max: 2,
    options: {
      'content-type': { type: 'string', arg: 'T', describe: "the object's type (default: from the file name)" },
      resumable: { type: 'boolean', describe: 'a resumable upload: after an interruption, run the same command again to resume' },
      'part-size': { type: 'string', arg: 'N', describe: 'bytes sent per request with --resumable (default 8MiB)' },
      recursive: { type: 'boolean', short: 'r', describe: 'upload a folder: each file to <key>/<its path in the folder>' },
      json: { type: 'boolean', describe: 'print the result as JSON (one line per file)' },
    },
  },
  get: {
    args: '<key> [file|-]',
    summary: 'download to a file, standard output (-) or, with -r, a folder',
    min: 1,
    max: 2,
    options: {
      recursive: { type: 'boolean', short: 'r', describe: 'download every object under <key>/ into the folder [file]' },
    },
  },
  ls: {
    args: '[prefix]',
    summary: 'list objects',
    min: 0,
    max: 1,
    options: {
      delimiter: { type: 'string', arg: 'D', describe: 'group keys by this separator, e.g. /' },
      json: { type: 'boolean', describe: 'print one JSON object per line' },
    },
  },
  stat: {
    args: '<key>',
    summary: "show an object's metadata",
    min: 1,
    max: 1,
    options: { json: { type: 'boolean', describe: 'print the metadata as JSON' } },
  },
  du: {
    args: '[prefix]',
    summary: 'bytes and objects under a prefix (the whole store without one)',
    min: 0,
    max: 1,
    options: { json: { type: 'boolean', describe: 'print { prefix, bytes, objects } as JSON' } },
  },
  rm: {
    args: '<key>...',
    summary: 'delete objects',
    min: 1,
    max: Infinity,
    options: {
      prefix: { type: 'boolean', describe: 'delete every object whose key begins with each <key>' },
      force: { type: 'boolean', short: 'f', describe: 'a key that does not exist is not an error' },
    },
  },
  cp: {
    args: '<from> <to>',
    summary: 'copy an object, within a backend or between two (local:a s3:b)',
    min: 2,
    max: 2,
    options: {},
  },
  mv: {
    args: '<from> <to>',
    summary: 'move an object, within a backend or between two (local:a s3:b)',
    min: 2,
    max: 2,
    options: {},
  },
  sync: {
    args: '<from> <to>',
    summary: 'copy what differs from a folder or store to another (s3:photos)',
    details: `<from> and <to> are each a store, written <backend>:<prefix> (s3:photos; local: is the
whole local store), or else a local folder (photos, ./photos; ./s3:x for a folder named so);
one side at least is a store. An object of <from> is copied when <to> lacks it or holds another
size; else, when both are S3-compatible stores and both ETags are MD5s (single-part uploads),
when those differ; else when <from>'s copy was modified in a later second than <to>'s. Within
one backend, its own copy; between two, the bytes are streamed. Folder markers are skipped.

An upload or download is whole or nothing, so a sync cut short (Ctrl-C: exit 130) leaves no
partial object or file: run it again to copy the rest. An object that fails is reported on
stderr and the others go on; the exit code is then 1. A store prefix with no objects is not
found (3).`,
    min: 2,
    max: 2,
    options: {
      delete: { type: 'boolean', describe: 'also delete what <to> holds and <from> does not (only under <to>)' },
      'dry-run': { type: 'boolean', describe: 'print what would be copied and deleted; change nothing' },
      json: { type: 'boolean', describe: 'print one JSON object per action, then a summary' },
    },
  },
  presign: {
    args: '<key>',
    summary: 'print a signed URL',
    min: 1,
    max: 1,
    options: {
      method: { type: 'string', arg: 'GET|PUT', describe: 'the method the URL allows (default GET)' },
      expires: { type: 'string', arg: 'S', describe: 'seconds the URL is valid' },
      'content-type': { type: 'string', arg: 'T', describe: 'the content type a PUT must send' },
    },
  },
  serve: {
    args: '',
    summary: "serve the local backend's signed URLs",
    min: 0,
    max: 0,
    options: {
      host: { type: 'string', arg: 'H', describe: "the address to listen on (default: the base URL's host)" },
      port: { type: 'string', arg: 'P', describe: "the port (default: the base URL's port)" },
    },
  },
}

const HELP = { type: 'boolean', short: 'h', describe: 'show this help' }

const EXIT_CODES = `Exit codes: 0 done, 1 failed (a store or configuration error), 2 usage (wrong arguments,
options or keys), 3 not found (an object or a local file), 130 interrupted.`

const USAGE = `Usage: ${PROGRAM} <command> [options] [arguments]

Works on the backend named by STORAGE_BACKEND (default: local, under ./storage/uploads). A key
written as <backend>:<key> (local:a.txt, s3:docs/a.pdf) names another registered backend.

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(24)} ${c.summary}`)
  .join('\n')}

Run '${PROGRAM} <command> --help' for a command's options; '${PROGRAM} --version' for the version.

${EXIT_CODES}
`

function commandHelp(name) {
  const command = COMMANDS[name]
  const options = Object.entries({ ...command.options, help: HELP }).map(([option, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${option}${o.arg ? ` ${o.arg}` : ''}`
    return `  ${flag.padEnd(24)} ${o.describe}`
  })
  const usage = `${PROGRAM} ${name}${Object.keys(command.options).length ? ' [options]' : ''} ${command.args}`.trimEnd()
  const about = command.details ? `${command.summary}\n\n${command.details}` : command.summary
  return `Usage: ${usage}\n\n${about}\n\nOptions:\n${options.join('\n')}\n\n${EXIT_CODES}\n`
}

/** `{ values, positionals }` of one command's arguments; anything it does not take is a UsageError. */
function parseCommand(name, argv) {
  const command = COMMANDS[name]
  // parseArgs takes only its own fields; `arg` and `describe` are for the help.
  const options = Object.fromEntries(
    Object.entries({ ...command.options, help: HELP }).map(([option, { type, short }]) => [
      option,
      short ? { type, short } : { type },
    ]),
  )
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (error) {
    if (!error.code?.startsWith('ERR_PARSE_ARGS')) throw error
    // parseArgs's own message goes on about '--'; the option is what matters.
    const option = /'([^']+)'/.exec(error.message)?.[1]
    const message =
      error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? `unknown option ${option}` : error.message.replace(/\.$/, '')
    throw new UsageError(message, name)
  }
  const { values, positionals } = parsed
  if (values.help) return { values, positionals }
  if (positionals.length < command.min) throw new UsageError(`${name} needs ${command.args}`, name)
  if (positionals.length > command.max) {
    throw new UsageError(`${name} takes ${command.args || 'no arguments'}; unexpected "${positionals[command.max]}"`, name)
  }
  return { values, positionals }
}

const SIZE_UNITS = { '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 }

/** A byte count written as 262144, 256KiB, 8M or 1GiB (binary units). */
function parseSize(text, option, command) {
  const match = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(text)
  const bytes = match && Number(match[1]) * SIZE_UNITS[(match[2] ?? '').toLowerCase()]
  if (!bytes) throw new UsageError(`--${option} takes a size such as 8MiB, not "${text}"`, command)
  return bytes
}

/** A whole number of at least 0, for options such as --expires and --port. */
function parseCount(text, option, command) {
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw new UsageError(`--${option} takes a whole number, not "${text}"`, command)
  return Number(text)
}

module.exports = { PROGRAM, USAGE, COMMANDS, commandHelp, parseCommand, parseSize, parseCount }
