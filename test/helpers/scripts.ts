import { spawn } from 'node:child_process'
import { ROOT } from '../support'

export interface ScriptRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a project script (`scripts/user.ts`...) as `npm run` would (node with tsx's loader), from the project root, with `env` added. */
export function runScript(file: string, args: string[], env: Record<string, string>): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', file, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}
