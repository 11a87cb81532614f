import IoMTCore

/// Consortium governance: organisations, member-admins, the admin quorum, validators and
/// consensus parameters change only when a quorum of current member-admins approves.
///
/// A proposal is checked against the state when proposed (an action that cannot apply is refused
/// at once); it executes in the transaction that brings its approvals to the quorum. If by then
/// the action no longer applies, the proposal closes as `failed` with the reason.
enum Governance {
    static func propose(_ action: GovernanceAction, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let admins = try adminSet(state)
        guard sender.role == .memberAdmin, admins.contains(sender.address) else { throw .unauthorised("only a member-admin proposes governance actions") }
        // Refuse at once an action that could not apply now (the dry run's writes are discarded).
        var dryRun = state
        try perform(action, state: &dryRun, context: context)

        var proposal = Proposal(id: context.transactionHash, action: action, proposer: sender.address, approvals: [sender.address], status: .open, createdAtHeight: context.height)
        try closeIfQuorum(&proposal, admins: admins, state: &state, context: context)
        state.put(StateKeys.proposal(proposal.id), proposal)
    }

    static func approve(_ b: ApproveProposal, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let admins = try adminSet(state)
        guard sender.role == .memberAdmin, admins.contains(sender.address) else { throw .unauthorised("only a member-admin approves governance actions") }
        guard var proposal = try state.read(Proposal.self, StateKeys.proposal(b.proposal)) else { throw .unknownProposal(b.proposal) }
        guard proposal.status == .open else { throw .proposalClosed(b.proposal) }
        guard !proposal.approvals.contains(sender.address) else { throw .alreadyApproved(b.proposal) }
        proposal.approvals.append(sender.address)
        proposal.approvals.sort()
        try closeIfQuorum(&proposal, admins: admins, state: &state, context: context)
        state.put(StateKeys.proposal(proposal.id), proposal)
    }

    /// Only approvals by accounts that are admins now count toward the quorum.
    private static func closeIfQuorum(_ p: inout Proposal, admins: AddressSet, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let quorum = try parameters(state).adminQuorum
        let counted = p.approvals.filter { admins.contains($0) }.count
        guard counted >= Int(quorum) else { return }
        do {
            let action = p.action
            _ = try state.atomically { (s: inout StateOverlay) throws(ContractError) in try perform(action, state: &s, context: context) }
            p.status = .executed
        } catch {
            p.status = .failed
            p.failure = "\(error.code): \(error)"
        }
        p.closedAtHeight = context.height
    }

