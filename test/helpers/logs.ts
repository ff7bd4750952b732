import { Writable } from 'node:stream'
import pino from 'pino'

/** A pino logger (info level) writing into an array of parsed lines, for in-process checks of what is logged. */
export function capturedLogger() {
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line))
      done()
    },
  })
  return { logger: pino({ level: 'info' }, stream), lines }
}
