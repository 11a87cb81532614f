import Foundation
import IoMTContracts
import IoMTCore
import Testing

@Suite("Research module: datasets of consenting patients, privacy budget, credits")
struct ResearchTests {
    typealias C = Consortium
    static let researcher = C.ed25519(0x61)
    static let otherResearcher = C.ed25519(0x62)
    static let gateway = C.ed25519(0x63)
    static let otherGateway = C.ed25519(0x64)
    static let patients = [C.ed25519(0x65), C.ed25519(0x66), C.ed25519(0x67), C.ed25519(0x68)]
    static let clinicResearcher = C.ed25519(0x69)
    static let day: Int64 = 86_400_000

    static func subject(_ k: PrivateKey) -> Hash { Pseudonym.of(k.publicKey.address) }
    static func balance(_ l: Ledger, _ k: PrivateKey) -> UInt64 { (try? l.state.read(UInt64.self, StateKeys.balance(k.publicKey.address))) ?? nil ?? 0 }
    static func entries(_ l: Ledger, _ k: PrivateKey) -> [CreditEntry] {
        let a = k.publicKey.address
        let n = (try? l.state.read(UInt64.self, StateKeys.creditCount(a))) ?? nil ?? 0
        return (0..<n).compactMap { (try? l.state.read(CreditEntry.self, StateKeys.creditEntry(a, $0 + 1))) ?? nil }
    }
    static func dataset(_ l: Ledger, _ id: Hash) -> DatasetRecord? { (try? l.state.read(DatasetRecord.self, StateKeys.dataset(id))) ?? nil }

