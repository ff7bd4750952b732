import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020'
import addFormats from 'ajv-formats'
import { compileErrors, validate } from '@readme/openapi-parser'
import type { Response } from 'supertest'
import supertest from 'supertest'
import { createEngine, openDatabase, type OpenApiDocument } from '../core'
import { toDraft2020 } from '../core/openapi/document'
import { DETAIL_PARAMETERS, LIST_PARAMETERS } from '../core/query/list-query'
import { resourcePlugins as plugins } from '../resources'
import { ADMIN_AUTH, SCHEMAS, createComponent, createType, resetTables, serverApp, testApp, testDatabase, type ServerApp, type TestApp } from './support'

const MISSING = '00000000-0000-4000-8000-000000000000'
type Json = Record<string, any>

/**
 * Checks real answers against the document: the status must be documented for the operation, the
 * required headers present and matching their schema, and the body valid against the documented
 * schema (compiled by ajv as JSON Schema 2020-12, refs resolved inside the document).
 */
function documentChecker(doc: OpenApiDocument) {
  const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true })
  addFormats(ajv)
  ajv.addKeyword('components') // lets `#/components/...` refs resolve against the document's components
  ajv.addKeyword('x-relation') // an annotation of relation properties (the resource they point to), as OpenAPI allows `x-` extensions
  const compiled = new Map<string, ValidateFunction>()
  const compile = (schema: unknown) => {
    const key = JSON.stringify(schema)
    let check = compiled.get(key)
    if (!check) compiled.set(key, (check = ajv.compile({ ...(schema as object), components: doc.components })))
    return check
  }
  const deref = (value: Json): Json => {
    if (typeof value.$ref !== 'string') return value
    const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(value.$ref) ?? []
    const target = (doc.components as Json)[section]?.[name]
    if (!target) throw new Error(`dangling $ref ${value.$ref}`)
    return target
  }
  const expectValid = (schema: unknown, value: unknown, what: string) => {
    const check = compile(schema)
    expect(check(value), `${what}: ${ajv.errorsText(check.errors)}\n${JSON.stringify(value)}`).to.equal(true)
  }

  function expectResponse(res: Response, response: Json, what: string) {
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const spec = deref(header as Json)
      const value = res.headers[name.toLowerCase()]
      if (spec.required) expect(value, `${what}: header ${name}`).to.be.a('string')
      if (value !== undefined) expectValid(spec.schema, value, `${what}: header ${name}`)
    }
    const schema = response.content?.['application/json']?.schema
    if (!schema) {
      expect(res.text || '', `${what} documents no body`).to.equal('')
      return
    }
    expect(res.headers['content-type']).to.match(/^application\/json/)
    expectValid(schema, res.body, `${what} body`)
  }

  return {
    compile,
    deref,
    expectValid,
    /** Asserts that `res` is a documented answer of `method template`, and returns the status. */
    expectDocumented(res: Response, method: string, template: string): number {
      const operation = doc.paths[template]?.[method as 'get'] as Json | undefined
      expect(operation, `${method.toUpperCase()} ${template} is documented`).to.be.an('object')
      const documented = operation!.responses[String(res.status)] ?? operation!.responses[`${String(res.status)[0]}XX`]
      expect(documented, `${method.toUpperCase()} ${template} documents a ${res.status} answer`).to.be.an('object')
      expectResponse(res, deref(documented), `${method.toUpperCase()} ${template} ${res.status}`)
      return res.status
    },
    /** Asserts that a body the test sends is valid against the documented request body. */
    expectDocumentedBody(body: unknown, method: string, template: string) {
      const operation = doc.paths[template]?.[method as 'post'] as Json
      expectValid(operation.requestBody.content['application/json'].schema, body, `${method.toUpperCase()} ${template} request body`)
    },
    expectResponse,
  }
}

