// What holds back a target that is not met, for BENCHMARKS.md. Where the server is the limit,
// the run's own figures say so (the server's CPU beside the wall time); the rest cite profiles
// (`perf record` of the client process, a symbol build of the addon) taken on the date given.

/** The run's figures that show a server-bound row: the server's CPU against the wall time. */
function serverBound(item, figures, peer) {
  const f = figures(item, peer)
  if (f.server === undefined) return undefined
  return `the server is the limit: it spent ${f.server.toFixed(2)} s of CPU answering this client over ${f.seconds.toFixed(2)} s, the client ${f.cpu.toFixed(2)} s (two cores shared by both)`
}

const LIMITS = [
  {
    match: /^small objects: ops\/s/,
    explain: ({ item, figures }) =>
      `${serverBound(item, figures, 'raptscallions')}. On the sink, where the server does next to nothing, the same workload meets its target against the AWS SDK (over HTTPS) and runs ahead of OpenDAL (over HTTP).`,
  },
  {
    match: /^upload (256 MiB|1 GiB)(, unsigned payload)?: client CPU/,
    explain: ({ label }) =>
      (label.includes('unsigned')
        ? ''
        : 'Over plain HTTP the default hashes every byte for the signature (SHA-256), as the SDK does; the unsigned row is the same client without it. ') +
      'The file itself is read by the addon (an untouched fs.ReadStream), with no chunk through JS; on the sink, where no server competes for the cores, the CPU target is met over HTTPS.',
  },
  {
    match: /^upload (256 MiB|1 GiB)(, unsigned payload)?: throughput/,
    explain: ({ item, figures, label }) => {
      const ours = label.includes('unsigned') ? 'raptscallions-unsigned' : 'raptscallions'
      const signing = label.includes('unsigned')
        ? ''
        : ' Over plain HTTP the default signs every byte\'s SHA-256, as the SDK does and OpenDAL does not: `raptscallions-unsigned` is the same upload without it.'
      return `${serverBound(item, figures, ours)}: s3s-fs hashes every byte it stores.${signing} On the sink (HTTPS) the upload targets are met.`
    },
  },
  {
    match: /^upload 1 GiB: peak RSS/,
    explain: () =>
      'Part buffers are bounded (8 MiB × 4, within the memory budget) and the addon reads the file itself, so no JS chunk waits for V8\'s collector; what is left is Node\'s own baseline (about 60 MB) and the parts in flight, more of them while the server is slow to take them.',
  },
  {
    match: /^download (256 MiB|1 GiB): throughput vs curl/,
    explain: ({ item, figures }) => `${serverBound(item, figures, 'raptscallions')}; on the sink over HTTPS the download targets are met.`,
  },
  {
    match: /^sink over HTTP, small objects/,
    explain: () =>
      'No hot spot to remove (profiled 2026-11-29, 16,000 operations, symbol build): a third of the client\'s CPU is the kernel (socket calls, and the switches between the JS thread and the runtime\'s workers that every call makes twice: 11%), malloc and free 9%, V8 23%, SigV4 signing 3%. OpenDAL\'s profile has the same shape (its binding crosses the same threads). Over the same 16,000 operations ours used 0.68× OpenDAL\'s CPU but took longer, unpinned: OpenDAL spreads its work over more threads. Tried 2026-11-29: mimalloc as the addon\'s allocator cut the client\'s CPU on this workload by about 6% (client pinned to one core), not enough to reach the target and not worth a C allocator in every platform\'s build; it was not kept.',
  },
  {
    match: /^sink over HTTP, list /,
    explain: () =>
      'Profiled 2026-11-29 (100,000 keys, symbol build): over 40% of the client\'s CPU was the AWS SDK\'s XML deserializer until listings went over the direct request path with the package\'s own XML reader; what is left is one page after another, each parsed as it comes.',
  },
  {
    match: /^sink over HTTP, deletePrefix /,
    explain: ({ item, figures }) =>
      `${(figures(item, 'raptscallions-unsigned').seconds * 1000).toFixed(0)} ms against ${(figures(item, 'opendal').seconds * 1000).toFixed(0)} ms: ten listing pages (the listing row's cost) and ten DeleteObjects calls, one after another; OpenDAL lists and deletes in the same two steps.`,
  },
  {
    match: /^(sink over HTTP|HTTPS sink), \d+ uploads of 4 MiB at once: (vs|peak RSS)/,
    explain: () =>
      'Each body given as a Buffer is copied into the addon when the call is made, so that the app may reuse its buffer and no Worker torn down mid-upload leaves the addon reading freed memory: the copy (memmove) and the page faults of the fresh memory it lands in are what OpenDAL spends less on (profiled 2026-11-29). A second copy, into a part buffer, is gone since: a Buffer given whole goes out as it came.',
  },
  {
    match: /^tus upload .*peak RSS/,
    explain: ({ item, figures }) =>
      `${figures(item, 'raptscallions-tus').tusRss} MB against ${figures(item, 'tus-server').tusRss} MB: both are Node's baseline and one 8 MiB PATCH in flight; the difference is within what repeated runs vary by.`,
  },
  {
    match: /^tus upload/,
    explain: ({ item, figures }) =>
      `${serverBound(item, figures, 'raptscallions-tus')}: s3s-fs writes each byte three times for our handler (the PATCH's segment, the part copied from it, the completed object) and twice for @tus/server; the tus server process itself used less than a third of @tus/server's CPU.`,
  },
  {
    match: /^local small objects \(1000 × 4 KiB\): vs fs\/promises/,
    explain: () =>
      'By design: the local store fsyncs each write (and its folder) before acknowledging it, which fs/promises does not; with `durable: false`, which writes as fs does, the row below meets the target.',
  },
]

/** Why `verdict` (a target not met, with the row it was measured on) is not, or undefined when nothing is known. */
export function limitOf(verdict, figures) {
  const limit = LIMITS.find(({ match }) => match.test(verdict.label))
  return limit?.explain({ item: verdict.item, figures, label: verdict.label })
}
