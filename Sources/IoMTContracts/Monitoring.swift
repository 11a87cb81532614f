import IoMTCore

/// Alert acknowledgements (issue 6 §7): by a practitioner the patient's consent lets read their vital
/// signs for treatment, once per alert.
enum Monitoring {
    static func acknowledge(_ a: AcknowledgeAlert, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(a.device)), let subject = d.subject else {
            throw .invalidArgument("device \(a.device) is not bound to a patient")
        }
        guard state.value(forKey: StateKeys.alertRaised(a.device, rule: a.rule, atMs: a.raisedAtMs)) != nil else {
            throw .invalidArgument("device \(a.device) raised no \(a.rule) alert at \(a.raisedAtMs)")
        }
        guard try Patients.attestation(of: sender, state: state) != nil else { throw .unauthorised("only an attested practitioner acknowledges an alert") }
        let decision = try Consent.decide(AccessQuery(reader: sender.address, subject: subject, category: "vital-signs", purpose: "treatment"), overlay: state, atMs: context.timestampMs)
        guard decision.allowed else { throw .unauthorised("the patient's consent does not let \(sender.address) read their vital signs for treatment: \(decision.reason)") }
        let key = StateKeys.alertAck(a.device, a.rule, a.raisedAtMs)
        guard state.value(forKey: key) == nil else { throw .alreadyExists("the acknowledgement of \(a.rule) raised at \(a.raisedAtMs)") }
        state.put(key, AlertAckRecord(ack: a, by: sender.address, basis: decision.basis.rawValue, atMs: context.timestampMs, height: context.height))
    }
}
