import IoMTContracts
import IoMTCore
import Testing

@Suite("Runtime: admission checks and block execution")
struct RuntimeTests {
    typealias C = Consortium
    static let device = C.ed25519(0xD1)
    static func newKey(_ i: UInt8) -> PrivateKey { C.ed25519(0x50 &+ i) }

    @Test("nonces: in order accepted, replay too low, gap too high")
    func nonces() {
        var l = Ledger()
        for i in 0..<3 {
            l.apply(l.transaction(C.adminA, .register(Self.newKey(UInt8(i)), .device, "st-marys"), nonce: UInt64(i)))
        }
        #expect(l.account(C.adminA)?.nonce == 3)
        // Replaying an applied transaction, byte for byte.
        let replay = l.transaction(C.adminA, .register(Self.newKey(0), .device, "st-marys"), nonce: 0)
        l.reject(replay, "nonce-too-low")
        // A fresh transaction with an old nonce.
        l.reject(l.transaction(C.adminA, .register(Self.newKey(9), .device, "st-marys"), nonce: 2), "nonce-too-low")
        // A gap.
        l.reject(l.transaction(C.adminA, .register(Self.newKey(9), .device, "st-marys"), nonce: 4), "nonce-too-high")
        l.reject(l.transaction(C.adminA, .register(Self.newKey(9), .device, "st-marys"), nonce: .max), "nonce-too-high")
        // The right one still works afterwards.
        l.apply(l.transaction(C.adminA, .register(Self.newKey(9), .device, "st-marys"), nonce: 3))
        #expect(l.account(C.adminA)?.nonce == 4)
    }

    @Test("a refused payload does not consume the nonce")
    func failedPayloadKeepsNonce() {
        var l = Ledger()
        l.reject(C.adminA, .register(Self.device, .memberAdmin, "st-marys"), "invalid-argument")
        #expect(l.account(C.adminA)?.nonce == 0)
        l.apply(l.transaction(C.adminA, .register(Self.device, .device, "st-marys"), nonce: 0))
    }

    @Test("wrong chain, unknown sender, suspended sender, wrong signer key")
    func admission() {
        var l = Ledger()
        l.reject(l.transaction(C.adminA, .register(Self.device, .device, "st-marys"), chainID: "iomt-prod"), "wrong-chain")
        l.reject(l.transaction(Self.device, .rotateKey(RotateKey(newPublicKey: C.ed25519(0xEE).publicKey))), "unknown-sender")
        // Signing with a key that is not the sender's.
        l.reject(l.transaction(C.adminB, .register(Self.device, .device, "st-marys"), sender: C.adminA.publicKey.address), "signer-key-mismatch")
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        l.apply(C.adminA, .status(Self.device, .suspended))
        l.reject(Self.device, .rotateKey(RotateKey(newPublicKey: C.ed25519(0xEE).publicKey)), "sender-not-active")
        // The wrong-chain check precedes everything, even an unknown sender.
        l.reject(l.transaction(C.ed25519(0xEF), .approve(.zero), chainID: ""), "wrong-chain")
    }

