@preconcurrency import Crypto
import Foundation
import IoMTCore
import IoMTEdge

/// Research datasets (issue 5 §7) at the gateway that holds the data. The gateway follows the
/// chain's dataset requests naming it; for each it finds the patients whose consent covers every
/// requested category for research by the researcher (and who let this gateway serve others),
/// builds the rows under pseudonyms of this dataset only, and seals the dataset on-chain (the
/// contract re-checks every consent and pays the patients). The researcher then downloads the rows
/// (`rows` datasets) or asks aggregate questions answered with differential privacy, each charged
/// to the dataset's on-chain privacy budget before its answer is released. Consent is checked again
/// at every download and query: a patient who revoked since the seal is left out.
extension Gateway {
    /// One row of a dataset: a reading under the dataset's pseudonym for its patient, its time to
    /// the minute, and its values. No device, no source ids, no chain pseudonym.
    public struct DatasetRow: Sendable, Codable, Hashable, CanonicalEncodable {
        public struct Value: Sendable, Codable, Hashable {
            public var code: String
            public var value: String
            public var unit: String
            public init(code: String, value: String, unit: String) { self.code = code; self.value = value; self.unit = unit }
        }
        public struct Series: Sendable, Codable, Hashable {
            public var code: String
            public var origin: String
            public var unit: String
            public var periodMs: String
            public var factor: String
            public var dimensions: UInt32
            /// Decimals, or `E`, `L`, `U` (error, below, above range) as in FHIR SampledData.
            public var samples: [String]
        }

        public var pseudonym: String
        public var category: String
        public var kind: String
        public var code: String
        /// The reading's time, truncated to the minute (ms since 1970, UTC).
        public var minuteMs: Int64
        public var values: [Value]
        public var series: [Series]

        public init(pseudonym: String, category: String, kind: String, code: String, minuteMs: Int64, values: [Value], series: [Series]) {
            self.pseudonym = pseudonym; self.category = category; self.kind = kind; self.code = code; self.minuteMs = minuteMs; self.values = values; self.series = series
        }

        public func encode(to w: inout CanonicalWriter) {
            w.write(pseudonym); w.write(category); w.write(kind); w.write(code); w.write(minuteMs)
            w.write(UInt32(values.count))
            for v in values { w.write(v.code); w.write(v.value); w.write(v.unit) }
            w.write(UInt32(series.count))
            for s in series {
                w.write(s.code); w.write(s.origin); w.write(s.unit); w.write(s.periodMs); w.write(s.factor); w.write(s.dimensions)
                w.write(UInt32(s.samples.count))
                for x in s.samples { w.write(x) }
            }
        }
    }

    /// The pseudonym a patient has in one dataset: HMAC-SHA256 under a key only this gateway holds,
    /// over the dataset id and the chain pseudonym. Two datasets give the same patient unrelated
    /// pseudonyms, and no dataset pseudonym leads back to the chain's.
    func datasetPseudonym(_ dataset: Hash, _ subject: Hash) -> String {
        let key = Self.derivedKey(sealingKey, "dataset-pseudonyms/v1")
        return Hex.encode(Array(HMAC<SHA256>.authenticationCode(for: dataset.bytes + subject.bytes, using: key)).prefix(16))
    }

    func datasetRecord(_ id: Hash) async throws -> DatasetRecord? {
        try await node.state(StateKeys.dataset(id)).map { try DatasetRecord(canonicalBytes: $0) }
    }

