import Testing

/// Every end-to-end test runs the built `quern` binary on its own temporary spool.
/// They run one at a time: each starts daemons and CPU-heavy jobs whose timing
/// (checkpoints, kills, claim races) is what is tested, on a small machine.
@Suite("quern end to end", .serialized)
struct EndToEnd {}
