/// Research datasets and data-sharing incentives (issue 5 §7, §8). On-chain: what a researcher
/// asked for, which pseudonyms a gateway put in the dataset (the ones whose consent covers it), the
/// privacy budget and every charge against it, and balances in consortium credits with every
/// movement listed. Never a value, a row or a dataset pseudonym.

// MARK: datasets

/// A researcher asks the gateway holding the data for a dataset: readings of `categories` taken in
/// `fromMs…untilMs`, of every patient whose consent covers all of them for research by this
/// researcher. `price` credits are held from the researcher's balance until the gateway seals the
/// dataset, then split among the patients in it. The dataset's id is this transaction's hash.
public struct RequestDataset: Hashable, Sendable, Codable, CanonicalCodable {
    public var gateway: Address
    public var categories: [String]
    public var fromMs: Int64
    public var untilMs: Int64
    /// `rows`: the researcher may download the pseudonymised rows (and query them);
    /// `aggregates`: only differentially private aggregates are answered, rows never leave.
    public var access: String
    /// Credits paid for the dataset (0: free).
    public var price: UInt64
    /// The privacy budget ε for aggregate queries, in thousandths (1000 = ε 1.0).
    public var epsilonMilli: UInt64

    public static let accessModes = ["rows", "aggregates"]
    /// Most budget a dataset may be given (ε 10).
    public static let maxEpsilonMilli: UInt64 = 10_000

    public init(gateway: Address, categories: [String], fromMs: Int64, untilMs: Int64, access: String, price: UInt64, epsilonMilli: UInt64) {
        self.gateway = gateway; self.categories = categories; self.fromMs = fromMs; self.untilMs = untilMs
        self.access = access; self.price = price; self.epsilonMilli = epsilonMilli
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(gateway); w.write(categories); w.write(fromMs); w.write(untilMs); w.write(access); w.write(price); w.write(epsilonMilli)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        gateway = try r.read(); categories = try r.readArray(); fromMs = try r.read(); untilMs = try r.read()
        access = try r.read(); price = try r.read(); epsilonMilli = try r.read()
    }
}

/// The gateway seals a requested dataset: the chain pseudonyms of the patients in it (sorted,
/// each one's consent re-checked by the contract), how many rows, and the Merkle root over the
/// rows as delivered (so a researcher can show what it was given). The price is paid out here.
public struct SealDataset: Hashable, Sendable, Codable, CanonicalCodable {
    public var dataset: Hash
    public var subjects: [Hash]
    public var rows: UInt64
    public var contentRoot: Hash

    /// Most patients in one dataset (the transaction stays under 64 KiB).
    public static let maxSubjects = 1_000

    public init(dataset: Hash, subjects: [Hash], rows: UInt64, contentRoot: Hash) {
        self.dataset = dataset; self.subjects = subjects; self.rows = rows; self.contentRoot = contentRoot
    }

    public func encode(to w: inout CanonicalWriter) { w.write(dataset); w.write(subjects); w.write(rows); w.write(contentRoot) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        dataset = try r.read(); subjects = try r.readArray(); rows = try r.read(); contentRoot = try r.read()
    }
}

/// The researcher withdraws a request the gateway has not sealed: the price comes back.
public struct CancelDataset: Hashable, Sendable, Codable, CanonicalCodable {
    public var dataset: Hash

    public init(dataset: Hash) { self.dataset = dataset }

    public func encode(to w: inout CanonicalWriter) { w.write(dataset) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { dataset = try r.read() }
}

/// The dataset's gateway charges one aggregate query to the dataset's privacy budget before it
/// answers: refused once the budget would be overspent, so the answer is never released.
public struct ChargePrivacyBudget: Hashable, Sendable, Codable, CanonicalCodable {
    public var dataset: Hash
    public var epsilonMilli: UInt64
    /// SHA-256 of the researcher's signed request message: the researcher can match each charge
    /// to a query it made.
    public var queryDigest: Hash

    public init(dataset: Hash, epsilonMilli: UInt64, queryDigest: Hash) { self.dataset = dataset; self.epsilonMilli = epsilonMilli; self.queryDigest = queryDigest }