    /// Of `subjects`, those whose consent (now, at the node's latest height) covers every category
    /// of the dataset for research by its researcher, and who let this gateway serve others.
    func consenting(_ subjects: [Hash], to d: DatasetRecord, allowanceFor: String? = nil) async throws -> [Hash] {
        let node = self.node, me = account.publicKey.address
        var out: [Hash] = []
        for start in stride(from: 0, to: subjects.count, by: 16) {
            let chunk = subjects[start..<min(subjects.count, start + 16)]
            try await withThrowingTaskGroup(of: Hash?.self) { group in
                for subject in chunk {
                    group.addTask {
                        for category in d.request.categories {
                            let q = DataQuery(subject: subject, category: category, purpose: "research", fromMs: d.request.fromMs, toMs: d.request.untilMs)
                            let decision = try await node.access(reader: d.researcher, q)
                            guard decision.allowed, decision.basis == "grant" else { return nil }
                        }
                        let delegated = try await node.state(StateKeys.delegations(of: subject)).map { try AddressSet(canonicalBytes: $0) }?.contains(me) ?? false
                        guard delegated else { return nil }
                        // Only when sealing: the patient's privacy allowance for the researcher's organisation must cover the budget.
                        if let organisation = allowanceFor {
                            let loss = try await node.state(StateKeys.privacyLoss(subject, organisation: organisation)).map { try UInt64(canonicalBytes: $0) } ?? 0
                            let allowance = PrivacyLimits.maxLossPerOrganisationMilli
                            guard d.request.epsilonMilli <= allowance - min(allowance, loss) else { return nil }
                        }
                        return subject
                    }
                }
                for try await s in group { if let s { out.append(s) } }
            }
        }
        return out.sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }
    }

    /// The dataset's rows for these patients, ordered by pseudonym and time.
    func datasetRows(_ d: DatasetRecord, subjects: [Hash]) throws -> [DatasetRow] {
        var rows: [(seq: Int64, row: DatasetRow)] = []
        for subject in subjects {
            let pseudonym = datasetPseudonym(d.id, subject)
            for (seq, r) in try store.datasetReadings(subject: subject, categories: d.request.categories, fromMs: d.request.fromMs, untilMs: d.request.untilMs) {
                rows.append((seq, DatasetRow(
                    pseudonym: pseudonym, category: r.kind.dataCategory, kind: r.kind.name, code: r.code.description,
                    minuteMs: r.effectiveMs - ((r.effectiveMs % 60_000) + 60_000) % 60_000,
                    values: r.values.map { .init(code: $0.code.description, value: $0.value.description, unit: $0.unit) },
                    series: r.series.map { s in
                        .init(code: s.code.description, origin: s.origin.description, unit: s.unit, periodMs: s.periodMs.description, factor: s.factor.description,
                              dimensions: s.dimensions, samples: s.samples.map { v in
                                  switch v { case .value(let x): return x.description; case .error: return "E"; case .belowRange: return "L"; case .aboveRange: return "U" }
                              })
                    })))
            }
        }
        // A total order (the reading's number breaks ties), so the root is the same on every build.
        rows.sort { ($0.row.pseudonym, $0.row.minuteMs, $0.seq) < ($1.row.pseudonym, $1.row.minuteMs, $1.seq) }
        return rows.map(\.row)
    }

    func build(_ d: DatasetRecord) async throws -> (subjects: [Hash], rows: UInt64, root: Hash) {
        let candidates = try store.datasetCandidates(fromMs: d.request.fromMs, untilMs: d.request.untilMs)
        let organisation = try await node.state(StateKeys.account(d.researcher)).map { try Account(canonicalBytes: $0).organisation } ?? ""
        // Only patients with rows are in it (and paid); more than a seal holds: the first in pseudonym
        // order (documented). Each patient's rows are read once; their pseudonyms are distinct, so
        // ordering the patients' runs by pseudonym gives `datasetRows`'s order.
        var subjects: [Hash] = [], runs: [[DatasetRow]] = []
        for s in try await consenting(candidates, to: d, allowanceFor: organisation) where subjects.count < SealDataset.maxSubjects {
            let own = try datasetRows(d, subjects: [s])
            if !own.isEmpty { subjects.append(s); runs.append(own) }
        }
        let rows = runs.sorted { $0[0].pseudonym < $1[0].pseudonym }.flatMap { $0 }
        return (subjects, UInt64(rows.count), MerkleTree.root(leaves: rows.map(\.canonicalBytes)))
    }

    /// Follows the chain's dataset requests for this gateway (at most once a second): builds and
    /// queues the seal of each one still requested; builds again a seal the chain refused (a
    /// patient revoked in between), and after five refusals seals it empty (the price goes back).
    func processDatasets() async throws {
        let now = Self.nowMs()
        guard now - lastDatasetCheckMs >= 1_000 else { return }
        lastDatasetCheckMs = now
        let me = account.publicKey.address
        var cursor = try store.datasetCursor()
        let count = try await node.state(StateKeys.datasetRequestCount(me)).map { try UInt64(canonicalBytes: $0) } ?? 0
        while cursor < count {
            guard let idBytes = try await node.state(StateKeys.datasetRequest(me, cursor + 1)), let d = try await datasetRecord(try Hash(canonicalBytes: idBytes)) else { break }
            guard d.status == "requested" else {
                try store.skipDataset(cursor: cursor + 1)
                cursor += 1
                continue
            }
            let built = try await build(d)
            try store.addDataset(d.id, subjects: built.subjects, rows: built.rows, root: built.root, cursor: cursor + 1)
            cursor += 1
            log("dataset \(d.id) for researcher \(d.researcher): \(built.subjects.count) consenting patients, \(built.rows) rows; sealing")
        }
        for s in try store.refusedSeals() where s.refusal != "abandoned" {
            guard let d = try await datasetRecord(s.dataset), d.status == "requested" else {
                try store.abandonSeal(id: s.id)
                continue
            }
            let built: (subjects: [Hash], rows: UInt64, root: Hash) = s.attempts >= 5 ? ([], 0, MerkleTree.root(leaves: [])) : try await build(d)
            try store.rebuildSeal(id: s.id, subjects: built.subjects, rows: built.rows, root: built.root)
            log("dataset \(d.id): the chain refused its seal (\(s.refusal ?? "?")); sealing again with \(built.subjects.count) patients")
        }
    }
}

