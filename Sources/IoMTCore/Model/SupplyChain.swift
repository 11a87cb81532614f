/// Vaccine and injectable-medicine supply chain (issue 6 §1, first part): manufacturing batches
/// under GS1 identifiers, custody moved between organisations with both sides' signatures, recalls,
/// and administration to pseudonymous patients, so that a batch traces back to its materials and
/// forward to every organisation that held it and every patient who received a unit of it.

/// GS1 identifiers.
public enum GS1 {
    /// Whether `gtin` is a GTIN-8, -12, -13 or -14 with a correct check digit (GS1 General
    /// Specifications §7.9: weights 3 and 1 from the right, excluding the check digit).
    public static func isValidGTIN(_ gtin: String) -> Bool {
        let digits = gtin.utf8.map { Int($0) - 48 }
        guard [8, 12, 13, 14].contains(digits.count), digits.allSatisfy({ (0...9).contains($0) }) else { return false }
        var sum = 0
        for (i, d) in digits.dropLast().reversed().enumerated() { sum += d * (i % 2 == 0 ? 3 : 1) }
        return (10 - sum % 10) % 10 == digits.last
    }

    /// A lot or serial number: 1…20 characters of GS1's AI (10)/(21) set, letters, digits and `-./_`.
    public static func isValidLot(_ s: String) -> Bool {
        (1...20).contains(s.utf8.count) && s.utf8.allSatisfy { c in
            (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) || [45, 46, 47, 95].contains(c)
        }
    }

    /// The GTIN as 14 digits (GTIN-8/12/13 left-padded with zeros, as GS1 AI (01) carries it), so
    /// one product has one form whatever length it was written in.
    public static func gtin14(_ gtin: String) -> String { String(repeating: "0", count: max(0, 14 - gtin.utf8.count)) + gtin }

    /// A GS1 company prefix, as the consortium assigns it to a manufacturer (`assign-gs1-prefix`):
    /// 4…12 digits, not beginning with five zeros (that range carries GTIN-8s and restricted numbers).
    public static func isValidCompanyPrefix(_ p: String) -> Bool {
        (4...12).contains(p.utf8.count) && p.utf8.allSatisfy { (48...57).contains($0) } && !p.hasPrefix("00000")
    }

    /// The company prefixes `gtin` could carry, shortest first: the digits after the indicator
    /// digit of its 14-digit form, 4…12 of them (a GTIN-13's prefix starts at its first digit, a
    /// GTIN-12's U.P.C. prefix with a 0 before it).
    public static func companyPrefixCandidates(_ gtin: String) -> [String] {
        let body = gtin14(gtin).dropFirst()
        return (4...12).map { String(body.prefix($0)) }
    }

    /// A batch's id: from its GTIN (as 14 digits) and lot, so one lot of one product is registered once.
    public static func batchID(gtin: String, lot: String) -> Hash {
        var w = CanonicalWriter()
        w.write(gtin14(gtin)); w.write(lot)
        return Hash.domain("iomtchain/batch/v1", w.bytes)
    }
}

/// A manufacturer (an account of an organisation of kind `manufacturer`) registers a batch.
public struct RegisterBatch: Hashable, Sendable, Codable, CanonicalCodable {
    public var gtin: String
    public var lot: String
    /// The product's code (a CVX or ATC code, say): never free text.
    public var productCode: String
    public var units: UInt32
    /// Merkle root over the units' serial numbers (RFC 6962 over their UTF-8 bytes): a scanned
    /// serial is checked against it with a proof, without listing every serial on-chain.
    public var serialsRoot: Hash
    /// Batches (or material lots registered as batches) it was made from.
    public var materials: [Hash]
    public var manufacturedMs: Int64
    public var expiresMs: Int64
    /// Storage range in hundredths of °C (200…800 for 2–8 °C).
    public var minCentiC: Int32
    public var maxCentiC: Int32

    public static let maxMaterials = 32

