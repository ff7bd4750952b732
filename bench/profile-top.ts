/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time, and
 * self time per package. Usage: node dist/bench/profile-top.js FILE.cpuprofile [N]
 */
import fs from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

function packageOf(url: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m) return m[1]
  if (url.startsWith('node:') || url === '') return url || '(native/idle/gc)'
  const d = /\/dist\/([^/]+)\//.exec(url)
  return d ? `project ${d[1]}/` : url
}

function main(): void {
  const [file, top = '30'] = process.argv.slice(2)
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  const perPackage = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!
    const dt = profile.timeDeltas[i] ?? 0
    const { functionName, url, lineNumber } = node.callFrame
    const key = `${functionName || '(anonymous)'} ${url.replace(/^.*node_modules\//, '').replace(/^.*\/dist\//, 'dist/')}:${lineNumber + 1}`
    self.set(key, (self.get(key) ?? 0) + dt)
    perPackage.set(packageOf(url), (perPackage.get(packageOf(url)) ?? 0) + dt)
    total += dt
  })
  const busy = total - (self.get('(idle) :0') ?? 0)
  const show = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${((100 * v) / busy).toFixed(1).padStart(5)}%  ${(v / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n')
  console.log(`total ${(total / 1e6).toFixed(1)} s, busy (not idle) ${(busy / 1e6).toFixed(1)} s; percentages of busy time\n`)
  console.log(`self time by function:\n${show(self, Number(top))}\n\nself time by package:\n${show(perPackage, 25)}`)
}

main()
