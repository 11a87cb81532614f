import Foundation
import IoMTContracts
import IoMTCore
@testable import IoMTNode
import Testing

/// After a block that was not this node's own pending prefix, the mempool keeps a transaction's
/// recorded writes when every value it read is unchanged, and runs it again otherwise. That must
/// leave exactly what running every remaining transaction again leaves.
@Suite("mempool rebase: validation against recorded reads equals re-execution")
struct MempoolRebaseTests {
    static let admins = (0..<4).map { _ in PrivateKey.generate(.ed25519) }
    static let genesis = Genesis(
        chainId: "iomt-test", genesisTimeMs: 1_700_000_000_000,
        organisations: [Organisation(id: "hospital-a", name: "Hospital A", kind: "hospital")],
        admins: admins.map { .init(publicKey: $0.publicKey, organisation: "hospital-a") }, adminQuorum: 1,
        validators: [Validator(publicKey: PrivateKey.generate(.ed25519).publicKey, organisation: "hospital-a")],
        consensus: ConsensusParameters(maxBlockTransactions: 1_000, blockIntervalMs: 100))

    static func register(_ admin: Int, nonce: UInt64, key: PrivateKey = PrivateKey.generate(.ed25519)) -> SealedTransaction {
        let a = admins[admin]
        return SealedTransaction(Transaction(chainID: genesis.chainId, sender: a.publicKey.address, signerKey: a.publicKey, nonce: nonce,
                                             payload: .registerAccount(RegisterAccount(publicKey: key.publicKey, role: .device, organisation: "hospital-a"))).signed(with: a))
    }

    @Test("random blocks over interleaved senders, with conflicts (a new account taken, a nonce used by another transaction)", arguments: 0..<12)
    func equivalence(seed: Int) throws {
        var rng = SystemRandomNumberGenerator()
        let state0 = Self.genesis.initialState()
        let context = ExecutionContext(chainID: Self.genesis.chainId, height: 2, timestampMs: 1_700_000_001_000)
        // Admins 0–3 each send five registrations; one key is registered twice (by admins 0 and 1).
        let shared = PrivateKey.generate(.ed25519)
        var pending: [SealedTransaction] = []
        for nonce in 0..<5 {
            for admin in 0..<4 {
                pending.append(Self.register(admin, nonce: UInt64(nonce), key: admin < 2 && nonce == 3 && seed % 2 == 0 ? shared : PrivateKey.generate(.ed25519)))
            }
        }
        var mempool = Mempool(capacity: 1_000, committed: state0)
        for tx in pending { try? mempool.admit(tx, context: context) }
        // The block: a prefix of some senders' transactions in another order, plus a transaction
        // this node never saw that takes admin 3's next nonce (seed-dependent).
        var block: [SealedTransaction] = []
        for admin in 0..<4 {
            let take = Int.random(in: 0...3, using: &rng)
            block += (0..<take).compactMap { n in mempool.entries.first { $0.tx.signed.transaction.sender == Self.admins[admin].publicKey.address && $0.tx.signed.transaction.nonce == UInt64(n) }?.tx }
        }
        block.shuffle(using: &rng)
        block.sort { ($0.signed.transaction.sender.hex, $0.signed.transaction.nonce) < ($1.signed.transaction.sender.hex, $1.signed.transaction.nonce) }
        if seed % 3 == 0 {
            let n = UInt64(block.filter { $0.signed.transaction.sender == Self.admins[3].publicKey.address }.count)
            block.append(Self.register(3, nonce: n))
        }
        if seed % 2 == 0, !block.contains(where: { $0.signed.transaction.sender == Self.admins[1].publicKey.address }) {
            // Admin 2 registers the shared key first: admins 0's and 1's registrations of it now fail.
            block.append(SealedTransaction(Transaction(chainID: Self.genesis.chainId, sender: Self.admins[2].publicKey.address, signerKey: Self.admins[2].publicKey,
                                                       nonce: UInt64(block.filter { $0.signed.transaction.sender == Self.admins[2].publicKey.address }.count),
                                                       payload: .registerAccount(RegisterAccount(publicKey: shared.publicKey, role: .device, organisation: "hospital-a"))).signed(with: Self.admins[2])))
        }
        let executed = Runtime.execute(sealed: block, on: state0, context: ExecutionContext(chainID: Self.genesis.chainId, height: 1, timestampMs: 1_700_000_000_500))
        let state1 = executed.state.committed()
        let included = Set(executed.applied.map(\.hash))

        var validated = mempool, reference = mempool
        let droppedV = validated.rebase(on: state1, removing: included, exact: false, context: context)
        let droppedR = reference.rebase(on: state1, removing: included, exact: false, context: context, reexecuteAll: true)
        #expect(validated.entries.map(\.tx.hash) == reference.entries.map(\.tx.hash))
        #expect(droppedV.map(\.0.hash) == droppedR.map(\.0.hash) && droppedV.map(\.1.code) == droppedR.map(\.1.code))
        #expect(validated.pendingState.committed().root == reference.pendingState.committed().root)
        #expect(validated.verifiedSignatures == reference.verifiedSignatures && validated.verifiedSignatures.count == validated.entries.count)
        for (a, b) in zip(validated.entries, reference.entries) { #expect(a.writes == b.writes && a.reads == b.reads) }
        // And the next transaction of every sender is admitted or refused alike.
        for admin in 0..<4 {
            let next = UInt64(reference.entries.filter { $0.tx.signed.transaction.sender == Self.admins[admin].publicKey.address }.count)
                + UInt64(executed.applied.filter { $0.signed.transaction.sender == Self.admins[admin].publicKey.address }.count)
            let tx = Self.register(admin, nonce: next)
            var v = validated, r = reference
            #expect((try? v.admit(tx, context: context)) != nil)
            #expect((try? r.admit(tx, context: context)) != nil)
        }
    }
}