    public init(gtin: String, lot: String, productCode: String, units: UInt32, serialsRoot: Hash, materials: [Hash] = [],
                manufacturedMs: Int64, expiresMs: Int64, minCentiC: Int32, maxCentiC: Int32) {
        self.gtin = gtin; self.lot = lot; self.productCode = productCode; self.units = units; self.serialsRoot = serialsRoot; self.materials = materials
        self.manufacturedMs = manufacturedMs; self.expiresMs = expiresMs; self.minCentiC = minCentiC; self.maxCentiC = maxCentiC
    }

    public var id: Hash { GS1.batchID(gtin: gtin, lot: lot) }

    public func encode(to w: inout CanonicalWriter) {
        w.write(gtin); w.write(lot); w.write(productCode); w.write(units); w.write(serialsRoot); w.write(materials)
        w.write(manufacturedMs); w.write(expiresMs); w.write(UInt32(bitPattern: minCentiC)); w.write(UInt32(bitPattern: maxCentiC))
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        gtin = try r.read(); lot = try r.read(); productCode = try r.read(); units = try r.read(); serialsRoot = try r.read(); materials = try r.readArray()
        manufacturedMs = try r.read(); expiresMs = try r.read()
        minCentiC = Int32(bitPattern: try r.read()); maxCentiC = Int32(bitPattern: try r.read())
    }
}

/// Custody of `units` of a batch moves from the sender's organisation to the receiver's. The
/// receiver countersigns (`receiverSignature` over `message(…)` with its account key), so neither
/// side alone can put units in or out of another's hands.
public struct TransferCustody: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    public var units: UInt32
    public var receiver: Address
    /// The transfer's number for this batch (1, 2, …: the batch's transfer count + 1), so a
    /// countersignature is good for one transfer only.
    public var sequence: UInt64
    /// The countersignature lapses after this block time (ms).
    public var validUntilMs: Int64
    public var receiverSignature: Signature

    public init(batch: Hash, units: UInt32, receiver: Address, sequence: UInt64, validUntilMs: Int64, receiverSignature: Signature) {
        self.batch = batch; self.units = units; self.receiver = receiver; self.sequence = sequence; self.validUntilMs = validUntilMs; self.receiverSignature = receiverSignature
    }

    /// What the receiver signs: it takes `units` of `batch` from `sender`, as transfer `sequence`, until `validUntilMs`.
    public static func message(chainID: String, batch: Hash, units: UInt32, sender: Address, receiver: Address, sequence: UInt64, validUntilMs: Int64) -> [UInt8] {
        var w = CanonicalWriter()
        w.write("iomtchain/custody/v1"); w.write(chainID); w.write(batch); w.write(units); w.write(sender); w.write(receiver); w.write(sequence); w.write(validUntilMs)
        return w.bytes
    }

    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(units); w.write(receiver); w.write(sequence); w.write(validUntilMs); w.write(receiverSignature) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        batch = try r.read(); units = try r.read(); receiver = try r.read(); sequence = try r.read(); validUntilMs = try r.read(); receiverSignature = try r.read()
    }
}

/// The manufacturer, or a public-health officer, recalls a batch: from this block no unit of it is
/// administered, and a scan of it is flagged.
public struct RecallBatch: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    /// `quality-defect`, `cold-chain-excursion`, `adverse-events`, `counterfeit`, `regulatory`.
    public var reasonCode: String

    public static let reasonCodes = ["quality-defect", "cold-chain-excursion", "adverse-events", "counterfeit", "regulatory"]

    public init(batch: Hash, reasonCode: String) { self.batch = batch; self.reasonCode = reasonCode }

    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(reasonCode) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { batch = try r.read(); reasonCode = try r.read() }
}

/// An attested practitioner records one unit of a batch held by its organisation given to an
/// enrolled patient (by pseudonym). `serialHash` is the SHA-256 of the unit's serial, so the unit is
/// named without the serial on-chain.
public struct AdministerDose: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    public var subject: Hash
    public var serialHash: Hash
    public var atMs: Int64

    public init(batch: Hash, subject: Hash, serialHash: Hash, atMs: Int64) { self.batch = batch; self.subject = subject; self.serialHash = serialHash; self.atMs = atMs }

    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(subject); w.write(serialHash); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { batch = try r.read(); subject = try r.read(); serialHash = try r.read(); atMs = try r.read() }
}

