/// Every kind of transaction, one case per kind; each kind belongs to exactly one contract module.
/// Tags are part of the canonical encoding: append new kinds, never renumber.
public enum TransactionPayload: Hashable, Sendable, CanonicalCodable, Codable {
    // Membership module
    case registerAccount(RegisterAccount)
    case setAccountStatus(SetAccountStatus)
    case rotateKey(RotateKey)
    // Governance module
    case proposeGovernance(GovernanceAction)
    case approveProposal(ApproveProposal)
    // Accountability module
    case recordEvidence(RecordEvidence)
    // Devices module (issue 4)
    case registerDevice(RegisterDevice)
    case setDeviceStatus(SetDeviceStatus)
    case anchorReadings(AnchorReadings)
    case recordAlert(RecordAlert)
    case setDeviceSampling(SetDeviceSampling)
    // Patients module (issue 5)
    case registerPatient(RegisterPatient)
    case setAgreementKey(SetAgreementKey)
    case attestPractitioner(AttestPractitioner)
    case grantConsent(GrantConsent)
    case revokeConsent(RevokeConsent)
    case declareEmergencyAccess(DeclareEmergencyAccess)
    case reviewEmergencyAccess(ReviewEmergencyAccess)
    case setRewrapDelegation(SetRewrapDelegation)
    case anchorAudit(AnchorAudit)
    case requestErasure(RequestErasure)
    case confirmErasure(ConfirmErasure)
    // Research and credits (issue 5 §7, §8)
    case requestDataset(RequestDataset)
    case sealDataset(SealDataset)
    case cancelDataset(CancelDataset)
    case chargePrivacyBudget(ChargePrivacyBudget)
    case issueCredits(IssueCredits)
    case transferCredits(TransferCredits)
    // Supply chain (issue 6 §1)
    case registerBatch(RegisterBatch)
    case transferCustody(TransferCustody)
    case recallBatch(RecallBatch)
    case administerDose(AdministerDose)
    case reportAdverseEvent(ReportAdverseEvent)
    case attachLogger(AttachLogger)
    case reportExcursion(ReportExcursion)
    case registerVenue(RegisterVenue)
    case anchorCheckIns(AnchorCheckIns)
    case reportPositive(ReportPositive)
    case recordExposures(RecordExposures)
    case orderQuarantine(OrderQuarantine)
    case liftQuarantine(LiftQuarantine)
    case commandVentilation(CommandVentilation)
    case ackVentilation(AckVentilation)
    case reportFault(ReportFault)
    case resolveFault(ResolveFault)
    case recordFeverDetection(RecordFeverDetection)
    case recordTestResult(RecordTestResult)
    case registerAsset(RegisterAsset)
    case setAssetStatus(SetAssetStatus)
    case recordAssetLocation(RecordAssetLocation)
    case recordSterilisation(RecordSterilisation)
    case acknowledgeAlert(AcknowledgeAlert)
    case registerMaterialSource(RegisterMaterialSource)
    case linkMaterialSource(LinkMaterialSource)
    case recordBatchTest(RecordBatchTest)