// MARK: serving datasets

extension Gateway {
    public struct DatasetExport: Sendable, Codable {
        public var dataset: Hash
        /// The root sealed on-chain, and the root of the rows served now (they differ once a
        /// patient revoked or erased since the seal).
        public var sealedRoot: Hash?
        public var root: Hash
        public var patients: Int
        /// Patients sealed in but left out now (revoked consent, withdrew delegation, erased).
        public var withdrawn: Int
        public var rows: [DatasetRow]
        public var height: UInt64
    }

    /// The dataset, checked for the signed request of its researcher.
    func researcherDataset(_ r: SignedRequestParts, id: Hash) async throws(ReadRefusal) -> (d: DatasetRecord, auth: Hash, subjects: [Hash]) {
        let auth = await authenticate(r, nowMs: Self.nowMs())
        if let refusal = auth.refusal { throw refusal }
        let d: DatasetRecord?
        let sealed: [Hash]
        do {
            d = try await datasetRecord(id)
            sealed = try await node.state(StateKeys.datasetSubjects(id)).map { try IDList(canonicalBytes: $0).ids } ?? []
        } catch {
            throw ReadRefusal(code: "node-unavailable", status: 503, description: "cannot read the dataset from the chain: \(error)")
        }
        guard let d, d.request.gateway == account.publicKey.address else { throw ReadRefusal(code: "unknown-dataset", status: 404, description: "no dataset \(id) of this gateway") }
        guard d.researcher == auth.reader else { throw ReadRefusal(code: "unauthorised", status: 403, description: "dataset \(id) was requested by another researcher") }
        guard d.status == "sealed" else { throw ReadRefusal(code: "dataset-not-sealed", status: 409, description: "dataset \(id) is \(d.status)") }
        let now: [Hash]
        do { now = try await consenting(sealed, to: d) } catch {
            throw ReadRefusal(code: "node-unavailable", status: 503, description: "cannot ask the consent contract: \(error)")
        }
        return (d, auth.digest, now)
    }

    func auditDatasetUse(_ d: DatasetRecord, subjects: [Hash], code: String, digest: Hash) throws(ReadRefusal) {
        let now = Self.nowMs()
        do {
            try store.appendAudits(subjects: subjects) { seq, subjectSeq, subject in
                AuditEntry(seq: seq, subjectSeq: subjectSeq, atMs: now, reader: d.researcher, subject: subject, category: d.request.categories.joined(separator: ","),
                           purpose: "research", fromMs: d.request.fromMs, toMs: d.request.untilMs, allowed: true, basis: "grant", reference: d.id,
                           code: code, batches: 0, requestDigest: digest)
            }
        } catch {
            throw ReadRefusal(code: "internal-error", status: 500, description: "cannot write the audit log, so nothing is served: \(error)")
        }
    }

