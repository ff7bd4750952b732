import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { expect } from 'chai'
import { projectContributions } from '../tooling/project'
import { writeTypes } from '../tooling/type-generator'
import { ROOT, SCHEMAS } from './support'

const COMMITTED = path.join(ROOT, 'resources', 'types')

describe('generated types (npm run types:generate)', () => {
  it('regenerating resources/types/ from schemas/ changes nothing: the committed files are current', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dci-types-'))
    try {
      const written = await writeTypes(SCHEMAS, dir, projectContributions())
      const committed = fs.readdirSync(COMMITTED).sort()
      expect(committed, 'files in resources/types/ (run npm run types:generate)').to.deep.equal([...written].sort())
      for (const name of written) {
        expect(fs.readFileSync(path.join(COMMITTED, name), 'utf8'), `resources/types/${name} is stale: run npm run types:generate`).to.equal(
          fs.readFileSync(path.join(dir, name), 'utf8'),
        )
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a resource type has the engine fields and the input type has not; x- keywords leave no trace', async () => {
    const text = fs.readFileSync(path.join(COMMITTED, 'remoteci.ts'), 'utf8')
    const stored = /export interface Remoteci \{([\s\S]*?)\n\}/.exec(text)?.[1] ?? ''
    const input = /export interface RemoteciInput \{([\s\S]*?)\n\}/.exec(text)?.[1] ?? ''
    for (const field of ['id', 'created_at', 'updated_at', 'etag']) {
      expect(stored).to.match(new RegExp(`\\n  ${field}: string(\\n|$)`))
      expect(input).not.to.match(new RegExp(`\\n  ${field}\\??:`))
    }
    expect(stored).to.match(/\n {2}team: string\n/)
    expect(input).to.match(/\n {2}data\?: \{/)
    expect(text).not.to.match(/x-relation|x-unique|x-plural|x-index/)
  })

  it('the write-only password is in the input type only; a read-only resource (audits) has no input type and is readOnly in Resources', () => {
    const user = fs.readFileSync(path.join(COMMITTED, 'user.ts'), 'utf8')
    const stored = /export interface User \{([\s\S]*?)\n\}/.exec(user)?.[1] ?? ''
    const input = /export interface UserInput \{([\s\S]*?)\n\}/.exec(user)?.[1] ?? ''
    expect(stored).to.match(/\n {2}name: string\n/)
    expect(stored).not.to.match(/password/)
    expect(input).to.match(/\n {2}password: string\n/)
    // A field with a default (role) and the owner field (team, filled from the caller) may be omitted on create.
    expect(input).to.match(/\n {2}role\?: 'super_admin' \| 'admin' \| 'user'\n/)
    expect(input).to.match(/\n {2}team\?: string(\n|$)/)
    const audit = fs.readFileSync(path.join(COMMITTED, 'audit.ts'), 'utf8')
    expect(audit).to.match(/export interface Audit \{/)
    expect(audit).not.to.match(/AuditInput/)
    const index = fs.readFileSync(path.join(COMMITTED, 'index.ts'), 'utf8')
    expect(index).to.include('  audits: { item: Audit; readOnly: true }')
    expect(index).to.include('  users: { item: User; input: UserInput }')
  })
})
