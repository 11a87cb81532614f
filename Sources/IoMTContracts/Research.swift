import IoMTCore

/// Research datasets (issue 5 §7): a researcher asks a gateway for a dataset and escrows its
/// price; the gateway seals it with the pseudonyms of the patients whose consent covers it — each
/// re-checked here, so a gateway cannot put in a patient who did not agree — and the price is split
/// among them; aggregate queries are charged to the dataset's privacy budget before they are
/// answered, and refused once it is spent.
enum Research {
    static func request(_ b: RequestDataset, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .researcher else { throw .unauthorised("only a researcher account requests datasets") }
        guard let g = try state.read(Account.self, StateKeys.account(b.gateway)), g.role == .gateway, g.status == .active else {
            throw .invalidArgument("\(b.gateway) is not an active gateway account")
        }
        try Patients.checkVocabulary(b.categories, DataCategory.all, field: "categories")
        guard b.fromMs <= b.untilMs else { throw .invalidArgument("fromMs is after untilMs") }
        guard RequestDataset.accessModes.contains(b.access) else { throw .invalidArgument("access is rows or aggregates") }
        guard b.epsilonMilli <= RequestDataset.maxEpsilonMilli else { throw .invalidArgument("epsilonMilli is at most \(RequestDataset.maxEpsilonMilli) (ε 10)") }
        guard b.access == "rows" || b.epsilonMilli > 0 else { throw .invalidArgument("an aggregates-only dataset needs a privacy budget (epsilonMilli > 0)") }
        let id = context.transactionHash
        if b.price > 0 {
            try Credits.move(sender.address, credit: false, amount: b.price, kind: "dataset-payment", counterparty: .zero, reference: id, state: &state, height: context.height)
        }
        let n = (try state.read(UInt64.self, StateKeys.datasetRequestCount(b.gateway)) ?? 0) + 1
        state.put(StateKeys.datasetRequestCount(b.gateway), n)
        state.put(StateKeys.datasetRequest(b.gateway, n), id)
        state.put(StateKeys.dataset(id), DatasetRecord(id: id, request: b, researcher: sender.address, status: "requested",
                                                       requestedAtMs: context.timestampMs, height: context.height, gatewaySequence: n))
    }

    static func open(_ id: Hash, state: StateOverlay) throws(ContractError) -> DatasetRecord {
        guard let d = try state.read(DatasetRecord.self, StateKeys.dataset(id)) else { throw .invalidArgument("unknown dataset \(id)") }
        return d
    }

