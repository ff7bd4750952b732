import path from 'node:path'
import { expect } from 'chai'
import fc from 'fast-check'
import { DEFAULT_EXPRESSION_LIMITS, type Expression, ExpressionError, parseExpression } from '../core/query/expression'
import { MAX_PATTERN_CHARACTERS, MAX_PATTERN_COMPARISONS } from '../core/query/filter'
import { createComponent, createType, type GeneratedApp, generatedApp, ROOT, resetTables, testApp, type TestApp } from './support'
import { random } from './helpers/random'

/** An expression tree written back in a canonical form: values quoted, no spaces. */
function print(e: Expression): string {
  switch (e.op) {
    case 'and':
    case 'or':
      return `${e.op}(${e.args.map(print).join(',')})`
    case 'not':
      return `not(${print(e.arg)})`
    case 'null':
      return `null(${e.field.path.join('.')})`
    case 'in':
      return `in(${[e.field.path.join('.'), ...e.values.map((v) => JSON.stringify(v.text))].join(',')})`
    default:
      return `${e.op}(${e.field.path.join('.')},${JSON.stringify(e.value.text)})`
  }
}

/** The error a parse throws. */
function refusal(text: string): ExpressionError {
  try {
    parseExpression(text)
  } catch (err) {
    if (err instanceof ExpressionError) return err
    throw err
  }
  throw new Error(`'${text}' was parsed`)
}

const OPERATOR_NAMES = ['and', 'or', 'not', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'like', 'ilike', 'contains', 'not_contains', 'in', 'null']

