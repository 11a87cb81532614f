import IoMTCore

/// Accounts: registration by a member-admin of the same organisation, suspension and revocation,
/// key rotation by the account itself.
enum Membership {
    static func register(_ b: RegisterAccount, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin registers accounts") }
        guard b.organisation == sender.organisation else {
            throw .unauthorised("a member-admin of \"\(sender.organisation)\" cannot register accounts for \"\(b.organisation)\"")
        }
        guard b.role != .memberAdmin else {
            throw .invalidArgument("member-admins are added by governance (propose-governance add-admin)")
        }
        guard b.role != .patient else {
            throw .invalidArgument("patients are enrolled with register-patient (their X25519 key and pseudonym)")
        }
        try Limits.check(b.label, max: Limits.labelBytes, field: "label")
        guard try state.read(Organisation.self, StateKeys.organisation(b.organisation)) != nil else { throw .unknownOrganisation(b.organisation) }
        let address = b.publicKey.address
        guard state.value(forKey: StateKeys.account(address)) == nil else { throw .alreadyExists("account \(address)") }
        let account = Account(address: address, publicKey: b.publicKey, role: b.role, organisation: b.organisation, registeredAtHeight: context.height, label: b.label)
        state.put(StateKeys.account(address), account)
    }

    static func setStatus(_ b: SetAccountStatus, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin changes account status") }
        try Limits.check(b.reason, max: Limits.reasonBytes, field: "reason")
        guard var target = try state.read(Account.self, StateKeys.account(b.account)) else { throw .unknownAccount(b.account) }
        guard target.organisation == sender.organisation else {
            throw .unauthorised("account \(b.account) belongs to \"\(target.organisation)\"")
        }
        guard target.role != .memberAdmin else { throw .invalidArgument("member-admins are removed by governance (remove-admin)") }
        guard target.status != .revoked else { throw .invalidArgument("account \(b.account) is revoked; revocation is final") }
        guard target.status != b.status else { throw .invalidArgument("account \(b.account) is already \(b.status.name)") }
        target.status = b.status
        state.put(StateKeys.account(b.account), target)
    }

    static func rotateKey(_ b: RotateKey, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard b.newPublicKey != sender.publicKey else { throw .invalidArgument("the new key is the current key") }
        // A key that derives another account's address would make that address ambiguous.
        let derived = b.newPublicKey.address
        guard derived == sender.address || state.value(forKey: StateKeys.account(derived)) == nil else {
            throw .alreadyExists("another account is registered under key \(b.newPublicKey)")
        }
        var me = sender
        me.publicKey = b.newPublicKey
        state.put(StateKeys.account(sender.address), me)
    }
}
