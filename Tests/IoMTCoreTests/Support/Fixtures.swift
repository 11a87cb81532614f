import Crypto
import IoMTCore
import PropertyBased
import Testing

/// Fixed keys, hashes and sample values shared by the core tests. Everything here is derived
/// from constants, so a failure reproduces on every machine.
enum Fixture {
    static let chainID = "iomt-test"

    /// An Ed25519 key whose 32-byte seed is `seed` repeated.
    static func ed25519(_ seed: UInt8) -> PrivateKey {
        try! PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: seed, count: 32))
    }

    /// A P-256 key whose scalar is the small number `n` (valid for n > 0).
    static func p256(_ n: UInt8) -> PrivateKey {
        try! PrivateKey(algorithm: .p256, rawBytes: [UInt8](repeating: 0, count: 31) + [n])
    }

    /// The X25519 public key of the private scalar `b` repeated.
    static func x25519(_ b: UInt8) -> X25519Key {
        try! X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: b, count: 32)).publicKey.rawRepresentation))
    }

    static func hash(_ b: UInt8) -> Hash { Hash(bytes: [UInt8](repeating: b, count: 32))! }
    static func address(_ b: UInt8) -> Address { Address(bytes: [UInt8](repeating: b, count: 20))! }
    static func signature(_ b: UInt8) -> Signature { Signature(bytes: [UInt8](repeating: b, count: 64))! }

    static let organisation = Organisation(id: "st-marys", name: "St Mary's Hospital — Ünïcødé 病院 🏥", kind: "hospital")
    static let consensus = ConsensusParameters(maxBlockBytes: 1 << 20, maxTransactionBytes: 4096, maxBlockTransactions: 500, blockIntervalMs: 250)
    static let validator = Validator(publicKey: ed25519(0x71).publicKey, organisation: "st-marys", power: 3)

    /// One value of every `GovernanceAction` case.
    static let allGovernanceActions: [GovernanceAction] = [
        .addOrganisation(organisation),
        .addAdmin(publicKey: p256(9).publicKey, organisation: "city-clinic", label: "second admin"),
        .removeAdmin(account: address(0xAB)),
        .setAdminQuorum(3),
        .addValidator(validator),
        .removeValidator(publicKey: ed25519(0x72).publicKey),
        .setConsensusParameters(consensus),
        .assignGS1Prefix(prefix: "950600", organisation: "pharma"),
    ]

    /// One value of every `TransactionPayload` case (and every governance action).
    static let allPayloads: [TransactionPayload] = [
        .registerAccount(RegisterAccount(publicKey: ed25519(0x21).publicKey, role: .device, organisation: "st-marys", label: "infusion pump #4")),
        .registerAccount(RegisterAccount(publicKey: p256(3).publicKey, role: .practitioner, organisation: "st-marys")),
        .setAccountStatus(SetAccountStatus(account: address(0x42), status: .suspended, reason: "lost device")),
        .setAccountStatus(SetAccountStatus(account: address(0x43), status: .revoked)),
        .rotateKey(RotateKey(newPublicKey: p256(4).publicKey)),
        .approveProposal(ApproveProposal(proposal: hash(0x5A))),
        .recordEvidence(RecordEvidence(evidence: [0x01, 0x00, 0xFF, 0x7E])),
        .registerDevice(RegisterDevice(publicKey: ed25519(0x24).publicKey, deviceType: "pulse-oximeter", subject: hash(0x25), label: "home SpO2")),
        .registerDevice(RegisterDevice(macKeyHash: hash(0x26), deviceType: "crowd-counter", place: "venue-12")),
        .registerDevice(RegisterDevice(publicKey: ed25519(0x2C).publicKey, deviceType: "ecg-patch", subject: hash(0x2D), recipientKey: try! X25519Key(bytes: [UInt8](repeating: 0x2E, count: 32)))),
        .setDeviceStatus(SetDeviceStatus(device: address(0x27), status: .revoked, reason: "stolen")),
        .anchorReadings(AnchorReadings(device: address(0x28), batchRoot: hash(0x29), blobDigest: hash(0x2A), firstMs: -5, lastMs: 1_700_000_000_000, count: 250)),
        .recordAlert(RecordAlert(device: address(0x2B), rule: "spo2-low", severity: "critical", raised: true, atMs: 1_700_000_000_001)),
        .setDeviceSampling(SetDeviceSampling(device: address(0x2F), mode: "intensive", untilMs: 1_700_000_600_000, reason: "post-op watch")),
        .registerPatient(RegisterPatient(publicKey: ed25519(0x30).publicKey, agreementKey: x25519(0x31), signature: signature(0x3C))),
        .setAgreementKey(SetAgreementKey(agreementKey: x25519(0x32))),
        .attestPractitioner(AttestPractitioner(account: address(0x33), profession: "nurse", licenceHash: hash(0x34), active: false)),
        .grantConsent(GrantConsent(grantee: .account(address(0x35)), categories: ["vital-signs", "ecg"], purposes: ["treatment"], dataFromMs: -1, dataUntilMs: .max, expiresMs: 1_800_000_000_000)),
        .grantConsent(GrantConsent(grantee: .organisation("st-marys"), categories: ["laboratory"], purposes: ["research", "public-health"], expiresMs: 1)),
        .grantConsent(GrantConsent(grantee: .attributes(role: .practitioner, profession: "doctor", organisation: nil), categories: ["ecg"], purposes: ["treatment"], expiresMs: 2)),
        .revokeConsent(RevokeConsent(grant: hash(0x36))),
        .declareEmergencyAccess(DeclareEmergencyAccess(subject: hash(0x37), reasonCode: "unconscious", statementHash: hash(0x38), categories: ["medication"], minutes: 90)),
        .reviewEmergencyAccess(ReviewEmergencyAccess(access: hash(0x39), verdict: "justified", noteHash: hash(0x3A))),
        .reviewEmergencyAccess(ReviewEmergencyAccess(access: hash(0x3B), verdict: "unjustified")),
        .setRewrapDelegation(SetRewrapDelegation(gateway: address(0x3C), active: true)),
        .anchorAudit(AnchorAudit(firstSeq: 1, lastSeq: 250, root: hash(0x3D))),
        .requestErasure(RequestErasure(subject: hash(0x3E))),
        .confirmErasure(ConfirmErasure(subject: hash(0x3F), batchRoots: [hash(0x40), hash(0x41)], final: true)),
        .requestDataset(RequestDataset(gateway: address(0x42), categories: ["vital-signs", "ecg"], fromMs: -5, untilMs: .max, access: "aggregates", price: 90, epsilonMilli: 1_000)),
        .sealDataset(SealDataset(dataset: hash(0x43), subjects: [hash(0x44), hash(0x45)], rows: 12, contentRoot: hash(0x46))),
        .cancelDataset(CancelDataset(dataset: hash(0x47))),
        .chargePrivacyBudget(ChargePrivacyBudget(dataset: hash(0x48), epsilonMilli: 250, queryDigest: hash(0x49))),
        .issueCredits(IssueCredits(account: address(0x4A), amount: 1_000)),
        .transferCredits(TransferCredits(to: address(0x4B), amount: 7, reference: hash(0x4C))),
        .transferCredits(TransferCredits(to: address(0x4D), amount: .max)),
        .registerBatch(RegisterBatch(gtin: "09506000134352", lot: "LOT-42", productCode: "CVX208", units: 1_000, serialsRoot: hash(0x4E), materials: [hash(0x4F)],
                                     manufacturedMs: 1_700_000_000_000, expiresMs: 1_800_000_000_000, minCentiC: -8_000, maxCentiC: -6_000)),
        .transferCustody(TransferCustody(batch: hash(0x50), units: 100, receiver: address(0x51), sequence: 3, validUntilMs: 1_750_000_000_000, receiverSignature: signature(0x52))),
        .recallBatch(RecallBatch(batch: hash(0x53), reasonCode: "cold-chain-excursion")),
        .administerDose(AdministerDose(batch: hash(0x54), subject: hash(0x55), serialHash: hash(0x56), atMs: 1_750_000_000_000)),
        .reportAdverseEvent(ReportAdverseEvent(batch: hash(0x57), subject: hash(0x58), reactionCode: "snomed:39579001", severity: "severe", onsetMs: 1_750_000_100_000)),
        .attachLogger(AttachLogger(device: address(0x59), batch: hash(0x5A), units: 2, serialHashes: [hash(0x5B), hash(0x5C)])),
        .reportExcursion(ReportExcursion(device: address(0x59), batch: hash(0x5A), centiC: -1_250, atMs: 1_750_000_200_000)),
        .registerVenue(RegisterVenue(venue: "city-library", capacity: 120)),
        .anchorCheckIns(AnchorCheckIns(venue: "city-library", root: hash(0x5B), count: 12, firstMs: 1_750_000_000_000, lastMs: 1_750_000_900_000)),
        .reportPositive(ReportPositive(caseID: hash(0x5C), tokenHashes: [hash(0x5D), hash(0x5E)], fromMs: 1_750_000_000_000, toMs: 1_751_000_000_000)),
        .recordExposures(RecordExposures(caseID: hash(0x5C), venue: "city-library", part: 2, exposed: [hash(0x5F)], checkInRoots: [hash(0x5B)])),
        .orderQuarantine(OrderQuarantine(orderID: hash(0x60), subject: hash(0x61), device: address(0x62), fenceCommitment: hash(0x63), fromMs: 1_750_000_000_000, untilMs: 1_751_000_000_000)),
        .liftQuarantine(LiftQuarantine(orderID: hash(0x60))),
        .commandVentilation(CommandVentilation(device: address(0x64), sequence: 3, setpointM3h: 1_800, occupancy: 50)),
        .ackVentilation(AckVentilation(device: address(0x64), sequence: 3, appliedM3h: 1_750, atMs: 1_750_000_300_000)),
        .reportFault(ReportFault(device: address(0x64), code: "filter-clogged", atMs: 1_750_000_400_000)),
        .resolveFault(ResolveFault(n: 7)),
        .recordFeverDetection(RecordFeverDetection(device: address(0x65), atMs: 1_750_000_500_000, centiC: 3_840)),
        .recordTestResult(RecordTestResult(resultID: hash(0x66), place: "district-7", sampledAtMs: 1_750_000_600_000, assay: "loinc:94500-6", outcome: "positive")),
        .registerAsset(RegisterAsset(tag: "E2801160600002054D3A1B7C", kind: "respirator", home: "icu-2")),
        .setAssetStatus(SetAssetStatus(tag: "E2801160600002054D3A1B7C", status: "out-of-service", malfunction: "alarm-fault")),
        .recordAssetLocation(RecordAssetLocation(tag: "E2801160600002054D3A1B7C", reader: address(0x67), atMs: 1_750_000_700_000)),
        .recordSterilisation(RecordSterilisation(cycle: SterilisationCycle(steriliser: address(0x68), cycle: 412, loadHash: hash(0x69), startMs: 1_750_000_000_000, endMs: 1_750_002_700_000,
                                                                      maxCentiC: 13_450, holdSeconds: 240, passed: true), steriliserSignature: Signature(bytes: [UInt8](repeating: 0x6A, count: 64))!)),
        .acknowledgeAlert(AcknowledgeAlert(device: address(0x6B), rule: "spo2-low", raisedAtMs: 1_750_000_800_000)),
        .registerMaterialSource(RegisterMaterialSource(source: hash(0x6C), materialCode: "cas:50-99-7", supplierCode: "SUP-0042", originCountry: "DE", certificateHash: hash(0x6D))),
        .linkMaterialSource(LinkMaterialSource(batch: hash(0x6E), source: hash(0x6C))),
        .recordBatchTest(RecordBatchTest(batch: hash(0x6E), testCode: "sterility", passed: true, reportHash: hash(0x6F), atMs: 1_750_000_900_000)),
    ] + allGovernanceActions.map { .proposeGovernance($0) }

    static func transaction(nonce: UInt64 = 7, payload: TransactionPayload = allPayloads[0], key: PrivateKey = ed25519(0x11)) -> Transaction {
        Transaction(chainID: chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload)
    }

    static let header = BlockHeader(
        chainID: chainID, height: 42, previousHash: hash(0x01), transactionsRoot: hash(0x02), transactionCount: 3,
        stateRoot: hash(0x03), validatorsHash: hash(0x04), timestampMs: -1_700_000_000_123, proposer: address(0x05),
        difficultyTarget: 0x1d00ffff, powNonce: .max)

    static let account = Account(
        address: ed25519(0x21).publicKey.address, publicKey: p256(5).publicKey, role: .gateway, organisation: "st-marys",
        status: .suspended, nonce: 1234, registeredAtHeight: 99, label: "ward 7 gateway ✓")
}