    /// st-marys: a researcher, two gateways, four patients each with a device whose batches the
    /// first gateway anchored; patients 0–2 granted vital-signs for research to the researcher and
    /// delegated to the gateway; patient 3 granted nothing.
    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminA, .register(researcher, .researcher, "st-marys"))
        l.apply(C.adminA, .register(otherResearcher, .researcher, "st-marys"))
        l.apply(C.adminB, .register(clinicResearcher, .researcher, "city-clinic"))
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminA, .register(otherGateway, .gateway, "st-marys"))
        for (i, p) in patients.enumerated() {
            l.apply(C.adminA, .enrol(p))
            let device = C.ed25519(0x70 + UInt8(i))
            l.apply(p, .registerDevice(RegisterDevice(publicKey: device.publicKey, deviceType: "pulse-oximeter", subject: subject(p))))
            l.apply(gateway, .anchorReadings(AnchorReadings(device: device.publicKey.address, batchRoot: Hash.sha256([UInt8(i)]), blobDigest: Hash.sha256([UInt8(i), 1]),
                                                           firstMs: 1_000, lastMs: 2_000, count: 3)))
            if i < 3 {
                l.apply(p, .grantConsent(GrantConsent(grantee: i == 2 ? .organisation("st-marys") : .account(researcher.publicKey.address),
                                                      categories: ["vital-signs", "ecg"], purposes: ["research"], expiresMs: l.context.timestampMs + 30 * day)))
                l.apply(p, .setRewrapDelegation(SetRewrapDelegation(gateway: gateway.publicKey.address)))
            }
        }
        l.apply(C.adminA, .issueCredits(IssueCredits(account: researcher.publicKey.address, amount: 1_000)))
        return l
    }

    static func request(price: UInt64 = 100, epsilonMilli: UInt64 = 1_000, access: String = "aggregates", gateway: PrivateKey = gateway, categories: [String] = ["vital-signs"]) -> TransactionPayload {
        .requestDataset(RequestDataset(gateway: gateway.publicKey.address, categories: categories, fromMs: 0, untilMs: 10_000, access: access, price: price, epsilonMilli: epsilonMilli))
    }

    static func sorted(_ ks: [PrivateKey]) -> [Hash] { ks.map(subject).sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) } }

    @Test("credits: a member-admin issues to its own organisation only; transfers go between registered accounts; no overdraft; every movement is listed and sums to the balance")
    func credits() throws {
        var l = Self.ledger()
        let r = Self.researcher, p = Self.patients[0]
        #expect(Self.balance(l, r) == 1_000)
        l.reject(C.adminB, .issueCredits(IssueCredits(account: r.publicKey.address, amount: 5)), "unauthorised")
        l.reject(r, .issueCredits(IssueCredits(account: r.publicKey.address, amount: 5)), "unauthorised")
        l.reject(C.adminA, .issueCredits(IssueCredits(account: r.publicKey.address, amount: 0)), "invalid-argument")
        l.reject(C.adminA, .issueCredits(IssueCredits(account: C.ed25519(0x7F).publicKey.address, amount: 5)), "unknown-account")
        l.apply(r, .transferCredits(TransferCredits(to: p.publicKey.address, amount: 250)))
        l.reject(r, .transferCredits(TransferCredits(to: p.publicKey.address, amount: 751)), "insufficient-credits")
        l.reject(r, .transferCredits(TransferCredits(to: C.ed25519(0x7F).publicKey.address, amount: 1)), "unknown-account")
        l.reject(r, .transferCredits(TransferCredits(to: r.publicKey.address, amount: 1)), "invalid-argument")
        l.reject(p, .transferCredits(TransferCredits(to: r.publicKey.address, amount: 251)), "insufficient-credits")
        l.apply(p, .transferCredits(TransferCredits(to: Self.otherResearcher.publicKey.address, amount: 50)))
        #expect(Self.balance(l, r) == 750 && Self.balance(l, p) == 200 && Self.balance(l, Self.otherResearcher) == 50)
        for k in [r, p, Self.otherResearcher] {
            let e = Self.entries(l, k)
            let sum = e.reduce(Int64(0)) { $0 + ($1.credit ? Int64($1.amount) : -Int64($1.amount)) }
            #expect(sum == Int64(Self.balance(l, k)) && e.last?.balanceAfter == Self.balance(l, k))
        }
        #expect(Self.entries(l, r).map(\.kind) == ["issued", "sent"] && Self.entries(l, p).map(\.kind) == ["received", "sent"])
        #expect(Self.entries(l, p)[0].counterparty == r.publicKey.address)
        #expect(try l.state.read(UInt64.self, StateKeys.creditsIssued("st-marys")) == 1_000)
        // A suspended account cannot receive.
        l.apply(C.adminA, .status(Self.otherResearcher, .suspended))
        l.reject(r, .transferCredits(TransferCredits(to: Self.otherResearcher.publicKey.address, amount: 1)), "invalid-argument")
    }

    @Test("a dataset holds only consenting, delegating patients with data at its gateway; the contract re-checks each; the price is split among them")
    func sealAndPay() throws {
        var l = Self.ledger()
        let r = Self.researcher
        // Only researchers request; the gateway must be one; the price is held at once.
        l.reject(Self.patients[0], Self.request(), "unauthorised")
        l.reject(r, .requestDataset(RequestDataset(gateway: r.publicKey.address, categories: ["vital-signs"], fromMs: 0, untilMs: 1, access: "rows", price: 0, epsilonMilli: 0)), "invalid-argument")
        l.reject(r, Self.request(epsilonMilli: 0), "invalid-argument")
        l.reject(r, Self.request(epsilonMilli: 10_001), "invalid-argument")
        l.reject(r, Self.request(access: "everything"), "invalid-argument")
        l.reject(r, Self.request(categories: ["genome"]), "invalid-argument")
        l.reject(r, Self.request(price: 1_001), "insufficient-credits")
        let id = l.apply(r, Self.request(price: 101))
        #expect(Self.balance(l, r) == 899 && Self.dataset(l, id)?.status == "requested")
        #expect(try l.state.read(Hash.self, StateKeys.datasetRequest(Self.gateway.publicKey.address, 1)) == id)

        let consenting = Self.sorted(Array(Self.patients[0..<3]))
        func seal(_ subjects: [Hash], rows: UInt64 = 9) -> TransactionPayload { .sealDataset(SealDataset(dataset: id, subjects: subjects, rows: rows, contentRoot: Hash.sha256([9]))) }
        // Another gateway, a patient without consent, an unsorted list, a duplicate: refused.
        l.reject(Self.otherGateway, seal(consenting), "unauthorised")
        l.reject(Self.gateway, seal(Self.sorted(Self.patients)), "unauthorised")
        l.reject(Self.gateway, seal(consenting.reversed()), "invalid-argument")
        l.reject(Self.gateway, seal([consenting[0], consenting[0]]), "invalid-argument")
        l.reject(Self.gateway, seal([], rows: 3), "invalid-argument")
        // A patient who withdraws the delegation cannot be sealed in.
        l.apply(Self.patients[1], .setRewrapDelegation(SetRewrapDelegation(gateway: Self.gateway.publicKey.address, active: false)))
        l.reject(Self.gateway, seal(consenting), "unauthorised")
        l.apply(Self.patients[1], .setRewrapDelegation(SetRewrapDelegation(gateway: Self.gateway.publicKey.address)))
        // A grant for one category does not cover a dataset of two.
        l.apply(Self.patients[3], .grantConsent(GrantConsent(grantee: .account(r.publicKey.address), categories: ["vital-signs"], purposes: ["research"], expiresMs: l.context.timestampMs + Self.day)))
        l.apply(Self.patients[3], .setRewrapDelegation(SetRewrapDelegation(gateway: Self.gateway.publicKey.address)))
        l.apply(Self.gateway, seal(consenting))
        let d = try #require(Self.dataset(l, id))
        #expect(d.status == "sealed" && d.subjects == 3 && d.rows == 9 && d.contentRoot == Hash.sha256([9]))
        #expect(try l.state.read(IDList.self, StateKeys.datasetSubjects(id))?.ids == consenting)
        l.reject(Self.gateway, seal(consenting), "invalid-argument")
        l.reject(r, .cancelDataset(CancelDataset(dataset: id)), "invalid-argument")
        // 101 credits among 3: 34, 34, 33, in pseudonym order.
        let shares = consenting.map { s in Self.balance(l, Self.patients.first { Self.subject($0) == s }!) }
        #expect(shares == [34, 34, 33] && Self.balance(l, Self.patients[3]) == 0)
        let entry = try #require(Self.entries(l, Self.patients.first { Self.subject($0) == consenting[0] }!).last)
        #expect(entry.kind == "dataset-share" && entry.reference == id && entry.counterparty == r.publicKey.address)

        // Two categories: patient 3 (vital signs only) cannot be in it.
        let two = l.apply(r, Self.request(price: 0, categories: ["vital-signs", "ecg"]))
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: two, subjects: Self.sorted([Self.patients[3]]), rows: 1, contentRoot: .zero)), "unauthorised")
    }

    @Test("an empty seal or a cancelled request gives the price back; only the researcher cancels, once")
    func refunds() throws {
        var l = Self.ledger()
        let r = Self.researcher
        let empty = l.apply(r, Self.request(price: 300))
        l.apply(Self.gateway, .sealDataset(SealDataset(dataset: empty, subjects: [], rows: 0, contentRoot: MerkleTree.root(leaves: []))))
        #expect(Self.balance(l, r) == 1_000 && Self.entries(l, r).last?.kind == "dataset-refund")
        let cancelled = l.apply(r, Self.request(price: 200))
        l.reject(Self.otherResearcher, .cancelDataset(CancelDataset(dataset: cancelled)), "unauthorised")
        l.apply(r, .cancelDataset(CancelDataset(dataset: cancelled)))
        l.reject(r, .cancelDataset(CancelDataset(dataset: cancelled)), "invalid-argument")
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: cancelled, subjects: [], rows: 0, contentRoot: .zero)), "invalid-argument")
        #expect(Self.balance(l, r) == 1_000 && Self.dataset(l, cancelled)?.status == "cancelled")
    }

    @Test("the privacy budget: only the dataset's gateway charges it, only once sealed, and a charge that would overspend it is refused")
    func privacyBudget() throws {
        var l = Self.ledger()
        let id = l.apply(Self.researcher, Self.request(price: 0, epsilonMilli: 1_000))
        func charge(_ e: UInt64) -> TransactionPayload { .chargePrivacyBudget(ChargePrivacyBudget(dataset: id, epsilonMilli: e, queryDigest: Hash.sha256([UInt8(e % 256)]))) }
        l.reject(Self.gateway, charge(100), "invalid-argument")
        l.apply(Self.gateway, .sealDataset(SealDataset(dataset: id, subjects: Self.sorted(Array(Self.patients[0..<3])), rows: 9, contentRoot: .zero)))
        l.reject(Self.otherGateway, charge(100), "unauthorised")
        l.reject(Self.researcher, charge(100), "unauthorised")
        l.reject(Self.gateway, charge(0), "invalid-argument")
        l.apply(Self.gateway, charge(600))
        l.reject(Self.gateway, charge(401), "privacy-budget-exhausted")
        l.apply(Self.gateway, charge(400))
        l.reject(Self.gateway, charge(1), "privacy-budget-exhausted")
        let d = try #require(Self.dataset(l, id))
        #expect(d.epsilonSpentMilli == 1_000 && d.epsilonLeftMilli == 0 && d.charges == 2)
        #expect(try l.state.read(PrivacyCharge.self, StateKeys.datasetCharge(id, 2))?.epsilonMilli == 400)
    }

    @Test("each patient's privacy allowance per organisation (ε 10) spans all datasets: a new dataset does not reset it")
    func allowanceAcrossDatasets() throws {
        var l = Self.ledger()
        let subjects = Self.sorted(Array(Self.patients[0..<2]))
        func sealNew(_ epsilonMilli: UInt64, by researcher: PrivateKey = Self.researcher) -> (id: Hash, payload: TransactionPayload) {
            let id = l.apply(researcher, Self.request(price: 0, epsilonMilli: epsilonMilli))
            return (id, .sealDataset(SealDataset(dataset: id, subjects: subjects, rows: 2, contentRoot: .zero)))
        }
        for _ in 0..<2 { l.apply(Self.gateway, sealNew(4_000).payload) }
        // 8,000 used: a third dataset of ε 4 cannot include these patients; one of ε 2 can.
        l.reject(Self.gateway, sealNew(4_000).payload, "privacy-budget-exhausted")
        l.apply(Self.gateway, sealNew(2_000).payload)
        #expect(try l.state.read(UInt64.self, StateKeys.privacyLoss(subjects[0], organisation: "st-marys")) == 10_000)
        // Another researcher of the same organisation gets no fresh allowance.
        l.apply(Self.patients[0], .grantConsent(GrantConsent(grantee: .account(Self.otherResearcher.publicKey.address), categories: ["vital-signs"], purposes: ["research"],
                                                             expiresMs: l.context.timestampMs + Self.day)))
        let other = l.apply(Self.otherResearcher, Self.request(price: 0, epsilonMilli: 1))
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: other, subjects: [Self.subject(Self.patients[0])], rows: 1, contentRoot: .zero)), "privacy-budget-exhausted")
        // A rows dataset with no budget still fits (rows are the grant's, not a DP release).
        let rows = l.apply(Self.researcher, Self.request(price: 0, epsilonMilli: 0, access: "rows"))
        l.apply(Self.gateway, .sealDataset(SealDataset(dataset: rows, subjects: subjects, rows: 2, contentRoot: .zero)))
    }

    @Test("a grant narrower than the dataset's window does not cover it; issuance goes to active accounts only and is capped per organisation")
    func windowAndIssuance() throws {
        var l = Self.ledger()
        let p = Self.patients[3]
        l.apply(p, .grantConsent(GrantConsent(grantee: .account(Self.researcher.publicKey.address), categories: ["vital-signs"], purposes: ["research"],
                                              dataFromMs: 0, dataUntilMs: 5_000, expiresMs: l.context.timestampMs + Self.day)))
        l.apply(p, .setRewrapDelegation(SetRewrapDelegation(gateway: Self.gateway.publicKey.address)))
        let id = l.apply(Self.researcher, Self.request(price: 0)) // data window 0…10,000
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: id, subjects: [Self.subject(p)], rows: 1, contentRoot: .zero)), "unauthorised")
        // A gateway with no anchored data of a consenting patient cannot seal it in.
        let q = C.ed25519(0x6A)
        l.apply(C.adminA, .enrol(q))
        l.apply(q, .grantConsent(GrantConsent(grantee: .account(Self.researcher.publicKey.address), categories: ["vital-signs"], purposes: ["research"], expiresMs: l.context.timestampMs + Self.day)))
        l.apply(q, .setRewrapDelegation(SetRewrapDelegation(gateway: Self.gateway.publicKey.address)))
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: id, subjects: [Self.subject(q)], rows: 1, contentRoot: .zero)), "invalid-argument")

        l.apply(C.adminA, .status(Self.otherResearcher, .suspended))
        l.reject(C.adminA, .issueCredits(IssueCredits(account: Self.otherResearcher.publicKey.address, amount: 1)), "invalid-argument")
        l.apply(C.adminA, .issueCredits(IssueCredits(account: Self.researcher.publicKey.address, amount: (1 << 40) - 1_000)))
        l.reject(C.adminA, .issueCredits(IssueCredits(account: Self.researcher.publicKey.address, amount: 1)), "invalid-argument")
    }

    @Test("an organisation grant covers that organisation's researchers only; an erased patient can never be sealed in")
    func granteesAndErasure() throws {
        var l = Self.ledger()
        // Patient 2 granted st-marys: the city-clinic researcher is not covered.
        l.apply(C.adminB, .issueCredits(IssueCredits(account: Self.clinicResearcher.publicKey.address, amount: 10)))
        let clinic = l.apply(Self.clinicResearcher, Self.request(price: 10))
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: clinic, subjects: [Self.subject(Self.patients[2])], rows: 1, contentRoot: .zero)), "unauthorised")
        let mine = l.apply(Self.researcher, Self.request(price: 0))
        l.apply(Self.patients[2], .requestErasure(RequestErasure(subject: Self.subject(Self.patients[2]))))
        l.reject(Self.gateway, .sealDataset(SealDataset(dataset: mine, subjects: [Self.subject(Self.patients[2])], rows: 1, contentRoot: .zero)), "unauthorised")
    }
}
