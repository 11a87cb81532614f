import IoMTCore

/// Why a transaction was refused. `code` is stable: the API, the CLI and tests key on it.
public enum ContractError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongChain(expected: String, got: String)
    case unknownSender(Address)
    case senderNotActive(Address, AccountStatus)
    case signerKeyMismatch(Address)
    case nonceTooLow(expected: UInt64, got: UInt64)
    case nonceTooHigh(expected: UInt64, got: UInt64)
    case unauthorised(String)
    case unknownOrganisation(String)
    case unknownAccount(Address)
    case alreadyExists(String)
    case invalidArgument(String)
    case unknownProposal(Hash)
    case proposalClosed(Hash)
    case alreadyApproved(Hash)
    case corruptState(String)
    case insufficientCredits(have: UInt64, need: UInt64)
    case privacyBudgetExhausted(left: UInt64, asked: UInt64)

    public var code: String {
        switch self {
        case .wrongChain: return "wrong-chain"
        case .unknownSender: return "unknown-sender"
        case .senderNotActive: return "sender-not-active"
        case .signerKeyMismatch: return "signer-key-mismatch"
        case .nonceTooLow: return "nonce-too-low"
        case .nonceTooHigh: return "nonce-too-high"
        case .unauthorised: return "unauthorised"
        case .unknownOrganisation: return "unknown-organisation"
        case .unknownAccount: return "unknown-account"
        case .alreadyExists: return "already-exists"
        case .invalidArgument: return "invalid-argument"
        case .unknownProposal: return "unknown-proposal"
        case .proposalClosed: return "proposal-closed"
        case .alreadyApproved: return "already-approved"
        case .corruptState: return "corrupt-state"
        case .insufficientCredits: return "insufficient-credits"
        case .privacyBudgetExhausted: return "privacy-budget-exhausted"
        }
    }

    public var description: String {
        switch self {
        case .wrongChain(let e, let g): return "transaction is for chain \"\(g)\", this is \"\(e)\""
        case .unknownSender(let a): return "sender \(a) is not a registered account"
        case .senderNotActive(let a, let s): return "sender \(a) is \(s.name)"
        case .signerKeyMismatch(let a): return "signerKey is not the current key of account \(a)"
        case .nonceTooLow(let e, let g): return "nonce \(g) already used (replay?): the account's next nonce is \(e)"
        case .nonceTooHigh(let e, let g): return "nonce \(g) is ahead of the account's next nonce \(e): submit nonces in order"
        case .unauthorised(let s): return "not authorised: \(s)"
        case .unknownOrganisation(let o): return "unknown organisation \"\(o)\""
        case .unknownAccount(let a): return "unknown account \(a)"
        case .alreadyExists(let s): return "already exists: \(s)"
        case .invalidArgument(let s): return "invalid argument: \(s)"
        case .unknownProposal(let h): return "unknown proposal \(h)"
        case .proposalClosed(let h): return "proposal \(h) is closed"
        case .alreadyApproved(let h): return "this admin already approved proposal \(h)"
        case .corruptState(let s): return "corrupt state: \(s)"
        case .insufficientCredits(let have, let need): return "the balance is \(have) credits; \(need) are needed"
        case .privacyBudgetExhausted(let left, let asked): return "the dataset's privacy budget has \(left) thousandths of ε left; the query asks for \(asked)"
        }
    }
}

/// Block-level inputs to execution. Contracts read time and height from here, never from a clock.
public struct ExecutionContext: Sendable {
    public var chainID: String
    public var height: UInt64
    public var timestampMs: Int64
    /// The hash of the transaction being applied (set by the runtime).
    public var transactionHash: Hash

    public init(chainID: String, height: UInt64, timestampMs: Int64, transactionHash: Hash = .zero) {
        self.chainID = chainID
        self.height = height
        self.timestampMs = timestampMs
        self.transactionHash = transactionHash
    }
}

/// Pending writes over a committed state.
///
/// A transaction runs with a journal: each write records the value it replaced, and a failed
/// transaction is rolled back from the journal, so it leaves no partial change and costs only
/// what it wrote (no copy of the block's accumulated writes).
public struct StateOverlay: Sendable {
    public let base: AuthenticatedState
    public private(set) var writes: [[UInt8]: [UInt8]?] = [:]
    private var journal: [(key: [UInt8], previous: [UInt8]??)]?
    /// When set, every value read from state before this overlay wrote it is recorded (the mempool
    /// keeps what each transaction saw, so that after a block it can tell which ones would run
    /// the same).
    public var recorder: ReadRecorder?

