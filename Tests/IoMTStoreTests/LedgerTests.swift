import Foundation
import IoMTContracts
import IoMTCore
import IoMTNode
import IoMTStore
import Testing

@Suite("Ledger, node and chain verification")
struct LedgerTests {
    @Test("blocks commit with their transactions and state; a restart resumes at the same block and root")
    func restartResumes() async throws {
        let chain = TestChain()
        var node: Node? = try chain.open()
        try await chain.grow(node!, blocks: 5, perBlock: 20)
        let header = await node!.latestHeader
        #expect(header.height == 5)
        #expect(header.transactionCount == 20)
        node = nil
        let reopened = try chain.open()
        let again = await reopened.latestHeader
        #expect(again == header)
        #expect(await reopened.committedState.root == header.stateRoot)
        let report = try ChainVerifier.verify(store: reopened.store)
        #expect(report.ok, "\(report)")
        #expect(report.verifiedHeight == 5)
        #expect(report.transactions == 100)
    }

    @Test("mempool refuses replays, nonce gaps, bad signatures, wrong chain, oversize and unauthorised transactions, storing none")
    func admissionRefusals() async throws {
        let chain = TestChain()
        let node = try chain.open()
        let good = chain.registrations(from: 0, count: 1)[0]
        _ = try await node.submit(good)

        await #expect(throws: AdmissionError.duplicate(good.hash)) { try await node.submit(good) }

        let gap = chain.registrations(from: 5, count: 1)[0]
        await #expect(throws: AdmissionError.rejected(.nonceTooHigh(expected: 1, got: 5))) { try await node.submit(gap) }

        var forged = chain.registrations(from: 1, count: 1)[0]
        forged.transaction.nonce = 2
        await #expect(throws: AdmissionError.badSignature) { try await node.submit(forged) }

        var wrongChain = chain.registrations(from: 1, count: 1)[0].transaction
        wrongChain.chainID = "other-chain"
        await #expect(throws: AdmissionError.rejected(.wrongChain(expected: "iomt-test", got: "other-chain"))) {
            try await node.submit(wrongChain.signed(with: chain.admin))
        }

        let huge = Transaction(chainID: "iomt-test", sender: chain.admin.publicKey.address, signerKey: chain.admin.publicKey, nonce: 1,
                               payload: .registerAccount(RegisterAccount(publicKey: chain.admin.publicKey, role: .device, organisation: "hospital-a", label: String(repeating: "x", count: 70_000))))
        await #expect(throws: AdmissionError.self) { try await node.submit(huge.signed(with: chain.admin)) }

        // A device account cannot register accounts.
        let device = PrivateKey.generate(.ed25519)
        _ = try await node.submit(Transaction(chainID: "iomt-test", sender: chain.admin.publicKey.address, signerKey: chain.admin.publicKey, nonce: 1,
                                              payload: .registerAccount(RegisterAccount(publicKey: device.publicKey, role: .device, organisation: "hospital-a"))).signed(with: chain.admin))
        chain.clock.advance(200)
        _ = try await node.produceBlock()
        let byDevice = Transaction(chainID: "iomt-test", sender: device.publicKey.address, signerKey: device.publicKey, nonce: 0,
                                   payload: .registerAccount(RegisterAccount(publicKey: PrivateKey.generate(.p256).publicKey, role: .device, organisation: "hospital-a")))
        await #expect(throws: AdmissionError.rejected(.unauthorised("only a member-admin registers accounts"))) { try await node.submit(byDevice.signed(with: device)) }

