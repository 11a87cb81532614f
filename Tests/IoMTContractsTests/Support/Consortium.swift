import Crypto
import IoMTContracts
import IoMTCore
import Testing

/// A three-organisation consortium: one member-admin each, admin quorum 2, one validator.
enum Consortium {
    static let chainID = "iomt-test"

    static func ed25519(_ seed: UInt8) -> PrivateKey { try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: seed, count: 32)) }
    static func p256(_ n: UInt8) -> PrivateKey { try! PrivateKey(algorithm: .p256, rawBytes: [UInt8](repeating: 0, count: 31) + [n]) }

    /// Admin of st-marys (Ed25519).
    static let adminA = ed25519(0xA1)
    /// Admin of city-clinic (P-256).
    static let adminB = p256(0xB1)
    /// Admin of health-agency (Ed25519).
    static let adminC = ed25519(0xC1)
    static let validatorKey = ed25519(0x71)

    static let stMarys = Organisation(id: "st-marys", name: "St Mary's Hospital", kind: "hospital")
    static let cityClinic = Organisation(id: "city-clinic", name: "City Clinic", kind: "clinic")
    static let agency = Organisation(id: "health-agency", name: "Public Health Agency", kind: "public-health-agency")

    static let genesis = Genesis(
        chainId: chainID, genesisTimeMs: 1_700_000_000_000,
        organisations: [stMarys, cityClinic, agency],
        admins: [
            .init(publicKey: adminA.publicKey, organisation: "st-marys", label: "A"),
            .init(publicKey: adminB.publicKey, organisation: "city-clinic", label: "B"),
            .init(publicKey: adminC.publicKey, organisation: "health-agency", label: "C"),
        ],
        adminQuorum: 2,
        validators: [Validator(publicKey: validatorKey.publicKey, organisation: "st-marys")],
        consensus: ConsensusParameters())
}

/// Drives `Runtime.apply` over one overlay, filling in nonces from state unless told otherwise.
struct Ledger {
    var state: StateOverlay
    var context = ExecutionContext(chainID: Consortium.chainID, height: 3, timestampMs: 1_700_000_001_000)

    init(genesis: Genesis = Consortium.genesis) {
        #expect(throws: Never.self) { try genesis.validate() }
        state = StateOverlay(base: genesis.initialState())
    }

    func account(_ a: Address) -> Account? { try? state.read(Account.self, StateKeys.account(a)) ?? nil }
    func account(_ k: PrivateKey) -> Account? { account(k.publicKey.address) }
    func organisation(_ id: String) -> Organisation? { try! state.read(Organisation.self, StateKeys.organisation(id)) }
    func proposal(_ id: Hash) -> Proposal? { try! state.read(Proposal.self, StateKeys.proposal(id)) }
    var admins: AddressSet { try! state.read(AddressSet.self, StateKeys.admins)! }
    var quorum: UInt32 { try! state.read(GovernanceParameters.self, StateKeys.governance)!.adminQuorum }
    var validators: [Validator] { try! state.read([Validator].self, StateKeys.validators)! }
    var consensus: ConsensusParameters { try! state.read(ConsensusParameters.self, StateKeys.consensus)! }

    var scheduledValidators: ScheduledValidators? { try! state.read(ScheduledValidators.self, StateKeys.scheduledValidators) }

    /// Ends the current block (its end-of-block work runs) and moves to the next height.
    mutating func endBlock() {
        Runtime.endBlock(height: context.height, state: &state)
        context.height += 1
    }

    /// A signed transaction from `key`. `sender` defaults to the key's own address; `nonce` to the
    /// sender's next nonce.
    func transaction(_ key: PrivateKey, _ payload: TransactionPayload, sender: Address? = nil, nonce: UInt64? = nil, chainID: String = Consortium.chainID) -> SignedTransaction {
        let from = sender ?? key.publicKey.address
        let n = nonce ?? account(from)?.nonce ?? 0
        return Transaction(chainID: chainID, sender: from, signerKey: key.publicKey, nonce: n, payload: payload).signed(with: key)
    }

