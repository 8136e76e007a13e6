#!/usr/bin/env node
'use strict'
// raptscallions-storage: the configured backend from the command line. The commands are in
// lib/cli/; this file reads the command line and turns failures into one line and an exit code.

const { PROGRAM, USAGE, COMMANDS, commandHelp, parseCommand } = require('../lib/cli/args')
const { EXIT, describe, exitCodeFor } = require('../lib/cli/errors')
const { endProgressLine } = require('../lib/cli/progress')

// Commands that move bytes or keep running stop cleanly on Ctrl-C (an S3 multipart upload
// aborted, a resumable upload kept for the next run, a sync left for the next, a server closed).
const INTERRUPTIBLE = new Set(['put', 'get', 'cp', 'mv', 'sync', 'serve'])

/** An AbortSignal that the first SIGINT or SIGTERM aborts; a second one exits at once. */
function interruptSignal() {
  const controller = new AbortController()
  const onSignal = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted)
    controller.abort()
  }
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal)
  return controller.signal
}

async function main(argv) {
  const [name, ...rest] = argv
  if (name === '--version' || name === '-v') {
    console.log(require('../package.json').version)
    return EXIT.ok
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(Object.hasOwn(COMMANDS, rest[0] ?? '') ? commandHelp(rest[0]) : USAGE)
    return EXIT.ok
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    console.error(`${PROGRAM}: unknown command "${name}"; run '${PROGRAM} --help' for the list`)
    return EXIT.usage
  }
  try {
    const { values, positionals } = parseCommand(name, rest)
    if (values.help) {
      process.stdout.write(commandHelp(name))
      return EXIT.ok
    }
    // Loaded here, not above: loading the package reads the environment (the memory budget), and
    // a bad value is then reported as any other configuration error.
    const { commands } = require('../lib/cli/commands')
    const signal = INTERRUPTIBLE.has(name) ? interruptSignal() : undefined
    return (await commands[name](positionals, values, { signal })) ?? EXIT.ok
  } catch (error) {
    endProgressLine()
    const code = exitCodeFor(error)
    console.error(`${PROGRAM} ${name}: ${code === EXIT.interrupted ? 'interrupted' : describe(error)}`)
    if (error.note) console.error(`note: ${error.note}`)
    if (code === EXIT.usage && error.command) console.error(`run '${PROGRAM} ${error.command} --help' for its usage`)
    return code
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code
})
