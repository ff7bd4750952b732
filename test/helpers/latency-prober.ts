/**
 * Times GETs of one URL from a process of its own, for the load tests: the latency it reports is the
 * server's and the machine's, not the test runner's (whose event loop parses the server's log lines
 * and whose heap has grown with the whole suite by the time a load test runs).
 *
 * Run: `node --require tsx/cjs test/helpers/latency-prober.ts <url> <authorization> <durationMs> <gapMs>`.
 * It opens its one keep-alive connection with a first GET, prints `ready`, waits for a line on stdin,
 * then GETs the URL for `durationMs` (one at a time, `gapMs` apart) and prints one JSON line:
 * `{"latencies": [ms...], "statuses": [status...]}`.
 */
import { keepAliveAgent, request, sleep } from './http-client'

async function main(): Promise<void> {
  const [url, authorization, durationMs, gapMs] = process.argv.slice(2)
  const headers = { authorization }
  const agent = keepAliveAgent({ maxSockets: 1 })
  const first = await request(agent, 'GET', url, { headers })
  if (first.status !== 200) throw new Error(`the first GET of ${url} answered ${first.status}`)
  process.stdout.write('ready\n')
  await new Promise((resolve) => process.stdin.once('data', resolve))
  const latencies: number[] = []
  const statuses: number[] = []
  const until = Date.now() + Number(durationMs)
  while (Date.now() < until) {
    const started = process.hrtime.bigint()
    const res = await request(agent, 'GET', url, { headers, timeoutMs: 30_000 })
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
    statuses.push(res.status)
    await sleep(Number(gapMs))
  }
  agent.destroy()
  process.stdout.write(`${JSON.stringify({ latencies, statuses })}\n`)
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err?.stack ?? err}\n`)
    process.exit(1)
  },
)