    public init(base: AuthenticatedState, writes: [[UInt8]: [UInt8]?] = [:]) {
        self.base = base
        self.writes = writes
    }

    public func value(forKey key: [UInt8]) -> [UInt8]? {
        let v: [UInt8]?
        if let w = writes[key] { v = w } else { v = base.value(forKey: key) }
        recorder?.read(key, v)
        return v
    }

    public mutating func set(_ key: [UInt8], _ value: [UInt8]) { record(key); writes[key] = .some(value) }
    public mutating func delete(_ key: [UInt8]) { record(key); writes[key] = .some(nil) }

    private mutating func record(_ key: [UInt8]) {
        journal?.append((key, writes[key]))
        recorder?.wrote(key)
    }

    public func read<T: CanonicalDecodable>(_: T.Type, _ key: [UInt8]) throws(ContractError) -> T? {
        guard let bytes = value(forKey: key) else { return nil }
        // State is written only by contracts after validation, so decoding it skips re-validation.
        do { return try T(canonicalBytes: bytes, trusted: true) } catch { throw .corruptState("\(T.self) at \(Hex.encode(key)): \(error)") }
    }

    public mutating func put<T: CanonicalEncodable>(_ key: [UInt8], _ value: T) { set(key, value.canonicalBytes) }

    /// Runs `body` atomically: on error every write it made is undone. Returns the keys written.
    mutating func atomically(_ body: (inout StateOverlay) throws(ContractError) -> Void) throws(ContractError) -> [[UInt8]] {
        let outer = journal
        journal = []
        do {
            try body(&self)
        } catch {
            for entry in (journal ?? []).reversed() {
                if let previous = entry.previous { writes[entry.key] = previous } else { writes.removeValue(forKey: entry.key) }
            }
            journal = outer
            throw error
        }
        let touched = (journal ?? []).map(\.key)
        journal = outer.map { $0 + (journal ?? []) }
        return touched
    }

    /// The committed state with these writes applied.
    public func committed() -> AuthenticatedState { base.applying(writes) }
}

/// The values a transaction read from the state it ran on: the first read of each key it had not
/// written itself. Its outcome and writes are a function of these, the transaction and the context.
public final class ReadRecorder: @unchecked Sendable {
    public private(set) var reads: [[UInt8]: [UInt8]?] = [:]
    private var written: Set<[UInt8]> = []

    public init() {}

    func read(_ key: [UInt8], _ value: [UInt8]?) {
        if reads[key] == nil, !written.contains(key) { reads[key] = .some(value) }
    }

    func wrote(_ key: [UInt8]) { if reads[key] == nil { written.insert(key) } }
}

/// The application boundary (like ABCI): consensus hands it transactions, it hands back state.
/// It never sees how blocks are agreed; consensus never sees what a transaction means.
public enum Runtime {
    /// Applies one transaction whose signature has already been checked (admission and block
    /// validation verify signatures in parallel, apart from this sequential step).
    /// On error, `state` is unchanged. Returns the keys the transaction wrote.
    @discardableResult
    public static func apply(_ stx: SignedTransaction, to state: inout StateOverlay, context: ExecutionContext) throws(ContractError) -> [[UInt8]] {
        try apply(stx, hash: stx.hash, to: &state, context: context)
    }

    /// `apply` for a transaction whose hash is already known (see `SealedTransaction`).
    @discardableResult
    public static func apply(_ sealed: SealedTransaction, to state: inout StateOverlay, context: ExecutionContext) throws(ContractError) -> [[UInt8]] {
        try apply(sealed.signed, hash: sealed.hash, to: &state, context: context)
    }