    /// `GET /v1/datasets/{id}/rows`, signed by the dataset's researcher: the rows of a sealed
    /// `rows` dataset, for the patients whose consent still covers it; each one's audit log
    /// records the export.
    public func exportDataset(_ r: SignedRequestParts, id: Hash) async throws(ReadRefusal) -> DatasetExport {
        let (d, digest, subjects) = try await researcherDataset(r, id: id)
        guard d.request.access == "rows" else {
            throw ReadRefusal(code: "aggregates-only", status: 403, description: "dataset \(id) answers differentially private aggregates only (POST /v1/datasets/{id}/query)")
        }
        let rows: [DatasetRow]
        do { rows = try datasetRows(d, subjects: subjects) } catch { throw ReadRefusal(code: "internal-error", status: 500, description: "\(error)") }
        try auditDatasetUse(d, subjects: subjects, code: "dataset-rows", digest: digest)
        return DatasetExport(dataset: id, sealedRoot: d.contentRoot, root: MerkleTree.root(leaves: rows.map(\.canonicalBytes)), patients: subjects.count,
                             withdrawn: Int(d.subjects) - subjects.count, rows: rows, height: d.sealedHeight ?? 0)
    }
}

// MARK: differentially private aggregates

extension Gateway {
    /// An aggregate question over a dataset. Each patient contributes one value — the mean of its
    /// readings of `measure` in `unit` — so adding or removing one patient changes a count by at
    /// most 1 and a clamped sum by at most `upper − lower`: the privacy is per patient, not per reading.
    public struct AggregateQuery: Sendable, Codable, Hashable {
        /// `count`, `mean` or `histogram`.
        public var statistic: String
        /// A vital sign's name (`heart-rate`, `oxygen-saturation`, `systolic-pressure`, …).
        public var measure: String
        public var unit: String
        /// The range values are clamped to (default: the catalogue's physical range for the unit).
        public var lower: Double?
        public var upper: Double?
        /// Histogram bins (1…100) over `lower…upper`.
        public var bins: Int?
        public var epsilonMilli: UInt64

        public init(statistic: String, measure: String, unit: String, lower: Double? = nil, upper: Double? = nil, bins: Int? = nil, epsilonMilli: UInt64) {
            self.statistic = statistic; self.measure = measure; self.unit = unit; self.lower = lower; self.upper = upper; self.bins = bins; self.epsilonMilli = epsilonMilli
        }
    }

    public struct AggregateAnswer: Sendable, Codable, Hashable {
        public struct Bin: Sendable, Codable, Hashable { public var from: Double; public var to: Double; public var count: Int64 }
        public var query: AggregateQuery
        public var lower: Double
        public var upper: Double
        /// `discrete-laplace`: integer noise (two-sided geometric), so no floating-point bits leak.
        public var mechanism: String
        public var count: Int64?
        public var mean: Double?
        public var histogram: [Bin]?
    }

    public struct QueryReply: Sendable, Codable {
        public var dataset: Hash
        /// The charge's number at this gateway (poll `GET /v1/datasets/{id}/queries/{n}` while pending).
        public var query: Int64
        /// `released` (the charge committed) or `pending` (a refused charge is a 409 problem, never an answer).
        public var status: String
        public var epsilonMilli: UInt64
        public var chargeTransaction: Hash?
        public var chargeHeight: UInt64?
        public var answer: AggregateAnswer?
    }

    public static func validate(_ q: AggregateQuery) throws(ReadRefusal) -> (kind: VitalKind, lower: Double, upper: Double) {
        func bad(_ s: String) -> ReadRefusal { ReadRefusal(code: "invalid-query", status: 400, description: s) }
        guard ["count", "mean", "histogram"].contains(q.statistic) else { throw bad("statistic is count, mean or histogram") }
        guard let kind = VitalKind(name: q.measure), let entry = VitalSigns.entry(kind), !entry.units.isEmpty else {
            throw bad("measure is one of \(VitalSigns.entries.filter { !$0.units.isEmpty }.map(\.kind.name).joined(separator: ", "))")
        }
        guard let range = entry.units.first(where: { $0.unit == q.unit }) else { throw bad("unit for \(q.measure) is one of \(entry.units.map(\.unit).joined(separator: ", "))") }
        let lower = q.lower ?? range.min, upper = q.upper ?? range.max
        // Inside the physical range, and wide enough that every bin has a normal width.
        guard lower.isFinite, upper.isFinite, lower >= range.min, upper <= range.max, upper - lower >= (range.max - range.min) * 1e-6 else {
            throw bad("lower and upper lie in \(range.min)…\(range.max) \(q.unit), lower below upper by at least a millionth of that range")
        }
        if q.statistic == "histogram" { guard let b = q.bins, (1...100).contains(b) else { throw bad("a histogram has 1…100 bins") } }
        guard (1...RequestDataset.maxEpsilonMilli).contains(q.epsilonMilli) else { throw bad("epsilonMilli is 1…\(RequestDataset.maxEpsilonMilli)") }
        return (kind, lower, upper)
    }

