import IoMTContracts
import IoMTCore
import Testing

@Suite("Monitoring module: alert acknowledgements by consented practitioners only, once")
struct MonitoringContractTests {
    typealias C = Consortium

    @Test("the consented doctor acknowledges; a practitioner without consent, the patient or an unknown alert are refused")
    func acknowledgements() throws {
        var l = Ledger()
        let patient = C.ed25519(0xE1), doctor = C.ed25519(0xE2), other = C.ed25519(0xE3), gateway = C.ed25519(0xE4), oximeter = C.ed25519(0xE5)
        l.apply(C.adminA, .enrol(patient))
        let subject = Pseudonym.of(patient.publicKey.address)
        l.addPractitioner(doctor, by: C.adminA, at: "st-marys")
        l.addPractitioner(other, by: C.adminA, at: "st-marys")
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: oximeter.publicKey, deviceType: "pulse-oximeter", subject: subject)))
        let t = l.context.timestampMs
        let ack = TransactionPayload.acknowledgeAlert(AcknowledgeAlert(device: oximeter.publicKey.address, rule: "spo2-low", raisedAtMs: t))
        l.apply(patient, .grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: t + 86_400_000)))
        l.reject(doctor, ack, "invalid-argument")  // no such alert yet
        l.apply(gateway, .recordAlert(RecordAlert(device: oximeter.publicKey.address, rule: "spo2-low", severity: "critical", raised: true, atMs: t)))
        l.reject(other, ack, "unauthorised")
        l.reject(patient, ack, "unauthorised")
        // Only an alert raised at that very time is acknowledged (not an invented one, nor its clearing).
        l.apply(gateway, .recordAlert(RecordAlert(device: oximeter.publicKey.address, rule: "spo2-low", severity: "critical", raised: false, atMs: t + 60_000)))
        for wrong in [t - 1, t + 60_000] {
            l.reject(doctor, .acknowledgeAlert(AcknowledgeAlert(device: oximeter.publicKey.address, rule: "spo2-low", raisedAtMs: wrong)), "invalid-argument")
        }
        l.apply(doctor, ack)  // cleared since, still acknowledged
        l.reject(doctor, ack, "already-exists")
        let r = try #require(try l.state.read(AlertAckRecord.self, StateKeys.alertAck(oximeter.publicKey.address, "spo2-low", t)))
        #expect(r.by == doctor.publicKey.address && r.basis == "grant")
        // The alert log keeps both, in order, with no value.
        #expect(try l.state.read(UInt64.self, StateKeys.alertLogCount) == 2)
        let log = try (1...2).map { try #require(try l.state.read(AlertLogEntry.self, StateKeys.alertLogEntry($0))) }
        #expect(log.map(\.record.alert.raised) == [true, false] && log.map(\.n) == [1, 2] && log.allSatisfy { $0.record.gateway == gateway.publicKey.address })
        #expect(try l.state.read(UInt64.self, StateKeys.alertRaised(oximeter.publicKey.address, rule: "spo2-low", atMs: t)) == 1)
    }
}