    /// The kind's stable name, used in JSON (`"type"`), metrics and errors.
    public var kind: String {
        switch self {
        case .registerAccount: return "register-account"
        case .setAccountStatus: return "set-account-status"
        case .rotateKey: return "rotate-key"
        case .proposeGovernance: return "propose-governance"
        case .approveProposal: return "approve-proposal"
        case .recordEvidence: return "record-evidence"
        case .registerDevice: return "register-device"
        case .setDeviceStatus: return "set-device-status"
        case .anchorReadings: return "anchor-readings"
        case .recordAlert: return "record-alert"
        case .setDeviceSampling: return "set-device-sampling"
        case .registerPatient: return "register-patient"
        case .setAgreementKey: return "set-agreement-key"
        case .attestPractitioner: return "attest-practitioner"
        case .grantConsent: return "grant-consent"
        case .revokeConsent: return "revoke-consent"
        case .declareEmergencyAccess: return "declare-emergency-access"
        case .reviewEmergencyAccess: return "review-emergency-access"
        case .setRewrapDelegation: return "set-rewrap-delegation"
        case .anchorAudit: return "anchor-audit"
        case .requestErasure: return "request-erasure"
        case .confirmErasure: return "confirm-erasure"
        case .requestDataset: return "request-dataset"
        case .sealDataset: return "seal-dataset"
        case .cancelDataset: return "cancel-dataset"
        case .chargePrivacyBudget: return "charge-privacy-budget"
        case .issueCredits: return "issue-credits"
        case .transferCredits: return "transfer-credits"
        case .registerBatch: return "register-batch"
        case .transferCustody: return "transfer-custody"
        case .recallBatch: return "recall-batch"
        case .administerDose: return "administer-dose"
        case .reportAdverseEvent: return "report-adverse-event"
        case .attachLogger: return "attach-logger"
        case .reportExcursion: return "report-excursion"
        case .registerVenue: return "register-venue"
        case .anchorCheckIns: return "anchor-check-ins"
        case .reportPositive: return "report-positive"
        case .recordExposures: return "record-exposures"
        case .orderQuarantine: return "order-quarantine"
        case .liftQuarantine: return "lift-quarantine"
        case .commandVentilation: return "command-ventilation"
        case .ackVentilation: return "ack-ventilation"
        case .reportFault: return "report-fault"
        case .resolveFault: return "resolve-fault"
        case .recordFeverDetection: return "record-fever-detection"
        case .recordTestResult: return "record-test-result"
        case .registerAsset: return "register-asset"
        case .setAssetStatus: return "set-asset-status"
        case .recordAssetLocation: return "record-asset-location"
        case .recordSterilisation: return "record-sterilisation"
        case .acknowledgeAlert: return "acknowledge-alert"
        case .registerMaterialSource: return "register-material-source"
        case .linkMaterialSource: return "link-material-source"
        case .recordBatchTest: return "record-batch-test"
        }
    }

