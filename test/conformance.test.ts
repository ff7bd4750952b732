import path from 'node:path'
import { expect } from 'chai'
import { loadSchemas } from '../core'
import { generatedApp, ROOT, SCHEMAS, testApp, type GeneratedApp, type TestApp } from './support'
import { type RoundTripOptions, roundTripSuite } from './conformance/round-trip'
import { conformanceSuite } from './conformance/suite'
import { serviceAgent } from './helpers/service-agent'

// Mocha declares tests synchronously, so the resources are read from the same schema folder the engine
// registers; the first test checks that both lists agree.
const definitions = loadSchemas(SCHEMAS)

// What the resources' plugins document they store for a body: the componenttype plugin trims names.
const storedBy: Record<string, RoundTripOptions['stored']> = {
  componenttype: (body) => ({ ...body, name: typeof body.name === 'string' ? body.name.trim() : body.name }),
}

describe('conformance suite of every registered resource', () => {
  let app: TestApp
  before(async function () {
    // The embedded database takes a while to start on a loaded machine.
    this.timeout(180_000)
    app = await testApp()
  })

  it('covers exactly the resources the engine registered', () => {
    expect(definitions.map((d) => d.name)).to.have.members([...app.engine.resources.keys()])
    expect(definitions.length).to.be.at.least(2)
  })

  for (const def of definitions) conformanceSuite(def, () => app)
  for (const def of definitions) roundTripSuite(def, () => app, { stored: storedBy[def.name] })
})

describe('conformance suite of every registered resource, through the in-process services', () => {
  let app: TestApp
  before(async function () {
    this.timeout(180_000)
    const http = await testApp()
    // The same suite, each request mapped to the service call of the same meaning: validation, hooks,
    // ETags and errors hold for in-process callers as for HTTP ones.
    app = { ...http, http: serviceAgent(http.engine) as unknown as TestApp['http'] }
  })

  for (const def of definitions) conformanceSuite(def, () => app, { transport: 'services' })
  for (const def of definitions) roundTripSuite(def, () => app, { transport: 'services', stored: storedBy[def.name] })
})

// The project's schemas have no relation with onDelete "set null", whose changes the database makes on
// its own: the suite also runs on a test resource that has one (and the other kinds of unique keys),
// its table made by npm run db:generate.
const GADGET = path.join(ROOT, 'test', 'fixtures', 'schemas', 'gadget.json')
const gadget = loadSchemas(SCHEMAS, [], [GADGET]).find((d) => d.name === 'gadget')!

for (const transport of ['http', 'services'] as const) {
  describe(`conformance suite of a resource the database changes on its own (test/fixtures/schemas/gadget.json)${transport === 'services' ? ', through the in-process services' : ''}`, () => {
    let generated: GeneratedApp
    let app: TestApp
    before(async function () {
      this.timeout(180_000)
      generated = await generatedApp([GADGET])
      app = transport === 'http' ? generated : { ...generated, http: serviceAgent(generated.engine) as unknown as TestApp['http'] }
    })
    after(async () => generated?.close())

    it('the resource has a relation with onDelete "set null"', () => {
      expect(gadget.fields.some((f) => f.relation?.onDelete === 'set null')).to.equal(true)
    })

    conformanceSuite(gadget, () => app, { transport })
  })
}
