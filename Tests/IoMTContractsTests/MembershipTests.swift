import IoMTContracts
import IoMTCore
import Testing

@Suite("Membership module")
struct MembershipTests {
    typealias C = Consortium
    static let device = C.ed25519(0xD1)
    static let practitioner = C.p256(0xD2)
    static let clinicDevice = C.ed25519(0xD3)

    // MARK: register-account

    @Test("a member-admin registers an account of its organisation")
    func registerSucceeds() throws {
        var l = Ledger()
        let adminBefore = try #require(l.account(C.adminA))
        l.apply(C.adminA, .register(Self.device, .device, "st-marys", label: "infusion pump 4"))
        let acct = try #require(l.account(Self.device))
        #expect(acct.address == Self.device.publicKey.address)
        #expect(acct.publicKey == Self.device.publicKey)
        #expect(acct.role == .device && acct.organisation == "st-marys" && acct.status == .active)
        #expect(acct.nonce == 0 && acct.registeredAtHeight == l.context.height && acct.label == "infusion pump 4")
        // The admin's nonce moved; nothing else about it did.
        var expectedAdmin = adminBefore
        expectedAdmin.nonce += 1
        #expect(l.account(C.adminA) == expectedAdmin)
        // Exactly two records written: the new account and the sender's nonce.
        #expect(Set(l.state.writes.keys) == [StateKeys.account(Self.device.publicKey.address), StateKeys.account(C.adminA.publicKey.address)])
        // P-256 accounts too, and every role but member-admin and patient (enrolled by register-patient).
        for (i, role) in Role.allCases.filter({ $0 != .memberAdmin && $0 != .patient }).enumerated() {
            let k = C.p256(UInt8(0x30 + i))
            l.apply(C.adminB, .register(k, role, "city-clinic"))
            #expect(l.account(k)?.role == role)
        }
        #expect(l.account(C.adminB)?.nonce == 7)
    }

