/**
 * `npm run types:generate`: writes resources/types/<name>.ts for every schema (the stored object and
 * the body a client sends) and resources/types/index.ts. The files are committed; test/generated.test.ts
 * fails when they differ from what this script writes.
 */
import fs from 'node:fs'
import path from 'node:path'
import { compile, type JSONSchema } from 'json-schema-to-typescript'
import { aliasSchema, answeredFields, createRequired, ENGINE_FIELDS, fieldSchema } from '../core/schema/derive'
import { loadSchemas } from '../core/schema/loader'
import type { ActionDefinition } from '../core/plugins/plugin'
import type { ExtraKeywords, JsonSchema, ResourceDefinition } from '../core/schema/types'

const root = path.resolve(__dirname, '..')
const OPTIONS = {
  additionalProperties: true,
  unknownAny: true,
  strictIndexSignatures: false,
  style: { semi: false, singleQuote: true, printWidth: 120 },
} as const

/** A property's schema without the engine's `x-` keywords, which are not JSON Schema. */
function plain(schema: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(schema).filter(([key]) => !key.startsWith('x-')))
}

/** `remoteci` -> `Remoteci`: the type name of a resource. */
function typeName(name: string): string {
  return name.replace(/(^|_)([a-z0-9])/g, (_m, _s, c: string) => c.toUpperCase())
}

/** The two JSON Schemas a resource's types come from: the client's body and the stored object. */
function typeSchemas(def: ResourceDefinition): { input: JSONSchema; stored: JSONSchema } {
  const name = typeName(def.name)
  const props = Object.fromEntries(def.fields.map((f) => [f.name, fieldSchema(f, plain)]))
  // An alias is optional in a body (the field's own name is the typed client's) and answered beside its field.
  const aliases = Object.fromEntries(def.fields.filter((f) => f.alias).map((f) => [f.alias, aliasSchema(f, props[f.name])]))
  const input = {
    title: `${name}Input`,
    description: `What a client sends to create a ${def.name} (POST /${def.plural}); PUT takes any part of it.`,
    type: 'object',
    properties: { ...props, ...aliases },
    required: createRequired(def),
    additionalProperties: false,
  }
  // Engine fields are strings on the wire; write-only fields are never answered.
  const engine = Object.fromEntries(ENGINE_FIELDS.map((f) => [f.name, { type: 'string', description: String(f.schema.description) }]))
  const storedProps = {
    id: engine.id,
    ...Object.fromEntries(answeredFields(def).map((f) => [f.name, props[f.name]])),
    ...Object.fromEntries(
      answeredFields(def)
        .filter((f) => f.alias)
        .map((f) => [f.alias, aliases[f.alias!]]),
    ),
    created_at: engine.created_at,
    updated_at: engine.updated_at,
    etag: engine.etag,
  }
  const stored = {
    title: name,
    description: `${String(def.schema.description ?? `A ${def.name}.`)} As stored and answered by the API: unset optional fields are null.`,
    type: 'object',
    properties: storedProps,
    required: Object.keys(storedProps),
    additionalProperties: false,
  }
  return { input: input as JSONSchema, stored: stored as JSONSchema }
}

/** What plugins add that the types depend on: schema keywords, schema files and actions. */
export interface TypeSources {
  keywords?: ExtraKeywords
  schemaFiles?: readonly string[]
  actions?: readonly ActionDefinition<any>[]
}