describe('query: the grammar of the query parameter', () => {
  describe('parses', () => {
    const cases: Array<[string, string]> = [
      ['eq(name,rhel)', 'eq(name,"rhel")'],
      [' and( eq(a,1) , not( null(b) ) ) ', 'and(eq(a,"1"),not(null(b)))'],
      ['or(eq(a,1))', 'or(eq(a,"1"))'],
      ['in(id,a,b,c)', 'in(id,"a","b","c")'],
      ['eq(name,"a, (b) \\"q\\" \\\\")', 'eq(name,"a, (b) \\"q\\" \\\\")'],
      ['eq(name,"")', 'eq(name,"")'],
      ['eq(componenttype.name,x)', 'eq(componenttype.name,"x")'],
      ['eq(a.b.c,x)', 'eq(a.b.c,"x")'],
      ['like(name,rh%_)', 'like(name,"rh%_")'],
      ['eq(name,é😀)', 'eq(name,"é😀")'],
      ['gt(created_at,2024-01-01T00:00:00.5+02:00)', 'gt(created_at,"2024-01-01T00:00:00.5+02:00")'],
      ['ne(x,-1.5e3)', 'ne(x,"-1.5e3")'],
      ['contains(tags,"a b")', 'contains(tags,"a b")'],
      ['not_contains(name,\\)', 'not_contains(name,"\\\\")'],
      ['and(or(eq(a,1),eq(b,2)),not(in(c,x,y)),null(d))', 'and(or(eq(a,"1"),eq(b,"2")),not(in(c,"x","y")),null(d))'],
    ]
    for (const [text, printed] of cases) {
      it(`${text} -> ${printed}`, () => {
        expect(print(parseExpression(text))).to.equal(printed)
      })
    }
    it('positions point at each part', () => {
      const tree = parseExpression('and(eq(a,1), in(b.c,"x",y))') as Extract<Expression, { args: Expression[] }>
      expect(tree.position).to.equal(0)
      const [eq, inn] = tree.args as [Extract<Expression, { value: unknown }>, Extract<Expression, { values: unknown }>]
      expect([eq.position, eq.field.position, eq.value.position]).to.deep.equal([4, 7, 9])
      expect([inn.position, inn.field.position, inn.values[0].position, inn.values[1].position]).to.deep.equal([13, 16, 20, 24])
    })
  })

  describe('refuses, with the position and what was expected there', () => {
    const cases: Array<[string, number, string[] | 'operators']> = [
      ['', 0, 'operators'],
      ['   ', 3, 'operators'],
      ['foo(a,1)', 0, 'operators'],
      ['EQ(a,1)', 0, 'operators'],
      ['eq', 2, ['(']],
      ['eq a,1)', 3, ['(']],
      ['eq(', 3, []],
      ['eq(1a,x)', 3, []],
      ['eq(a.,x)', 5, []],
      ['eq(a x)', 5, [',']],
      ['eq(a,)', 5, ['value']],
      ['eq(a,"x', 7, ['"']],
      ['eq(a,"\\x")', 6, ['\\"', '\\\\']],
      ['eq(a,b,c)', 6, [')']],
      ['eq(a,b c)', 7, [')']],
      ['and()', 4, 'operators'],
      ['and(eq(a,1)', 11, [',', ')']],
      ['and(eq(a,1),)', 12, 'operators'],
      ['not(eq(a,1),eq(b,2))', 11, [')']],
      ['null(a,1)', 6, [')']],
      ['in(a)', 4, [',']],
      ['in(a,1,)', 7, ['value']],
      ['eq(a,1) x', 8, []],
      ['eq(a,1))', 7, []],
      ['eq(a,1)eq(b,2)', 7, []],
      ['eq(a,(1))', 5, ['value']],
    ]
    for (const [text, position, expected] of cases) {
      it(`${JSON.stringify(text)}: position ${position}`, () => {
        const err = refusal(text)
        expect(err.position, err.message).to.equal(position)
        expect(err.expected).to.deep.equal(expected === 'operators' ? OPERATOR_NAMES : expected)
        expect(err.message).to.match(new RegExp(`position ${position}`))
      })
    }
  })

  describe('limits', () => {
    const nested = (n: number) => `${'not('.repeat(n - 1)}null(a)${')'.repeat(n - 1)}`
    it(`depth ${DEFAULT_EXPRESSION_LIMITS.maxDepth} parses, one more level is refused at the operator that goes over`, () => {
      expect(() => parseExpression(nested(8))).to.not.throw()
      const err = refusal(nested(9))
      expect(err.message).to.match(/nested deeper than 8 levels/)
      expect(err.position).to.equal(8 * 4)
    })
    it('a hundred thousand nested levels are refused at the ninth, without exhausting the stack', () => {
      const err = refusal(nested(100_000))
      expect(err.position).to.equal(8 * 4)
    })
    it(`${DEFAULT_EXPRESSION_LIMITS.maxComparisons} comparisons parse, ${DEFAULT_EXPRESSION_LIMITS.maxComparisons + 1} are refused; each value of in counts`, () => {
      const or = (n: number) => `or(${Array.from({ length: n }, (_, i) => `eq(a,${i})`).join(',')})`
      expect(() => parseExpression(or(50))).to.not.throw()
      expect(refusal(or(51)).message).to.match(/more than 50 comparisons/)
      const inn = (n: number) => `in(a,${Array.from({ length: n }, (_, i) => i).join(',')})`
      expect(() => parseExpression(inn(50))).to.not.throw()
      expect(refusal(inn(51)).message).to.match(/more than 50 comparisons/)
      expect(refusal(`and(${inn(40)},${inn(11)})`).message).to.match(/more than 50 comparisons/)
    })
  })
})