/// Asserts that `body` throws exactly `expected`.
func expectDecodingError(_ expected: CanonicalDecodingError, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected \(expected), but decoding succeeded", sourceLocation: sourceLocation)
    } catch let error as CanonicalDecodingError {
        #expect(error == expected, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: random values for property tests

/// A random-value source usable from `Generator(run:)`.
extension RandomNumberGenerator {
    mutating func bytes(_ count: ClosedRange<Int>) -> [UInt8] {
        let n = Int.random(in: count, using: &self)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &self) }
    }

    mutating func hash() -> Hash { Hash(bytes: bytes(32...32))! }
    mutating func address() -> Address { Address(bytes: bytes(20...20))! }

    /// A string mixing ASCII (incl. NUL and controls), Latin, Greek/Cyrillic, combining marks,
    /// CJK, astral-plane emoji and the last valid scalar: every UTF-8 length from 1 to 4 bytes.
    mutating func unicodeString(maxScalars: Int = 24) -> String {
        let ranges: [ClosedRange<UInt32>] = [
            0x00...0x7F, 0x80...0x24F, 0x300...0x36F, 0x370...0x4FF, 0x4E00...0x9FFF,
            0xAC00...0xD7A3, 0xE000...0xF8FF, 0x1F300...0x1FAFF, 0x10FFF0...0x10FFFF,
        ]
        var s = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0...maxScalars, using: &self) {
            let r = ranges[Int.random(in: 0..<ranges.count, using: &self)]
            s.append(Unicode.Scalar(UInt32.random(in: r, using: &self))!)
        }
        return String(s)
    }

    mutating func ed25519Key() -> PrivateKey { try! PrivateKey(algorithm: .ed25519, rawBytes: bytes(32...32)) }

    mutating func publicKey() -> PublicKey {
        if Bool.random(using: &self) { return ed25519Key().publicKey }
        // A scalar of 1...2^64: always below the group order.
        let scalar = [UInt8](repeating: 0, count: 24) + withUnsafeBytes(of: UInt64.random(in: 1...UInt64.max, using: &self).bigEndian, Array.init)
        return try! PrivateKey(algorithm: .p256, rawBytes: scalar).publicKey
    }

    mutating func role() -> Role { Role.allCases.randomElement(using: &self)! }

    mutating func governanceAction() -> GovernanceAction {
        switch Int.random(in: 0..<8, using: &self) {
        case 6: return .assignGS1Prefix(prefix: unicodeString(maxScalars: 12), organisation: unicodeString(maxScalars: 8))
        case 0: return .addOrganisation(Organisation(id: unicodeString(maxScalars: 8), name: unicodeString(), kind: unicodeString(maxScalars: 6)))
        case 1: return .addAdmin(publicKey: publicKey(), organisation: unicodeString(maxScalars: 8), label: unicodeString())
        case 2: return .removeAdmin(account: address())
        case 3: return .setAdminQuorum(UInt32.random(in: 0...UInt32.max, using: &self))
        case 4: return .addValidator(Validator(publicKey: publicKey(), organisation: unicodeString(maxScalars: 8), power: UInt64.random(in: 0...UInt64.max, using: &self)))
        case 5: return .removeValidator(publicKey: publicKey())
        default:
            return .setConsensusParameters(ConsensusParameters(
                maxBlockBytes: UInt64.random(in: 0...UInt64.max, using: &self), maxTransactionBytes: UInt64.random(in: 0...UInt64.max, using: &self),
                maxBlockTransactions: UInt64.random(in: 0...UInt64.max, using: &self), blockIntervalMs: UInt64.random(in: 0...UInt64.max, using: &self)))
        }
    }

    mutating func payload() -> TransactionPayload {
        switch Int.random(in: 0..<5, using: &self) {
        case 0: return .registerAccount(RegisterAccount(publicKey: publicKey(), role: role(), organisation: unicodeString(maxScalars: 10), label: unicodeString()))
        case 1: return .setAccountStatus(SetAccountStatus(account: address(), status: AccountStatus.allCases.randomElement(using: &self)!, reason: unicodeString()))
        case 2: return .rotateKey(RotateKey(newPublicKey: publicKey()))
        case 3: return .proposeGovernance(governanceAction())
        default: return .approveProposal(ApproveProposal(proposal: hash()))
        }
    }

    mutating func transaction() -> Transaction {
        let key = publicKey()
        let nonce: UInt64 = Bool.random(using: &self) ? UInt64.random(in: 0...UInt64.max, using: &self) : UInt64.random(in: 0...3, using: &self)
        return Transaction(chainID: unicodeString(maxScalars: 12), sender: key.address, signerKey: key, nonce: nonce, payload: payload())
    }
}

enum Generators {
    static let transaction = Generator<Transaction, Shrink.None<Transaction>> { rng in rng.transaction() }
    static let payload = Generator<TransactionPayload, Shrink.None<TransactionPayload>> { rng in rng.payload() }
}