    public static let kinds = ["register-account", "set-account-status", "rotate-key", "propose-governance", "approve-proposal", "record-evidence", "register-device", "set-device-status", "anchor-readings", "record-alert", "set-device-sampling", "register-patient", "set-agreement-key", "attest-practitioner", "grant-consent", "revoke-consent", "declare-emergency-access", "review-emergency-access", "set-rewrap-delegation", "anchor-audit", "request-erasure", "confirm-erasure", "request-dataset", "seal-dataset", "cancel-dataset", "charge-privacy-budget", "issue-credits", "transfer-credits", "register-batch", "transfer-custody", "recall-batch", "administer-dose", "report-adverse-event", "attach-logger", "report-excursion", "register-venue", "anchor-check-ins", "report-positive", "record-exposures", "order-quarantine", "lift-quarantine", "command-ventilation", "ack-ventilation", "report-fault", "resolve-fault", "record-fever-detection", "record-test-result", "register-asset", "set-asset-status", "record-asset-location", "record-sterilisation", "acknowledge-alert", "register-material-source", "link-material-source", "record-batch-test"]

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .registerAccount(let b): w.write(UInt8(1)); w.write(b)
        case .setAccountStatus(let b): w.write(UInt8(2)); w.write(b)
        case .rotateKey(let b): w.write(UInt8(3)); w.write(b)
        case .proposeGovernance(let b): w.write(UInt8(4)); w.write(b)
        case .approveProposal(let b): w.write(UInt8(5)); w.write(b)
        case .recordEvidence(let b): w.write(UInt8(6)); w.write(b)
        case .registerDevice(let b): w.write(UInt8(7)); w.write(b)
        case .setDeviceStatus(let b): w.write(UInt8(8)); w.write(b)
        case .anchorReadings(let b): w.write(UInt8(9)); w.write(b)
        case .recordAlert(let b): w.write(UInt8(10)); w.write(b)
        case .setDeviceSampling(let b): w.write(UInt8(11)); w.write(b)
        case .registerPatient(let b): w.write(UInt8(12)); w.write(b)
        case .setAgreementKey(let b): w.write(UInt8(13)); w.write(b)
        case .attestPractitioner(let b): w.write(UInt8(14)); w.write(b)
        case .grantConsent(let b): w.write(UInt8(15)); w.write(b)
        case .revokeConsent(let b): w.write(UInt8(16)); w.write(b)
        case .declareEmergencyAccess(let b): w.write(UInt8(17)); w.write(b)
        case .reviewEmergencyAccess(let b): w.write(UInt8(18)); w.write(b)
        case .setRewrapDelegation(let b): w.write(UInt8(19)); w.write(b)
        case .anchorAudit(let b): w.write(UInt8(20)); w.write(b)
        case .requestErasure(let b): w.write(UInt8(21)); w.write(b)
        case .confirmErasure(let b): w.write(UInt8(22)); w.write(b)
        case .requestDataset(let b): w.write(UInt8(23)); w.write(b)
        case .sealDataset(let b): w.write(UInt8(24)); w.write(b)
        case .cancelDataset(let b): w.write(UInt8(25)); w.write(b)
        case .chargePrivacyBudget(let b): w.write(UInt8(26)); w.write(b)
        case .issueCredits(let b): w.write(UInt8(27)); w.write(b)
        case .transferCredits(let b): w.write(UInt8(28)); w.write(b)
        case .registerBatch(let b): w.write(UInt8(29)); w.write(b)
        case .transferCustody(let b): w.write(UInt8(30)); w.write(b)
        case .recallBatch(let b): w.write(UInt8(31)); w.write(b)
        case .administerDose(let b): w.write(UInt8(32)); w.write(b)
        case .reportAdverseEvent(let b): w.write(UInt8(33)); w.write(b)
        case .attachLogger(let b): w.write(UInt8(34)); w.write(b)
        case .reportExcursion(let b): w.write(UInt8(35)); w.write(b)
        case .registerVenue(let b): w.write(UInt8(36)); w.write(b)
        case .anchorCheckIns(let b): w.write(UInt8(37)); w.write(b)
        case .reportPositive(let b): w.write(UInt8(38)); w.write(b)
        case .recordExposures(let b): w.write(UInt8(39)); w.write(b)
        case .orderQuarantine(let b): w.write(UInt8(40)); w.write(b)
        case .liftQuarantine(let b): w.write(UInt8(41)); w.write(b)
        case .commandVentilation(let b): w.write(UInt8(42)); w.write(b)
        case .ackVentilation(let b): w.write(UInt8(43)); w.write(b)
        case .reportFault(let b): w.write(UInt8(44)); w.write(b)
        case .resolveFault(let b): w.write(UInt8(45)); w.write(b)
        case .recordFeverDetection(let b): w.write(UInt8(46)); w.write(b)
        case .recordTestResult(let b): w.write(UInt8(47)); w.write(b)
        case .registerAsset(let b): w.write(UInt8(48)); w.write(b)
        case .setAssetStatus(let b): w.write(UInt8(49)); w.write(b)
        case .recordAssetLocation(let b): w.write(UInt8(50)); w.write(b)
        case .recordSterilisation(let b): w.write(UInt8(51)); w.write(b)
        case .acknowledgeAlert(let b): w.write(UInt8(52)); w.write(b)
        case .registerMaterialSource(let b): w.write(UInt8(53)); w.write(b)
        case .linkMaterialSource(let b): w.write(UInt8(54)); w.write(b)
        case .recordBatchTest(let b): w.write(UInt8(55)); w.write(b)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try r.read()
        switch tag {
        case 1: self = .registerAccount(try r.read())
        case 2: self = .setAccountStatus(try r.read())
        case 3: self = .rotateKey(try r.read())
        case 4: self = .proposeGovernance(try r.read())
        case 5: self = .approveProposal(try r.read())
        case 6: self = .recordEvidence(try r.read())
        case 7: self = .registerDevice(try r.read())
        case 8: self = .setDeviceStatus(try r.read())
        case 9: self = .anchorReadings(try r.read())
        case 10: self = .recordAlert(try r.read())
        case 11: self = .setDeviceSampling(try r.read())
        case 12: self = .registerPatient(try r.read())
        case 13: self = .setAgreementKey(try r.read())
        case 14: self = .attestPractitioner(try r.read())
        case 15: self = .grantConsent(try r.read())
        case 16: self = .revokeConsent(try r.read())
        case 17: self = .declareEmergencyAccess(try r.read())
        case 18: self = .reviewEmergencyAccess(try r.read())
        case 19: self = .setRewrapDelegation(try r.read())
        case 20: self = .anchorAudit(try r.read())
        case 21: self = .requestErasure(try r.read())
        case 22: self = .confirmErasure(try r.read())
        case 23: self = .requestDataset(try r.read())
        case 24: self = .sealDataset(try r.read())
        case 25: self = .cancelDataset(try r.read())
        case 26: self = .chargePrivacyBudget(try r.read())
        case 27: self = .issueCredits(try r.read())
        case 28: self = .transferCredits(try r.read())
        case 29: self = .registerBatch(try r.read())
        case 30: self = .transferCustody(try r.read())
        case 31: self = .recallBatch(try r.read())
        case 32: self = .administerDose(try r.read())
        case 33: self = .reportAdverseEvent(try r.read())
        case 34: self = .attachLogger(try r.read())
        case 35: self = .reportExcursion(try r.read())
        case 36: self = .registerVenue(try r.read())
        case 37: self = .anchorCheckIns(try r.read())
        case 38: self = .reportPositive(try r.read())
        case 39: self = .recordExposures(try r.read())
        case 40: self = .orderQuarantine(try r.read())
        case 41: self = .liftQuarantine(try r.read())
        case 42: self = .commandVentilation(try r.read())
        case 43: self = .ackVentilation(try r.read())
        case 44: self = .reportFault(try r.read())
        case 45: self = .resolveFault(try r.read())
        case 46: self = .recordFeverDetection(try r.read())
        case 47: self = .recordTestResult(try r.read())
        case 48: self = .registerAsset(try r.read())
        case 49: self = .setAssetStatus(try r.read())
        case 50: self = .recordAssetLocation(try r.read())
        case 51: self = .recordSterilisation(try r.read())
        case 52: self = .acknowledgeAlert(try r.read())
        case 53: self = .registerMaterialSource(try r.read())
        case 54: self = .linkMaterialSource(try r.read())
        case 55: self = .recordBatchTest(try r.read())
        default: throw .unknownTag(type: "TransactionPayload", tag: tag)
        }
    }

    private enum TypeKey: String, CodingKey { case type }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKey.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "register-account": self = .registerAccount(try RegisterAccount(from: decoder))
        case "set-account-status": self = .setAccountStatus(try SetAccountStatus(from: decoder))
        case "rotate-key": self = .rotateKey(try RotateKey(from: decoder))
        case "propose-governance": self = .proposeGovernance(try GovernanceAction(from: decoder))
        case "approve-proposal": self = .approveProposal(try ApproveProposal(from: decoder))
        case "record-evidence": self = .recordEvidence(try RecordEvidence(from: decoder))
        case "register-device": self = .registerDevice(try RegisterDevice(from: decoder))
        case "set-device-status": self = .setDeviceStatus(try SetDeviceStatus(from: decoder))
        case "anchor-readings": self = .anchorReadings(try AnchorReadings(from: decoder))
        case "record-alert": self = .recordAlert(try RecordAlert(from: decoder))
        case "set-device-sampling": self = .setDeviceSampling(try SetDeviceSampling(from: decoder))
        case "register-patient": self = .registerPatient(try RegisterPatient(from: decoder))
        case "set-agreement-key": self = .setAgreementKey(try SetAgreementKey(from: decoder))
        case "attest-practitioner": self = .attestPractitioner(try AttestPractitioner(from: decoder))
        case "grant-consent": self = .grantConsent(try GrantConsent(from: decoder))
        case "revoke-consent": self = .revokeConsent(try RevokeConsent(from: decoder))
        case "declare-emergency-access": self = .declareEmergencyAccess(try DeclareEmergencyAccess(from: decoder))
        case "review-emergency-access": self = .reviewEmergencyAccess(try ReviewEmergencyAccess(from: decoder))
        case "set-rewrap-delegation": self = .setRewrapDelegation(try SetRewrapDelegation(from: decoder))
        case "anchor-audit": self = .anchorAudit(try AnchorAudit(from: decoder))
        case "request-erasure": self = .requestErasure(try RequestErasure(from: decoder))
        case "confirm-erasure": self = .confirmErasure(try ConfirmErasure(from: decoder))
        case "request-dataset": self = .requestDataset(try RequestDataset(from: decoder))
        case "seal-dataset": self = .sealDataset(try SealDataset(from: decoder))
        case "cancel-dataset": self = .cancelDataset(try CancelDataset(from: decoder))
        case "charge-privacy-budget": self = .chargePrivacyBudget(try ChargePrivacyBudget(from: decoder))
        case "issue-credits": self = .issueCredits(try IssueCredits(from: decoder))
        case "transfer-credits": self = .transferCredits(try TransferCredits(from: decoder))
        case "register-batch": self = .registerBatch(try RegisterBatch(from: decoder))
        case "transfer-custody": self = .transferCustody(try TransferCustody(from: decoder))
        case "recall-batch": self = .recallBatch(try RecallBatch(from: decoder))
        case "administer-dose": self = .administerDose(try AdministerDose(from: decoder))
        case "report-adverse-event": self = .reportAdverseEvent(try ReportAdverseEvent(from: decoder))
        case "attach-logger": self = .attachLogger(try AttachLogger(from: decoder))
        case "report-excursion": self = .reportExcursion(try ReportExcursion(from: decoder))
        case "register-venue": self = .registerVenue(try RegisterVenue(from: decoder))
        case "anchor-check-ins": self = .anchorCheckIns(try AnchorCheckIns(from: decoder))
        case "report-positive": self = .reportPositive(try ReportPositive(from: decoder))
        case "record-exposures": self = .recordExposures(try RecordExposures(from: decoder))
        case "order-quarantine": self = .orderQuarantine(try OrderQuarantine(from: decoder))
        case "lift-quarantine": self = .liftQuarantine(try LiftQuarantine(from: decoder))
        case "command-ventilation": self = .commandVentilation(try CommandVentilation(from: decoder))
        case "ack-ventilation": self = .ackVentilation(try AckVentilation(from: decoder))
        case "report-fault": self = .reportFault(try ReportFault(from: decoder))
        case "resolve-fault": self = .resolveFault(try ResolveFault(from: decoder))
        case "record-fever-detection": self = .recordFeverDetection(try RecordFeverDetection(from: decoder))
        case "record-test-result": self = .recordTestResult(try RecordTestResult(from: decoder))
        case "register-asset": self = .registerAsset(try RegisterAsset(from: decoder))
        case "set-asset-status": self = .setAssetStatus(try SetAssetStatus(from: decoder))
        case "record-asset-location": self = .recordAssetLocation(try RecordAssetLocation(from: decoder))
        case "record-sterilisation": self = .recordSterilisation(try RecordSterilisation(from: decoder))
        case "acknowledge-alert": self = .acknowledgeAlert(try AcknowledgeAlert(from: decoder))
        case "register-material-source": self = .registerMaterialSource(try RegisterMaterialSource(from: decoder))
        case "link-material-source": self = .linkMaterialSource(try LinkMaterialSource(from: decoder))
        case "record-batch-test": self = .recordBatchTest(try RecordBatchTest(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown transaction type \"\(type)\"; one of \(Self.kinds.joined(separator: ", "))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: TypeKey.self)
        try c.encode(kind, forKey: .type)
        switch self {
        case .registerAccount(let b): try b.encode(to: encoder)
        case .setAccountStatus(let b): try b.encode(to: encoder)
        case .rotateKey(let b): try b.encode(to: encoder)
        case .proposeGovernance(let b): try b.encode(to: encoder)
        case .approveProposal(let b): try b.encode(to: encoder)
        case .recordEvidence(let b): try b.encode(to: encoder)
        case .registerDevice(let b): try b.encode(to: encoder)
        case .setDeviceStatus(let b): try b.encode(to: encoder)
        case .anchorReadings(let b): try b.encode(to: encoder)
        case .recordAlert(let b): try b.encode(to: encoder)
        case .setDeviceSampling(let b): try b.encode(to: encoder)
        case .registerPatient(let b): try b.encode(to: encoder)
        case .setAgreementKey(let b): try b.encode(to: encoder)
        case .attestPractitioner(let b): try b.encode(to: encoder)
        case .grantConsent(let b): try b.encode(to: encoder)
        case .revokeConsent(let b): try b.encode(to: encoder)
        case .declareEmergencyAccess(let b): try b.encode(to: encoder)
        case .reviewEmergencyAccess(let b): try b.encode(to: encoder)
        case .setRewrapDelegation(let b): try b.encode(to: encoder)
        case .anchorAudit(let b): try b.encode(to: encoder)
        case .requestErasure(let b): try b.encode(to: encoder)
        case .confirmErasure(let b): try b.encode(to: encoder)
        case .requestDataset(let b): try b.encode(to: encoder)
        case .sealDataset(let b): try b.encode(to: encoder)
        case .cancelDataset(let b): try b.encode(to: encoder)
        case .chargePrivacyBudget(let b): try b.encode(to: encoder)
        case .issueCredits(let b): try b.encode(to: encoder)
        case .transferCredits(let b): try b.encode(to: encoder)
        case .registerBatch(let b): try b.encode(to: encoder)
        case .transferCustody(let b): try b.encode(to: encoder)
        case .recallBatch(let b): try b.encode(to: encoder)
        case .administerDose(let b): try b.encode(to: encoder)
        case .reportAdverseEvent(let b): try b.encode(to: encoder)
        case .attachLogger(let b): try b.encode(to: encoder)
        case .reportExcursion(let b): try b.encode(to: encoder)
        case .registerVenue(let b): try b.encode(to: encoder)
        case .anchorCheckIns(let b): try b.encode(to: encoder)
        case .reportPositive(let b): try b.encode(to: encoder)
        case .recordExposures(let b): try b.encode(to: encoder)
        case .orderQuarantine(let b): try b.encode(to: encoder)
        case .liftQuarantine(let b): try b.encode(to: encoder)
        case .commandVentilation(let b): try b.encode(to: encoder)
        case .ackVentilation(let b): try b.encode(to: encoder)
        case .reportFault(let b): try b.encode(to: encoder)
        case .resolveFault(let b): try b.encode(to: encoder)
        case .recordFeverDetection(let b): try b.encode(to: encoder)
        case .recordTestResult(let b): try b.encode(to: encoder)
        case .registerAsset(let b): try b.encode(to: encoder)
        case .setAssetStatus(let b): try b.encode(to: encoder)
        case .recordAssetLocation(let b): try b.encode(to: encoder)
        case .recordSterilisation(let b): try b.encode(to: encoder)
        case .acknowledgeAlert(let b): try b.encode(to: encoder)
        case .registerMaterialSource(let b): try b.encode(to: encoder)
        case .linkMaterialSource(let b): try b.encode(to: encoder)
        case .recordBatchTest(let b): try b.encode(to: encoder)
        }
    }
}

