import fs from 'node:fs'
import path from 'node:path'
import { builtinModules } from 'node:module'
import { expect } from 'chai'
import ts from 'typescript'

// The typed client ships on its own (in a browser too): client/ imports nothing outside client/, no package and no
// Node builtin. Checked twice: every import written in client/ (type-only ones included, which a bundler erases), and
// what a browser bundle of client/index.ts actually pulls in.

const ROOT = path.resolve(__dirname, '..')
const CLIENT = path.join(ROOT, 'client')
const inClient = (file: string) => path.relative(CLIENT, file).split(path.sep)[0] !== '..'
const isBuiltin = (specifier: string) => specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])

function clientFiles(dir = CLIENT): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return clientFiles(full)
    return /\.(ts|tsx|js|mjs|cjs)$/.test(entry.name) ? [full] : []
  })
}

describe('client/ stands alone', () => {
  it('every import in client/, type-only ones included, stays inside client/', () => {
    const files = clientFiles()
    expect(files).to.include(path.join(CLIENT, 'index.ts'))
    const outside: string[] = []
    for (const file of files) {
      const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true)
      for (const { fileName: specifier } of importedFiles) {
        const relative = specifier.startsWith('./') || specifier.startsWith('../')
        if (!relative || !inClient(path.resolve(path.dirname(file), specifier))) outside.push(`${path.relative(ROOT, file)} imports '${specifier}'`)
      }
    }
    expect(outside).to.deep.equal([])
  })

  it('client/index.ts bundles for the browser from client/ files alone', async () => {
    // esbuild comes with tsx; required at run time so that it is not a direct dependency of the project.
    const esbuild = require('esbuild') as typeof import('esbuild')
    const imports: string[] = []
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: [path.join(CLIENT, 'index.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      plugins: [
        {
          name: 'record-imports',
          setup(build) {
            build.onResolve({ filter: /.*/ }, (args) => {
              if (args.kind !== 'entry-point') imports.push(args.path)
              return undefined
            })
          },
        },
      ],
    })
    expect(imports.filter(isBuiltin), 'Node builtins').to.deep.equal([])
    const inputs = Object.keys(result.metafile.inputs).map((input) => path.resolve(ROOT, input))
    expect(inputs).to.include(path.join(CLIENT, 'index.ts'))
    expect(inputs.filter((input) => !inClient(input)).map((input) => path.relative(ROOT, input))).to.deep.equal([])
  })
})
