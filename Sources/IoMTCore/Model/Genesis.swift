/// The genesis file (JSON): chain id, organisations, admins, validators, consensus parameters.
public struct Genesis: Hashable, Sendable, Codable {
    public struct Admin: Hashable, Sendable, Codable {
        public var publicKey: PublicKey
        public var organisation: String
        public var label: String?

        public init(publicKey: PublicKey, organisation: String, label: String? = nil) {
            self.publicKey = publicKey
            self.organisation = organisation
            self.label = label
        }
    }

    public var chainId: String
    public var genesisTimeMs: Int64
    public var organisations: [Organisation]
    public var admins: [Admin]
    /// Distinct member-admin approvals a governance action needs.
    public var adminQuorum: UInt32
    public var validators: [Validator]
    public var consensus: ConsensusParameters
    /// The consensus protocol (absent: BFT). Fixed for the chain's life.
    public var consensusMode: ConsensusMode?

    /// The consensus protocol this chain runs.
    public var mode: ConsensusMode { consensusMode ?? .bft }

    public init(chainId: String, genesisTimeMs: Int64, organisations: [Organisation], admins: [Admin], adminQuorum: UInt32, validators: [Validator], consensus: ConsensusParameters, consensusMode: ConsensusMode? = nil) {
        self.consensusMode = consensusMode
        self.chainId = chainId
        self.genesisTimeMs = genesisTimeMs
        self.organisations = organisations
        self.admins = admins
        self.adminQuorum = adminQuorum
        self.validators = validators
        self.consensus = consensus
    }

    public struct Invalid: Error, Equatable, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { "invalid genesis: \(reason)" }
    }

    public static func isValidIdentifier(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x2e || c == 0x5f
        }
    }

    public func validate() throws(Invalid) {
        guard Genesis.isValidIdentifier(chainId) else { throw Invalid(reason: "chainId must be 1–64 of [a-z0-9._-]") }
        guard !organisations.isEmpty else { throw Invalid(reason: "at least one organisation") }
        let orgIDs = Set(organisations.map(\.id))
        guard orgIDs.count == organisations.count else { throw Invalid(reason: "duplicate organisation id") }
        for o in organisations where !Genesis.isValidIdentifier(o.id) {
            throw Invalid(reason: "organisation id \"\(o.id)\" must be 1–64 of [a-z0-9._-]")
        }
        guard !admins.isEmpty else { throw Invalid(reason: "at least one admin") }
        guard Set(admins.map(\.publicKey.address)).count == admins.count else { throw Invalid(reason: "duplicate admin key") }
        for a in admins where !orgIDs.contains(a.organisation) {
            throw Invalid(reason: "admin \(a.publicKey) names unknown organisation \"\(a.organisation)\"")
        }
        guard adminQuorum >= 1, Int(adminQuorum) <= admins.count else {
            throw Invalid(reason: "adminQuorum must be between 1 and the number of admins (\(admins.count))")
        }
        guard !validators.isEmpty else { throw Invalid(reason: "at least one validator") }
        guard Set(validators.map(\.publicKey)).count == validators.count else { throw Invalid(reason: "duplicate validator key") }
        for v in validators {
            guard orgIDs.contains(v.organisation) else { throw Invalid(reason: "validator \(v.publicKey) names unknown organisation \"\(v.organisation)\"") }
            guard v.power > 0 else { throw Invalid(reason: "validator power must be positive") }
        }
        try Genesis.validate(consensus)
        try mode.validate()
        if mode.kind == .poa, Int(mode.confirmationDepth) < ProofOfAuthority.recentWindow(validators.count) {
            throw Invalid(reason: "poa confirmationDepth must be at least ⌊validators/2⌋ = \(ProofOfAuthority.recentWindow(validators.count)), or a cut-off minority could finalise a fork")
        }
    }

    public static func validate(_ p: ConsensusParameters) throws(Invalid) {
        guard p.maxTransactionBytes >= 256, p.maxTransactionBytes <= 1 << 20 else { throw Invalid(reason: "maxTransactionBytes must be 256…1048576") }
        guard p.maxBlockBytes >= p.maxTransactionBytes, p.maxBlockBytes <= 64 << 20 else { throw Invalid(reason: "maxBlockBytes must be maxTransactionBytes…64 MiB") }
        guard p.maxBlockTransactions >= 1, p.maxBlockTransactions <= 100_000 else { throw Invalid(reason: "maxBlockTransactions must be 1…100000") }
        guard p.blockIntervalMs >= 1, p.blockIntervalMs <= 60_000 else { throw Invalid(reason: "blockIntervalMs must be 1…60000") }
    }

    /// The state the chain starts from.
    public func initialState() -> AuthenticatedState {
        var writes: [[UInt8]: [UInt8]?] = [:]
        writes[StateKeys.chainID] = chainId.canonicalBytes
        for o in organisations { writes[StateKeys.organisation(o.id)] = o.canonicalBytes }
        var adminSet = AddressSet([])
        for a in admins {
            let acct = Account(address: a.publicKey.address, publicKey: a.publicKey, role: .memberAdmin, organisation: a.organisation, registeredAtHeight: 0, label: a.label ?? "")
            writes[StateKeys.account(acct.address)] = acct.canonicalBytes
            adminSet.insert(acct.address)
        }
        // Each validator's key is also a node account of its organisation, so the node can sign
        // transactions of its own (e.g. report evidence of equivocation) and is admitted to the
        // peer-to-peer network by the same on-chain membership as observers.
        for v in validators where writes[StateKeys.account(v.address)] == nil {
            let acct = Account(address: v.address, publicKey: v.publicKey, role: .node, organisation: v.organisation, registeredAtHeight: 0, label: "validator")
            writes[StateKeys.account(acct.address)] = acct.canonicalBytes
        }
        writes[StateKeys.admins] = adminSet.canonicalBytes
        writes[StateKeys.governance] = GovernanceParameters(adminQuorum: adminQuorum).canonicalBytes
        writes[StateKeys.validators] = validators.canonicalBytes
        writes[StateKeys.consensus] = consensus.canonicalBytes
        // Written only for the non-default modes, so a BFT chain's genesis (and its hash) is
        // the same as before modes existed.
        if mode.kind != .bft { writes[StateKeys.consensusMode] = mode.canonicalBytes }
        return AuthenticatedState().applying(writes)
    }

    /// Block 0: no transactions, no commit; its hash names the chain.
    public func genesisBlock() -> Block {
        let header = BlockHeader(
            chainID: chainId, height: 0, previousHash: .zero,
            transactionsRoot: MerkleTree.emptyRoot, transactionCount: 0,
            stateRoot: initialState().root, validatorsHash: Validator.setHash(validators),
            timestampMs: genesisTimeMs, proposer: .zero,
            difficultyTarget: mode.kind == .pow ? mode.initialDifficulty : 0)
        return Block(header: header, transactions: [], commit: nil)
    }
}