    public func encode(to w: inout CanonicalWriter) { w.write(dataset); w.write(epsilonMilli); w.write(queryDigest) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { dataset = try r.read(); epsilonMilli = try r.read(); queryDigest = try r.read() }
}

/// A dataset as held in state (`StateKeys.dataset(id)`).
public struct DatasetRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Hash
    public var request: RequestDataset
    public var researcher: Address
    /// `requested`, `sealed` or `cancelled`.
    public var status: String
    public var requestedAtMs: Int64
    public var height: UInt64
    /// Its number among the requests naming its gateway (`StateKeys.datasetRequest`).
    public var gatewaySequence: UInt64
    public var sealedHeight: UInt64?
    public var subjects: UInt32
    public var rows: UInt64
    public var contentRoot: Hash?
    public var epsilonSpentMilli: UInt64
    /// How many aggregate queries were charged (`StateKeys.datasetCharge`).
    public var charges: UInt64

    public init(id: Hash, request: RequestDataset, researcher: Address, status: String, requestedAtMs: Int64, height: UInt64, gatewaySequence: UInt64,
                sealedHeight: UInt64? = nil, subjects: UInt32 = 0, rows: UInt64 = 0, contentRoot: Hash? = nil, epsilonSpentMilli: UInt64 = 0, charges: UInt64 = 0) {
        self.id = id; self.request = request; self.researcher = researcher; self.status = status; self.requestedAtMs = requestedAtMs; self.height = height
        self.gatewaySequence = gatewaySequence; self.sealedHeight = sealedHeight; self.subjects = subjects; self.rows = rows; self.contentRoot = contentRoot
        self.epsilonSpentMilli = epsilonSpentMilli; self.charges = charges
    }

    public var epsilonLeftMilli: UInt64 { request.epsilonMilli - min(request.epsilonMilli, epsilonSpentMilli) }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(request); w.write(researcher); w.write(status); w.write(requestedAtMs); w.write(height); w.write(gatewaySequence)
        w.write(sealedHeight); w.write(subjects); w.write(rows); w.write(contentRoot); w.write(epsilonSpentMilli); w.write(charges)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); request = try r.read(); researcher = try r.read(); status = try r.read(); requestedAtMs = try r.read(); height = try r.read()
        gatewaySequence = try r.read(); sealedHeight = try r.readOptional(); subjects = try r.read(); rows = try r.read(); contentRoot = try r.readOptional()
        epsilonSpentMilli = try r.read(); charges = try r.read()
    }
}

/// One charge against a dataset's privacy budget (`StateKeys.datasetCharge(id, n)`).
public struct PrivacyCharge: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var epsilonMilli: UInt64
    public var queryDigest: Hash
    public var atMs: Int64
    public var height: UInt64
    public var transaction: Hash

    public init(n: UInt64, epsilonMilli: UInt64, queryDigest: Hash, atMs: Int64, height: UInt64, transaction: Hash) {
        self.n = n; self.epsilonMilli = epsilonMilli; self.queryDigest = queryDigest; self.atMs = atMs; self.height = height; self.transaction = transaction
    }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(epsilonMilli); w.write(queryDigest); w.write(atMs); w.write(height); w.write(transaction) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); epsilonMilli = try r.read(); queryDigest = try r.read(); atMs = try r.read(); height = try r.read(); transaction = try r.read()
    }
}

extension StateKeys {
    public static func dataset(_ id: Hash) -> [UInt8] { Array("dataset/".utf8) + id.bytes }
    /// The chain pseudonyms sealed into a dataset (`IDList`, sorted).
    public static func datasetSubjects(_ id: Hash) -> [UInt8] { Array("dataset-subjects/".utf8) + id.bytes }
    public static func datasetCharge(_ id: Hash, _ n: UInt64) -> [UInt8] { Array("dataset-charge/".utf8) + id.bytes + n.canonicalBytes }
    /// How many datasets were requested of a gateway (`UInt64`); the n-th's id is `datasetRequest(gateway, n)`.
    public static func datasetRequestCount(_ gateway: Address) -> [UInt8] { Array("dataset-requests/".utf8) + gateway.bytes }
    public static func datasetRequest(_ gateway: Address, _ n: UInt64) -> [UInt8] { Array("dataset-requests/".utf8) + gateway.bytes + n.canonicalBytes }
    /// The privacy budget (ε in thousandths, `UInt64`) a patient's data has given the researchers
    /// of one organisation, over every dataset they were sealed into: a new dataset cannot reset it.
    public static func privacyLoss(_ subject: Hash, organisation: String) -> [UInt8] { Array("privacy-loss/".utf8) + subject.bytes + Array(organisation.utf8) }
}