/// A member-admin registers an account of its own organisation (any role but member-admin,
/// which takes a governance vote).
public struct RegisterAccount: Hashable, Sendable, Codable, CanonicalCodable {
    public var publicKey: PublicKey
    public var role: Role
    public var organisation: String
    public var label: String

    public init(publicKey: PublicKey, role: Role, organisation: String, label: String = "") {
        self.publicKey = publicKey
        self.role = role
        self.organisation = organisation
        self.label = label
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(publicKey); w.write(role); w.write(organisation); w.write(label)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        publicKey = try r.read(); role = try r.read(); organisation = try r.read(); label = try r.read()
    }
}

/// A member-admin suspends, reactivates or revokes an account of its organisation.
public struct SetAccountStatus: Hashable, Sendable, Codable, CanonicalCodable {
    public var account: Address
    public var status: AccountStatus
    public var reason: String

    public init(account: Address, status: AccountStatus, reason: String = "") {
        self.account = account
        self.status = status
        self.reason = reason
    }

    public func encode(to w: inout CanonicalWriter) { w.write(account); w.write(status); w.write(reason) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        account = try r.read(); status = try r.read(); reason = try r.read()
    }
}

/// An account replaces its own key; its address stays.
public struct RotateKey: Hashable, Sendable, Codable, CanonicalCodable {
    public var newPublicKey: PublicKey

