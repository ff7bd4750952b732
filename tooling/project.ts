/**
 * What the server's own plugins (`resources/index.ts`) add that build-time tools must know: the
 * schema keywords and schema files for `db:generate`, and the actions too for `types:generate`.
 */
import type { ActionDefinition } from '../core/plugins/plugin'
import { collectPlugins } from '../core/plugins/registry'
import type { ExtraKeywords } from '../core/schema/types'
import { plugins } from '../resources'

export interface ProjectContributions {
  keywords: ExtraKeywords
  schemaFiles: readonly string[]
  actions: readonly ActionDefinition<any>[]
}

export function projectContributions(): ProjectContributions {
  const { keywords, schemaFiles, actions } = collectPlugins(plugins)
  return { keywords, schemaFiles, actions }
}