    private static func apply(_ stx: SignedTransaction, hash: Hash, to state: inout StateOverlay, context: ExecutionContext) throws(ContractError) -> [[UInt8]] {
        let tx = stx.transaction
        guard tx.chainID == context.chainID else { throw .wrongChain(expected: context.chainID, got: tx.chainID) }
        guard var sender = try state.read(Account.self, StateKeys.account(tx.sender)) else { throw .unknownSender(tx.sender) }
        guard sender.status == .active else { throw .senderNotActive(tx.sender, sender.status) }
        guard sender.publicKey == tx.signerKey else { throw .signerKeyMismatch(tx.sender) }
        guard tx.nonce >= sender.nonce else { throw .nonceTooLow(expected: sender.nonce, got: tx.nonce) }
        guard tx.nonce == sender.nonce else { throw .nonceTooHigh(expected: sender.nonce, got: tx.nonce) }

        var ctx = context
        ctx.transactionHash = hash
        // The nonce moves first, so a module that rewrites the sender's record keeps it.
        sender.nonce += 1
        let bumped = sender
        return try state.atomically { (scratch: inout StateOverlay) throws(ContractError) in
            scratch.put(StateKeys.account(tx.sender), bumped)
            switch tx.payload {
            case .registerAccount(let b): try Membership.register(b, by: bumped, state: &scratch, context: ctx)
            case .setAccountStatus(let b): try Membership.setStatus(b, by: bumped, state: &scratch, context: ctx)
            case .rotateKey(let b): try Membership.rotateKey(b, by: bumped, state: &scratch, context: ctx)
            case .proposeGovernance(let a): try Governance.propose(a, by: bumped, state: &scratch, context: ctx)
            case .approveProposal(let b): try Governance.approve(b, by: bumped, state: &scratch, context: ctx)
            case .recordEvidence(let b): try Accountability.record(b, by: bumped, state: &scratch, context: ctx)
            case .registerDevice(let b): try Devices.register(b, by: bumped, state: &scratch, context: ctx)
            case .setDeviceStatus(let b): try Devices.setStatus(b, by: bumped, state: &scratch, context: ctx)
            case .anchorReadings(let b): try Devices.anchor(b, by: bumped, state: &scratch, context: ctx)
            case .recordAlert(let b): try Devices.recordAlert(b, by: bumped, state: &scratch, context: ctx)
            case .setDeviceSampling(let b): try Devices.setSampling(b, by: bumped, state: &scratch, context: ctx)
            case .registerPatient(let b): try Patients.register(b, by: bumped, state: &scratch, context: ctx)
            case .setAgreementKey(let b): try Patients.setAgreementKey(b, by: bumped, state: &scratch, context: ctx)
            case .attestPractitioner(let b): try Patients.attest(b, by: bumped, state: &scratch, context: ctx)
            case .grantConsent(let b): try Patients.grant(b, by: bumped, state: &scratch, context: ctx)
            case .revokeConsent(let b): try Patients.revoke(b, by: bumped, state: &scratch, context: ctx)
            case .declareEmergencyAccess(let b): try Patients.declareEmergency(b, by: bumped, state: &scratch, context: ctx)
            case .reviewEmergencyAccess(let b): try Patients.review(b, by: bumped, state: &scratch, context: ctx)
            case .setRewrapDelegation(let b): try Patients.delegate(b, by: bumped, state: &scratch, context: ctx)
            case .anchorAudit(let b): try Patients.anchorAudit(b, by: bumped, state: &scratch, context: ctx)
            case .requestErasure(let b): try Patients.requestErasure(b, by: bumped, state: &scratch, context: ctx)
            case .confirmErasure(let b): try Patients.confirmErasure(b, by: bumped, state: &scratch, context: ctx)
            case .requestDataset(let b): try Research.request(b, by: bumped, state: &scratch, context: ctx)
            case .sealDataset(let b): try Research.seal(b, by: bumped, state: &scratch, context: ctx)
            case .cancelDataset(let b): try Research.cancel(b, by: bumped, state: &scratch, context: ctx)
            case .chargePrivacyBudget(let b): try Research.charge(b, by: bumped, state: &scratch, context: ctx)
            case .issueCredits(let b): try Credits.issue(b, by: bumped, state: &scratch, context: ctx)
            case .transferCredits(let b): try Credits.transfer(b, by: bumped, state: &scratch, context: ctx)
            case .registerBatch(let b): try SupplyChain.register(b, by: bumped, state: &scratch, context: ctx)
            case .transferCustody(let b): try SupplyChain.transfer(b, by: bumped, state: &scratch, context: ctx)
            case .recallBatch(let b): try SupplyChain.recall(b, by: bumped, state: &scratch, context: ctx)
            case .administerDose(let b): try SupplyChain.administer(b, by: bumped, state: &scratch, context: ctx)
            case .reportAdverseEvent(let b): try SupplyChain.reportAdverseEvent(b, by: bumped, state: &scratch, context: ctx)
            case .attachLogger(let b): try SupplyChain.attachLogger(b, by: bumped, state: &scratch, context: ctx)
            case .reportExcursion(let b): try SupplyChain.reportExcursion(b, by: bumped, state: &scratch, context: ctx)
            case .registerVenue(let b): try Tracing.registerVenue(b, by: bumped, state: &scratch, context: ctx)
            case .anchorCheckIns(let b): try Tracing.anchorCheckIns(b, by: bumped, state: &scratch, context: ctx)
            case .reportPositive(let b): try Tracing.reportPositive(b, by: bumped, state: &scratch, context: ctx)
            case .recordExposures(let b): try Tracing.recordExposures(b, by: bumped, state: &scratch, context: ctx)
            case .orderQuarantine(let b): try Quarantine.order(b, by: bumped, state: &scratch, context: ctx)
            case .liftQuarantine(let b): try Quarantine.lift(b, by: bumped, state: &scratch, context: ctx)
            case .commandVentilation(let b): try Ventilation.command(b, by: bumped, state: &scratch, context: ctx)
            case .ackVentilation(let b): try Ventilation.ack(b, by: bumped, state: &scratch, context: ctx)
            case .reportFault(let b): try Ventilation.reportFault(b, by: bumped, state: &scratch, context: ctx)
            case .resolveFault(let b): try Ventilation.resolveFault(b, by: bumped, state: &scratch, context: ctx)
            case .recordFeverDetection(let b): try Outbreak.fever(b, by: bumped, state: &scratch, context: ctx)
            case .recordTestResult(let b): try Outbreak.testResult(b, by: bumped, state: &scratch, context: ctx)
            case .registerAsset(let b): try Hospital.registerAsset(b, by: bumped, state: &scratch, context: ctx)
            case .setAssetStatus(let b): try Hospital.setStatus(b, by: bumped, state: &scratch, context: ctx)
            case .recordAssetLocation(let b): try Hospital.recordLocation(b, by: bumped, state: &scratch, context: ctx)
            case .recordSterilisation(let b): try Hospital.sterilisation(b, by: bumped, state: &scratch, context: ctx)
            case .acknowledgeAlert(let b): try Monitoring.acknowledge(b, by: bumped, state: &scratch, context: ctx)
            case .registerMaterialSource(let b): try SupplyChain.registerSource(b, by: bumped, state: &scratch, context: ctx)
            case .linkMaterialSource(let b): try SupplyChain.linkSource(b, by: bumped, state: &scratch, context: ctx)
            case .recordBatchTest(let b): try SupplyChain.recordTest(b, by: bumped, state: &scratch, context: ctx)
            }
        }
    }

