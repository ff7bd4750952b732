import component from './component'
import componenttype from './componenttype'

/** Every resource plugin of the Distributed CI control server. */
export const plugins = [componenttype, component]
