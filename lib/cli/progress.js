'use strict'
// Progress lines on stderr: only when it is a terminal (a pipe or a log file gets none), and
// only for transfers long enough to be worth watching.

const MIN_BYTES = 8 << 20
const EVERY_MS = 100

let lineOpen = false

function formatBytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

function formatDuration(seconds) {
  const s = Math.round(seconds)
  const [h, m] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)]
  const mmss = `${String(m).padStart(h ? 2 : 1, '0')}:${String(s % 60).padStart(2, '0')}`
  return h ? `${h}:${mmss}` : mmss
}

/**
 * A function to call with the bytes done so far (of `total`), which draws
 * `label [####....] 12.0 MiB / 40.0 MiB  30%  25.3 MiB/s  ETA 0:01`; undefined when nothing is
 * to be drawn. Without a total (standard input), `label 12.0 MiB  25.3 MiB/s`, from the point the
 * transfer is long enough to be worth watching. `startAt`: bytes already there before this run
 * (a resumed upload), left out of the throughput.
 */
function progressLine(label, total, { startAt = 0 } = {}) {
  const known = total != null
  if (!process.stderr.isTTY || (known && !(total >= MIN_BYTES))) return undefined
  const started = Date.now()
  let last = 0
  return (done) => {
    const now = Date.now()
    if ((now - last < EVERY_MS && done !== total) || (!known && done < MIN_BYTES)) return
    last = now
    const rate = (done - startAt) / Math.max((now - started) / 1000, 0.001)
    let measure = formatBytes(done)
    let eta = ''
    if (known) {
      const ratio = done / total
      const bar = '#'.repeat(Math.round(ratio * 30)).padEnd(30, '.')
      const percent = `${Math.floor(ratio * 100)}%`.padStart(4)
      measure = `[${bar}] ${formatBytes(done)} / ${formatBytes(total)} ${percent}`
      eta = rate > 0 ? `  ETA ${formatDuration((total - done) / rate)}` : ''
    }
    process.stderr.write(`\r${label} ${measure}  ${formatBytes(rate)}/s${eta}\x1b[K`)
    lineOpen = done !== total
    if (!lineOpen) process.stderr.write('\n')
  }
}

/** Clears an open progress line, so that a line written next takes its place; the next draw brings it back. */
function clearProgressLine() {
  if (lineOpen) process.stderr.write('\r\x1b[K')
  lineOpen = false
}

/** Ends a progress line cut short, so that what is written next starts on a line of its own. */
function endProgressLine() {
  if (lineOpen) process.stderr.write('\n')
  lineOpen = false
}

module.exports = { formatBytes, progressLine, clearProgressLine, endProgressLine }
