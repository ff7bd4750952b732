/**
 * A `timestamptz` as PostgreSQL prints it (`0099-12-31 23:59:59.999+00`, `2024-06-01 12:00:00+05:30`,
 * `0001-01-01 00:00:00+00 BC`), to a Date. PGlite's own parser hands the years 1 to 99 to `Date.UTC`,
 * which reads them as 1901 to 1999; node-postgres's parser (postgres-date) gets them right, and this one
 * answers as it does. Anything else (`infinity`) is left to `Date`.
 */
export function parseTimestamptz(text: string): Date | number {
  const m = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?( BC)?$/.exec(text)
  if (!m) return text === 'infinity' ? Number.POSITIVE_INFINITY : text === '-infinity' ? Number.NEGATIVE_INFINITY : new Date(text)
  const [, y, mo, d, h, mi, s, frac = '', sign, oh = '0', om = '0', os = '0', bc] = m
  const year = bc ? 1 - Number(y) : Number(y)
  const date = new Date(Date.UTC(2000, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(`${frac.slice(1)}000`.slice(0, 3))))
  date.setUTCFullYear(year)
  const offset = (Number(oh) * 3600 + Number(om) * 60 + Number(os)) * 1000
  return new Date(date.getTime() - (sign === '-' ? -offset : offset))
}