    @Test("registration refusals", arguments: [
        // (who registers, payload, expected code)
        ("non-admin", 0, "unauthorised"),
        ("other organisation", 1, "unauthorised"),
        ("nonexistent organisation", 2, "unauthorised"),
        ("member-admin role", 3, "invalid-argument"),
        ("duplicate", 4, "already-exists"),
        ("duplicate of an admin", 5, "already-exists"),
        ("label too long", 6, "invalid-argument"),
    ])
    func registerRefusals(_ name: String, _ caseIndex: Int, _ code: String) {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.practitioner, .practitioner, "st-marys"))
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        let newKey = C.ed25519(0xE0)
        switch caseIndex {
        case 0: l.reject(Self.practitioner, .register(newKey, .patient, "st-marys"), code)
        case 1: l.reject(C.adminA, .register(newKey, .device, "city-clinic"), code)
        case 2: l.reject(C.adminA, .register(newKey, .device, "no-such-org"), code)
        case 3: l.reject(C.adminA, .register(newKey, .memberAdmin, "st-marys"), code)
        case 4: l.reject(C.adminA, .register(Self.device, .gateway, "st-marys"), code)
        case 5: l.reject(C.adminB, .register(C.adminC, .device, "city-clinic"), code)
        default: l.reject(C.adminA, .register(newKey, .device, "st-marys", label: String(repeating: "é", count: 129)), code)
        }
        #expect(l.account(newKey) == nil)
    }

    @Test("a 256-byte label is the limit")
    func labelLimit() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys", label: String(repeating: "x", count: 256)))
        #expect(l.account(Self.device)?.label.utf8.count == 256)
    }

    @Test("registering into an organisation missing from state is unknown-organisation")
    func unknownOrganisation() {
        // An admin whose organisation record is gone (only reachable through a corrupt or hand-made
        // state; the runtime must still refuse rather than create an orphan account).
        var l = Ledger()
        l.state.delete(StateKeys.organisation("st-marys"))
        l.reject(C.adminA, .register(Self.device, .device, "st-marys"), "unknown-organisation")
    }

    // MARK: set-account-status

    @Test("suspend, reactivate, revoke; revocation is final")
    func statusLifecycle() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        let rotate = TransactionPayload.rotateKey(RotateKey(newPublicKey: C.ed25519(0xF0).publicKey))

        l.apply(C.adminA, .status(Self.device, .suspended, reason: "lost"))
        #expect(l.account(Self.device)?.status == .suspended)
        // A suspended account cannot send.
        l.reject(Self.device, rotate, "sender-not-active")
        // Suspending twice is refused.
        l.reject(C.adminA, .status(Self.device, .suspended), "invalid-argument")

        l.apply(C.adminA, .status(Self.device, .active, reason: "found"))
        #expect(l.account(Self.device)?.status == .active)
        l.apply(Self.device, rotate)
        #expect(l.account(Self.device)?.nonce == 1)

        l.apply(C.adminA, .status(Self.device, .revoked, reason: "decommissioned"))
        #expect(l.account(Self.device)?.status == .revoked)
        // Final: neither reactivation nor suspension, and the account never sends again.
        l.reject(C.adminA, .status(Self.device, .active), "invalid-argument")
        l.reject(C.adminA, .status(Self.device, .suspended), "invalid-argument")
        l.reject(l.transaction(C.ed25519(0xF0), .rotateKey(RotateKey(newPublicKey: C.ed25519(0xF1).publicKey)), sender: Self.device.publicKey.address), "sender-not-active")
        #expect(l.account(Self.device)?.status == .revoked)
    }

    @Test("status changes are refused across organisations, for admins, unknown accounts and non-admins")
    func statusRefusals() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        l.apply(C.adminA, .register(Self.practitioner, .practitioner, "st-marys"))
        // Another organisation's admin.
        l.reject(C.adminB, .status(Self.device, .suspended), "unauthorised")
        l.reject(C.adminB, .status(Self.device, .revoked), "unauthorised")
        // A non-admin of the same organisation.
        l.reject(Self.practitioner, .status(Self.device, .suspended), "unauthorised")
        // Member-admins are removed by governance only, including oneself.
        l.reject(C.adminA, .status(C.adminA, .suspended), "invalid-argument")
        // Unknown account.
        l.reject(C.adminA, .status(C.ed25519(0xEE), .suspended), "unknown-account")
        // A reason over 256 bytes.
        l.reject(C.adminA, .status(Self.device, .suspended, reason: String(repeating: "r", count: 257)), "invalid-argument")
        #expect(l.account(Self.device)?.status == .active)
    }

    // MARK: rotate-key

    @Test("after a key rotation the old key is refused and the new key accepted")
    func rotateKey() throws {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        let address = Self.device.publicKey.address
        let newKey = C.p256(0x44)
        l.apply(Self.device, .rotateKey(RotateKey(newPublicKey: newKey.publicKey)))
        let acct = try #require(l.account(address))
        #expect(acct.publicKey == newKey.publicKey)
        #expect(acct.address == address && acct.nonce == 1 && acct.role == .device)
        // Nothing was registered under the new key's own address.
        #expect(l.account(newKey.publicKey.address) == nil)

        let next = TransactionPayload.rotateKey(RotateKey(newPublicKey: C.ed25519(0x45).publicKey))
        l.reject(l.transaction(Self.device, next, sender: address), "signer-key-mismatch")
        l.apply(l.transaction(newKey, next, sender: address))
        #expect(l.account(address)?.publicKey == C.ed25519(0x45).publicKey)
        #expect(l.account(address)?.nonce == 2)
    }

    @Test("rotate-key refusals: the same key, or a key that derives another account's address")
    func rotateKeyRefusals() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        l.apply(C.adminA, .register(Self.practitioner, .practitioner, "st-marys"))
        l.reject(Self.device, .rotateKey(RotateKey(newPublicKey: Self.device.publicKey)), "invalid-argument")
        l.reject(Self.device, .rotateKey(RotateKey(newPublicKey: Self.practitioner.publicKey)), "already-exists")
        l.reject(Self.device, .rotateKey(RotateKey(newPublicKey: C.adminB.publicKey)), "already-exists")
        #expect(l.account(Self.device)?.publicKey == Self.device.publicKey)
    }

    @Test("an account may rotate back to the key its address derives from")
    func rotateBack() {
        var l = Ledger()
        l.apply(C.adminA, .register(Self.device, .device, "st-marys"))
        let address = Self.device.publicKey.address
        let temp = C.ed25519(0x46)
        l.apply(Self.device, .rotateKey(RotateKey(newPublicKey: temp.publicKey)))
        l.apply(l.transaction(temp, .rotateKey(RotateKey(newPublicKey: Self.device.publicKey)), sender: address))
        #expect(l.account(address)?.publicKey == Self.device.publicKey)
    }

    @Test("a member-admin that rotates its key stays an admin")
    func adminRotates() {
        var l = Ledger()
        let newKey = C.ed25519(0xA9)
        let address = C.adminA.publicKey.address
        l.apply(C.adminA, .rotateKey(RotateKey(newPublicKey: newKey.publicKey)))
        #expect(l.admins.contains(address))
        l.apply(l.transaction(newKey, .register(Self.device, .device, "st-marys"), sender: address))
        #expect(l.account(Self.device)?.organisation == "st-marys")
        l.reject(C.adminA, .register(C.ed25519(0xE1), .device, "st-marys"), "signer-key-mismatch")
    }
}