    public init(newPublicKey: PublicKey) { self.newPublicKey = newPublicKey }

    public func encode(to w: inout CanonicalWriter) { w.write(newPublicKey) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { newPublicKey = try r.read() }
}

/// A member-admin approves an open governance proposal.
public struct ApproveProposal: Hashable, Sendable, Codable, CanonicalCodable {
    public var proposal: Hash

    public init(proposal: Hash) { self.proposal = proposal }

    public func encode(to w: inout CanonicalWriter) { w.write(proposal) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { proposal = try r.read() }
}

/// Proof that a validator equivocated (the canonical encoding of an `IoMTConsensus.Evidence`:
/// two conflicting messages it signed). Self-verifying, so any active account may report it.
public struct RecordEvidence: Hashable, Sendable, Codable, CanonicalCodable {
    public var evidence: [UInt8]

    public init(evidence: [UInt8]) { self.evidence = evidence }

    public func encode(to w: inout CanonicalWriter) { w.writeBytes(evidence) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { evidence = try r.readBytes() }

    private enum Keys: String, CodingKey { case evidence }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let hex = try c.decode(String.self, forKey: .evidence)
        guard let bytes = Hex.decode(hex) else {
            throw DecodingError.dataCorruptedError(forKey: .evidence, in: c, debugDescription: "evidence must be hex (the canonical encoding)")
        }
        evidence = bytes
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(Hex.encode(evidence), forKey: .evidence)
    }
}

/// Changes to the consortium that need a quorum of member-admins.
public enum GovernanceAction: Hashable, Sendable, CanonicalCodable, Codable {
    case addOrganisation(Organisation)
    case addAdmin(publicKey: PublicKey, organisation: String, label: String)
    case removeAdmin(account: Address)
    case setAdminQuorum(UInt32)
    case addValidator(Validator)
    case removeValidator(publicKey: PublicKey)
    case setConsensusParameters(ConsensusParameters)
    /// The consortium assigns a GS1 company prefix to a manufacturer (which holds the GS1 licence
    /// for it): from then on only that organisation registers batches of GTINs under it.
    case assignGS1Prefix(prefix: String, organisation: String)

