// Environment variables changed for a test and put back after it. `process.env` is changed key by
// key: replacing the object would cut it off from the process's real environment, which native
// code reads.

/** Sets `vars` (undefined deletes), runs `fn`, and puts every one back as it was. */
export async function withEnv(vars, fn) {
  const before = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]))
  setVars(vars)
  try {
    return await fn()
  } finally {
    setVars(before)
  }
}

function setVars(vars) {
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
}

/** Makes the environment what `snapshot` held again, key by key. */
export function restoreEnv(snapshot) {
  for (const key of Object.keys(process.env)) if (!(key in snapshot)) delete process.env[key]
  setVars(snapshot)
}