    /// Each patient's mean of `kind` in `unit` over the rows (patients without one are left out).
    public static func patientMeans(_ rows: [DatasetRow], kind: VitalKind, unit: String) -> [Double] {
        var sums: [String: (Double, Int)] = [:]
        let codes = Set(VitalSigns.entry(kind)?.loinc.map { "LOINC \($0)" } ?? [])
        for row in rows {
            for v in row.values where v.unit == unit && (codes.contains(v.code) || (row.kind == kind.name && v.code == row.code)) {
                guard let x = Double(v.value), x.isFinite else { continue }
                let s = sums[row.pseudonym] ?? (0, 0)
                sums[row.pseudonym] = (s.0 + x, s.1 + 1)
            }
        }
        return sums.values.map { $0.0 / Double($0.1) }
    }

    /// The noisy answer (ε split evenly between the count and the sum of a mean).
    public static func answer<R: RandomNumberGenerator>(_ q: AggregateQuery, values: [Double], lower: Double, upper: Double, using rng: inout R) -> AggregateAnswer {
        let epsilon = Double(q.epsilonMilli) / 1000
        let clamped = values.map { min(max($0, lower), upper) }
        var a = AggregateAnswer(query: q, lower: lower, upper: upper, mechanism: "discrete-laplace")
        switch q.statistic {
        case "count":
            a.count = max(0, Int64(clamped.count) + DiscreteLaplace.sample(scale: 1 / epsilon, using: &rng))
        case "mean":
            // The sum in 1,000 steps of the range: one patient moves it by at most 1,000 steps.
            let steps = 1_000.0
            let units = clamped.reduce(Int64(0)) { $0 + Int64(((($1 - lower) / (upper - lower)) * steps).rounded()) }
            let noisySum = Double(units + DiscreteLaplace.sample(scale: steps / (epsilon / 2), using: &rng))
            let noisyCount = max(1, Int64(clamped.count) + DiscreteLaplace.sample(scale: 1 / (epsilon / 2), using: &rng))
            a.mean = min(upper, max(lower, lower + (upper - lower) * noisySum / steps / Double(noisyCount)))
        default:
            let bins = q.bins ?? 10, width = (upper - lower) / Double(bins)
            var counts = [Int64](repeating: 0, count: bins)
            for v in clamped { counts[min(bins - 1, max(0, Int(exactly: ((v - lower) / width).rounded(.down)) ?? 0))] += 1 }
            a.histogram = counts.enumerated().map { i, c in
                AggregateAnswer.Bin(from: lower + Double(i) * width, to: lower + Double(i + 1) * width, count: max(0, c + DiscreteLaplace.sample(scale: 1 / epsilon, using: &rng)))
            }
        }
        return a
    }