describe('OpenAPI document', () => {
  let app: TestApp
  let doc: OpenApiDocument
  let check: ReturnType<typeof documentChecker>
  before(async function () {
    this.timeout(120_000) // the embedded database starts in seconds, slower on a busy machine
    app = await testApp()
    doc = (
      await app.http
        .get('/api/v1/openapi.json')
        .expect(200)
        .expect('Content-Type', /application\/json/)
    ).body
    check = documentChecker(doc)
  })
  beforeEach(async () => {
    await resetTables(app.db)
  })

  describe('the document', () => {
    it('GET /api/v1/openapi.json is a valid OpenAPI 3.1 document, served from the prefix', async () => {
      expect(doc.openapi).to.equal('3.1.0')
      expect(doc.servers).to.deep.equal([{ url: '/api/v1' }])
      const result = await validate(structuredClone(doc) as never)
      expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true)
      expect(result.warnings).to.deep.equal([])
    })

    it('is the document the engine built at start-up', async () => {
      expect(doc).to.deep.equal(JSON.parse(JSON.stringify(app.engine.openapi())))
    })

    it('documents the five generated routes of every registered resource and the components of a componenttype', () => {
      for (const resource of app.engine.resources.values()) {
        expect(Object.keys(doc.paths[`/${resource.plural}`]), resource.plural).to.have.members(['get', 'post'])
        expect(Object.keys(doc.paths[`/${resource.plural}/{id}`]), resource.plural).to.have.members(['parameters', 'get', 'put', 'delete'])
      }
      expect(doc.paths['/componenttypes/{id}/components'].get!.operationId).to.equal('list_componenttype_components')
      // Plugin routes without an openapi hook may stay undocumented; every generated one is there.
      const generated = [...app.engine.resources.values()].flatMap((r) => [`/${r.plural}`, `/${r.plural}/{id}`])
      expect(Object.keys(doc.paths)).to.include.members([...generated, '/componenttypes/{id}/components'])
    })

    it('the {id} of a resource with x-lookup is documented as an id or its lookup field; other resources take an id only', () => {
      const param = (plural: string) => (doc.paths[`/${plural}/{id}`] as Json).parameters[0]
      for (const plural of ['componenttypes', 'teams']) {
        expect(param(plural), plural).to.deep.include({ name: 'id', in: 'path', required: true, 'x-lookup': 'name' })
        expect(param(plural).schema, plural).to.deep.equal({
          anyOf: [
            { type: 'string', format: 'uuid' },
            { type: 'string', minLength: 1, maxLength: 255 },
          ],
        })
        expect(param(plural).description, plural).to.match(/or its name .*a value that parses as a uuid is always an id/)
      }
      for (const plural of ['components', 'remotecis']) {
        expect(param(plural), plural).to.not.have.property('x-lookup')
        expect(param(plural).schema, plural).to.deep.equal({ type: 'string', format: 'uuid' })
      }
    })

    it('every component schema compiles as JSON Schema 2020-12 in strict mode', () => {
      for (const name of Object.keys(doc.components.schemas)) {
        expect(() => check.compile({ $ref: `#/components/schemas/${name}` }), name).to.not.throw()
      }
    })

    it('PUT and DELETE require If-Match; detail and list GETs take If-None-Match; PUT takes Prefer', () => {
      const item = doc.paths['/componenttypes/{id}'] as Json
      const names = (op: Json) => op.parameters.map((p: Json) => check.deref(p)).map((p: Json) => `${p.in}:${p.name}:${Boolean(p.required)}`)
      expect(names(item.put)).to.include.members(['header:If-Match:true', 'header:Prefer:false'])
      expect(names(item.delete)).to.include('header:If-Match:true')
      expect(names(item.get)).to.include('header:If-None-Match:false')
      expect(names(doc.paths['/componenttypes'].get as Json)).to.include('header:If-None-Match:false')
      expect(Object.keys(item.put.responses)).to.include.members(['200', '204', '400', '404', '409', '412', '413', '415'])
      expect(Object.keys(item.delete.responses)).to.include.members(['204', '404', '409', '412'])
    })

    it('list parameters allow exactly the fields of the resource in where, sort and embed', () => {
      const params = Object.fromEntries(((doc.paths['/components'].get as Json).parameters as Json[]).map((p) => check.deref(p)).map((p) => [p.name, p]))
      expect(params).to.include.all.keys('where', 'sort', 'limit', 'offset', 'embed', 'If-None-Match')
      expect(params.where.style).to.equal('form')
      expect(params.where.explode).to.equal(false)
      const clause = check.compile(params.where.schema.items)
      expect(clause('name:RHEL-9.4')).to.equal(true)
      expect(clause(`componenttype:${MISSING}`)).to.equal(true)
      expect(clause(`componenttype_id:${MISSING}`), 'an alias is filterable').to.equal(true)
      expect(clause('etag:abc'), 'etag is not filterable').to.equal(false)
      expect(clause('nope:x')).to.equal(false)
      expect(clause('name')).to.equal(false)
      expect(params.sort.schema.items.enum).to.have.members([
        'id',
        '-id',
        'created_at',
        '-created_at',
        'updated_at',
        '-updated_at',
        'name',
        '-name',
        'componenttype',
        '-componenttype',
        ...['canonical_project_name', 'sha', 'title', 'message', 'url', 'git', 'ref'].flatMap((f) => [f, `-${f}`]),
        'componenttype_id',
        '-componenttype_id',
      ])
      expect(params.embed.schema.items.enum).to.deep.equal(['componenttype'])
      expect(params.limit.schema).to.include({ minimum: 0, maximum: 200, default: 20 })
      const typeParams = ((doc.paths['/componenttypes'].get as Json).parameters as Json[]).map((p) => check.deref(p).name)
      expect(typeParams, 'a resource without relations has no embed').to.not.include('embed')
    })

    it('documents every query parameter the list and detail parsers accept (embed only where there are relations, q where there are x-search fields)', () => {
      const queryNames = (op: Json) =>
        (op.parameters as Json[])
          .map((p) => check.deref(p))
          .filter((p) => p.in === 'query')
          .map((p) => p.name)
      for (const resource of app.engine.resources.values()) {
        const accepted = (names: readonly string[]) =>
          names.filter((n) => (n !== 'embed' || resource.query.relations.length > 0) && (n !== 'q' || resource.query.searchable.length > 0))
        expect(queryNames(doc.paths[`/${resource.plural}`].get as Json), resource.plural).to.have.members(accepted(LIST_PARAMETERS))
        expect(queryNames(doc.paths[`/${resource.plural}/{id}`].get as Json), resource.plural).to.have.members(accepted(DETAIL_PARAMETERS))
      }
    })

    it('a relation field is oneOf the id and the related object; engine fields are required and read-only', () => {
      const component = doc.components.schemas.component as Json
      // Every field is answered (null when unset), so every field is required in an answer; so is the alias.
      expect(component.required).to.have.members([
        'id',
        'name',
        'componenttype',
        'componenttype_id',
        ...['canonical_project_name', 'data', 'sha', 'title', 'message', 'url', 'git', 'ref'],
        'created_at',
        'updated_at',
        'etag',
      ])
      expect(component.properties.componenttype.oneOf).to.deep.equal([{ type: 'string', format: 'uuid' }, { $ref: '#/components/schemas/componenttype' }])
      expect(component.properties.id).to.include({ readOnly: true, format: 'uuid' })
      expect(JSON.stringify(doc.components.schemas), 'no x- keyword but x-relation is left in the schemas').to.not.match(/"x-(?!relation")/)
      expect((doc.components.schemas['component.create'] as Json).required).to.deep.equal(['name'])
      expect(doc.components.schemas['component.update'] as Json).to.not.have.property('required')
    })

    it('an alias (x-alias) is documented in answers and bodies, described as the alias of its field; a required field is required under either name', () => {
      const component = doc.components.schemas.component as Json
      expect(component.properties.componenttype_id).to.deep.equal({
        type: 'string',
        format: 'uuid',
        description: "Alias of `componenttype`: the id of a componenttype, also with `embed=componenttype`. Id of the component's type.",
        'x-relation': { resource: 'componenttype', plural: 'componenttypes' },
      })
      for (const variant of ['component.create', 'component.update']) {
        const body = doc.components.schemas[variant] as Json
        expect(body.properties.componenttype_id.description, variant).to.match(/^Alias of `componenttype`/)
      }
      const create = check.compile({ $ref: '#/components/schemas/component.create' })
      expect(create({ name: 'a', componenttype: MISSING })).to.equal(true)
      expect(create({ name: 'a', componenttype_id: MISSING })).to.equal(true)
      expect(create({ name: 'a' }), 'neither name').to.equal(false)
      expect((doc.components.schemas.remoteci as Json).properties.team_id.description).to.match(/^Alias of `team`/)
    })

    it('every relation property (and its alias) carries x-relation: the resource it points to and its plural, in answers and bodies', () => {
      const schemas = doc.components.schemas as Record<string, Json>
      const plurals = new Map([...app.engine.resources.values()].map((r) => [r.name, r.plural]))
      let relations = 0
      for (const resource of app.engine.resources.values()) {
        const { def } = resource
        const expected = new Map<string, Json>()
        for (const field of def.fields) {
          if (!field.relation) continue
          const target = field.relation.resource
          expect(plurals.get(target), `${def.name}.${field.name} points to a registered resource`).to.be.a('string')
          const extension = { resource: target, plural: plurals.get(target) }
          expected.set(field.name, extension)
          if (field.alias) expected.set(field.alias, extension)
        }
        const variants = [def.name, ...(def.readOnly ? [] : [`${def.name}.create`, `${def.name}.update`])]
        for (const variant of variants) {
          const properties = schemas[variant].properties as Record<string, Json>
          for (const [name, property] of Object.entries(properties)) {
            if (expected.has(name)) expect(property['x-relation'], `${variant}.${name}`).to.deep.equal(expected.get(name))
            else expect(property, `${variant}.${name} is no relation`).to.not.have.property('x-relation')
          }
          // Every relation is in the variant (write-only ones in bodies only).
          for (const field of def.fields.filter((f) => f.relation && (variant !== def.name || !f.hidden))) {
            expect(properties, variant).to.include.keys(field.name, ...(field.alias ? [field.alias] : []))
            relations++
          }
        }
      }
      expect(relations, 'the registered resources have relations').to.be.above(0)
      // Nowhere else: only the properties of resource schemas carry the extension.
      const found: string[] = []
      const walk = (value: unknown, at: string) => {
        if (!value || typeof value !== 'object') return
        for (const [key, child] of Object.entries(value)) {
          if (key === 'x-relation') found.push(at)
          else walk(child, `${at}/${key}`)
        }
      }
      walk(doc, '#')
      const expectedAt = [...app.engine.resources.values()].flatMap(({ def }) =>
        (def.readOnly ? [def.name] : [def.name, `${def.name}.create`, `${def.name}.update`]).flatMap((variant) =>
          def.fields
            .filter((f) => f.relation && (variant !== def.name || !f.hidden))
            .flatMap((f) => [f.name, ...(f.alias ? [f.alias] : [])].map((p) => `#/components/schemas/${variant}/properties/${p}`)),
        ),
      )
      expect(found).to.have.members(expectedAt)
      expect(schemas.component.properties.componenttype['x-relation']).to.deep.equal({ resource: 'componenttype', plural: 'componenttypes' })
      expect(schemas['remoteci.create'].properties.team_id['x-relation']).to.deep.equal({ resource: 'team', plural: 'teams' })
      expect(schemas['remoteci.update'].properties.team['x-relation']).to.deep.equal({ resource: 'team', plural: 'teams' })
    })

    it('_meta has the count (but with count=none), and count_exact: false only when the count is an estimate', () => {
      const meta = check.compile({ $ref: '#/components/schemas/ListMeta' })
      expect(meta({ count: 3 })).to.equal(true)
      expect(meta({ count: 10_500, count_exact: false })).to.equal(true)
      expect(meta({ count: 3, count_exact: true })).to.equal(false)
      expect(meta({})).to.equal(true)
      expect(meta({ count: -1 })).to.equal(false)
      expect((doc.components as Json).parameters.count.schema.enum).to.deep.equal(['estimate', 'exact', 'none'])
    })

    it('the query parameter is documented with its grammar, its limits and the fields of the resource (relations to follow included)', () => {
      const query = ((doc.paths as Json)['/components'].get.parameters as Json[]).find((p) => p.name === 'query')!
      expect(query.in).to.equal('query')
      expect(query.description)
        .to.include('`eq(f,v)`')
        .and.include('`not(e)`')
        .and.include('`componenttype.`')
        .and.include('`sha`')
        .and.include('invalid_query')
      expect(query.description).to.not.include('`data`')
      expect(query.schema).to.include({ type: 'string', maxLength: 8192 })
      expect((doc.components as Json).responses).to.satisfy((responses: Json) => JSON.stringify(responses).includes('invalid_query'))
    })

    it('a list answer documents its Link header', () => {
      const list = (doc.paths as Json)['/components'].get.responses[200]
      expect(list.headers.Link).to.deep.equal({ $ref: '#/components/headers/Link' })
      expect((doc.components as Json).headers.Link.description).to.match(/rel="next"/)
    })

    it('the error body is one shared schema, referenced by every error response', () => {
      expect(doc.components.schemas.Error).to.deep.include({ required: ['message', 'payload', 'status_code', 'code'], additionalProperties: false })
      for (const [name, response] of Object.entries(doc.components.responses as Json)) {
        if (name === 'NotModified') continue
        // One schema per status: the shared error body, with `code` one of the codes of that status.
        expect(response.content['application/json'].schema, name).to.deep.equal({ $ref: `#/components/schemas/${name}` })
        const schema = doc.components.schemas[name] as Json
        expect(schema.allOf, name).to.deep.equal([{ $ref: '#/components/schemas/Error' }])
        expect(schema.properties.code.enum, name).to.be.an('array').that.is.not.empty
      }
      expect((doc.components.schemas.NotFound as Json).properties.code.enum).to.deep.equal(['not_found', 'route_not_found'])
      expect((doc.components.schemas.PreconditionFailed as Json).properties.code.enum).to.deep.equal(['precondition_required', 'precondition_failed'])
    })
  })

  describe('live answers match the documented schemas', () => {
    it('POST /componenttypes 201, GET list 200 and 304, GET detail 200 and 304', async () => {
      check.expectDocumentedBody({ name: 'rhel' }, 'post', '/componenttypes')
      const created = await app.http.post('/api/v1/componenttypes').send({ name: 'rhel' }).expect(201)
      expect(check.expectDocumented(created, 'post', '/componenttypes')).to.equal(201)
      const list = await app.http.get('/api/v1/componenttypes?sort=-name&limit=5&offset=0&where=name:rhel&count=exact').expect(200)
      expect(list.body._meta.count).to.equal(1)
      check.expectDocumented(list, 'get', '/componenttypes')
      check.expectDocumented(await app.http.get('/api/v1/componenttypes').set('If-None-Match', list.headers.etag).expect(304), 'get', '/componenttypes')
      const id = created.body.componenttype.id
      const one = await app.http.get(`/api/v1/componenttypes/${id}`).expect(200)
      check.expectDocumented(one, 'get', '/componenttypes/{id}')
      check.expectDocumented(
        await app.http.get(`/api/v1/componenttypes/${id}`).set('If-None-Match', one.headers.etag).expect(304),
        'get',
        '/componenttypes/{id}',
      )
    })

    it('components with and without embed: list, detail and the components of a componenttype', async () => {
      const ct = await createType(app, 'rhel')
      const c = await createComponent(app, 'RHEL-9.4', ct.id)
      const plain = await app.http.get('/api/v1/components').expect(200)
      expect(plain.body.components[0].componenttype).to.equal(ct.id)
      check.expectDocumented(plain, 'get', '/components')
      const embedded = await app.http.get('/api/v1/components?embed=componenttype').expect(200)
      expect(embedded.body.components[0].componenttype).to.deep.equal(ct)
      check.expectDocumented(embedded, 'get', '/components')
      check.expectDocumented(await app.http.get(`/api/v1/components/${c.id}?embed=componenttype`).expect(200), 'get', '/components/{id}')
      const ofType = await app.http.get(`/api/v1/componenttypes/${ct.id}/components?sort=name`).expect(200)
      expect(ofType.body.components).to.have.length(1)
      check.expectDocumented(ofType, 'get', '/componenttypes/{id}/components')
      check.expectDocumented(await app.http.get(`/api/v1/componenttypes/${MISSING}/components`).expect(404), 'get', '/componenttypes/{id}/components')
    })

    it('PUT answers a documented 204, and 200 with the object under Prefer: return=representation', async () => {
      const ct = await createType(app, 'a')
      check.expectDocumentedBody({ name: 'b' }, 'put', '/componenttypes/{id}')
      const minimal = await app.http.put(`/api/v1/componenttypes/${ct.id}`).set('If-Match', ct.etag).send({ name: 'b' }).expect(204)
      check.expectDocumented(minimal, 'put', '/componenttypes/{id}')
      const full = await app.http
        .put(`/api/v1/componenttypes/${ct.id}`)
        .set('If-Match', minimal.headers.etag)
        .set('Prefer', 'return=representation')
        .send({ name: 'c' })
        .expect(200)
      expect(full.body.componenttype.name).to.equal('c')
      check.expectDocumented(full, 'put', '/componenttypes/{id}')
    })

    it('DELETE answers a documented 204', async () => {
      const ct = await createType(app, 'a')
      check.expectDocumented(await app.http.delete(`/api/v1/componenttypes/${ct.id}`).set('If-Match', ct.etag).expect(204), 'delete', '/componenttypes/{id}')
    })

    it('400s are documented: bad where, unknown parameter, body that does not match the schema, invalid JSON', async () => {
      check.expectDocumented(await app.http.get('/api/v1/components?where=nope:1').expect(400), 'get', '/components')
      check.expectDocumented(await app.http.get('/api/v1/components?colour=red').expect(400), 'get', '/components')
      check.expectDocumented(await app.http.get(`/api/v1/components/${MISSING}?embed=nope`).expect(400), 'get', '/components/{id}')
      check.expectDocumented(await app.http.post('/api/v1/componenttypes').send({ name: 1 }).expect(400), 'post', '/componenttypes')
      const invalid = await app.http.post('/api/v1/componenttypes').set('Content-Type', 'application/json').send('{"name":').expect(400)
      check.expectDocumented(invalid, 'post', '/componenttypes')
      const ct = await createType(app, 'a')
      check.expectDocumented(
        await app.http.put(`/api/v1/componenttypes/${ct.id}`).set('If-Match', ct.etag).send({ colour: 'red' }).expect(400),
        'put',
        '/componenttypes/{id}',
      )
    })

    it('404s are documented on detail, update and delete', async () => {
      check.expectDocumented(await app.http.get(`/api/v1/componenttypes/${MISSING}`).expect(404), 'get', '/componenttypes/{id}')
      check.expectDocumented(
        await app.http.put(`/api/v1/componenttypes/${MISSING}`).set('If-Match', '*').send({ name: 'x' }).expect(404),
        'put',
        '/componenttypes/{id}',
      )
      check.expectDocumented(await app.http.delete(`/api/v1/componenttypes/${MISSING}`).set('If-Match', '*').expect(404), 'delete', '/componenttypes/{id}')
    })

    it('412s are documented: If-Match missing or stale, on PUT and DELETE', async () => {
      const ct = await createType(app, 'a')
      check.expectDocumented(await app.http.put(`/api/v1/componenttypes/${ct.id}`).send({ name: 'b' }).expect(412), 'put', '/componenttypes/{id}')
      check.expectDocumented(
        await app.http.put(`/api/v1/componenttypes/${ct.id}`).set('If-Match', '"0123"').send({ name: 'b' }).expect(412),
        'put',
        '/componenttypes/{id}',
      )
      check.expectDocumented(await app.http.delete(`/api/v1/componenttypes/${ct.id}`).expect(412), 'delete', '/componenttypes/{id}')
      check.expectDocumented(await app.http.delete(`/api/v1/componenttypes/${ct.id}`).set('If-Match', '"0123"').expect(412), 'delete', '/componenttypes/{id}')
    })

    it('409s are documented: a duplicate unique name on POST and PUT, a delete of a row still referenced', async () => {
      const a = await createType(app, 'a')
      const b = await createType(app, 'b')
      check.expectDocumented(await app.http.post('/api/v1/componenttypes').send({ name: 'a' }).expect(409), 'post', '/componenttypes')
      check.expectDocumented(
        await app.http.put(`/api/v1/componenttypes/${b.id}`).set('If-Match', b.etag).send({ name: 'a' }).expect(409),
        'put',
        '/componenttypes/{id}',
      )
      await createComponent(app, 'c', a.id)
      check.expectDocumented(await app.http.delete(`/api/v1/componenttypes/${a.id}`).set('If-Match', a.etag).expect(409), 'delete', '/componenttypes/{id}')
    })

    it('422s are documented: a component pointing to a missing componenttype, on POST and PUT', async () => {
      const body = { name: 'c', componenttype: MISSING }
      check.expectDocumentedBody(body, 'post', '/components')
      check.expectDocumented(await app.http.post('/api/v1/components').send(body).expect(422), 'post', '/components')
      const ct = await createType(app, 't')
      const c = await createComponent(app, 'c', ct.id)
      check.expectDocumented(
        await app.http.put(`/api/v1/components/${c.id}`).set('If-Match', c.etag).send({ componenttype: MISSING }).expect(422),
        'put',
        '/components/{id}',
      )
    })

    it('413 and 415 are documented on POST and PUT', async () => {
      const small = await testApp({ bodyLimit: '100b' })
      check.expectDocumented(
        await small.http
          .post('/api/v1/componenttypes')
          .send({ name: 'x'.repeat(200) })
          .expect(413),
        'post',
        '/componenttypes',
      )
      check.expectDocumented(
        await app.http.post('/api/v1/componenttypes').set('Content-Type', 'text/plain').send('name=a').expect(415),
        'post',
        '/componenttypes',
      )
      const ct = await createType(app, 'a')
      check.expectDocumented(
        await app.http.put(`/api/v1/componenttypes/${ct.id}`).set('If-Match', ct.etag).set('Content-Type', 'text/plain').send('x').expect(415),
        'put',
        '/componenttypes/{id}',
      )
    })

    it('a method a path does not have answers the documented 405 with Allow', async () => {
      const res = await app.http.patch(`/api/v1/componenttypes/${MISSING}`).send({ name: 'x' }).expect(405)
      expect(doc.paths['/componenttypes/{id}']).to.not.have.property('patch')
      check.expectResponse(res, doc.components.responses.MethodNotAllowed as Json, 'PATCH /componenttypes/{id}')
      expect(res.headers.allow).to.include('PUT')
    })

    it('an unreachable database answers a documented 5XX', async () => {
      // knex's warning about the refused connection comes here, not as a stack on the console.
      const warnings: string[] = []
      const db = openDatabase({ url: 'postgres://postgres@127.0.0.1:5129/nowhere', logger: { warn: (_details, message) => warnings.push(message) } })
      try {
        const down = await createEngine({ db, schemasDir: SCHEMAS, plugins, checkSchema: false, logger: { error() {}, info() {} } })
        const res = await supertest(down.app().callback()).get('/api/v1/componenttypes').expect(503)
        check.expectDocumented(res, 'get', '/componenttypes')
        expect(
          warnings.some((w) => w.includes('ECONNREFUSED 127.0.0.1:5129')),
          `knex warnings: ${JSON.stringify(warnings)}`,
        ).to.equal(true)
      } finally {
        await db.destroy()
      }
    })

    it('with a rate limit, every operation documents the 429 with Retry-After and the RateLimit headers, and live answers match; without one, no 429', async () => {
      const operationsOf = (d: OpenApiDocument) =>
        Object.values(d.paths).flatMap((item) =>
          Object.entries(item)
            .filter(([key]) => ['get', 'put', 'post', 'delete', 'patch'].includes(key))
            .map(([, op]) => op as Json),
        )
      for (const operation of operationsOf(doc)) expect(operation.responses).to.not.have.property('429')
      const limited = await testApp({ rateLimit: { points: 2, windowSeconds: 60 } })
      const ldoc: OpenApiDocument = (await limited.http.get('/api/v1/openapi.json').expect(200)).body
      const { valid } = await validate(structuredClone(ldoc) as never)
      expect(valid).to.equal(true)
      const operations = operationsOf(ldoc)
      expect(operations.length).to.be.above(10)
      for (const operation of operations) expect(operation.responses['429']).to.deep.equal({ $ref: '#/components/responses/TooManyRequests' })
      const tooMany = ldoc.components.responses.TooManyRequests as Json
      expect(Object.keys(tooMany.headers)).to.have.members(['Retry-After', 'RateLimit-Policy', 'RateLimit'])
      expect(tooMany.description).to.include('At most 2 requests per 60 s')
      const lcheck = documentChecker(ldoc)
      // The openapi.json read above was the first of the two; the next is the second, then a 429.
      const ok = await limited.http.get('/api/v1/componenttypes').expect(200)
      expect(lcheck.expectDocumented(ok, 'get', '/componenttypes')).to.equal(200)
      expect(ok.headers.ratelimit).to.match(/^"default";r=0;t=\d+$/)
      const refused = await limited.http.get('/api/v1/componenttypes').expect(429)
      expect(lcheck.expectDocumented(refused, 'get', '/componenttypes')).to.equal(429)
      expect(refused.headers['retry-after']).to.match(/^\d+$/)
    })

    it('every registered resource answers a documented empty list and a documented 404', async () => {
      for (const resource of app.engine.resources.values()) {
        const list = await app.http.get(`/api/v1/${resource.plural}`).expect(200)
        expect(list.body[resource.plural]).to.deep.equal([])
        check.expectDocumented(list, 'get', `/${resource.plural}`)
        check.expectDocumented(await app.http.get(`/api/v1/${resource.plural}/${MISSING}`).expect(404), 'get', `/${resource.plural}/{id}`)
      }
    })
  })

  describe('resources come from the schema files, with no code', () => {
    it('toDraft2020 drops x- keywords at any depth but keeps properties named x-..., and splits dependencies', () => {
      const draft07 = {
        type: 'object',
        'x-index': true,
        properties: { 'x-tag': { type: 'string', 'x-relation': 'team' }, a: { type: 'string' }, b: { type: 'object', properties: { c: { type: 'integer' } } } },
        dependencies: { a: ['b'], b: { required: ['a'] } },
        definitions: { d: { type: 'array', items: [{ type: 'string' }], additionalItems: { type: 'integer' } } },
      }
      expect(toDraft2020(draft07)).to.deep.equal({
        type: 'object',
        properties: { 'x-tag': { type: 'string' }, a: { type: 'string' }, b: { type: 'object', properties: { c: { type: 'integer' } } } },
        dependentRequired: { a: ['b'] },
        dependentSchemas: { b: { required: ['a'] } },
        $defs: { d: { type: 'array', prefixItems: [{ type: 'string' }], items: { type: 'integer' } } },
      })
    })

    it('every schema file in schemas/ has its paths and its schemas in the document', () => {
      for (const file of fs.readdirSync(SCHEMAS).filter((f) => f.endsWith('.json'))) {
        const schema = JSON.parse(fs.readFileSync(path.join(SCHEMAS, file), 'utf8'))
        const name = path.basename(file, '.json')
        const plural = schema['x-plural'] ?? `${name}s`
        expect(doc.paths, file).to.include.keys(`/${plural}`, `/${plural}/{id}`)
        const stored = doc.components.schemas[name] as Json
        const aliases = Object.values(schema.properties as Record<string, Json>).flatMap((p) => (p['x-alias'] ? [p['x-alias']] : []))
        expect(Object.keys(stored.properties), file).to.have.members(['id', ...Object.keys(schema.properties), ...aliases, 'created_at', 'updated_at', 'etag'])
        // The owner field (the access rules fill in the caller's team) and fields with a default may be omitted;
        // a field with an alias is required under either name.
        const omissible = (f: string) => f === schema['x-owner'] || schema.properties[f].default !== undefined
        const requiredHere = (schema.required ?? []).filter((f: string) => !omissible(f))
        const create = doc.components.schemas[`${name}.create`] as Json
        expect(create.required, file).to.deep.equal(requiredHere.filter((f: string) => !schema.properties[f]['x-alias']))
        const either = requiredHere.filter((f: string) => schema.properties[f]['x-alias'])
        const alternatives = [...(create.anyOf ? [create] : []), ...(create.allOf ?? [])].map((a: Json) => a.anyOf.map((b: Json) => b.required[0]))
        expect(alternatives, file).to.deep.equal(either.map((f: string) => [f, schema.properties[f]['x-alias']]))
      }
    })

    it('a schema file dropped in the schemas folder is documented: paths, schemas, nullable optional fields, draft-07 tuples as prefixItems', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-openapi-'))
      try {
        for (const file of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, file), path.join(dir, file))
        fs.writeFileSync(
          path.join(dir, 'gadget.json'),
          JSON.stringify({
            title: 'gadget',
            type: 'object',
            'x-unique': [['label']],
            properties: {
              label: { type: 'string', minLength: 1 },
              size: { type: 'integer', minimum: 0 },
              colour: { type: 'string', enum: ['red', 'blue'] },
              kind: { type: 'string', const: 'gadget' },
              pair: { type: 'array', items: [{ type: 'string' }, { type: 'integer' }], minItems: 2, additionalItems: false },
              owner: { type: 'string', format: 'uuid', 'x-relation': { resource: 'componenttype', onDelete: 'set null' } },
            },
            required: ['label'],
            additionalProperties: false,
            examples: [{ label: 'knob', size: 3 }],
          }),
        )
        // The document needs no table: only the schema file is new.
        const engine = await createEngine({ db: await testDatabase(), schemasDir: dir, plugins, checkSchema: false })
        const gadgets = engine.openapi()
        const result = await validate(structuredClone(gadgets) as never)
        expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true)
        expect(Object.keys(gadgets.paths['/gadgets'])).to.have.members(['get', 'post'])
        expect(Object.keys(gadgets.paths['/gadgets/{id}'])).to.include.members(['get', 'put', 'delete'])
        const gadget = gadgets.components.schemas.gadget as Json
        expect(gadget.properties.size.type).to.deep.equal(['integer', 'null'])
        expect(gadget.properties.colour.enum).to.deep.equal(['red', 'blue', null])
        expect(gadget.properties.kind).to.deep.equal({ type: ['string', 'null'], enum: ['gadget', null] })
        expect(gadget.properties.pair).to.deep.equal({
          type: ['array', 'null'],
          prefixItems: [{ type: 'string' }, { type: 'integer' }],
          minItems: 2,
          items: false,
        })
        expect(gadget.properties.owner.oneOf).to.deep.include({ type: 'null' })
        for (const variant of ['gadget', 'gadget.create', 'gadget.update']) {
          const properties = (gadgets.components.schemas[variant] as Json).properties
          expect(properties.owner['x-relation'], variant).to.deep.equal({ resource: 'componenttype', plural: 'componenttypes' })
          expect(properties.label, variant).to.not.have.property('x-relation')
        }
        expect(gadget, 'examples are bodies, not stored objects').to.not.have.property('examples')
        expect((gadgets.components.schemas['gadget.create'] as Json).examples).to.deep.equal([{ label: 'knob', size: 3 }])
        const validGadget = {
          id: MISSING,
          label: 'x',
          size: null,
          colour: 'red',
          kind: null,
          pair: ['a', 1],
          owner: null,
          created_at: '2026-01-01T00:00:00.000Z',
          updated_at: '2026-01-01T00:00:00.000Z',
          etag: '0'.repeat(32),
        }
        const checkGadget = documentChecker(gadgets)
        checkGadget.expectValid({ $ref: '#/components/schemas/gadget' }, validGadget, 'a stored gadget')
        expect(checkGadget.compile({ $ref: '#/components/schemas/gadget' })({ ...validGadget, pair: ['a', 1, 2] }), 'a third tuple item').to.equal(false)
        const where = ((gadgets.paths['/gadgets'].get as Json).parameters as Json[]).find((p) => p.name === 'where')!
        expect(where.schema.items.pattern).to.equal('^(?:id|created_at|updated_at|label|size|colour|kind|owner):[^,]*$')
        const put = gadgets.paths['/gadgets/{id}'].put as Json
        expect(Object.keys(put.responses)).to.include.members(['409', '422'])
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })

    it('embed and fields list every path up to 3 relations (a relation to itself too), and past 200 values describe them by a pattern', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-openapi-'))
      try {
        for (const file of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, file), path.join(dir, file))
        const relation = (resource: string) => ({ type: 'string', format: 'uuid', 'x-relation': { resource, onDelete: 'set null' } })
        // A twig has a parent twig: parent, parent.parent, parent.parent.parent. A knot has six
        // relations to knots: 6 + 36 + 216 paths, more than the document lists.
        fs.writeFileSync(
          path.join(dir, 'twig.json'),
          JSON.stringify({ title: 'twig', type: 'object', properties: { label: { type: 'string' }, parent: relation('twig') }, additionalProperties: false }),
        )
        const knotRelations = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((name) => [name, relation('knot')]))
        fs.writeFileSync(path.join(dir, 'knot.json'), JSON.stringify({ title: 'knot', type: 'object', properties: knotRelations, additionalProperties: false }))
        const engine = await createEngine({ db: await testDatabase(), schemasDir: dir, plugins, checkSchema: false })
        const doc = engine.openapi()
        const result = await validate(structuredClone(doc) as never)
        expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true)
        const parameter = (route: string, name: string) => ((doc.paths[route].get as Json).parameters as Json[]).find((p) => p.name === name)!
        expect(parameter('/twigs', 'embed').schema.items).to.deep.equal({ type: 'string', enum: ['parent', 'parent.parent', 'parent.parent.parent'] })
        expect(parameter('/twigs/{id}', 'fields').schema.items.enum).to.include.members([
          'label',
          'parent.label',
          'parent.parent.parent.label',
          'parent.parent.parent.etag',
        ])
        expect(parameter('/twigs', 'fields').schema.items.enum).to.not.include('parent.parent.parent.parent.label')
        const embed = parameter('/knots', 'embed').schema.items
        expect(embed).to.deep.equal({ type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*){0,2}$' })
        const pattern = new RegExp(embed.pattern)
        expect(['a', 'a.b', 'f.e.d'].every((p) => pattern.test(p))).to.equal(true)
        expect(['a.b.c.d', 'a..b', ''].some((p) => pattern.test(p))).to.equal(false)
        expect(parameter('/knots', 'fields').schema.items).to.deep.equal({
          type: 'string',
          pattern: '^[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*){0,3}$',
        })
        expect(JSON.stringify(doc.paths['/knots']).length, 'the knots operations stay small').to.be.below(20_000)
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    })
  })
})

