// The query parser's time against the length of its input, for shapes that could cost more than linear
// time: long quoted values full of escapes, long bare values, many `in` values, whitespace runs, and a
// deep nesting (refused at level 9). Run: npx tsx bench/results/issue12/parser-scaling.ts
import { ExpressionError, parseExpression } from '../../../core/query/expression'

const shapes: Record<string, (n: number) => string> = {
  'quoted value, escapes': (n) => `eq(name,"${'\\"\\\\'.repeat(n / 4)}")`,
  'bare value': (n) => `eq(name,${'x'.repeat(n)})`,
  'in, 50 values': (n) => `in(name,${Array.from({ length: 50 }, () => 'y'.repeat(n / 50)).join(',')})`,
  'spaces between parts': (n) => `and(${' '.repeat(n / 2)}eq(a,1)${' '.repeat(n / 2)})`,
  'nesting (refused at 9)': (n) => `${'not('.repeat(n / 4)}null(a)${')'.repeat(n / 4)}`,
  'unclosed quote': (n) => `eq(name,"${'z'.repeat(n)}`,
}
const time = (text: string) => {
  const rounds = 200
  const start = process.hrtime.bigint()
  for (let i = 0; i < rounds; i++) {
    try {
      parseExpression(text)
    } catch (err) {
      if (!(err instanceof ExpressionError)) throw err
    }
  }
  return Number(process.hrtime.bigint() - start) / 1e3 / rounds
}
for (const [name, make] of Object.entries(shapes)) {
  for (let i = 0; i < 50; i++) time(make(2048)) // warm up
  const sizes = [1024, 2048, 4096, 8192]
  const us = sizes.map((n) => time(make(n)))
  console.log(`${name.padEnd(24)} ${sizes.map((n, i) => `${n}: ${us[i].toFixed(1)} us`).join('  ')}  8192/1024: ${(us[3] / us[0]).toFixed(1)}x`)
}