describe('query: filters of lists over HTTP and in process', () => {
  let app: TestApp
  const ids: Record<string, string> = {}
  before(async function () {
    this.timeout(120_000)
    app = await testApp()
    await resetTables(app.db)
    const rhel = await createType(app, 'rhel')
    const ubuntu = await createType(app, 'ubuntu')
    for (const [name, type] of [
      ['RHEL-9.4', rhel],
      ['RHEL-8.10', rhel],
      ['a, (b) "c"', ubuntu],
      ['noble', ubuntu],
    ] as const) {
      ids[name] = (await createComponent(app, name, type.id)).id
    }
    await app.http.put(`/api/v1/components/${ids.noble}`).set('If-Match', '*').send({ sha: 'abc123' }).expect(204)
  })

  const names = async (query: string, extra = '') => {
    const res = await app.http.get(`/api/v1/components?sort=name${extra}`).query({ query })
    expect(res.status, res.text).to.equal(200)
    return (res.body.components as Array<{ name: string }>).map((c) => c.name)
  }
  const refused = async (query: string) => {
    const res = await app.http.get('/api/v1/components').query({ query })
    expect(res.status, res.text).to.equal(400)
    expect(res.body.code).to.equal('invalid_query')
    expect(res.body).to.have.all.keys('message', 'payload', 'status_code', 'code')
    return res.body
  }

  it('each comparison', async () => {
    expect(await names('eq(name,noble)')).to.deep.equal(['noble'])
    expect(await names('ne(name,noble)')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4', 'a, (b) "c"'])
    expect(await names('in(name,noble,RHEL-9.4,nothing)')).to.deep.equal(['RHEL-9.4', 'noble'])
    expect(await names('like(name,RHEL-_._%)')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4'])
    expect(await names('like(name,rhel%)')).to.deep.equal([])
    expect(await names('ilike(name,rhel%)')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4'])
    expect(await names('contains(name,"(b)")')).to.deep.equal(['a, (b) "c"'])
    expect(await names('not_contains(name,RHEL)')).to.deep.equal(['a, (b) "c"', 'noble'])
    expect(await names('null(sha)')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4', 'a, (b) "c"'])
    expect(await names('not(null(sha))')).to.deep.equal(['noble'])
    expect(await names('gt(name,b)')).to.deep.equal(['noble'])
    expect(await names(`eq(id,${ids.noble})`)).to.deep.equal(['noble'])
    expect(await names('lt(created_at,2000-01-01T00:00:00Z)')).to.deep.equal([])
    expect(await names('ge(created_at,2000-01-01T00:00:00Z)')).to.have.length(4)
  })

  it('a comparison of a null field is false but null(), and not() is true where what it negates is not', async () => {
    // sha is null on three rows: ne and not_contains do not hold there, not(eq) does.
    expect(await names('ne(sha,abc123)')).to.deep.equal([])
    expect(await names('not_contains(sha,zz)')).to.deep.equal(['noble'])
    expect(await names('not(eq(sha,abc123))')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4', 'a, (b) "c"'])
    expect(await names('or(eq(sha,abc123),eq(name,RHEL-9.4))')).to.deep.equal(['RHEL-9.4', 'noble'])
    expect(await names('not(or(eq(sha,zz),eq(name,RHEL-9.4)))')).to.deep.equal(['RHEL-8.10', 'a, (b) "c"', 'noble'])
  })

  it('quoted values keep , ( ) " \\ and spaces', async () => {
    expect(await names('eq(name,"a, (b) \\"c\\"")')).to.deep.equal(['a, (b) "c"'])
    expect(await names('in(name,"a, (b) \\"c\\"",noble)')).to.deep.equal(['a, (b) "c"', 'noble'])
  })

  it('a field follows a relation with a dot (the alias too); the filter is ANDed with where', async () => {
    expect(await names('eq(componenttype.name,rhel)')).to.deep.equal(['RHEL-8.10', 'RHEL-9.4'])
    expect(await names('eq(componenttype_id.name,ubuntu)')).to.deep.equal(['a, (b) "c"', 'noble'])
    expect(await names('not(eq(componenttype.name,rhel))')).to.deep.equal(['a, (b) "c"', 'noble'])
    expect(await names('or(eq(componenttype.name,rhel),eq(name,noble))', '&where=name:RHEL-9.4')).to.deep.equal(['RHEL-9.4'])
    expect(await names('and(like(componenttype.name,r%),ilike(name,%.10))')).to.deep.equal(['RHEL-8.10'])
  })

  it('count and Link headers follow the filter', async () => {
    const res = await app.http.get('/api/v1/components').query({ query: 'eq(componenttype.name,ubuntu)', limit: 1, sort: 'name' }).expect(200)
    expect(res.body._meta).to.deep.equal({ count: 2, next: res.body._meta.next })
    const next = /<([^>]*)>; rel="next"/.exec(res.headers.link)![1]
    expect(new URL(next).searchParams.get('after')).to.equal(res.body._meta.next)
    expect(new URL(next).searchParams.get('query')).to.equal('eq(componenttype.name,ubuntu)')
    const second = await app.http.get(new URL(next).pathname + new URL(next).search).expect(200)
    expect(second.body.components.map((c: { name: string }) => c.name)).to.deep.equal(['noble'])
  })

  it('in process, find takes the same query text', async () => {
    const page = await app.engine.service('component').find({ query: { query: 'eq(componenttype.name,rhel)', sort: 'name' } })
    expect(page.items.map((r) => r.name)).to.deep.equal(['RHEL-8.10', 'RHEL-9.4'])
    expect(page.meta).to.deep.equal({ count: 2 })
    const err = await app.engine
      .service('component')
      .find({ query: { query: 'eq(nope,1)' } })
      .then(
        () => undefined,
        (e: { status: number; code: string }) => e,
      )
    expect(err).to.include({ status: 400, code: 'invalid_query' })
  })

  it('an unknown field: 400 at its position, listing the fields (and relations to follow)', async () => {
    const body = await refused('and(eq(name,x),eq(nope,1))')
    expect(body.payload.position).to.equal(18)
    expect(body.payload.expected).to.include.members(['name', 'sha', 'componenttype', 'componenttype.', 'id', 'created_at'])
    expect(body.payload.expected).to.not.include('etag')
    expect(body.payload.expected).to.not.include('data')
    expect(body.message).to.match(/unknown field 'nope' of components at position 18/)
    const hop = await refused('eq(componenttype.nope,1)')
    expect(hop.payload).to.deep.equal({ position: 17, expected: ['id', 'created_at', 'updated_at', 'name'] })
    const notRelation = await refused('eq(name.length,1)')
    expect(notRelation.payload.position).to.equal(3)
    expect(notRelation.message).to.match(/'name' is not a relation of components/)
  })

  it('a value that is not of the field type: 400 at the value, never a 5xx', async () => {
    for (const [query, position] of [
      ['gt(created_at,yesterday)', 14],
      ['eq(id,12)', 6],
      ['in(id,00000000-0000-4000-8000-000000000000,x)', 43],
      ['lt(componenttype.created_at,2024-13-45T99:99:99Z)', 28],
    ] as const) {
      const body = await refused(query)
      expect(body.payload.position, query).to.equal(position)
    }
  })

  it('an operator that does not apply to the field: 400 listing the ones that do', async () => {
    const body = await refused('like(created_at,2024%)')
    expect(body.payload).to.deep.equal({ position: 0, expected: ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null'] })
    expect((await refused('contains(id,abc)')).payload.position).to.equal(0)
  })

  it('malformed text, NUL characters, too many comparisons or levels: 400 invalid_query; given twice or too long: 400 invalid_parameter', async () => {
    expect((await refused('eq(name,x')).payload).to.deep.equal({ position: 9, expected: [')'] })
    expect((await refused('eq(name,"a\u0000")')).payload.position).to.equal(10)
    expect((await refused(`or(${Array.from({ length: 51 }, () => 'eq(name,a)').join(',')})`)).message).to.match(/more than 50 comparisons/)
    expect((await refused(`${'not('.repeat(8)}null(sha)${')'.repeat(8)}`)).message).to.match(/nested deeper than 8 levels/)
    const twice = await app.http.get('/api/v1/components?query=null(sha)&query=null(sha)').expect(400)
    expect(twice.body.code).to.equal('invalid_parameter')
    const long = await app.http
      .get('/api/v1/components')
      .query({ query: `eq(name,"${'x'.repeat(8_200)}")` })
      .expect(400)
    expect(long.body.code).to.equal('invalid_parameter')
  })

  it("at most 4 text-matching comparisons, with 500 pattern characters in all: each costs a pass over every row's text", async () => {
    const likes = (n: number, pattern = 'x%') => `or(${Array.from({ length: n }, () => `like(name,"${pattern}")`).join(',')})`
    expect(await names(likes(4))).to.deep.equal([])
    expect(await names(`and(${likes(2)},contains(name,a),not_contains(name,b))`)).to.deep.equal([])
    const five = await refused(`and(${likes(4)},ilike(name,x))`)
    expect(five.message).to.match(/more than 4 text-matching comparisons/)
    expect(five.payload.position).to.equal(4 + likes(4).length + 1)
    expect(await names(likes(2, 'y'.repeat(250)))).to.deep.equal([])
    const long = await refused(likes(2, 'y'.repeat(251)))
    expect(long.message).to.match(/more than 500 characters in all/)
    // Other comparisons do not count: 46 equalities beside 4 patterns.
    expect(await names(`or(${likes(4)},in(name,${Array.from({ length: 46 }, (_, i) => `v${i}`).join(',')}))`)).to.deep.equal([])
  })

  it('query is a list parameter only', async () => {
    const res = await app.http.get(`/api/v1/components/${ids.noble}?query=null(sha)`).expect(400)
    expect(res.body.code).to.equal('unknown_parameter')
  })
})

const PROBE = path.join(ROOT, 'test', 'fixtures', 'schemas', 'probe.json')

type Row = Record<string, any>

/** A LIKE pattern as a regular expression: `%` any run, `_` one character, anchored. */
function likeRegex(pattern: string, flags: string): RegExp {
  const body = [...pattern].map((c) => (c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('')
  return new RegExp(`^${body}$`, `s${flags}`)
}

describe('query: random expressions over random rows give the ids JavaScript gives, in the same order (model-based)', function () {
  this.timeout(300_000)
  let app: GeneratedApp
  let probes: Row[]
  const components = new Map<string, Row>()
  const types = new Map<string, Row>()
  const SEED = Number(process.env.QUERY_SEED ?? 20261202)
  const RUNS = Number(process.env.QUERY_RUNS ?? 250)

  const LETTERS = ['a', 'b', 'c']
  const INSTANTS = ['2024-01-01T00:00:00.000Z', '2024-06-15T12:30:00.000Z', '2025-01-01T00:00:00.000Z', '2025-03-01T08:00:00.250Z']
  const NUMBERS = [-2, -0.5, 0, 0.25, 1.5, 3]

  before(async function () {
    this.timeout(300_000)
    app = await generatedApp([PROBE])
    const rnd = random(SEED)
    const pick = <T>(list: readonly T[]) => list[Math.floor(rnd() * list.length)]
    const word = () => Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => pick(LETTERS)).join('')
    const maybe = <T>(value: () => T) => (rnd() < 0.2 ? undefined : value())
    for (const name of ['ab', 'ba', 'c']) {
      const res = await app.http.post('/api/v1/componenttypes').send({ name }).expect(201)
      types.set(res.body.componenttype.id, res.body.componenttype)
    }
    for (let i = 0; i < 6; i++) {
      const body: Row = { name: `${word()}${i}`, componenttype: pick([...types.keys()]) }
      if (rnd() < 0.5) body.sha = word()
      const res = await app.http.post('/api/v1/components').send(body).expect(201)
      components.set(res.body.component.id, res.body.component)
    }
    for (let i = 0; i < 70; i++) {
      const body: Row = {
        label: maybe(word),
        n: maybe(() => Math.floor(rnd() * 7) - 3),
        x: maybe(() => pick(NUMBERS)),
        flag: maybe(() => rnd() < 0.5),
        at: maybe(() => pick(INSTANTS)),
        level: maybe(() => pick(['low', 'mid', 'high'])),
        tags: maybe(() => Array.from({ length: Math.floor(rnd() * 4) }, () => pick(LETTERS))),
        component: maybe(() => pick([...components.keys()])),
      }
      for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key]
      const res = await app.http.post('/api/v1/probes').send(body)
      expect(res.status, res.text).to.equal(201)
    }
    probes = (await app.http.get('/api/v1/probes?limit=200&sort=id').expect(200)).body.probes
    expect(probes).to.have.length(70)
  })
  after(async () => {
    await app?.close()
  })

  /** A field of a probe, or of its component, or of that component's type: its value, or undefined when a hop finds no row. */
  type Path = string
  const read = (row: Row, path: Path): { found: boolean; value: unknown } => {
    const parts = path.split('.')
    let current: Row | undefined = row
    for (let i = 0; i < parts.length - 1; i++) {
      const id: unknown = current?.[parts[i]]
      current = typeof id === 'string' ? (parts[i] === 'component' ? components.get(id) : types.get(id)) : undefined
      if (!current) return { found: false, value: undefined }
    }
    return { found: true, value: current![parts[parts.length - 1]] ?? null }
  }

  type Kind = 'string' | 'integer' | 'number' | 'boolean' | 'datetime' | 'enum' | 'array' | 'uuid'
  const FIELDS: Array<[Path, Kind]> = [
    ['label', 'string'],
    ['n', 'integer'],
    ['x', 'number'],
    ['flag', 'boolean'],
    ['at', 'datetime'],
    ['level', 'enum'],
    ['tags', 'array'],
    ['id', 'uuid'],
    ['component', 'uuid'],
    ['component.name', 'string'],
    ['component.sha', 'string'],
    ['component.componenttype.name', 'string'],
    ['component.componenttype', 'uuid'],
  ]
  /** Values a field compares with: mostly ones the rows hold. */
  const valuesOf = (path: Path, kind: Kind): fc.Arbitrary<string> => {
    switch (kind) {
      case 'integer':
        return fc.integer({ min: -4, max: 4 }).map(String)
      case 'number':
        return fc.constantFrom(...NUMBERS, 1, -1).map(String)
      case 'boolean':
        return fc.constantFrom('true', 'false')
      case 'datetime':
        return fc.constantFrom(...INSTANTS, '2024-06-15T14:30:00+02:00', '2030-01-01T00:00:00Z')
      case 'enum':
        return fc.constantFrom('low', 'mid', 'high')
      case 'uuid':
        return fc.constantFrom(...(path === 'id' ? probes.map((p) => p.id) : path === 'component' ? [...components.keys()] : [...types.keys()]))
      default:
        return fc.oneof(
          fc.constantFrom(...LETTERS, 'ab', 'ba', 'abc', 'x'),
          fc.constantFrom(...probes.map((p) => p.label).filter(Boolean), ...[...components.values()].map((c) => c.name)),
        )
    }
  }
  const patternOf = fc.array(fc.constantFrom('a', 'b', 'c', 'A', 'B', '%', '_'), { minLength: 1, maxLength: 4 }).map((parts) => parts.join(''))
  const OPS: Record<Kind, string[]> = {
    string: ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null', 'like', 'ilike', 'contains', 'not_contains'],
    enum: ['eq', 'ne', 'lt', 'gt', 'in', 'null', 'like', 'contains'],
    integer: ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null'],
    number: ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null'],
    boolean: ['eq', 'ne', 'lt', 'gt', 'null'],
    datetime: ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'in', 'null'],
    uuid: ['eq', 'ne', 'lt', 'gt', 'in', 'null'],
    array: ['contains', 'not_contains', 'null'],
  }

  /** A random expression: its text, and the JavaScript predicate it means. */
  type Generated = { text: string; holds: (row: Row) => boolean; comparisons: number; patterns: number; patternCharacters: number }
  const comparison: () => fc.Arbitrary<Generated> = () =>
    fc.constantFrom(...FIELDS).chain(([path, kind]) =>
      fc.constantFrom(...OPS[kind]).chain((op) => {
        const quote = (v: string) => `"${v}"`
        if (op === 'null') {
          return fc.constant({
            text: `null(${path})`,
            holds: (row: Row) => read(row, path).found && read(row, path).value === null,
            comparisons: 1,
            patterns: 0,
            patternCharacters: 0,
          })
        }
        if (op === 'in') {
          return fc.array(valuesOf(path, kind), { minLength: 1, maxLength: 3 }).map((values) => ({
            text: `in(${path},${values.map(quote).join(',')})`,
            holds: (row: Row) => values.some((v) => compare(read(row, path), kind, 'eq', v)),
            comparisons: values.length,
            patterns: 0,
            patternCharacters: 0,
          }))
        }
        const value = op === 'like' || op === 'ilike' ? patternOf : kind === 'array' ? fc.constantFrom(...LETTERS) : valuesOf(path, kind)
        const pattern = kind !== 'array' && ['like', 'ilike', 'contains', 'not_contains'].includes(op)
        return value.map((v) => ({
          text: `${op}(${path},${quote(v)})`,
          holds: (row: Row) => compare(read(row, path), kind, op, v),
          comparisons: 1,
          patterns: pattern ? 1 : 0,
          patternCharacters: pattern ? v.length : 0,
        }))
      }),
    )
  /** A comparison of a field's value as PostgreSQL makes it, false when the value is null or a hop finds no row. */
  const compare = ({ found, value }: { found: boolean; value: unknown }, kind: Kind, op: string, raw: string): boolean => {
    if (!found || value === null) return false
    if (kind === 'array') {
      const has = (value as string[]).includes(raw)
      return op === 'contains' ? has : !has
    }
    if (op === 'like') return likeRegex(raw, '').test(String(value))
    if (op === 'ilike') return likeRegex(raw, 'i').test(String(value))
    if (op === 'contains') return String(value).includes(raw)
    if (op === 'not_contains') return !String(value).includes(raw)
    const [a, b] =
      kind === 'integer' || kind === 'number'
        ? [Number(value), Number(raw)]
        : kind === 'boolean'
          ? [Number(value), Number(raw === 'true')]
          : kind === 'datetime'
            ? [Date.parse(String(value)), Date.parse(raw)]
            : [String(value), raw]
    switch (op) {
      case 'eq':
        return a === b
      case 'ne':
        return a !== b
      case 'lt':
        return a < b
      case 'le':
        return a <= b
      case 'gt':
        return a > b
      default:
        return a >= b
    }
  }
  const expression: () => fc.Arbitrary<Generated> = () =>
    fc
      .letrec<{ e: Generated }>((tie) => ({
        e: fc.oneof(
          { depthSize: 'small', maxDepth: 4, withCrossShrink: true },
          comparison(),
          fc.tuple(fc.constantFrom('and', 'or'), fc.array(tie('e'), { minLength: 1, maxLength: 3 })).map(([op, args]) => ({
            text: `${op}(${args.map((a) => a.text).join(',')})`,
            holds: (row: Row) => (op === 'and' ? args.every((a) => a.holds(row)) : args.some((a) => a.holds(row))),
            comparisons: args.reduce((n, a) => n + a.comparisons, 0),
            patterns: args.reduce((n, a) => n + a.patterns, 0),
            patternCharacters: args.reduce((n, a) => n + a.patternCharacters, 0),
          })),
          tie('e').map((inner) => ({ ...inner, text: `not(${inner.text})`, holds: (row: Row) => !inner.holds(row) })),
        ),
      }))
      // The language's own limit: more is a 400, which the test above covers.
      .e.filter(
        (e) =>
          e.comparisons <= DEFAULT_EXPRESSION_LIMITS.maxComparisons && e.patterns <= MAX_PATTERN_COMPARISONS && e.patternCharacters <= MAX_PATTERN_CHARACTERS,
      )

  /** The order of `sort`: by id, or by n descending (nulls first, as PostgreSQL orders them) then id. */
  const SORTS: Record<string, (a: Row, b: Row) => number> = {
    id: (a, b) => (a.id < b.id ? -1 : 1),
    '-n': (a, b) => {
      if (a.n !== b.n) {
        if (a.n === null) return -1
        if (b.n === null) return 1
        return b.n - a.n
      }
      return a.id < b.id ? -1 : 1
    },
  }

  it(`${RUNS} expressions over HTTP (QUERY_SEED=${SEED}): same ids, same order, exact count`, async () => {
    let matched = 0
    await fc.assert(
      fc.asyncProperty(expression(), fc.constantFrom(...Object.keys(SORTS)), async (e, sort) => {
        const res = await app.http.get('/api/v1/probes').query({ query: e.text, sort, limit: 200 })
        expect(res.status, `${e.text}: ${res.text}`).to.equal(200)
        const expected = probes
          .filter((r) => e.holds(r))
          .sort(SORTS[sort])
          .map((r) => r.id)
        expect(
          res.body.probes.map((r: Row) => r.id),
          e.text,
        ).to.deep.equal(expected)
        expect(res.body._meta.count, e.text).to.equal(expected.length)
        if (expected.length > 0 && expected.length < 70) matched++
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    )
    // The expressions are not all trivially empty or everything.
    expect(matched).to.be.above(RUNS / 4)
  })

  it('in process, through the service: the same ids as over HTTP', async () => {
    await fc.assert(
      fc.asyncProperty(expression(), async (e) => {
        const page = await app.engine.service('probe').find({ query: { query: e.text, sort: 'id', limit: 200 } })
        expect(
          page.items.map((r) => r.id),
          e.text,
        ).to.deep.equal(probes.filter((r) => e.holds(r)).map((r) => r.id))
      }),
      { seed: SEED + 1, numRuns: 50, endOnFailure: true },
    )
  })
})