    @Test("every refusal leaves earlier writes in the overlay untouched")
    func noPartialChange() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        let snapshot = l.state.writes
        #expect(!snapshot.isEmpty)
        // A governance action that fails in the middle of its dry run still leaves nothing behind.
        l.reject(C.adminA, .proposeGovernance(.addAdmin(publicKey: Self.device.publicKey, organisation: "st-marys", label: "")), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.addValidator(Validator(publicKey: C.validatorKey.publicKey, organisation: "st-marys"))), "already-exists")
        #expect(l.state.writes == snapshot)
    }

    @Test("execute applies the good transactions around a bad one and reports it")
    func executeList() throws {
        let l = Ledger()
        let base = l.state.committed()
        let k1 = Self.newKey(1), k2 = Self.newKey(2), k3 = Self.newKey(3)
        let good1 = l.transaction(C.adminA, .register(k1, .device, "st-marys"), nonce: 0)
        let bad = l.transaction(C.adminA, .register(k2, .device, "st-marys"), nonce: 5)
        let good2 = l.transaction(C.adminA, .register(k3, .researcher, "st-marys"), nonce: 1)
        let badAuth = l.transaction(C.adminB, .register(k2, .device, "st-marys"), nonce: 0)
        let good3 = l.transaction(C.adminB, .register(k2, .device, "city-clinic"), nonce: 0)
        let context = ExecutionContext(chainID: C.chainID, height: 4, timestampMs: 0)

        let r = Runtime.execute([good1, bad, good2, badAuth, good3], on: base, context: context)
        #expect(r.applied == [good1, good2, good3])
        #expect(r.rejected.count == 2)
        #expect(r.rejected.first?.transaction == bad)
        #expect(r.rejected.first?.error == .nonceTooHigh(expected: 1, got: 5))
        #expect(r.rejected.last?.transaction == badAuth)
        #expect(r.rejected.last?.error.code == "unauthorised")

        let state = r.state.committed()
        func account(_ k: PrivateKey) throws -> Account? { try state.value(forKey: StateKeys.account(k.publicKey.address)).map { try Account(canonicalBytes: $0) } }
        #expect(try account(k1)?.registeredAtHeight == 4)
        #expect(try account(k3)?.role == .researcher)
        #expect(try account(k2)?.organisation == "city-clinic")
        #expect(try account(C.adminA)?.nonce == 2)
        #expect(try account(C.adminB)?.nonce == 1)

        // The same as applying only the good ones; and deterministic.
        let onlyGood = Runtime.execute([good1, good2, good3], on: base, context: context)
        #expect(onlyGood.rejected.isEmpty)
        #expect(onlyGood.state.committed().root == state.root)
        #expect(Runtime.execute([good1, bad, good2, badAuth, good3], on: base, context: context).state.committed().root == state.root)
        // Order matters: with good2 first, its nonce is wrong and good1 then takes nonce 0.
        let swapped = Runtime.execute([good2, good1], on: base, context: context)
        #expect(swapped.applied == [good1])
        #expect(swapped.rejected.map(\.error.code) == ["nonce-too-high"])
        // An empty block changes nothing.
        #expect(Runtime.execute([], on: base, context: context).state.committed().root == base.root)
    }

    @Test("execution reads height from the context, never a clock")
    func contextHeight() {
        var l = Ledger()
        l.context.height = 77
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        #expect(l.account(Self.device)?.registeredAtHeight == 77)
    }

    @Test("StateOverlay: writes shadow the base, deletes hide it, committed() applies them")
    func overlay() throws {
        let base = AuthenticatedState().applying([[1]: [1], [2]: [2]])
        var o = StateOverlay(base: base)
        #expect(o.value(forKey: [1]) == [1])
        o.set([1], [9])
        o.delete([2])
        o.set([3], [3])
        #expect(o.value(forKey: [1]) == [9] && o.value(forKey: [2]) == nil && o.value(forKey: [3]) == [3])
        #expect(o.base.root == base.root)
        #expect(o.committed().root == AuthenticatedState().applying([[1]: [9], [3]: [3]]).root)
        // An overlay rebuilt from another's writes reads the same.
        let copy = StateOverlay(base: base, writes: o.writes)
        for k: [UInt8] in [[1], [2], [3], [4]] { #expect(copy.value(forKey: k) == o.value(forKey: k)) }
        // A record that does not decode is corrupt state, not a crash.
        o.set(StateKeys.governance, [1])
        #expect(throws: ContractError.self) { try o.read(GovernanceParameters.self, StateKeys.governance) }
    }

    @Test("corrupt state is reported, not trapped on")
    func corruptState() {
        var l = Ledger()
        l.state.set(StateKeys.account(C.adminA.publicKey.address), [0xFF])
        l.reject(C.adminA, .register(Self.device, .device, "st-marys"), "corrupt-state")
        var m = Ledger()
        m.state.delete(StateKeys.admins)
        m.reject(C.adminA, .proposeGovernance(.setAdminQuorum(1)), "corrupt-state")
    }

    @Test("error codes are distinct and stable")
    func errorCodes() {
        let h = Hash.sha256([]), a = C.adminA.publicKey.address
        let all: [ContractError] = [
            .wrongChain(expected: "a", got: "b"), .unknownSender(a), .senderNotActive(a, .suspended), .signerKeyMismatch(a),
            .nonceTooLow(expected: 1, got: 0), .nonceTooHigh(expected: 1, got: 2), .unauthorised(""), .unknownOrganisation(""),
            .unknownAccount(a), .alreadyExists(""), .invalidArgument(""), .unknownProposal(h), .proposalClosed(h),
            .alreadyApproved(h), .corruptState(""),
        ]
        #expect(all.map(\.code) == [
            "wrong-chain", "unknown-sender", "sender-not-active", "signer-key-mismatch", "nonce-too-low", "nonce-too-high",
            "unauthorised", "unknown-organisation", "unknown-account", "already-exists", "invalid-argument",
            "unknown-proposal", "proposal-closed", "already-approved", "corrupt-state",
        ])
        #expect(all.allSatisfy { !$0.description.isEmpty })
    }
}
