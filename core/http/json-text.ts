/**
 * What `JSON.parse` hides about a body's text: a key given twice in one object (the last one would
 * silently win), and a number the server cannot keep as written (`12345678901234567890` would be
 * stored as `12345678901234567000`, `1e-400` as `0`, `-0` as `0`). One pass over text already known
 * to be valid JSON, without recursion.
 */
export type JsonTextProblem = { kind: 'duplicate-key'; path: string } | { kind: 'inexact-number'; path: string; literal: string }

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/y
const STRING = /"(?:[^"\\]|\\.)*"/y

/**
 * The exact decimal value a number's text denotes, as `sign digits e exponent` with no leading or
 * trailing zeros (zero keeps its sign): `1.50e1` and `15` both give `+15e0`.
 */
function decimal(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/.exec(text)
  if (!m) return text
  const [, sign, int, frac = '', exp = '0'] = m
  let digits = `${int}${frac}`.replace(/^0+/, '')
  let exponent = Number(exp) - frac.length
  if (digits === '') return `${sign || '+'}0`
  const trailing = digits.length - digits.replace(/0+$/, '').length
  digits = digits.slice(0, digits.length - trailing)
  exponent += trailing
  return `${sign || '+'}${digits}e${exponent}`
}

/** True when the number a client wrote reads back, once parsed to a double and sent again, as the same decimal. */
export function keepsNumber(literal: string): boolean {
  const parsed = Number(literal)
  return Number.isFinite(parsed) && decimal(literal) === decimal(Object.is(parsed, -0) ? '-0' : String(parsed)) && !Object.is(parsed, -0)
}

/** The first problem of a valid JSON text, or undefined. `path` names the field (`data.size`, `tags[2]`). */
export function jsonTextProblem(text: string): JsonTextProblem | undefined {
  // One frame per open container: its keys (objects), its path, and the next element's index (arrays).
  const frames: Array<{ keys?: Set<string>; path: string; index: number; key?: string }> = []
  const here = () => {
    const frame = frames.at(-1)
    if (!frame) return ''
    if (frame.keys) return frame.path ? `${frame.path}.${frame.key}` : (frame.key ?? '')
    return `${frame.path}[${frame.index}]`
  }
  let expectKey = false
  for (let i = 0; i < text.length; ) {
    const c = text[i]
    if (c === '{' || c === '[') {
      frames.push(c === '{' ? { keys: new Set(), path: here(), index: 0 } : { path: here(), index: 0 })
      expectKey = c === '{'
      i++
    } else if (c === '}' || c === ']') {
      // `{}` opens no key: what follows the closed container is a value or a separator.
      frames.pop()
      expectKey = false
      i++
    } else if (c === ',') {
      const frame = frames.at(-1)
      if (frame?.keys) expectKey = true
      else if (frame) frame.index++
      i++
    } else if (c === '"') {
      STRING.lastIndex = i
      const token = STRING.exec(text)![0]
      i += token.length
      if (expectKey) {
        const frame = frames.at(-1)!
        const key = JSON.parse(token) as string
        frame.key = key
        if (frame.keys!.has(key)) return { kind: 'duplicate-key', path: here() }
        frame.keys!.add(key)
        expectKey = false
      }
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i
      const literal = NUMBER.exec(text)![0]
      if (!keepsNumber(literal)) return { kind: 'inexact-number', path: here(), literal }
      i += literal.length
    } else i++ // white space, ':', true, false, null
  }
  return undefined
}
