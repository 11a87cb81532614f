import IoMTContracts
import IoMTCore
import Testing

@Suite("Governance module")
struct GovernanceTests {
    typealias C = Consortium
    static let lab = Organisation(id: "lab-one", name: "Lab One", kind: "laboratory")
    static let device = C.ed25519(0xD1)

    @Test("add-organisation needs two approvals: after the proposal it does not exist, after the second it does")
    func addOrganisation() throws {
        var l = Ledger()
        let id = l.apply(C.adminA, .proposeGovernance(.addOrganisation(Self.lab)))
        let open = try #require(l.proposal(id))
        #expect(open.id == id && open.status == .open && open.approvals == [C.adminA.publicKey.address])
        #expect(open.proposer == C.adminA.publicKey.address && open.createdAtHeight == l.context.height)
        #expect(open.closedAtHeight == nil && open.failure == nil)
        #expect(l.organisation("lab-one") == nil)

        l.apply(C.adminB, .approve(id))
        let done = try #require(l.proposal(id))
        #expect(done.status == .executed && done.closedAtHeight == l.context.height && done.failure == nil)
        #expect(done.approvals == [C.adminA.publicKey.address, C.adminB.publicKey.address].sorted())
        #expect(l.organisation("lab-one") == Self.lab)
        // The new organisation is usable: an admin can be added for it, who can register accounts.
        let labAdmin = C.p256(0x77)
        l.govern(.addAdmin(publicKey: labAdmin.publicKey, organisation: "lab-one", label: "lab admin"), by: C.adminC, approvedBy: [C.adminB])
        l.apply(labAdmin, .register(Self.device, .device, "lab-one"))
        #expect(l.account(Self.device)?.organisation == "lab-one")
    }

    @Test("approval refusals: twice by the same admin, after execution, unknown proposal, non-admins")
    func approvalRefusals() {
        var l = Ledger()
        let id = l.apply(C.adminA, .proposeGovernance(.addOrganisation(Self.lab)))
        // The proposer's proposal already counts as its approval.
        l.reject(C.adminA, .approve(id), "already-approved")
        l.reject(C.adminB, .approve(Hash.sha256(Array("no such proposal".utf8))), "unknown-proposal")
        l.apply(C.adminA, .register(Self.device, .practitioner, "st-marys"))
        l.reject(Self.device, .approve(id), "unauthorised")
        l.reject(Self.device, .proposeGovernance(.setAdminQuorum(1)), "unauthorised")
        #expect(l.proposal(id)?.status == .open)

        l.apply(C.adminB, .approve(id))
        l.reject(C.adminC, .approve(id), "proposal-closed")
        l.reject(C.adminB, .approve(id), "proposal-closed")
        #expect(l.proposal(id)?.approvals.count == 2)
    }