/** `actions.ts`: how to call each action (`ACTIONS`, for `createClient`) and its types (`Actions`). */
async function actionTypes(actions: readonly ActionDefinition<any>[], defs: ResourceDefinition[]): Promise<string> {
  const byName = new Map(defs.map((d) => [d.name, d]))
  const routes: string[] = []
  const entries: string[] = []
  const declarations: string[] = []
  const imports = new Set<string>()
  for (const action of actions) {
    const listed = action.list ? byName.get(action.list) : undefined
    const pathParams = Object.keys(action.pathParams ?? {})
    routes.push(`  ${action.name}: { method: '${action.method}', path: '${action.path}'${listed ? `, list: '${listed.plural}'` : ''} },`)
    const base = typeName(action.name)
    let body = 'undefined'
    if (action.input) {
      declarations.push(await compile(plain(action.input) as JSONSchema, `${base}Body`, { ...OPTIONS, bannerComment: '' }))
      body = `${base}Body`
    }
    let output: string
    let query = 'Record<string, string>'
    if (listed) {
      imports.add(typeName(listed.name))
      output = `ListPage<${typeName(listed.name)}>`
      // The output's `count` is a number: such a query does not take `count: 'none'`.
      query = `ListParams<${typeName(listed.name)}, never, 'estimate' | 'exact'>`
    } else if (action.status === 204) output = 'undefined'
    else {
      declarations.push(await compile(plain(action.output ?? { type: 'object' }) as JSONSchema, `${base}Output`, { ...OPTIONS, bannerComment: '' }))
      output = `${base}Output`
    }
    const path = pathParams.length ? `{ ${pathParams.map((p) => `${p}: string`).join('; ')} }` : 'Record<string, never>'
    entries.push(`  ${action.name}: { path: ${path}; query: ${query}; body: ${body}; output: ${output} }`)
  }
  return [
    '/* Generated by `npm run types:generate` from the actions of the plugins: do not edit. */',
    `import type { ListPage, ListParams } from '../../client'`,
    ...[...imports].map((t) => `import type { ${t} } from './${defs.find((d) => typeName(d.name) === t)!.name}'`),
    '',
    '/** How to call each action: pass it to `createClient({ ..., actions: ACTIONS })`. */',
    'export const ACTIONS = {',
    ...routes,
    '} as const',
    '',
    '/** Each action by name: its path parameters, query, body and answer. */',
    'export interface Actions {',
    ...entries,
    '}',
    ...(declarations.length ? ['', ...declarations] : []),
    '',
  ].join('\n')
}

/** The text of every generated file, by file name. Pure: writes nothing. */
export async function renderTypes(schemasDir: string, sources: TypeSources = {}): Promise<Map<string, string>> {
  const defs = loadSchemas(schemasDir, sources.keywords, sources.schemaFiles)
  const files = new Map<string, string>()
  for (const def of defs) {
    const { input, stored } = typeSchemas(def)
    const banner = `/* Generated by \`npm run types:generate\` from schemas/${path.basename(def.file)}: do not edit. */`
    const storedText = await compile(stored, typeName(def.name), { ...OPTIONS, bannerComment: banner })
    // A read-only resource (x-read-only) takes no body: it has no input type.
    const inputText = def.readOnly ? '' : `\n${await compile(input, `${typeName(def.name)}Input`, { ...OPTIONS, bannerComment: '' })}`
    files.set(`${def.name}.ts`, `${storedText}${inputText}`)
  }
  const names = defs.map((d) => [d, typeName(d.name)] as const)
  const exported = ([d, t]: (typeof names)[number]) => (d.readOnly ? t : `${t}, ${t}Input`)
  files.set(
    'index.ts',
    [
      '/* Generated by `npm run types:generate`: do not edit. */',
      ...names.map((n) => `import type { ${exported(n)} } from './${n[0].name}'`),
      '',
      `export type { ${names.map(exported).join(', ')} }`,
      '',
      '/**',
      ' * Every resource by route name: its stored object and its create body, or `readOnly` for a resource',
      ' * clients only read (see `createClient` in client/index.ts).',
      ' */',
      'export interface Resources {',
      ...names.map(([d, t]) => `  ${d.plural}: { item: ${t}; ${d.readOnly ? 'readOnly: true' : `input: ${t}Input`} }`),
      '}',
      '',
    ].join('\n'),
  )
  if (sources.actions?.length) files.set('actions.ts', await actionTypes(sources.actions, defs))
  return files
}

/** Replaces the contents of `outDir` with the generated files. */
export async function writeTypes(schemasDir: string, outDir: string, sources: TypeSources = {}): Promise<string[]> {
  const files = await renderTypes(schemasDir, sources)
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  for (const [name, text] of files) fs.writeFileSync(path.join(outDir, name), text)
  return [...files.keys()]
}

if (require.main === module) {
  // Loaded here, not at the top: the generator itself depends on no project plugin.
  const { projectContributions } = require('./project') as typeof import('./project')
  writeTypes(path.join(root, 'schemas'), path.join(root, 'resources', 'types'), projectContributions())
    .then((names) => console.log(`wrote resources/types/: ${names.join(', ')}`))
    .catch((err) => {
      console.error(`types:generate failed: ${err?.message ?? err}`)
      process.exitCode = 1
    })
}