    /// The result of running a candidate block's transactions.
    public struct BlockResult: Sendable {
        public var state: StateOverlay
        public var applied: [SignedTransaction]
        public var rejected: [(transaction: SignedTransaction, error: ContractError)]
    }

    /// Runs `transactions` in order on `base`; ones that fail are left out (a proposer drops them;
    /// a validator treats any as an invalid block).
    public static func execute(_ transactions: [SignedTransaction], on base: AuthenticatedState, context: ExecutionContext) -> BlockResult {
        let r = execute(sealed: transactions.map(SealedTransaction.init), on: base, context: context)
        return BlockResult(state: r.state, applied: r.applied.map(\.signed), rejected: r.rejected.map { ($0.transaction.signed, $0.error) })
    }

    /// `BlockResult` with the transactions in sealed form.
    public struct SealedBlockResult: Sendable {
        public var state: StateOverlay
        public var applied: [SealedTransaction]
        public var rejected: [(transaction: SealedTransaction, error: ContractError)]
    }

    /// `execute` for sealed transactions (no encoding or hashing on the way).
    public static func execute(sealed transactions: [SealedTransaction], on base: AuthenticatedState, context: ExecutionContext) -> SealedBlockResult {
        var state = StateOverlay(base: base)
        var applied: [SealedTransaction] = []
        applied.reserveCapacity(transactions.count)
        var rejected: [(SealedTransaction, ContractError)] = []
        for tx in transactions {
            do {
                try apply(tx, to: &state, context: context)
                applied.append(tx)
            } catch {
                rejected.append((tx, error))
            }
        }
        endBlock(height: context.height, state: &state)
        return SealedBlockResult(state: state, applied: applied, rejected: rejected)
    }

    /// Work at the end of every block, after its transactions: scheduled validator-set changes
    /// take over. Corrupt state here is left as it is (the block's state root then exposes it).
    public static func endBlock(height: UInt64, state: inout StateOverlay) {
        try? Governance.endBlock(height: height, state: &state)
    }
}

/// Bounds on free-text fields so a transaction cannot carry a document.
enum Limits {
    static let labelBytes = 256
    static let reasonBytes = 256

    static func check(_ s: String, max: Int, field: String) throws(ContractError) {
        guard s.utf8.count <= max else { throw .invalidArgument("\(field) is \(s.utf8.count) bytes; at most \(max)") }
    }
}