    static func perform(_ action: GovernanceAction, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        switch action {
        case .addOrganisation(let o):
            guard Genesis.isValidIdentifier(o.id) else { throw .invalidArgument("organisation id must be 1–64 of [a-z0-9._-]") }
            try Limits.check(o.name, max: Limits.labelBytes, field: "name")
            try Limits.check(o.kind, max: 64, field: "kind")
            guard state.value(forKey: StateKeys.organisation(o.id)) == nil else { throw .alreadyExists("organisation \"\(o.id)\"") }
            state.put(StateKeys.organisation(o.id), o)

        case .addAdmin(let key, let org, let label):
            try Limits.check(label, max: Limits.labelBytes, field: "label")
            guard try state.read(Organisation.self, StateKeys.organisation(org)) != nil else { throw .unknownOrganisation(org) }
            guard state.value(forKey: StateKeys.account(key.address)) == nil else { throw .alreadyExists("account \(key.address)") }
            state.put(StateKeys.account(key.address), Account(address: key.address, publicKey: key, role: .memberAdmin, organisation: org, registeredAtHeight: context.height, label: label))
            var admins = try adminSet(state)
            admins.insert(key.address)
            state.put(StateKeys.admins, admins)

        case .removeAdmin(let address):
            var admins = try adminSet(state)
            guard admins.contains(address), var account = try state.read(Account.self, StateKeys.account(address)) else {
                throw .invalidArgument("\(address) is not a member-admin")
            }
            let quorum = try parameters(state).adminQuorum
            guard admins.count - 1 >= Int(quorum) else {
                throw .invalidArgument("removing \(address) would leave \(admins.count - 1) admins, fewer than the quorum \(quorum)")
            }
            admins.remove(address)
            account.status = .revoked
            state.put(StateKeys.account(address), account)
            state.put(StateKeys.admins, admins)

        case .setAdminQuorum(let q):
            let admins = try adminSet(state)
            guard q >= 1, Int(q) <= admins.count else { throw .invalidArgument("quorum must be between 1 and the number of admins (\(admins.count))") }
            state.put(StateKeys.governance, GovernanceParameters(adminQuorum: q))

        case .addValidator(let v):
            guard v.power > 0 else { throw .invalidArgument("validator power must be positive") }
            guard try state.read(Organisation.self, StateKeys.organisation(v.organisation)) != nil else { throw .unknownOrganisation(v.organisation) }
            var set = try upcomingValidators(state)
            guard !set.contains(where: { $0.publicKey == v.publicKey }) else { throw .alreadyExists("validator \(v.publicKey)") }
            set.append(v)
            try schedule(set, state: &state, context: context)
            // The validator's key becomes a node account of its organisation (as at genesis), so
            // it is admitted to the network and can report evidence.
            if state.value(forKey: StateKeys.account(v.address)) == nil {
                state.put(StateKeys.account(v.address), Account(address: v.address, publicKey: v.publicKey, role: .node, organisation: v.organisation,
                                                                registeredAtHeight: context.height, label: "validator"))
            }

        case .removeValidator(let key):
            var set = try upcomingValidators(state)
            guard set.contains(where: { $0.publicKey == key }) else { throw .invalidArgument("\(key) is not a validator") }
            set.removeAll { $0.publicKey == key }
            guard !set.isEmpty else { throw .invalidArgument("cannot remove the last validator") }
            try schedule(set, state: &state, context: context)

        case .setConsensusParameters(let p):
            do { try Genesis.validate(p) } catch { throw .invalidArgument(error.reason) }
            state.put(StateKeys.consensus, p)

        case .assignGS1Prefix(let prefix, let org):
            guard GS1.isValidCompanyPrefix(prefix) else { throw .invalidArgument("a GS1 company prefix is 4…12 digits, not beginning with 00000") }
            guard let o = try state.read(Organisation.self, StateKeys.organisation(org)) else { throw .unknownOrganisation(org) }
            guard o.kind == "manufacturer" else { throw .invalidArgument("\"\(org)\" is not an organisation of kind manufacturer") }
            // Prefixes do not nest: one GTIN has one brand owner.
            let shorter = (4..<prefix.utf8.count).map { String(prefix.prefix($0)) }
            for p in [prefix] + shorter {
                if let taken = try state.read(GS1PrefixRecord.self, StateKeys.gs1Prefix(p)) {
                    throw .alreadyExists("GS1 company prefix \(p), assigned to \"\(taken.organisation)\"\(p == prefix ? "" : ", covers \(prefix)")")
                }
            }
            guard state.value(forKey: StateKeys.gs1PrefixNested(prefix)) == nil else { throw .alreadyExists("a longer GS1 company prefix beginning with \(prefix)") }
            for p in shorter { state.put(StateKeys.gs1PrefixNested(p), UInt64(1)) }
            state.put(StateKeys.gs1Prefix(prefix), GS1PrefixRecord(prefix: prefix, organisation: org, height: context.height))
        }
    }

    static func adminSet(_ state: StateOverlay) throws(ContractError) -> AddressSet {
        guard let s = try state.read(AddressSet.self, StateKeys.admins) else { throw .corruptState("admin set missing") }
        return s
    }

    static func parameters(_ state: StateOverlay) throws(ContractError) -> GovernanceParameters {
        guard let p = try state.read(GovernanceParameters.self, StateKeys.governance) else { throw .corruptState("governance parameters missing") }
        return p
    }

    /// Validator-set changes take effect `validatorSetDelay` heights after the block that makes
    /// them: a change approved at height H applies at the end of block H+1, so block H+2 is the
    /// first the new set signs (docs/consensus.md, "Validator-set changes").
    public static let validatorSetDelay: UInt64 = 2

    /// The set that will sign once every scheduled change has applied.
    static func upcomingValidators(_ state: StateOverlay) throws(ContractError) -> [Validator] {
        if let scheduled = try state.read(ScheduledValidators.self, StateKeys.scheduledValidators) { return scheduled.validators }
        return try validators(state)
    }

    static func schedule(_ set: [Validator], state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard set.reduce(UInt64(0), { $0 + $1.power }) <= 1 << 16 else { throw .invalidArgument("total validator power above 65,536") }
        state.put(StateKeys.scheduledValidators, ScheduledValidators(effectiveHeight: context.height + validatorSetDelay, validators: set))
    }

    /// End of block `height`: a scheduled set whose first height is the next one takes over.
    static func endBlock(height: UInt64, state: inout StateOverlay) throws(ContractError) {
        guard let scheduled = try state.read(ScheduledValidators.self, StateKeys.scheduledValidators), scheduled.effectiveHeight <= height + 1 else { return }
        state.put(StateKeys.validators, scheduled.validators)
        state.delete(StateKeys.scheduledValidators)
    }

    static func validators(_ state: StateOverlay) throws(ContractError) -> [Validator] {
        guard let v = try state.read([Validator].self, StateKeys.validators) else { throw .corruptState("validator set missing") }
        return v
    }
}