/** Every name of a property reachable from `schema`, following `$ref`s into the document's components. */
function propertyNames(doc: OpenApiDocument, schema: unknown, seen = new Set<string>()): Set<string> {
  const names = new Set<string>()
  const walk = (value: unknown) => {
    if (!value || typeof value !== 'object') return
    if (Array.isArray(value)) return value.forEach(walk)
    const object = value as Json
    if (typeof object.$ref === 'string') {
      if (seen.has(object.$ref)) return
      seen.add(object.$ref)
      const [, section, name] = /^#\/components\/(\w+)\/(.+)$/.exec(object.$ref) ?? []
      return walk((doc.components as Json)[section]?.[name])
    }
    if (object.properties && typeof object.properties === 'object') for (const name of Object.keys(object.properties)) names.add(name)
    for (const child of Object.values(object)) walk(child)
  }
  walk(schema)
  return names
}

describe("the server's OpenAPI document (identity and access on)", () => {
  let app: ServerApp
  let doc: OpenApiDocument
  let check: ReturnType<typeof documentChecker>
  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      (['get', 'put', 'post', 'delete', 'patch'] as const).filter((m) => item[m]).map((method) => ({ path, method, operation: item[method] as Json })),
    )
  before(async function () {
    this.timeout(120_000)
    app = await serverApp()
    doc = (await app.http.get('/api/v1/openapi.json').expect(200)).body
    check = documentChecker(doc)
  })
  after(async () => {
    await resetTables(app.db)
  })

  it('is valid OpenAPI 3.1 and declares the Basic and Bearer schemes, required everywhere but the index', async () => {
    const result = await validate(structuredClone(doc) as never)
    expect(result.valid, result.valid ? '' : compileErrors(result)).to.equal(true)
    const secured = doc as unknown as Json
    expect(Object.keys(secured.components.securitySchemes)).to.have.members(['basic', 'bearer'])
    expect(secured.components.securitySchemes.basic).to.include({ type: 'http', scheme: 'basic' })
    expect(secured.components.securitySchemes.bearer).to.include({ type: 'http', scheme: 'bearer' })
    expect(secured.security).to.deep.equal([{ basic: [] }, { bearer: [] }])
    expect((doc.paths['/'].get as Json).security).to.deep.equal([])
  })

  it('documents 401 unauthorized and 403 forbidden on every operation but the index', () => {
    const all = operations()
    expect(all.map((o) => o.path)).to.include.members([
      '/users',
      '/users/{id}',
      '/audits',
      '/identity',
      '/users/{id}/apikeys',
      '/remotecis/{id}/apikeys/{keyid}',
    ])
    for (const { path, method, operation } of all) {
      if (path === '/') {
        expect(operation.responses, 'the index').to.not.have.any.keys('401', '403')
        continue
      }
      expect(operation.responses['401'], `${method} ${path}`).to.deep.equal({ $ref: '#/components/responses/Unauthorized' })
      expect(operation.responses['403'], `${method} ${path}`).to.deep.equal({ $ref: '#/components/responses/Forbidden' })
    }
    expect((doc.components.schemas.Forbidden as Json).properties.code.enum).to.include('forbidden')
    expect((doc.components.schemas.Unauthorized as Json).properties.code.enum).to.include('unauthorized')
  })

  it('a read-only resource (audits) has GET operations only and no body schema; its writes answer the documented 405', async () => {
    expect(Object.keys(doc.paths['/audits'])).to.deep.equal(['get'])
    expect(Object.keys(doc.paths['/audits/{id}'])).to.have.members(['parameters', 'get'])
    expect(doc.components.schemas).to.include.keys('audit', 'audit.detail', 'audit.list')
    expect(doc.components.schemas).to.not.have.any.keys('audit.create', 'audit.update')
    const auth = ADMIN_AUTH
    const http = app.http
    const list = await http.get('/api/v1/audits').set('Authorization', auth).expect(200)
    check.expectDocumented(list, 'get', '/audits')
    const refused = [
      await http.post('/api/v1/audits').set('Authorization', auth).send({ identity_kind: 'user', action: 'create' }),
      await http.put(`/api/v1/audits/${MISSING}`).set('Authorization', auth).set('If-Match', '*').send({ action: 'x' }),
      await http.delete(`/api/v1/audits/${MISSING}`).set('Authorization', auth).set('If-Match', '*'),
    ]
    for (const res of refused) {
      expect(res.status, res.text).to.equal(405)
      check.expectResponse(res, doc.components.responses.MethodNotAllowed as Json, `${res.request.method} /audits`)
      expect(res.headers.allow).to.not.match(/POST|PUT|DELETE/)
    }
  })

  it('GET /identity answers the documented identity and permissions, both required, one entry per resource plural', async () => {
    const res = await app.http.get('/api/v1/identity').set('Authorization', ADMIN_AUTH).expect(200)
    check.expectDocumented(res, 'get', '/identity')
    const schema = check.deref((doc.paths['/identity'].get as Json).responses['200']).content['application/json'].schema
    expect(schema.required).to.have.members(['identity', 'permissions'])
    expect(schema.additionalProperties).to.equal(false)
    expect(Object.keys(res.body.permissions)).to.have.members([...app.engine.resources.values()].map((r) => r.plural))
    expect(res.body.permissions.audits).to.deep.equal({ read: true, create: false, update: false, delete: false })
    const answer = check.compile(schema)
    expect(answer({ identity: res.body.identity }), 'without permissions').to.equal(false)
    expect(answer({ ...res.body, permissions: { teams: { read: true } } }), 'a flag missing').to.equal(false)
    // The user's team is a relation: documented with the resource it points to.
    const user = (doc.components.schemas as Record<string, Json>).user
    expect(user.properties.team['x-relation']).to.deep.equal({ resource: 'team', plural: 'teams' })
  })

  it('the write-only password is in the user create and update bodies, and in no response schema of any operation', () => {
    const schemas = doc.components.schemas as Record<string, Json>
    expect(schemas['user.create'].properties.password).to.include({ type: 'string', writeOnly: true })
    expect(schemas['user.create'].required).to.include('password')
    expect(schemas['user.update'].properties.password).to.include({ writeOnly: true })
    expect(schemas.user.properties).to.not.have.property('password')
    // The walk sees the answers' fields: the user's own, and the token of a new API key.
    const answer = (path: string, method: 'get' | 'post', status: string) => [
      ...propertyNames(doc, check.deref((doc.paths[path][method] as Json).responses[status])),
    ]
    expect(answer('/users/{id}', 'get', '200')).to.include.members(['name', 'email', 'role', 'team'])
    expect(answer('/users/{id}/apikeys', 'post', '201')).to.include('token')
    for (const { path, method, operation } of operations()) {
      for (const [status, response] of Object.entries(operation.responses as Record<string, Json>)) {
        expect([...propertyNames(doc, check.deref(response))], `${method} ${path} ${status}`).to.not.include('password')
      }
    }
  })
})