        // Only the two good transactions reached the chain and nothing is left pending.
        #expect(await node.mempoolCount == 0)
        let report = try ChainVerifier.verify(store: node.store)
        #expect(report.transactions == 2)
        let replay = chain.registrations(from: 0, count: 1)[0]
        await #expect(throws: AdmissionError.rejected(.nonceTooLow(expected: 2, got: 0))) { try await node.submit(replay) }
    }

    @Test("blocks are cut at the transaction limit, and by the interval")
    func blockCutting() async throws {
        let chain = TestChain(maxBlockTransactions: 50)
        let node = try chain.open()
        _ = await node.submit(batch: chain.registrations(from: 0, count: 120))
        // Full blocks go without waiting for the interval.
        let first = try await node.produceBlockIfDue()
        #expect(first?.transactionCount == 50)
        await node.settle()
        let second = try await node.produceBlockIfDue()
        #expect(second?.transactionCount == 50)
        await node.settle()
        // 20 left: not a full block, so only once the interval has passed.
        #expect(try await node.produceBlockIfDue() == nil)
        chain.clock.advance(50)
        #expect(try await node.produceBlockIfDue() == nil)
        chain.clock.advance(100)
        let third = try await node.produceBlockIfDue()
        #expect(third?.transactionCount == 20)
        #expect(try await node.produceBlockIfDue() == nil)
    }

    @Test("pending transactions acknowledged before a stop are restored on restart")
    func pendingSurvivesRestart() async throws {
        let chain = TestChain()
        var node: Node? = try chain.open()
        let txs = chain.registrations(from: 0, count: 30)
        for r in await node!.submit(batch: txs) { _ = try r.get() }
        node = nil  // no block was produced: everything is only pending
        // A smaller capacity bounds new admissions, never what was already acknowledged.
        let reopened = try chain.open(mempoolCapacity: 5)
        let restored = try await reopened.restorePending()
        #expect(restored.restored == 30)
        chain.clock.advance(200)
        let header = try await reopened.produceBlock()
        #expect(header?.transactionCount == 30)
        #expect(try reopened.transactionProof(txs[29].hash) != nil)
    }

    @Test("a transaction proof and a state proof verify against the committed header and its commit", arguments: SignatureAlgorithm.allCases)
    func proofs(signer: SignatureAlgorithm) async throws {
        let chain = TestChain(adminAlgorithm: signer)
        let node = try chain.open()
        let txs = chain.registrations(from: 0, count: 37)
        _ = await node.submit(batch: txs)
        chain.clock.advance(200)
        _ = try await node.produceBlock()
        for i in [0, 1, 17, 36] {
            let (p, index) = try #require(try node.transactionProof(txs[i].hash))
            #expect(index == i)
            try p.verify(validators: chain.genesis.validators)
            var tampered = p
            tampered.transaction.transaction.nonce += 1
            #expect(throws: TransactionProof.Failure.self) { try tampered.verify() }
        }
        guard case .registerAccount(let reg) = txs[5].transaction.payload else { Issue.record("payload"); return }
        let (proof, header, commit) = await node.stateProof(key: StateKeys.account(reg.publicKey.address))
        try proof.verify(root: header.stateRoot)
        try #require(commit).verify(header: header, validators: chain.genesis.validators)
        let account = try Account(canonicalBytes: try #require(proof.value))
        #expect(account.role == .device)
        let absent = await node.stateProof(key: StateKeys.account(PrivateKey.generate(.ed25519).publicKey.address))
        #expect(absent.proof.value == nil)
        try absent.proof.verify(root: header.stateRoot)
    }

    @Test("a lone validator stops producing once governance gives others the majority, rather than commit unfinalised blocks")
    func haltsWithoutQuorum() async throws {
        let chain = TestChain()
        let node = try chain.open()
        let other = PrivateKey.generate(.ed25519)
        let add = Transaction(chainID: "iomt-test", sender: chain.admin.publicKey.address, signerKey: chain.admin.publicKey, nonce: 0,
                              payload: .proposeGovernance(.addValidator(Validator(publicKey: other.publicKey, organisation: "hospital-a"))))
        _ = try await node.submit(add.signed(with: chain.admin))
        chain.clock.advance(200)
        #expect(try await node.produceBlock()?.height == 1)
        // Approved at height 1, the new set signs from height 3: block 2 is still this node's.
        _ = await node.submit(batch: chain.registrations(from: 1, count: 3))
        chain.clock.advance(200)
        #expect(try await node.produceBlock()?.height == 2)
        _ = await node.submit(batch: chain.registrations(from: 4, count: 3))
        chain.clock.advance(200)
        #expect(try await node.produceBlock() == nil)
        #expect(await node.latestHeader.height == 2)
        #expect(await node.mempoolCount == 3)
        #expect(try ChainVerifier.verify(store: node.store).ok)
    }

    // MARK: tampering

    func tamperedChain() async throws -> (TestChain, LedgerStore) {
        let chain = TestChain()
        let node = try chain.open()
        try await chain.grow(node, blocks: 6, perBlock: 10)
        let ok = try ChainVerifier.verify(store: node.store)
        #expect(ok.ok)
        return (chain, node.store)
    }

    @Test("chain verify names the block whose transaction was edited by hand")
    func editedTransaction() async throws {
        let (_, store) = try await tamperedChain()
        // Change one byte of the label inside a stored transaction of block 4.
        let tx = try #require(try store.block(height: 4)).transactions[3]
        var body = tx.canonicalBytes
        let at = body.count - 64 - 1  // the label's last character, just before the signature
        body[at] ^= 0x01
        try store.unsafeExecute("UPDATE transactions SET body = ? WHERE hash = ?", arguments: [Data(body), Data(tx.hash.bytes)])
        let report = try ChainVerifier.verify(store: store)
        #expect(!report.ok)
        #expect(report.firstBadHeight == 4, "\(report)")
    }

    @Test("chain verify names the block whose header was edited, even with its hash column recomputed")
    func editedHeader() async throws {
        let (_, store) = try await tamperedChain()
        let block = try #require(try store.block(height: 3))
        var header = block.header
        header.timestampMs += 1
        try store.unsafeExecute("UPDATE blocks SET header = ?, hash = ? WHERE height = 3", arguments: [Data(header.canonicalBytes), Data(header.hash.bytes)])
        let report = try ChainVerifier.verify(store: store)
        #expect(report.firstBadHeight == 3, "\(report)")
        #expect(report.reason?.contains("commit") == true, "\(report)")
    }

    @Test("chain verify names the block missing a transaction")
    func deletedTransaction() async throws {
        let (_, store) = try await tamperedChain()
        try store.unsafeExecute("DELETE FROM transactions WHERE height = 5 AND idx = 9")
        let report = try ChainVerifier.verify(store: store)
        #expect(report.firstBadHeight == 5, "\(report)")
    }

    @Test("an edited state table is caught by chain verify, and the node refuses to start on it")
    func editedState() async throws {
        let (chain, store) = try await tamperedChain()
        let entry = try #require(try store.loadState().first { String(decoding: $0.value, as: UTF8.self).hasSuffix("device 7") })
        var value = entry.value
        value[value.count - 1] = UInt8(ascii: "8")
        try store.unsafeExecute("UPDATE state SET value = ? WHERE key = ?", arguments: [Data(value), Data(entry.key)])
        let report = try ChainVerifier.verify(store: store)
        #expect(!report.ok)
        #expect(report.reason?.contains("stored state differs") == true, "\(report)")
        #expect(throws: NodeError.self) { _ = try chain.open() }
    }

    @Test("one byte of different state gives a different state root")
    func oneByteDivergence() {
        var writes: [[UInt8]: [UInt8]?] = [:]
        for i in 0..<500 { writes[Array("k\(i)".utf8)] = Array("v\(i)".utf8) }
        let a = AuthenticatedState().applying(writes)
        let b = a.applying([Array("k250".utf8): Array("v251".utf8)])
        #expect(a.root != b.root)
        let c = b.applying([Array("k250".utf8): Array("v250".utf8)])
        #expect(a.root == c.root)
    }
}
