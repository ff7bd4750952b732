import fs from 'node:fs'
import path from 'node:path'

/** The lock file's name inside DATA_DIR. */
export const LOCK_FILE = 'server.pid'

/** A second process asked for a DATA_DIR that a running process holds. */
export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly pid: number | undefined,
  ) {
    super(
      `DATA_DIR ${dataDir} is in use by ${pid ? `process ${pid}` : 'a process starting now'} (its lock file ${path.join(dataDir, LOCK_FILE)}): ` +
        'the embedded database can be opened by one process at a time. Stop that process first, or point DATA_DIR at another folder.',
    )
    this.name = 'DataDirLockedError'
  }
}

/** True when a process of that id runs (EPERM: it runs, under another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes the folder for this process: creates `DATA_DIR/server.pid` holding the process id, exclusively
 * (O_EXCL). A lock file whose process is gone (a crash, a kill -9) is stale and taken over. Throws
 * {@link DataDirLockedError} naming the folder and the holder when another live process, or an earlier
 * open of this one, holds it. Returns the release, which removes the file if it is still ours.
 */
export function lockDataDir(dataDir: string): () => void {
  const file = path.join(dataDir, LOCK_FILE)
  const mine = String(process.pid)
  for (let attempt = 1; ; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx')
      try {
        fs.writeSync(fd, mine)
      } finally {
        fs.closeSync(fd)
      }
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err
    }
    let holder = Number.NaN
    try {
      holder = Number.parseInt(fs.readFileSync(file, 'utf8'), 10)
    } catch {
      // removed meanwhile by its holder: try again
      continue
    }
    // An empty file is one being written by its creator right now: it is held.
    if (!Number.isInteger(holder) || holder <= 0) {
      const age = Date.now() - fs.statSync(file, { throwIfNoEntry: false })!.mtimeMs
      if (!(age > 5_000)) throw new DataDirLockedError(dataDir, undefined)
    } else if (holder === process.pid || alive(holder)) {
      throw new DataDirLockedError(dataDir, holder)
    }
    // Stale: its process is gone. Removed, then created anew with O_EXCL: of two processes that find
    // it stale, the later one meets the first one's live pid (unless both read the stale file within
    // the same instant, between one's removal and its creation: a window of microseconds).
    fs.rmSync(file, { force: true })
  }
  let released = false
  return () => {
    if (released) return
    released = true
    try {
      if (fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true })
    } catch {
      // already gone
    }
  }
}
