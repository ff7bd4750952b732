import { identityPlugin, type IdentityOptions } from '../core/identity'
import component from './component'
import componenttype from './componenttype'

/** The rules of the Distributed CI resources that their schemas cannot say. */
export const resourcePlugins = [componenttype, component]

/**
 * Every plugin of the Distributed CI control server: identity and access (users, API keys of users
 * and remotecis, audits) and the resource plugins. `identity` adds to the identity plugin's options
 * (the server passes the JWT issuer from its environment).
 */
export function serverPlugins(identity: IdentityOptions = {}) {
  return [identityPlugin({ keyHolders: { remoteci: 'remotecis' }, ...identity }), ...resourcePlugins]
}

/** The server's plugins with the default identity options. */
export const plugins = serverPlugins()
