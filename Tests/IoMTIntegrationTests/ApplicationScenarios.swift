import Testing

/// Issue 6's applications, each end to end on its own four-validator devnet (`startConsortium`).
/// One at a time: each scenario runs four validator processes and a gateway, and the machine
/// (two cores in CI) runs the other suites beside them.
@Suite("applications, each on a four-validator devnet", .serialized)
enum ApplicationScenarios {}