/// A practitioner, or the patient, reports a reaction after a dose (seed 001 §5.3: post-injection
/// symptom declarations): codes only — the reaction as a SNOMED CT or MedDRA code, a severity, the
/// onset — so the report can go on-chain and be counted per batch.
public struct ReportAdverseEvent: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    public var subject: Hash
    /// `snomed:<code>` or `meddra:<code>`.
    public var reactionCode: String
    /// `mild`, `moderate`, `severe`, `life-threatening`, `fatal`.
    public var severity: String
    public var onsetMs: Int64

    public static let severities = ["mild", "moderate", "severe", "life-threatening", "fatal"]

    public init(batch: Hash, subject: Hash, reactionCode: String, severity: String, onsetMs: Int64) {
        self.batch = batch; self.subject = subject; self.reactionCode = reactionCode; self.severity = severity; self.onsetMs = onsetMs
    }

    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(subject); w.write(reactionCode); w.write(severity); w.write(onsetMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        batch = try r.read(); subject = try r.read(); reactionCode = try r.read(); severity = try r.read(); onsetMs = try r.read()
    }
}

/// An adverse-event report as recorded (`StateKeys.adverseEvent(batch, n)`).
public struct AdverseEventRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var report: ReportAdverseEvent
    public var reporter: Address
    /// `practitioner` or `patient`.
    public var reporterRole: String
    public var atMs: Int64
    public var height: UInt64

    public init(n: UInt64, report: ReportAdverseEvent, reporter: Address, reporterRole: String, atMs: Int64, height: UInt64) {
        self.n = n; self.report = report; self.reporter = reporter; self.reporterRole = reporterRole; self.atMs = atMs; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(report); w.write(reporter); w.write(reporterRole); w.write(atMs); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); report = try r.read(); reporter = try r.read(); reporterRole = try r.read(); atMs = try r.read(); height = try r.read()
    }
}

/// A holder puts a cold-chain logger of its own organisation (a registered `cold-chain-logger`
/// device, bound to the place where it hangs) with units of a batch it holds: where they are
/// stored, and what watches their temperature. `units: 0` takes the logger off the batch.
public struct AttachLogger: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var batch: Hash
    public var units: UInt32
    /// The units by serial, when the holder knows them: SHA-256 of each serial (as `administer-dose`
    /// carries it), one per unit, at most `maxSerials`; empty: the units are counted only. An
    /// excursion then quarantines these very units: a dose of one is refused and its scan flagged.
    public var serialHashes: [Hash]

    public static let maxSerials = 1_000

    public init(device: Address, batch: Hash, units: UInt32, serialHashes: [Hash] = []) {
        self.device = device; self.batch = batch; self.units = units; self.serialHashes = serialHashes
    }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(batch); w.write(units); w.write(serialHashes) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        device = try r.read(); batch = try r.read(); units = try r.read(); serialHashes = try r.readArray()
    }

    enum CodingKeys: String, CodingKey { case device, batch, units, serialHashes }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        device = try c.decode(Address.self, forKey: .device); batch = try c.decode(Hash.self, forKey: .batch); units = try c.decode(UInt32.self, forKey: .units)
        serialHashes = try c.decodeIfPresent([Hash].self, forKey: .serialHashes) ?? []
    }
}

/// A logger's reading left the batch's storage range: reported by a gateway of the logger's
/// organisation (at once, from the reading) or by a supply-chain party of it; the units the logger
/// watches are quarantined (they can no longer be given or moved).
public struct ReportExcursion: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var batch: Hash
    /// The reading that left the range, in hundredths of °C, and its time.
    public var centiC: Int32
    public var atMs: Int64

    public init(device: Address, batch: Hash, centiC: Int32, atMs: Int64) { self.device = device; self.batch = batch; self.centiC = centiC; self.atMs = atMs }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(batch); w.write(UInt32(bitPattern: centiC)); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); batch = try r.read(); centiC = Int32(bitPattern: try r.read()); atMs = try r.read() }
}