    public var name: String {
        switch self {
        case .addOrganisation: return "add-organisation"
        case .addAdmin: return "add-admin"
        case .removeAdmin: return "remove-admin"
        case .setAdminQuorum: return "set-admin-quorum"
        case .addValidator: return "add-validator"
        case .removeValidator: return "remove-validator"
        case .setConsensusParameters: return "set-consensus-parameters"
        case .assignGS1Prefix: return "assign-gs1-prefix"
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .addOrganisation(let o): w.write(UInt8(1)); w.write(o)
        case .addAdmin(let k, let org, let label): w.write(UInt8(2)); w.write(k); w.write(org); w.write(label)
        case .removeAdmin(let a): w.write(UInt8(3)); w.write(a)
        case .setAdminQuorum(let q): w.write(UInt8(4)); w.write(q)
        case .addValidator(let v): w.write(UInt8(5)); w.write(v)
        case .removeValidator(let k): w.write(UInt8(6)); w.write(k)
        case .setConsensusParameters(let p): w.write(UInt8(7)); w.write(p)
        case .assignGS1Prefix(let p, let org): w.write(UInt8(8)); w.write(p); w.write(org)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try r.read()
        switch tag {
        case 1: self = .addOrganisation(try r.read())
        case 2: self = .addAdmin(publicKey: try r.read(), organisation: try r.read(), label: try r.read())
        case 3: self = .removeAdmin(account: try r.read())
        case 4: self = .setAdminQuorum(try r.read())
        case 5: self = .addValidator(try r.read())
        case 6: self = .removeValidator(publicKey: try r.read())
        case 7: self = .setConsensusParameters(try r.read())
        case 8: self = .assignGS1Prefix(prefix: try r.read(), organisation: try r.read())
        default: throw .unknownTag(type: "GovernanceAction", tag: tag)
        }
    }

    private enum Keys: String, CodingKey {
        case action, organisation, publicKey, label, account, adminQuorum, validator, consensus, prefix
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let action = try c.decode(String.self, forKey: .action)
        switch action {
        case "add-organisation": self = .addOrganisation(try c.decode(Organisation.self, forKey: .organisation))
        case "add-admin":
            self = .addAdmin(publicKey: try c.decode(PublicKey.self, forKey: .publicKey),
                             organisation: try c.decode(String.self, forKey: .organisation),
                             label: try c.decodeIfPresent(String.self, forKey: .label) ?? "")
        case "remove-admin": self = .removeAdmin(account: try c.decode(Address.self, forKey: .account))
        case "set-admin-quorum": self = .setAdminQuorum(try c.decode(UInt32.self, forKey: .adminQuorum))
        case "add-validator": self = .addValidator(try c.decode(Validator.self, forKey: .validator))
        case "remove-validator": self = .removeValidator(publicKey: try c.decode(PublicKey.self, forKey: .publicKey))
        case "set-consensus-parameters": self = .setConsensusParameters(try c.decode(ConsensusParameters.self, forKey: .consensus))
        case "assign-gs1-prefix": self = .assignGS1Prefix(prefix: try c.decode(String.self, forKey: .prefix), organisation: try c.decode(String.self, forKey: .organisation))
        default:
            throw DecodingError.dataCorruptedError(forKey: .action, in: c, debugDescription: "unknown governance action \"\(action)\"")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(name, forKey: .action)
        switch self {
        case .addOrganisation(let o): try c.encode(o, forKey: .organisation)
        case .addAdmin(let k, let org, let label):
            try c.encode(k, forKey: .publicKey); try c.encode(org, forKey: .organisation); try c.encode(label, forKey: .label)
        case .removeAdmin(let a): try c.encode(a, forKey: .account)
        case .setAdminQuorum(let q): try c.encode(q, forKey: .adminQuorum)
        case .addValidator(let v): try c.encode(v, forKey: .validator)
        case .removeValidator(let k): try c.encode(k, forKey: .publicKey)
        case .setConsensusParameters(let p): try c.encode(p, forKey: .consensus)
        case .assignGS1Prefix(let p, let org): try c.encode(p, forKey: .prefix); try c.encode(org, forKey: .organisation)
        }
    }
}

/// An unsigned transaction. Its hash (the transaction id) covers everything but the signature,
/// so a re-encoded P-256 signature cannot mint a second id for the same transaction.
public struct Transaction: Hashable, Sendable, CanonicalCodable, Codable {
    public var chainID: String
    public var sender: Address
    /// The key that signs; must be the sender account's current key.
    public var signerKey: PublicKey
    /// Must equal the sender account's next nonce: a replay or a reordering is rejected.
    public var nonce: UInt64
    public var payload: TransactionPayload

    public static let signingDomain = Array("iomt/tx/v1".utf8)

    public init(chainID: String, sender: Address, signerKey: PublicKey, nonce: UInt64, payload: TransactionPayload) {
        self.chainID = chainID
        self.sender = sender
        self.signerKey = signerKey
        self.nonce = nonce
        self.payload = payload
    }

    /// What the sender signs: a domain tag, then the canonical encoding.
    public var signingBytes: [UInt8] { Transaction.signingDomain + canonicalBytes }

    public var hash: Hash { Hash.sha256(signingBytes) }

    public func signed(with key: PrivateKey) -> SignedTransaction {
        SignedTransaction(transaction: self, signature: key.sign(signingBytes))
    }

    enum CodingKeys: String, CodingKey { case chainID = "chainId", sender, signerKey, nonce, payload }

    public func encode(to w: inout CanonicalWriter) {
        w.write(chainID)
        w.write(sender)
        w.write(signerKey)
        w.write(nonce)
        w.write(payload)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        chainID = try r.read()
        sender = try r.read()
        signerKey = try r.read()
        nonce = try r.read()
        payload = try r.read()
    }
}

/// A transaction with its signature: what is gossiped, stored and Merkle-committed in blocks.
public struct SignedTransaction: Hashable, Sendable, CanonicalCodable, Codable {
    public var transaction: Transaction
    public var signature: Signature

    public init(transaction: Transaction, signature: Signature) {
        self.transaction = transaction
        self.signature = signature
    }

    public var hash: Hash { transaction.hash }

    public func hasValidSignature() -> Bool {
        transaction.signerKey.isValidSignature(signature, for: transaction.signingBytes)
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(transaction)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        transaction = try r.read()
        signature = try r.read()
    }
}

/// A signed transaction with its canonical encoding and hash computed once.
///
/// `SignedTransaction.hash` and `.canonicalBytes` encode (and hash) again on every call. The node
/// seals a transaction when it arrives and passes the sealed form from signature check through
/// mempool, block and store, so none of them encodes or hashes it again.
public struct SealedTransaction: Sendable {
    public let signed: SignedTransaction
    /// The canonical encoding of `signed` (what blocks, the store and Merkle leaves hold).
    public let bytes: [UInt8]
    /// Equal to `signed.hash`.
    public let hash: Hash
    /// Length of the unsigned transaction's encoding at the start of `bytes`.
    private let transactionLength: Int

    public init(_ signed: SignedTransaction) {
        var w = CanonicalWriter()
        signed.transaction.encode(to: &w)
        transactionLength = w.bytes.count
        hash = Hash.sha256(Transaction.signingDomain + w.bytes)
        signed.signature.encode(to: &w)
        bytes = w.bytes
        self.signed = signed
    }

    /// Equal to `signed.hasValidSignature()`.
    public func hasValidSignature() -> Bool {
        signed.transaction.signerKey.isValidSignature(signed.signature, for: Transaction.signingDomain + bytes[..<transactionLength])
    }

    /// The transaction's RFC 6962 leaf hash in its block's Merkle tree.
    public var leafHash: Hash { MerkleTree.leafHash(bytes) }
}