    static func seal(_ b: SealDataset, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        var d = try open(b.dataset, state: state)
        guard sender.address == d.request.gateway else { throw .unauthorised("only the gateway the dataset was requested of (\(d.request.gateway)) seals it") }
        guard d.status == "requested" else { throw .invalidArgument("dataset \(d.id) is \(d.status)") }
        guard b.subjects.count <= SealDataset.maxSubjects else { throw .invalidArgument("at most \(SealDataset.maxSubjects) patients per dataset") }
        guard zip(b.subjects, b.subjects.dropFirst()).allSatisfy({ $0.0.bytes.lexicographicallyPrecedes($0.1.bytes) }) else {
            throw .invalidArgument("subjects must be distinct and in ascending order")
        }
        guard !b.subjects.isEmpty || b.rows == 0 else { throw .invalidArgument("a dataset with no patient has no rows") }
        guard let researcher = try state.read(Account.self, StateKeys.account(d.researcher)) else { throw .unknownAccount(d.researcher) }
        var accounts: [Address] = []
        accounts.reserveCapacity(b.subjects.count)
        for subject in b.subjects {
            guard let p = try state.read(PatientRecord.self, StateKeys.patient(subject)) else { throw .invalidArgument("no patient is enrolled under pseudonym \(subject)") }
            // Consent, at this block, for every category of the dataset, for research by this researcher.
            for category in d.request.categories {
                let q = AccessQuery(reader: d.researcher, subject: subject, category: category, purpose: "research", dataFromMs: d.request.fromMs, dataUntilMs: d.request.untilMs)
                let decision = try Consent.decide(q, overlay: state, atMs: context.timestampMs)
                guard decision.allowed, decision.basis == .grant else {
                    throw .unauthorised("patient \(subject) has not consented to \(category) data of this period for research by \(d.researcher): \(decision.reason)")
                }
            }
            guard try state.read(AddressSet.self, StateKeys.delegations(of: subject))?.contains(sender.address) == true else {
                throw .unauthorised("patient \(subject) has not let this gateway serve its data to others (set-rewrap-delegation)")
            }
            guard (try state.read(UInt64.self, StateKeys.anchorCount(subject, gateway: sender.address)) ?? 0) > 0 else {
                throw .invalidArgument("this gateway anchored no data of patient \(subject)")
            }
            // The dataset's whole budget is reserved against each patient's allowance for the
            // researcher's organisation: many datasets over the same patients cannot add up past it.
            let lossKey = StateKeys.privacyLoss(subject, organisation: researcher.organisation)
            let loss = try state.read(UInt64.self, lossKey) ?? 0
            let allowance = PrivacyLimits.maxLossPerOrganisationMilli
            guard d.request.epsilonMilli <= allowance - min(allowance, loss) else {
                throw .privacyBudgetExhausted(left: allowance - min(allowance, loss), asked: d.request.epsilonMilli)
            }
            if d.request.epsilonMilli > 0 { state.put(lossKey, loss + d.request.epsilonMilli) }
            accounts.append(p.account)
        }
        // The price is split equally; the remainder goes one credit each to the first patients in
        // pseudonym order. Nobody in it: the researcher gets it back.
        let price = d.request.price
        if price > 0 {
            if accounts.isEmpty {
                try Credits.move(d.researcher, credit: true, amount: price, kind: "dataset-refund", counterparty: .zero, reference: d.id, state: &state, height: context.height)
            } else {
                let n = UInt64(accounts.count), share = price / n, rest = price % n
                for (i, a) in accounts.enumerated() {
                    let amount = share + (UInt64(i) < rest ? 1 : 0)
                    if amount > 0 {
                        try Credits.move(a, credit: true, amount: amount, kind: "dataset-share", counterparty: d.researcher, reference: d.id, state: &state, height: context.height)
                    }
                }
            }
        }
        state.put(StateKeys.datasetSubjects(d.id), IDList(b.subjects))
        d.status = "sealed"; d.sealedHeight = context.height; d.subjects = UInt32(b.subjects.count); d.rows = b.rows; d.contentRoot = b.contentRoot
        state.put(StateKeys.dataset(d.id), d)
    }

    static func cancel(_ b: CancelDataset, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        var d = try open(b.dataset, state: state)
        guard sender.address == d.researcher else { throw .unauthorised("only the researcher who requested dataset \(d.id) cancels it") }
        guard d.status == "requested" else { throw .invalidArgument("dataset \(d.id) is \(d.status): only a request not yet sealed can be cancelled") }
        if d.request.price > 0 {
            try Credits.move(d.researcher, credit: true, amount: d.request.price, kind: "dataset-refund", counterparty: .zero, reference: d.id, state: &state, height: context.height)
        }
        d.status = "cancelled"
        state.put(StateKeys.dataset(d.id), d)
    }

    static func charge(_ b: ChargePrivacyBudget, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        var d = try open(b.dataset, state: state)
        guard sender.address == d.request.gateway else { throw .unauthorised("only the dataset's gateway charges its privacy budget") }
        guard d.status == "sealed" else { throw .invalidArgument("dataset \(d.id) is \(d.status), not sealed") }
        guard b.epsilonMilli > 0 else { throw .invalidArgument("a query spends some budget (epsilonMilli > 0)") }
        guard b.epsilonMilli <= d.epsilonLeftMilli else { throw .privacyBudgetExhausted(left: d.epsilonLeftMilli, asked: b.epsilonMilli) }
        d.epsilonSpentMilli += b.epsilonMilli
        d.charges += 1
        state.put(StateKeys.datasetCharge(d.id, d.charges), PrivacyCharge(n: d.charges, epsilonMilli: b.epsilonMilli, queryDigest: b.queryDigest, atMs: context.timestampMs,
                                                                         height: context.height, transaction: context.transactionHash))
        state.put(StateKeys.dataset(d.id), d)
    }
}