/// Where units of a batch are stored and which logger watches them (`StateKeys.storage(batch, n)`;
/// the logger's current one is `StateKeys.loggerAttachment(device)`).
public struct StorageRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var batch: Hash
    public var device: Address
    public var organisation: String
    /// The logger's place (from its device registration).
    public var place: String?
    /// Units watched; 0 once an excursion quarantined them.
    public var units: UInt32
    public var sinceMs: Int64
    public var untilMs: Int64?
    public var excursions: UInt64
    public var height: UInt64

    public init(n: UInt64, batch: Hash, device: Address, organisation: String, place: String?, units: UInt32, sinceMs: Int64, untilMs: Int64? = nil, excursions: UInt64 = 0, height: UInt64) {
        self.n = n; self.batch = batch; self.device = device; self.organisation = organisation; self.place = place; self.units = units
        self.sinceMs = sinceMs; self.untilMs = untilMs; self.excursions = excursions; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(n); w.write(batch); w.write(device); w.write(organisation); w.write(place); w.write(units); w.write(sinceMs); w.write(untilMs.map { UInt64(bitPattern: $0) }); w.write(excursions); w.write(height)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); batch = try r.read(); device = try r.read(); organisation = try r.read(); place = try r.readOptional(); units = try r.read()
        sinceMs = try r.read(); untilMs = try r.readOptional(UInt64.self).map { Int64(bitPattern: $0) }; excursions = try r.read(); height = try r.read()
    }
}

/// A cold-chain excursion as recorded (`StateKeys.excursion(batch, n)`).
public struct ExcursionRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var report: ReportExcursion
    public var organisation: String
    public var place: String?
    /// Units quarantined by this excursion (0 when an earlier one of the same storage had).
    public var quarantined: UInt32
    public var reporter: Address
    public var height: UInt64

    public init(n: UInt64, report: ReportExcursion, organisation: String, place: String?, quarantined: UInt32, reporter: Address, height: UInt64) {
        self.n = n; self.report = report; self.organisation = organisation; self.place = place; self.quarantined = quarantined; self.reporter = reporter; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(report); w.write(organisation); w.write(place); w.write(quarantined); w.write(reporter); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); report = try r.read(); organisation = try r.read(); place = try r.readOptional(); quarantined = try r.read(); reporter = try r.read(); height = try r.read()
    }
}

/// A batch as held in state (`StateKeys.batch(id)`).
public struct BatchRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Hash
    public var registration: RegisterBatch
    public var manufacturer: String
    public var registeredBy: Address
    public var height: UInt64
    public var transfers: UInt64
    public var administered: UInt64
    public var recall: RecallBatch?
    public var recalledHeight: UInt64?

    public init(id: Hash, registration: RegisterBatch, manufacturer: String, registeredBy: Address, height: UInt64,
                transfers: UInt64 = 0, administered: UInt64 = 0, recall: RecallBatch? = nil, recalledHeight: UInt64? = nil) {
        self.id = id; self.registration = registration; self.manufacturer = manufacturer; self.registeredBy = registeredBy; self.height = height
        self.transfers = transfers; self.administered = administered; self.recall = recall; self.recalledHeight = recalledHeight
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(registration); w.write(manufacturer); w.write(registeredBy); w.write(height)
        w.write(transfers); w.write(administered); w.write(recall); w.write(recalledHeight)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); registration = try r.read(); manufacturer = try r.read(); registeredBy = try r.read(); height = try r.read()
        transfers = try r.read(); administered = try r.read(); recall = try r.readOptional(); recalledHeight = try r.readOptional()
    }
}

