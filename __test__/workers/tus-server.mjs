// A tus server in a process of its own, over a fixture's storage, so that a test can kill it
// (SIGKILL) mid-upload and start another on the same storage and port.
import http from 'node:http'
import { createTusHandler } from '../../index.mjs'
import { fixtures } from '../fixtures.mjs'

const [name, place, port] = process.argv.slice(2)
const backend = fixtures.find((f) => f.name === name).open(JSON.parse(place))
const handler = createTusHandler(backend, { path: '/files', keyFor: ({ metadata }) => `tus/${metadata.filename}` })
const server = http.createServer(handler)
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`))