/// Consortium credits (issue 5 §8): balances of registered accounts only, issued by member-admins
/// to their own organisation's accounts, moved by transfers between accounts and by dataset
/// payments. Every movement is an entry in the account's list; nothing leaves the consortium.
enum Credits {
    static let maxIssuedPerOrganisation: UInt64 = 1 << 40

    static func issue(_ b: IssueCredits, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard sender.role == .memberAdmin else { throw .unauthorised("only a member-admin issues credits") }
        guard let target = try state.read(Account.self, StateKeys.account(b.account)) else { throw .unknownAccount(b.account) }
        guard target.organisation == sender.organisation else { throw .unauthorised("a member-admin issues credits only to accounts of \"\(sender.organisation)\"") }
        guard target.status == .active else { throw .invalidArgument("account \(b.account) is \(target.status.name)") }
        guard b.amount > 0 else { throw .invalidArgument("amount must be positive") }
        let key = StateKeys.creditsIssued(sender.organisation)
        let issued = try state.read(UInt64.self, key) ?? 0
        // A cap per organisation keeps every balance far from overflowing (a share or transfer
        // refused for overflow would block a dataset's seal).
        guard b.amount <= maxIssuedPerOrganisation - min(maxIssuedPerOrganisation, issued) else {
            throw .invalidArgument("an organisation issues at most \(maxIssuedPerOrganisation) credits in all; \"\(sender.organisation)\" has issued \(issued)")
        }
        let total = issued + b.amount
        state.put(key, total)
        try move(b.account, credit: true, amount: b.amount, kind: "issued", counterparty: sender.address, reference: context.transactionHash, state: &state, height: context.height)
    }

    static func transfer(_ b: TransferCredits, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard b.amount > 0 else { throw .invalidArgument("amount must be positive") }
        guard b.to != sender.address else { throw .invalidArgument("a transfer goes to another account") }
        guard let to = try state.read(Account.self, StateKeys.account(b.to)) else { throw .unknownAccount(b.to) }
        guard to.status == .active else { throw .invalidArgument("account \(b.to) is \(to.status.name): it cannot receive credits") }
        try move(sender.address, credit: false, amount: b.amount, kind: "sent", counterparty: b.to, reference: context.transactionHash, state: &state, height: context.height)
        try move(b.to, credit: true, amount: b.amount, kind: "received", counterparty: sender.address, reference: context.transactionHash, state: &state, height: context.height)
    }

    /// Changes `account`'s balance by `amount` and lists the movement.
    static func move(_ account: Address, credit: Bool, amount: UInt64, kind: String, counterparty: Address, reference: Hash,
                     state: inout StateOverlay, height: UInt64) throws(ContractError) {
        let balance = try state.read(UInt64.self, StateKeys.balance(account)) ?? 0
        let after: UInt64
        if credit {
            let (sum, overflow) = balance.addingReportingOverflow(amount)
            guard !overflow else { throw .invalidArgument("the balance of \(account) would overflow") }
            after = sum
        } else {
            guard balance >= amount else { throw .insufficientCredits(have: balance, need: amount) }
            after = balance - amount
        }
        let n = (try state.read(UInt64.self, StateKeys.creditCount(account)) ?? 0) + 1
        state.put(StateKeys.balance(account), after)
        state.put(StateKeys.creditCount(account), n)
        state.put(StateKeys.creditEntry(account, n), CreditEntry(n: n, kind: kind, credit: credit, amount: amount, counterparty: counterparty,
                                                                 reference: reference, balanceAfter: after, height: height))
    }
}