/// One custody transfer as recorded (`StateKeys.custodyTransfer(batch, n)`).
public struct CustodyRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var sequence: UInt64
    public var fromOrganisation: String
    public var toOrganisation: String
    public var sender: Address
    public var receiver: Address
    public var units: UInt32
    public var atMs: Int64
    public var height: UInt64

    public init(sequence: UInt64, fromOrganisation: String, toOrganisation: String, sender: Address, receiver: Address, units: UInt32, atMs: Int64, height: UInt64) {
        self.sequence = sequence; self.fromOrganisation = fromOrganisation; self.toOrganisation = toOrganisation; self.sender = sender
        self.receiver = receiver; self.units = units; self.atMs = atMs; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(sequence); w.write(fromOrganisation); w.write(toOrganisation); w.write(sender); w.write(receiver); w.write(units); w.write(atMs); w.write(height)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        sequence = try r.read(); fromOrganisation = try r.read(); toOrganisation = try r.read(); sender = try r.read(); receiver = try r.read()
        units = try r.read(); atMs = try r.read(); height = try r.read()
    }
}

/// One administration as recorded (`StateKeys.administration(batch, n)`).
public struct AdministrationRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var dose: AdministerDose
    public var practitioner: Address
    public var organisation: String
    public var height: UInt64

    public init(n: UInt64, dose: AdministerDose, practitioner: Address, organisation: String, height: UInt64) {
        self.n = n; self.dose = dose; self.practitioner = practitioner; self.organisation = organisation; self.height = height
    }

    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(dose); w.write(practitioner); w.write(organisation); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); dose = try r.read(); practitioner = try r.read(); organisation = try r.read(); height = try r.read()
    }
}

extension StateKeys {
    public static func batch(_ id: Hash) -> [UInt8] { Array("batch/".utf8) + id.bytes }
    /// Units of a batch an organisation holds (`UInt64`).
    public static func holding(_ batch: Hash, _ organisation: String) -> [UInt8] { Array("holding/".utf8) + batch.bytes + Array(organisation.utf8) }
    public static func custodyTransfer(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("custody/".utf8) + batch.bytes + n.canonicalBytes }
    public static func administration(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("administration/".utf8) + batch.bytes + n.canonicalBytes }
    /// Set when a unit (by serial hash) was administered: a unit is given once.
    public static func administeredUnit(_ batch: Hash, _ serialHash: Hash) -> [UInt8] { Array("administered-unit/".utf8) + batch.bytes + serialHash.bytes }
    /// A serial given under a GTIN, whatever the lot (GS1 serials are unique per GTIN): the batch
    /// it was given from (`Hash`).
    public static func administeredSerial(gtin: String, _ serialHash: Hash) -> [UInt8] {
        Array("administered-serial/".utf8) + Array(GS1.gtin14(gtin).utf8) + serialHash.bytes
    }
    /// Set when a reaction (code) of a patient was reported for a batch: reported once.
    public static func adverseReported(_ batch: Hash, _ subject: Hash, _ code: String) -> [UInt8] { Array("adverse-reported/".utf8) + batch.bytes + subject.bytes + Array(code.utf8) }
    /// Doses of a batch a patient was given (`UInt64`).
    public static func administeredTo(_ batch: Hash, _ subject: Hash) -> [UInt8] { Array("administered-to/".utf8) + batch.bytes + subject.bytes }
    /// How many adverse events were reported for a batch (`UInt64`); the n-th is `adverseEvent(batch, n)`.
    public static func adverseEventCount(_ batch: Hash) -> [UInt8] { Array("adverse-events/".utf8) + batch.bytes }
    public static func adverseEvent(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("adverse-events/".utf8) + batch.bytes + n.canonicalBytes }
    /// How many recalls were recorded (`UInt64`); the n-th recalled batch is `recallEntry(n)`.
    public static let recallCount: [UInt8] = Array("recalls/count".utf8)
    public static func recallEntry(_ n: UInt64) -> [UInt8] { Array("recalls/".utf8) + n.canonicalBytes }
    /// The distinct patients given a unit of a batch or of a batch made (transitively) from it, in
    /// pages of `batchPatientsPageSize` pseudonyms (`IDList`), in the order of their first dose;
    /// their count is `batchPatientCount` (`UInt64`). The forward trace reads one page per 256
    /// patients, not one record per dose.
    public static let batchPatientsPageSize: UInt64 = 256
    public static func batchPatientCount(_ batch: Hash) -> [UInt8] { Array("batch-patients/".utf8) + batch.bytes }
    public static func batchPatients(_ batch: Hash, page: UInt64) -> [UInt8] { Array("batch-patients/".utf8) + batch.bytes + page.canonicalBytes }
    /// Set (to the height) once a patient is in a batch's patient index (`batchPatients`).
    public static func reached(_ material: Hash, _ subject: Hash) -> [UInt8] { Array("reached/".utf8) + material.bytes + subject.bytes }
    /// Storage records of a batch (`UInt64` count; the n-th is `storage(batch, n)`).
    public static func storageCount(_ batch: Hash) -> [UInt8] { Array("storage/".utf8) + batch.bytes }
    public static func storage(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("storage/".utf8) + batch.bytes + n.canonicalBytes }
    /// The storage record a logger watches now (`StorageRecord`).
    public static func loggerAttachment(_ device: Address) -> [UInt8] { Array("logger/".utf8) + device.bytes }
    /// Excursions of a batch (`UInt64` count; the n-th is `excursion(batch, n)`).
    public static func excursionCount(_ batch: Hash) -> [UInt8] { Array("excursions/".utf8) + batch.bytes }
    public static func excursion(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("excursions/".utf8) + batch.bytes + n.canonicalBytes }
    /// Units of a batch an organisation holds in quarantine after an excursion (`UInt64`): not
    /// given, not moved.
    /// The serial hashes of the units a storage record placed with its logger (`IDList`).
    public static func storageSerials(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("storage-serials/".utf8) + batch.bytes + n.canonicalBytes }
    /// A unit quarantined by serial: the number of the batch's excursion that did it (`UInt64`).
    public static func quarantinedUnit(_ batch: Hash, _ serialHash: Hash) -> [UInt8] { Array("quarantined-unit/".utf8) + batch.bytes + serialHash.bytes }
    public static func quarantined(_ batch: Hash, _ organisation: String) -> [UInt8] { Array("quarantined/".utf8) + batch.bytes + Array(organisation.utf8) }
    /// Batches made from a batch (`IDList`): the forward trace from a material.
    public static func madeFrom(_ material: Hash) -> [UInt8] { Array("made-from/".utf8) + material.bytes }
}

