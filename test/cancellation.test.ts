import { expect } from 'chai'
import supertest from 'supertest'
import { createEngine, definePlugin, type Engine, type HookContext, type Params } from '../core'
import { Cancellation } from '../core/data/cancellation'
import { cancellableParams, cancellationOf, extendParams } from '../core/service/params'
import { callParams, nestedParams } from '../core/service/service'
import { resourcePlugins } from '../resources'
import { resetTables, SCHEMAS, testDatabase } from './support'

/** Whether the cancellation has made its AbortSignal yet (the cost the lazy signal saves). */
const madeSignal = (c: Cancellation) => (c as unknown as { controller?: AbortController }).controller !== undefined

describe('cancellation: the AbortSignal of a call is made only when read', () => {
  describe('Cancellation', () => {
    it('makes no AbortSignal until one is read; the signal then aborts with the call, with its reason', () => {
      const c = new Cancellation()
      expect(madeSignal(c)).to.equal(false)
      const signal = c.signal
      expect(madeSignal(c)).to.equal(true)
      expect(c.signal).to.equal(signal)
      expect(signal.aborted).to.equal(false)
      const reason = new Error('gone')
      c.abort(reason)
      expect(signal.aborted).to.equal(true)
      expect(signal.reason).to.equal(reason)
    })

    it('a signal first read after the abort is born aborted, with the reason', () => {
      const c = new Cancellation()
      const reason = new Error('deadline')
      c.abort(reason)
      expect(c.aborted).to.equal(true)
      expect(c.signal.aborted).to.equal(true)
      expect(c.signal.reason).to.equal(reason)
    })

    it('calls the cancels registered at the abort, once, and not those removed; a second abort changes nothing', () => {
      const c = new Cancellation()
      const called: string[] = []
      const a = () => called.push('a')
      const b = () => called.push('b')
      c.add(a)
      c.add(b)
      c.remove(b)
      c.abort(new Error('first'))
      c.abort(new Error('second'))
      expect(called).to.deep.equal(['a'])
      expect((c.reason as Error).message).to.equal('first')
    })

    it("Cancellation.of follows a caller's own signal, one object per signal, and maps a made signal back to its cancellation", () => {
      const controller = new AbortController()
      const c = Cancellation.of(controller.signal)
      expect(Cancellation.of(controller.signal)).to.equal(c)
      expect(c.signal).to.equal(controller.signal)
      expect(c.aborted).to.equal(false)
      controller.abort('bye')
      expect(c.aborted).to.equal(true)
      expect(c.reason).to.equal('bye')
      const early = new AbortController()
      early.abort('before')
      expect(Cancellation.of(early.signal)).to.include({ aborted: true, reason: 'before' })
      const own = new Cancellation()
      expect(Cancellation.of(own.signal)).to.equal(own)
    })
  })

  describe('params', () => {
    it('the engine copies cancellable params (callParams, nestedParams, extendParams) without making the signal', () => {
      const c = new Cancellation()
      const params = cancellableParams(c, { provider: 'http' })
      const full = callParams(params)
      const nested = nestedParams(full, {} as never)
      const extended = extendParams(nested, { query: { limit: 1 } })
      expect(madeSignal(c)).to.equal(false)
      for (const p of [params, full, nested, extended]) expect(cancellationOf(p)).to.equal(c)
      expect(full.provider).to.equal('http')
      expect(nested.provider).to.equal('internal')
      // Read, it is the cancellation's signal, in every copy.
      expect(extended.signal).to.equal(c.signal)
      expect(full.signal).to.equal(c.signal)
    })

    it("a plugin's own spread of the params keeps the call's cancellation (not the signal accessor, which stays on ctx.params)", () => {
      const c = new Cancellation()
      const params = cancellableParams(c, { provider: 'http' })
      const copy: Params = { ...params }
      expect(cancellationOf(copy)).to.equal(c)
      expect(copy).to.not.have.property('signal')
      expect(params.signal).to.equal(c.signal)
    })

    it('a signal given explicitly wins over the one the params carried', () => {
      const c = new Cancellation()
      const mine = new AbortController()
      const given = extendParams(cancellableParams(c, {}), { signal: mine.signal })
      expect(given.signal).to.equal(mine.signal)
      expect(cancellationOf(given)).to.equal(Cancellation.of(mine.signal))
      expect(madeSignal(c)).to.equal(false)
    })
  })

  describe('through the engine', function () {
    this.timeout(60_000)
    let engine: Engine
    const seen: Array<{ signal: AbortSignal | undefined; nestedSignal: AbortSignal | undefined }> = []

    before(async () => {
      const db = await testDatabase()
      await resetTables(db)
      const watcher = definePlugin({
        name: 'signal-watcher',
        setup(api) {
          api.hooks('componenttype', {
            after: {
              async create(ctx: HookContext) {
                // A nested call made through ctx.service, from a spread of the params: same signal.
                const page = await ctx.service('componenttype').find({ ...ctx.params, query: { limit: 1 } } as Params)
                seen.push({ signal: ctx.params.signal, nestedSignal: page ? ctx.params.signal : undefined })
              },
            },
          })
        },
      })
      engine = await createEngine({ db, schemasDir: SCHEMAS, plugins: [...resourcePlugins, watcher], checkSchema: false })
    })

    it('hooks of an HTTP call read params.signal as an AbortSignal, not aborted while the request runs', async () => {
      const res = await supertest(engine.app().callback()).post('/api/v1/componenttypes').send({ name: 'lazy-signal' })
      expect(res.status, res.text).to.equal(201)
      expect(seen).to.have.length(1)
      expect(seen[0].signal).to.be.instanceOf(AbortSignal)
      expect(seen[0].signal?.aborted).to.equal(false)
      expect(seen[0].nestedSignal).to.equal(seen[0].signal)
    })

    it("an in-process call with an aborted signal starts no statement: it throws the signal's reason", async () => {
      const controller = new AbortController()
      const reason = new Error('caller gave up')
      controller.abort(reason)
      let thrown: unknown
      try {
        await engine.service('componenttype').find({ signal: controller.signal })
      } catch (err) {
        thrown = err
      }
      expect(thrown).to.equal(reason)
    })
  })
})