public enum PrivacyLimits {
    /// Most ε (in thousandths) one patient's data gives one organisation's researchers, over all
    /// their datasets: ε 10.
    public static let maxLossPerOrganisationMilli: UInt64 = 10_000
}

// MARK: credits

/// A member-admin issues credits to an account of its own organisation (a university funding
/// its researchers, a hospital its research office). Every issuance is listed, and each
/// organisation's total is public (`StateKeys.creditsIssued`).
public struct IssueCredits: Hashable, Sendable, Codable, CanonicalCodable {
    public var account: Address
    public var amount: UInt64

    public init(account: Address, amount: UInt64) { self.account = account; self.amount = amount }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(amount) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { account = try r.read(); amount = try r.read() }
}

/// An account moves credits to another registered, active account. Credits exist only as
/// balances of consortium accounts: nothing moves them off the chain.
public struct TransferCredits: Hashable, Sendable, Codable, CanonicalCodable {
    public var to: Address
    public var amount: UInt64
    /// An optional reference the two parties agree on (an invoice's hash, say): never free text.
    public var reference: Hash?

    public init(to: Address, amount: UInt64, reference: Hash? = nil) { self.to = to; self.amount = amount; self.reference = reference }

    public func encode(to w: inout CanonicalWriter) { w.write(to); w.write(amount); w.write(reference) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { to = try r.read(); amount = try r.read(); reference = try r.readOptional() }
}

/// One movement of an account's credits (`StateKeys.creditEntry(account, n)`): every change of
/// a balance is one of these, so a balance is the sum of its account's entries.
public struct CreditEntry: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    /// `issued`, `received`, `sent`, `dataset-payment`, `dataset-share`, `dataset-refund`.
    public var kind: String
    /// True: the balance went up by `amount`; false: down.
    public var credit: Bool
    public var amount: UInt64
    /// The other side (the issuer, the other account, the researcher, the patient; zero for the
    /// dataset escrow).
    public var counterparty: Address
    /// The transaction, or the dataset, it belongs to.
    public var reference: Hash
    public var balanceAfter: UInt64
    public var height: UInt64

    public init(n: UInt64, kind: String, credit: Bool, amount: UInt64, counterparty: Address, reference: Hash, balanceAfter: UInt64, height: UInt64) {
        self.n = n; self.kind = kind; self.credit = credit; self.amount = amount; self.counterparty = counterparty
        self.reference = reference; self.balanceAfter = balanceAfter; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(n); w.write(kind); w.write(credit); w.write(amount); w.write(counterparty); w.write(reference); w.write(balanceAfter); w.write(height)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); kind = try r.read(); credit = try r.read(); amount = try r.read(); counterparty = try r.read()
        reference = try r.read(); balanceAfter = try r.read(); height = try r.read()
    }
}

extension StateKeys {
    /// An account's balance in credits (`UInt64`; absent: 0).
    public static func balance(_ a: Address) -> [UInt8] { Array("balance/".utf8) + a.bytes }
    /// How many credit entries an account has (`UInt64`); entry n (1-based) is `creditEntry(a, n)`.
    public static func creditCount(_ a: Address) -> [UInt8] { Array("credits/".utf8) + a.bytes }
    public static func creditEntry(_ a: Address, _ n: UInt64) -> [UInt8] { Array("credits/".utf8) + a.bytes + n.canonicalBytes }
    /// Credits an organisation's member-admins issued in all (`UInt64`).
    public static func creditsIssued(_ organisation: String) -> [UInt8] { Array("credits-issued/".utf8) + Array(organisation.utf8) }
}
