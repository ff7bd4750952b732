import { type ReactElement, StrictMode, useCallback, useEffect, useState } from 'react'
import { createRoot } from 'react-dom/client'
import type { GetIdentityOutput } from '../../resources/types/actions'
import { api, basic, bearer, HttpError, loadConfig, type Session } from './api'
import { type Meta, readMeta } from './meta'
import { DetailView } from './views/detail'
import { FormView } from './views/form'
import { ListView } from './views/list'
import './style.css'

/** The caller and what its role may do, as `GET <api>/identity` answers them (the generated types). */
export type Identity = GetIdentityOutput['identity']
export type Permissions = GetIdentityOutput['permissions']
export type Operation = keyof Permissions[string]

export interface Context {
  session: Session
  meta: Meta
  identity: Identity
  /** Whether the caller's role may do `operation` on `plural` (the server checks again). */
  may(plural: string, operation: Operation): boolean
  go(hash: string): void
}

const STORED = 'dci-console-session'

/** The view a location hash names: `#/<plural>`, `#/<plural>/new`, `#/<plural>/<id>`, `#/<plural>/<id>/edit`. */
function parseRoute(hash: string): { plural?: string; id?: string; edit?: boolean; create?: boolean } {
  const [plural, id, edit] = hash.replace(/^#\/?/, '').split('?')[0].split('/').map(decodeURIComponent)
  if (!plural) return {}
  if (id === 'new') return { plural, create: true }
  return { plural, id, edit: edit === 'edit' }
}

function Login({ onLogin, error }: { onLogin(session: Session): void; error?: string }) {
  const [mode, setMode] = useState<'password' | 'key'>('password')
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const [token, setToken] = useState('')
  return (
    <main className="login">
      <h1>Distributed CI</h1>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          onLogin(mode === 'password' ? basic(username, password) : bearer(token.trim()))
        }}
      >
        <fieldset>
          <legend>Log in with</legend>
          <label>
            <input type="radio" name="mode" checked={mode === 'password'} onChange={() => setMode('password')} /> a name and password
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === 'key'} onChange={() => setMode('key')} /> an API key
          </label>
        </fieldset>
        {mode === 'password' ? (
          <>
            <label>
              Name or email
              <input name="username" autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required />
            </label>
            <label>
              Password
              <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
            </label>
          </>
        ) : (
          <label>
            API key
            <input name="token" type="password" value={token} onChange={(e) => setToken(e.target.value)} required />
          </label>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit">Log in</button>
      </form>
    </main>
  )
}

function App() {
  const [session, setSession] = useState<Session | undefined>(() => {
    const stored = sessionStorage.getItem(STORED)
    return stored ? (JSON.parse(stored) as Session) : undefined
  })
  const [identity, setIdentity] = useState<Identity>()
  const [permissions, setPermissions] = useState<Permissions>()
  const [teamName, setTeamName] = useState<string>()
  const [meta, setMeta] = useState<Meta>()
  const [error, setError] = useState<string>()
  const [hash, setHash] = useState(location.hash)

  useEffect(() => {
    const onHash = () => setHash(location.hash)
    window.addEventListener('hashchange', onHash)
    return () => window.removeEventListener('hashchange', onHash)
  }, [])

  useEffect(() => {
    if (!session) return
    let cancelled = false
    Promise.all([api(session, 'GET', '/identity'), api(undefined, 'GET', '/openapi.json')])
      .then(([who, document]) => {
        if (cancelled) return
        sessionStorage.setItem(STORED, JSON.stringify(session))
        setIdentity(who.body.identity)
        setPermissions(who.body.permissions)
        setMeta(readMeta(document.body))
        setError(undefined)
        // The team's name, when the caller may read it (its id otherwise).
        const team = who.body.identity.team as string | null
        if (team)
          api(session, 'GET', `/teams/${encodeURIComponent(team)}`)
            .then(({ body }) => !cancelled && setTeamName(body.team?.name))
            .catch(() => undefined)
      })
      .catch((err: unknown) => {
        if (cancelled) return
        sessionStorage.removeItem(STORED)
        setSession(undefined)
        setError(err instanceof HttpError && err.status === 401 ? 'Wrong name, password or key.' : String((err as Error).message))
      })
    return () => {
      cancelled = true
    }
  }, [session])

  const logout = useCallback(() => {
    sessionStorage.removeItem(STORED)
    setSession(undefined)
    setIdentity(undefined)
    setTeamName(undefined)
    setMeta(undefined)
    location.hash = ''
  }, [])

  if (!session || (!identity && error)) return <Login onLogin={setSession} error={error} />
  if (!identity || !meta) return <p className="loading">Loading…</p>

  const context: Context = {
    session,
    meta,
    identity,
    may: (plural, operation) => permissions?.[plural]?.[operation] ?? (operation === 'read' || !permissions),
    go: (next) => {
      location.hash = next
    },
  }
  const route = parseRoute(hash)
  const resource = route.plural ? meta.byPlural.get(route.plural) : undefined
  const readable = meta.resources.filter((r) => context.may(r.plural, 'read'))

  let view: ReactElement
  if (!resource) view = <Home meta={meta} readable={readable} />
  else if (route.create) view = <FormView key={`new-${resource.plural}`} context={context} resource={resource} />
  else if (route.id && route.edit) view = <FormView key={`edit-${route.id}`} context={context} resource={resource} id={route.id} />
  else if (route.id) view = <DetailView key={route.id} context={context} resource={resource} id={route.id} />
  else view = <ListView key={resource.plural} context={context} resource={resource} />

  return (
    <>
      <header className="top">
        <a className="brand" href="#/">
          {meta.title}
        </a>
        <span className="caller" data-testid="caller">
          {identity.name} <span className="role">({identity.role})</span>
          {identity.team && <> · team {teamName ?? identity.team}</>}
        </span>
        <button type="button" onClick={logout}>
          Log out
        </button>
      </header>
      <div className="frame">
        <nav aria-label="Resources">
          <ul>
            {readable.map((r) => (
              <li key={r.plural}>
                <a href={`#/${r.plural}`} aria-current={resource?.plural === r.plural ? 'page' : undefined}>
                  {r.plural}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main>{view}</main>
      </div>
    </>
  )
}

function Home({ meta, readable }: { meta: Meta; readable: Meta['resources'] }) {
  return (
    <section>
      <h1>{meta.title}</h1>
      <ul className="cards">
        {readable.map((r) => (
          <li key={r.plural}>
            <a href={`#/${r.plural}`}>{r.plural}</a>
            {r.description && <p>{r.description}</p>}
          </li>
        ))}
      </ul>
    </section>
  )
}

loadConfig().then(() => {
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <App />
    </StrictMode>,
  )
})