    @Test("an action that cannot apply is refused when proposed")
    func proposeRefusals() {
        var l = Ledger()
        l.reject(C.adminA, .proposeGovernance(.addOrganisation(C.cityClinic)), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.addOrganisation(Organisation(id: "Bad Id", name: "x", kind: "x"))), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.addOrganisation(Organisation(id: "ok", name: String(repeating: "n", count: 257), kind: "x"))), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.addAdmin(publicKey: C.ed25519(0x99).publicKey, organisation: "nowhere", label: "")), "unknown-organisation")
        l.reject(C.adminA, .proposeGovernance(.addAdmin(publicKey: C.adminB.publicKey, organisation: "st-marys", label: "")), "already-exists")
        l.reject(C.adminA, .proposeGovernance(.removeAdmin(account: Self.device.publicKey.address)), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.setConsensusParameters(ConsensusParameters(blockIntervalMs: 0))), "invalid-argument")
        #expect(l.state.writes.isEmpty)
    }

    @Test("remove-admin: allowed down to the quorum, refused below it")
    func removeAdmin() throws {
        var l = Ledger()
        let c = C.adminC.publicKey.address
        l.govern(.removeAdmin(account: c), by: C.adminA, approvedBy: [C.adminB])
        #expect(!l.admins.contains(c) && l.admins.count == 2)
        #expect(l.account(c)?.status == .revoked)
        // The removed admin can no longer act.
        l.reject(C.adminC, .proposeGovernance(.setAdminQuorum(1)), "sender-not-active")
        // Two admins, quorum 2: removing another would leave one.
        l.reject(C.adminA, .proposeGovernance(.removeAdmin(account: C.adminB.publicKey.address)), "invalid-argument")
        #expect(l.admins.count == 2)
    }

    @Test("set-admin-quorum: bounds are 1…number of admins, and the new quorum applies")
    func setAdminQuorum() throws {
        var l = Ledger()
        l.reject(C.adminA, .proposeGovernance(.setAdminQuorum(0)), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.setAdminQuorum(4)), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.setAdminQuorum(.max)), "invalid-argument")
        l.govern(.setAdminQuorum(3), by: C.adminA, approvedBy: [C.adminC])
        #expect(l.quorum == 3)
        // Now two approvals are not enough.
        let id = l.govern(.addOrganisation(Self.lab), by: C.adminB, approvedBy: [C.adminA])
        #expect(l.proposal(id)?.status == .open && l.organisation("lab-one") == nil)
        l.apply(C.adminC, .approve(id))
        #expect(l.proposal(id)?.status == .executed && l.organisation("lab-one") != nil)
        // With quorum 3 and three admins, no admin can be removed.
        l.reject(C.adminA, .proposeGovernance(.removeAdmin(account: C.adminC.publicKey.address)), "invalid-argument")
        // Quorum 1: a proposal executes on its own.
        l.govern(.setAdminQuorum(1), by: C.adminA, approvedBy: [C.adminB, C.adminC])
        let solo = l.govern(.addOrganisation(Organisation(id: "solo", name: "Solo", kind: "clinic")), by: C.adminB)
        #expect(l.proposal(solo)?.status == .executed && l.organisation("solo") != nil)
    }

    @Test("add and remove validators")
    func validators() {
        var l = Ledger()
        let v2 = Validator(publicKey: C.p256(0x72).publicKey, organisation: "city-clinic", power: 2)
        l.reject(C.adminA, .proposeGovernance(.addValidator(Validator(publicKey: v2.publicKey, organisation: "city-clinic", power: 0))), "invalid-argument")
        l.reject(C.adminA, .proposeGovernance(.addValidator(Validator(publicKey: v2.publicKey, organisation: "nowhere"))), "unknown-organisation")
        let approvedAt = l.context.height
        l.govern(.addValidator(v2), by: C.adminA, approvedBy: [C.adminB])
        // Scheduled, not yet in force: the set changes at the end of the next block, so block
        // approvedAt + 2 is the first the new set signs.
        #expect(l.validators == C.genesis.validators)
        #expect(l.scheduledValidators == ScheduledValidators(effectiveHeight: approvedAt + 2, validators: [C.genesis.validators[0], v2]))
        #expect(l.account(v2.publicKey.address)?.role == .node)
        l.reject(C.adminC, .proposeGovernance(.addValidator(v2)), "already-exists")
        l.reject(C.adminC, .proposeGovernance(.removeValidator(publicKey: C.ed25519(0x99).publicKey)), "invalid-argument")
        l.endBlock()
        #expect(l.validators == C.genesis.validators, "in force after block \(approvedAt + 1), not before")
        l.endBlock()
        #expect(l.validators == [C.genesis.validators[0], v2])
        #expect(l.scheduledValidators == nil)
        l.govern(.removeValidator(publicKey: C.validatorKey.publicKey), by: C.adminC, approvedBy: [C.adminA])
        // The last validator of the scheduled set cannot go either.
        l.reject(C.adminA, .proposeGovernance(.removeValidator(publicKey: v2.publicKey)), "invalid-argument")
        l.endBlock()
        l.endBlock()
        #expect(l.validators == [v2])
        l.reject(C.adminA, .proposeGovernance(.removeValidator(publicKey: v2.publicKey)), "invalid-argument")
        #expect(l.validators == [v2])
    }

    @Test("consensus parameters and admins change by governance")
    func consensusAndAdmins() {
        var l = Ledger()
        let p = ConsensusParameters(maxBlockBytes: 1 << 20, maxTransactionBytes: 8192, maxBlockTransactions: 100, blockIntervalMs: 1000)
        l.govern(.setConsensusParameters(p), by: C.adminA, approvedBy: [C.adminB])
        #expect(l.consensus == p)
        let d = C.ed25519(0xAD)
        l.govern(.addAdmin(publicKey: d.publicKey, organisation: "st-marys", label: "second st-marys admin"), by: C.adminA, approvedBy: [C.adminC])
        #expect(l.admins.contains(d.publicKey.address) && l.admins.count == 4)
        let acct = l.account(d)
        #expect(acct?.role == .memberAdmin && acct?.organisation == "st-marys" && acct?.status == .active && acct?.registeredAtHeight == l.context.height)
        // The new admin approves, and member-admin status changes are refused to plain status txs.
        let id = l.apply(C.adminB, .proposeGovernance(.addOrganisation(Self.lab)))
        l.apply(d, .approve(id))
        #expect(l.proposal(id)?.status == .executed)
        l.reject(C.adminA, .status(d, .suspended), "invalid-argument")
    }

    @Test("an action that became impossible by quorum time closes as failed, changing nothing else")
    func failedAtQuorum() throws {
        var l = Ledger()
        let first = l.apply(C.adminA, .proposeGovernance(.addOrganisation(Self.lab)))
        let competing = Organisation(id: "lab-one", name: "Another Lab", kind: "laboratory")
        let second = l.apply(C.adminB, .proposeGovernance(.addOrganisation(competing)))
        l.apply(C.adminC, .approve(first))
        #expect(l.organisation("lab-one") == Self.lab)

        let orgBefore = l.state.value(forKey: StateKeys.organisation("lab-one"))
        let writesBefore = l.state.writes
        l.apply(C.adminC, .approve(second)) // the approval itself is accepted
        let p = try #require(l.proposal(second))
        #expect(p.status == .failed)
        #expect(p.closedAtHeight == l.context.height)
        #expect(p.failure?.hasPrefix("already-exists") == true)
        #expect(l.organisation("lab-one") == Self.lab)
        #expect(l.state.value(forKey: StateKeys.organisation("lab-one")) == orgBefore)
        // Only the proposal and the approver's nonce changed.
        let changed = Set(l.state.writes.filter { writesBefore[$0.key] != $0.value }.keys)
        #expect(changed == [StateKeys.proposal(second), StateKeys.account(C.adminC.publicKey.address)])
        // A failed proposal is closed.
        l.reject(C.adminA, .approve(second), "proposal-closed")
    }

    @Test("remove-admin that no longer fits the quorum fails at quorum time")
    func removeAdminFailsLater() throws {
        var l = Ledger()
        // Both proposals are valid when proposed (3 admins, quorum 2).
        let removeB = l.apply(C.adminA, .proposeGovernance(.removeAdmin(account: C.adminB.publicKey.address)))
        let removeC = l.apply(C.adminA, .proposeGovernance(.removeAdmin(account: C.adminC.publicKey.address)))
        l.apply(C.adminC, .approve(removeB))
        #expect(l.admins.count == 2 && !l.admins.contains(C.adminB.publicKey.address))
        // Approving the second would leave one admin below quorum 2: it closes as failed.
        // (adminB was removed and cannot approve; adminC approves its own removal.)
        l.apply(C.adminC, .approve(removeC))
        let p = try #require(l.proposal(removeC))
        #expect(p.status == .failed && p.failure?.hasPrefix("invalid-argument") == true)
        #expect(l.admins.count == 2 && l.admins.contains(C.adminC.publicKey.address))
    }

    @Test("approvals by admins removed since then do not count toward the quorum")
    func staleApprovals() throws {
        var l = Ledger()
        // Four admins, quorum 3.
        let d = C.ed25519(0xAD)
        l.govern(.addAdmin(publicKey: d.publicKey, organisation: "city-clinic", label: ""), by: C.adminA, approvedBy: [C.adminB])
        l.govern(.setAdminQuorum(3), by: C.adminA, approvedBy: [C.adminB])
        // adminD proposes, adminC approves: two of three.
        let id = l.govern(.addOrganisation(Self.lab), by: d, approvedBy: [C.adminC])
        #expect(l.proposal(id)?.status == .open)
        // adminC is removed (A, B, D approve).
        l.govern(.removeAdmin(account: C.adminC.publicKey.address), by: C.adminA, approvedBy: [C.adminB, d])
        #expect(l.admins.count == 3)
        // adminB's approval makes three recorded approvals, but only two (D, B) are admins now.
        l.apply(C.adminB, .approve(id))
        let p = try #require(l.proposal(id))
        #expect(p.approvals.count == 3)
        #expect(p.status == .open && l.organisation("lab-one") == nil)
        l.apply(C.adminA, .approve(id))
        #expect(l.proposal(id)?.status == .executed && l.organisation("lab-one") != nil)
    }
}
