import Foundation
import IoMTCore
import IoMTNode

/// A fresh temporary folder per test (tests run in parallel).
func temporaryFolder(_ tag: String = #function) -> String {
    let safe = tag.filter { $0.isLetter || $0.isNumber }
    let path = NSTemporaryDirectory() + "iomt-\(safe)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A deterministic clock the test advances by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var ms: Int64
    init(_ start: Int64 = 1_700_000_000_000) { ms = start }
    func now() -> Int64 { lock.withLock { ms } }
    func advance(_ d: Int64) { lock.withLock { ms += d } }
}

/// A one-organisation chain with one admin and one validator, in `dir`.
struct TestChain {
    let dir: String
    let admin: PrivateKey
    let validator: PrivateKey
    let genesis: Genesis
    let genesisBytes: [UInt8]
    let clock = ManualClock()

    init(dir: String = temporaryFolder(), maxBlockTransactions: UInt64 = 1_000, adminAlgorithm: SignatureAlgorithm = .ed25519) {
        self.dir = dir
        admin = PrivateKey.generate(adminAlgorithm)
        validator = PrivateKey.generate(.ed25519)
        genesis = Genesis(
            chainId: "iomt-test", genesisTimeMs: 1_700_000_000_000,
            organisations: [Organisation(id: "hospital-a", name: "Hospital A", kind: "hospital")],
            admins: [.init(publicKey: admin.publicKey, organisation: "hospital-a")], adminQuorum: 1,
            validators: [Validator(publicKey: validator.publicKey, organisation: "hospital-a")],
            consensus: ConsensusParameters(maxBlockTransactions: maxBlockTransactions, blockIntervalMs: 100))
        genesisBytes = [UInt8](try! JSONEncoder().encode(genesis))
    }

    var databasePath: String { dir + "/ledger.sqlite" }

    func open(mempoolCapacity: Int = Node.defaultMempoolCapacity) throws -> Node {
        let clock = self.clock
        return try Node(databasePath: databasePath, genesis: genesis, genesisFile: genesisBytes, validatorKey: validator,
                        mempoolCapacity: mempoolCapacity, clock: { clock.now() })
    }

    /// Signed register-account transactions from the admin, nonces `from..<from+count`.
    func registrations(from: UInt64, count: Int, role: Role = .device) -> [SignedTransaction] {
        (0..<count).map { i in
            Transaction(chainID: genesis.chainId, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: from + UInt64(i),
                        payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.ed25519).publicKey, role: role, organisation: "hospital-a", label: "device \(from + UInt64(i))")))
                .signed(with: admin)
        }
    }

    /// Submits `count` registrations and commits them in blocks of up to `perBlock`.
    func grow(_ node: Node, blocks: Int, perBlock: Int, firstNonce: UInt64 = 0) async throws {
        var nonce = firstNonce
        for _ in 0..<blocks {
            let results = await node.submit(batch: registrations(from: nonce, count: perBlock))
            for r in results { _ = try r.get() }
            nonce += UInt64(perBlock)
            clock.advance(200)
            _ = try await node.produceBlock()
        }
    }
}
