import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { SCHEMAS } from '../support'

/**
 * Temp folders of one test file (scratch schema and migration folders), removed together by
 * `remove()` in the file's `after` hook, so no `/tmp/dci-*` folder outlives the suite.
 */
export function scratchFolders() {
  const made: string[] = []
  const tmpDir = (prefix: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    made.push(dir)
    return dir
  }
  return {
    tmpDir,
    /** A temp folder holding the project's schemas plus the given extra files (name -> JSON value). */
    schemasDir(extra: Record<string, unknown> = {}): string {
      const dir = tmpDir('dci-schemas-')
      for (const f of fs.readdirSync(SCHEMAS)) fs.copyFileSync(path.join(SCHEMAS, f), path.join(dir, f))
      for (const [name, value] of Object.entries(extra)) fs.writeFileSync(path.join(dir, name), JSON.stringify(value, null, 2))
      return dir
    },
    remove(): void {
      for (const dir of made.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}