/// A manufacturer records a raw-material source: what, from which supplier, of which origin, under
/// which certificate (its hash; the certificate stays off-chain).
public struct RegisterMaterialSource: Hashable, Sendable, Codable, CanonicalCodable {
    public var source: Hash
    /// The material's code (a CAS number `cas:50-99-7`, an internal code): never free text.
    public var materialCode: String
    public var supplierCode: String
    /// ISO 3166-1 alpha-2 country of origin.
    public var originCountry: String
    public var certificateHash: Hash

    public init(source: Hash, materialCode: String, supplierCode: String, originCountry: String, certificateHash: Hash) {
        self.source = source; self.materialCode = materialCode; self.supplierCode = supplierCode; self.originCountry = originCountry; self.certificateHash = certificateHash
    }
    public func encode(to w: inout CanonicalWriter) { w.write(source); w.write(materialCode); w.write(supplierCode); w.write(originCountry); w.write(certificateHash) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        source = try r.read(); materialCode = try r.read(); supplierCode = try r.read(); originCountry = try r.read(); certificateHash = try r.read()
    }
}

/// The batch's manufacturer names a raw-material source the batch was made with.
public struct LinkMaterialSource: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    public var source: Hash
    public init(batch: Hash, source: Hash) { self.batch = batch; self.source = source }
    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(source) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { batch = try r.read(); source = try r.read() }
}