    /// Applies a transaction that must succeed; returns its hash (a proposal's id).
    @discardableResult
    mutating func apply(_ stx: SignedTransaction, sourceLocation: SourceLocation = #_sourceLocation) -> Hash {
        #expect(stx.hasValidSignature(), sourceLocation: sourceLocation)
        do {
            try Runtime.apply(stx, to: &state, context: context)
        } catch {
            Issue.record("\(stx.transaction.payload.kind) refused: \(error.code): \(error)", sourceLocation: sourceLocation)
        }
        return stx.hash
    }

    /// Registers `key` as a practitioner of `organisation` (by its admin) and attests it.
    mutating func addPractitioner(_ key: PrivateKey, by admin: PrivateKey, at organisation: String, profession: String = "doctor", sourceLocation: SourceLocation = #_sourceLocation) {
        apply(admin, .registerAccount(RegisterAccount(publicKey: key.publicKey, role: .practitioner, organisation: organisation)), sourceLocation: sourceLocation)
        apply(admin, .attestPractitioner(AttestPractitioner(account: key.publicKey.address, profession: profession, licenceHash: Hash.sha256(key.publicKey.address.bytes))),
              sourceLocation: sourceLocation)
    }

    @discardableResult
    mutating func apply(_ key: PrivateKey, _ payload: TransactionPayload, sourceLocation: SourceLocation = #_sourceLocation) -> Hash {
        apply(transaction(key, payload), sourceLocation: sourceLocation)
    }

    /// Applies a transaction that must fail with `code`, and checks that nothing was written.
    mutating func reject(_ stx: SignedTransaction, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let before = state.writes
        let root = state.committed().root
        do {
            try Runtime.apply(stx, to: &state, context: context)
            Issue.record("\(stx.transaction.payload.kind) was accepted; expected \(code)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        }
        #expect(state.writes == before, "a refused transaction changed the overlay", sourceLocation: sourceLocation)
        #expect(state.committed().root == root, sourceLocation: sourceLocation)
    }

    mutating func reject(_ key: PrivateKey, _ payload: TransactionPayload, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) {
        reject(transaction(key, payload), code, sourceLocation: sourceLocation)
    }

    /// Proposes `action` as `proposer`, then approves it by each of `approvers`; returns the id.
    @discardableResult
    mutating func govern(_ action: GovernanceAction, by proposer: PrivateKey, approvedBy approvers: [PrivateKey] = [], sourceLocation: SourceLocation = #_sourceLocation) -> Hash {
        let id = apply(proposer, .proposeGovernance(action), sourceLocation: sourceLocation)
        for a in approvers { apply(a, .approveProposal(ApproveProposal(proposal: id)), sourceLocation: sourceLocation) }
        return id
    }
}

extension TransactionPayload {
    static func register(_ key: PrivateKey, _ role: Role, _ org: String, label: String = "") -> TransactionPayload {
        .registerAccount(RegisterAccount(publicKey: key.publicKey, role: role, organisation: org, label: label))
    }

    /// Enrols a patient whose X25519 key is derived from its signing key's seed (tests only).
    static func enrol(_ key: PrivateKey, at organisation: String = "st-marys") -> TransactionPayload {
        .registerPatient(RegisterPatient(signedBy: key, agreementKey: testAgreementKey(key), chainID: Consortium.chainID, organisation: organisation))
    }

    static func status(_ key: PrivateKey, _ status: AccountStatus, reason: String = "") -> TransactionPayload {
        .setAccountStatus(SetAccountStatus(account: key.publicKey.address, status: status, reason: reason))
    }

    static func approve(_ id: Hash) -> TransactionPayload { .approveProposal(ApproveProposal(proposal: id)) }
}

/// A fixed X25519 public key for a test account.
func testAgreementKey(_ key: PrivateKey) -> X25519Key {
    try! X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Hash.sha256(key.publicKey.address.bytes).bytes).publicKey.rawRepresentation))
}
