'use strict'
// The native addon, through napi's generated loader (binding.js). On a platform without a
// prebuilt addon, napi's own message blames npm; this one says which platforms have one and
// how to get one built.

const { ConfigurationError } = require('./errors')

function load() {
  try {
    return require('../binding.js')
  } catch (cause) {
    const { napi, version, engines } = require('../package.json')
    const platform = `${process.platform}-${process.arch}`
    const error = new ConfigurationError(
      `@raptscallions/storage ${version} has no native addon for ${platform} that loads here. ` +
        `Prebuilt addons exist for: ${napi.targets.join(', ')} (Node ${engines.node}). ` +
        'On one of those, reinstall without --no-optional/--omit=optional so that npm fetches it; ' +
        'elsewhere build it from the source repository (Rust 1.89+, then `npm run build`) and install that build.',
      { platform, prebuilt: napi.targets, cause: String(cause?.message ?? cause) },
    )
    error.cause = cause
    throw error
  }
}

module.exports = load()