/// A research or test result about a batch: a release test by its manufacturer or a laboratory, or a
/// clinical-trial result for the batches it covers (the report stays off-chain; its hash is kept).
public struct RecordBatchTest: Hashable, Sendable, Codable, CanonicalCodable {
    public var batch: Hash
    public var testCode: String
    public var passed: Bool
    public var reportHash: Hash
    public var atMs: Int64

    public static let testCodes = ["identity", "potency", "purity", "sterility", "endotoxin", "stability", "clinical-trial"]

    public init(batch: Hash, testCode: String, passed: Bool, reportHash: Hash, atMs: Int64) {
        self.batch = batch; self.testCode = testCode; self.passed = passed; self.reportHash = reportHash; self.atMs = atMs
    }
    public func encode(to w: inout CanonicalWriter) { w.write(batch); w.write(testCode); w.write(passed); w.write(reportHash); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { batch = try r.read(); testCode = try r.read(); passed = try r.read(); reportHash = try r.read(); atMs = try r.read() }
}

/// A source as held in state (`StateKeys.materialSource(id)`).
public struct MaterialSourceRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var registration: RegisterMaterialSource
    public var organisation: String
    public var height: UInt64
    public init(registration: RegisterMaterialSource, organisation: String, height: UInt64) { self.registration = registration; self.organisation = organisation; self.height = height }
    public func encode(to w: inout CanonicalWriter) { w.write(registration); w.write(organisation); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { registration = try r.read(); organisation = try r.read(); height = try r.read() }
}

/// A test result as held in state (`StateKeys.batchTest(batch, n)`).
public struct BatchTestRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var test: RecordBatchTest
    public var organisation: String
    public var recordedBy: Address
    public var height: UInt64
    public init(n: UInt64, test: RecordBatchTest, organisation: String, recordedBy: Address, height: UInt64) {
        self.n = n; self.test = test; self.organisation = organisation; self.recordedBy = recordedBy; self.height = height
    }
    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(test); w.write(organisation); w.write(recordedBy); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { n = try r.read(); test = try r.read(); organisation = try r.read(); recordedBy = try r.read(); height = try r.read() }
}

/// A GS1 company prefix and the manufacturer the consortium assigned it to
/// (`StateKeys.gs1Prefix(prefix)`): only that organisation registers batches of GTINs under it.
public struct GS1PrefixRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var prefix: String
    public var organisation: String
    public var height: UInt64
    public init(prefix: String, organisation: String, height: UInt64) { self.prefix = prefix; self.organisation = organisation; self.height = height }
    public func encode(to w: inout CanonicalWriter) { w.write(prefix); w.write(organisation); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { prefix = try r.read(); organisation = try r.read(); height = try r.read() }
}

extension StateKeys {
    /// The assignment of a GS1 company prefix (`GS1PrefixRecord`).
    public static func gs1Prefix(_ prefix: String) -> [UInt8] { Array("gs1-prefix/".utf8) + Array(prefix.utf8) }
    /// Present when a longer prefix beginning with this one is assigned (so this one cannot be).
    public static func gs1PrefixNested(_ prefix: String) -> [UInt8] { Array("gs1-prefix-nested/".utf8) + Array(prefix.utf8) }
    public static func materialSource(_ id: Hash) -> [UInt8] { Array("material-source/".utf8) + id.bytes }
    /// Every organisation that has held units of a batch, the manufacturer first (`StringList`):
    /// what the trace, the batch view and the recall notice read instead of every transfer.
    public static func batchHolders(_ batch: Hash) -> [UInt8] { Array("batch-holders/".utf8) + batch.bytes }
    /// A batch's raw-material sources (`IDList`).
    public static func batchSources(_ batch: Hash) -> [UInt8] { Array("batch-sources/".utf8) + batch.bytes }
    /// A batch's test results (`UInt64` count; the n-th is `batchTest(batch, n)`).
    public static func batchTestCount(_ batch: Hash) -> [UInt8] { Array("batch-tests/".utf8) + batch.bytes }
    public static func batchTest(_ batch: Hash, _ n: UInt64) -> [UInt8] { Array("batch-tests/".utf8) + batch.bytes + n.canonicalBytes }
}