    /// `POST /v1/datasets/{id}/query`, signed by the dataset's researcher: computes the noisy
    /// answer, audits the use for every patient in it, charges ε on-chain and releases the answer
    /// only once the charge commits (waiting up to `waitMs`; after that, poll the query).
    public func queryDataset(_ r: SignedRequestParts, id: Hash, waitMs: Int = 20_000) async throws(ReadRefusal) -> QueryReply {
        let q: AggregateQuery
        do { q = try JSONDecoder().decode(AggregateQuery.self, from: Data(r.body)) } catch {
            throw ReadRefusal(code: "invalid-query", status: 400, description: "the body is an aggregate query: {statistic, measure, unit, lower?, upper?, bins?, epsilonMilli}: \(error)")
        }
        let (kind, lower, upper) = try Self.validate(q)
        let (d, digest, subjects) = try await researcherDataset(r, id: id)
        guard q.epsilonMilli <= d.epsilonLeftMilli else {
            throw ReadRefusal(code: "privacy-budget-exhausted", status: 409, description: "dataset \(id) has \(d.epsilonLeftMilli) thousandths of ε left; the query asks for \(q.epsilonMilli)")
        }
        let chargeID: Int64
        do {
            let values = Self.patientMeans(try datasetRows(d, subjects: subjects), kind: kind, unit: q.unit)
            var rng = SystemRandomNumberGenerator()
            let answer = Self.answer(q, values: values, lower: lower, upper: upper, using: &rng)
            guard let charge = try store.addCharge(dataset: id, researcher: d.researcher, epsilonMilli: q.epsilonMilli, budgetMilli: d.request.epsilonMilli,
                                                   spentOnChainMilli: d.epsilonSpentMilli, queryDigest: digest, answer: Array(try JSONEncoder().encode(answer)), nowMs: Self.nowMs()) else {
                throw ReadRefusal(code: "privacy-budget-exhausted", status: 409, description: "dataset \(id)'s budget, with the queries already charged or on their way, cannot cover ε \(q.epsilonMilli) thousandths")
            }
            chargeID = charge
            try auditDatasetUse(d, subjects: subjects, code: "dataset-aggregate", digest: digest)
        } catch let e as ReadRefusal { throw e } catch {
            throw ReadRefusal(code: "internal-error", status: 500, description: "\(error)")
        }
        let deadline = Self.nowMs() + Int64(waitMs)
        while true {
            let reply = try chargeReply(chargeID)
            if reply.status != "pending" || Self.nowMs() >= deadline { return reply }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
    }

    func chargeReply(_ id: Int64) throws(ReadRefusal) -> QueryReply {
        let c: GatewayStore.Charge?
        do { c = try store.charge(id: id) } catch { throw ReadRefusal(code: "internal-error", status: 500, description: "\(error)") }
        guard let c else { throw ReadRefusal(code: "unknown-query", status: 404, description: "no query \(id)") }
        var reply = QueryReply(dataset: c.dataset, query: c.id, status: "pending", epsilonMilli: c.epsilonMilli, chargeTransaction: c.transaction, chargeHeight: nil, answer: nil)
        switch c.committedHeight {
        case .some(0):
            throw ReadRefusal(code: c.refusal ?? "charge-refused", status: 409, description: "the chain refused the query's privacy-budget charge (\(c.refusal ?? "?")): the answer is never released")
        case .some(let h):
            reply.status = "released"; reply.chargeHeight = h
            reply.answer = try? JSONDecoder().decode(AggregateAnswer.self, from: Data(c.answer))
        case .none:
            break
        }
        return reply
    }

    /// `GET /v1/datasets/{id}/queries/{n}`, signed by the researcher: a query's answer once its charge committed.
    public func datasetQuery(_ r: SignedRequestParts, id: Hash, query: Int64) async throws(ReadRefusal) -> QueryReply {
        let auth = await authenticate(r, nowMs: Self.nowMs())
        if let refusal = auth.refusal { throw refusal }
        let c: GatewayStore.Charge?
        do { c = try store.charge(id: query) } catch { throw ReadRefusal(code: "internal-error", status: 500, description: "\(error)") }
        guard let c, c.dataset == id, c.researcher == auth.reader else { throw ReadRefusal(code: "unknown-query", status: 404, description: "no query \(query) of yours on dataset \(id)") }
        return try chargeReply(query)
    }
}

/// The discrete Laplace distribution (two-sided geometric): P(k) ∝ exp(−|k| / scale). Integer
/// noise for integer statistics, the mechanism of Ghosh, Roughgarden and Sundararajan (2009);
/// each geometric half is drawn by inversion from a 53-bit uniform.
public enum DiscreteLaplace {
    public static func sample<R: RandomNumberGenerator>(scale: Double, using rng: inout R) -> Int64 {
        precondition(scale > 0 && scale.isFinite)
        let logQ = -1 / scale
        func geometric() -> Int64 {
            let u = (Double(rng.next() >> 11) + 1) / 9_007_199_254_740_992 // (0, 1]
            return Int64(min((log(u) / logQ).rounded(.down), 1e15))
        }
        return geometric() - geometric()
    }
}
