import Foundation
@preconcurrency import Crypto
import IoMTCore
import IoMTEdge
import Testing

extension ApplicationScenarios {
    /// Issue 6 §7 on a four-validator devnet and a gateway: a patient's low SpO2 raises an alert; the doctor the
    /// patient consented to acknowledges it on-chain (a doctor without consent cannot); the doctor
    /// (treatment) and a relative (family care) read the patient's timeline — vitals, alerts and the
    /// acknowledgement — through signed, consented, audited reads; a stranger is refused.
    @Suite("remote monitoring: alerts, acknowledgements and the timeline for consented doctors and family")
    struct MonitoringTests {
        @Test("an alert acknowledged by the consented doctor; the timeline for the doctor and the family; a stranger refused", .timeLimit(.minutes(3)))
        func flow() async throws {
            let dir = temporaryFolder()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (node, http, chain) = try startConsortium()
            defer { node.terminate() }
            let gatewayKey = PrivateKey.generate(.ed25519)
            let gatewayPath = dir + "/gateway.key.json"
            try JSONEncoder().encode(KeyFile(gatewayKey)).write(to: URL(fileURLWithPath: gatewayPath))
            try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: gatewayKey.publicKey, role: .gateway, organisation: chain.hospital)))
            let secret = PatientSecret.generate()
            let patient = try await ConsentAPITests.enrol(http, chain, secret)
            let relative = try await ConsentAPITests.enrol(http, chain, PatientSecret.generate())
            let subject = Pseudonym.of(patient.publicKey.address)
            let doctor = PrivateKey.generate(.ed25519), stranger = PrivateKey.generate(.ed25519)
            for k in [doctor, stranger] {
                try await GatewayTests.commit(http, chain, .registerAccount(RegisterAccount(publicKey: k.publicKey, role: .practitioner, organisation: chain.hospital)))
                try await GatewayTests.commit(http, chain, .attestPractitioner(AttestPractitioner(account: k.publicKey.address, profession: "doctor", licenceHash: Hash.sha256(k.publicKey.address.bytes))))
                let x = try X25519Key(bytes: Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation))
                try await GatewayTests.commit(http, chain, .setAgreementKey(SetAgreementKey(agreementKey: x)), key: k)
            }
            let oximeter = TestDevice(key: PrivateKey.generate(.ed25519), macKey: nil)
            try await GatewayTests.commit(http, chain, .registerDevice(RegisterDevice(publicKey: oximeter.key!.publicKey, deviceType: "pulse-oximeter", subject: subject,
                                                                                        recipientKey: try ConsentAPITests.agreementKey(secret, chain.hospital))))
            let now = Int64(Date().timeIntervalSince1970 * 1000), day: Int64 = 86_400_000
            try await GatewayTests.commit(http, chain, .setRewrapDelegation(SetRewrapDelegation(gateway: gatewayKey.publicKey.address)), key: patient)
            try await GatewayTests.commit(http, chain, .grantConsent(GrantConsent(grantee: .account(doctor.publicKey.address), categories: ["vital-signs"], purposes: ["treatment"], expiresMs: now + day)), key: patient)
            try await GatewayTests.commit(http, chain, .grantConsent(GrantConsent(grantee: .account(relative.publicKey.address), categories: ["vital-signs"], purposes: ["family-care"], expiresMs: now + day)), key: patient)

            let gw = try GatewayProcess(dataDir: dir + "/gateway", key: gatewayPath, node: node.url, extraArgs: ["--batch-ms", "200"])
            _ = try await oximeter.upload(gw.http, chainID: chain.chainID, counter: 1, body: try GatewayTests.spo2(97))
            let low = try await oximeter.upload(gw.http, chainID: chain.chainID, counter: 2, body: try GatewayTests.spo2(87))
            let raisedAt = ((low.json["alerts"] as? [[String: Any]])?.first?["event"] as? [String: Any])?["effectiveMs"] as? Int ?? 0
            #expect(raisedAt > 0, "\(low.text)")
            // The gateway's record of the alert reaches the chain; then it can be acknowledged.
            for _ in 0..<100 {
                if try await http.get("/v1/state/" + Hex.encode(StateKeys.alert(oximeter.id, rule: "spo2-low"))).json["value"] as? String != nil { break }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let ack = TransactionPayload.acknowledgeAlert(AcknowledgeAlert(device: oximeter.id, rule: "spo2-low", raisedAtMs: Int64(raisedAt)))
            /// The commit is refused with this problem code.
            func refused(_ payload: TransactionPayload, by key: PrivateKey, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) async {
                do {
                    try await GatewayTests.commit(http, chain, payload, key: key)
                    Issue.record("\(payload.kind) by \(key.publicKey.address) was committed", sourceLocation: sourceLocation)
                } catch {
                    #expect("\(error)".contains("\"\(code)\""), "\(error)", sourceLocation: sourceLocation)
                }
            }
            await refused(ack, by: stranger, "unauthorised")
            await refused(ack, by: relative, "unauthorised")  // family reads, the care team acknowledges
            await refused(.acknowledgeAlert(AcknowledgeAlert(device: oximeter.id, rule: "spo2-low", raisedAtMs: Int64(raisedAt) - 1)), by: doctor, "invalid-argument")  // no alert raised then
            try await GatewayTests.commit(http, chain, ack, key: doctor)
            await refused(ack, by: doctor, "already-exists")  // once

            func timeline(_ key: PrivateKey, _ purpose: String) async throws -> HTTP.Reply {
                try await DataReadTests.signedGET(gw.http, "/v1/patients/\(subject.hex)/timeline?purpose=\(purpose)", key: key, chainID: chain.chainID).0
            }
            var r = try await timeline(doctor, "treatment")
            #expect(r.status == 200, "\(r.text)")
            let alerts = r.json["alerts"] as? [[String: Any]] ?? []
            let raised = alerts.first { (($0["alert"] as? [String: Any])?["event"] as? [String: Any])?["state"] as? String == "raised" }
            #expect((raised?["acknowledgement"] as? [String: Any])?["by"] as? String == doctor.publicKey.address.hex, "\(r.text)")
            #expect((r.json["data"] as? [String: Any])?["basis"] as? String == "grant")
            r = try await timeline(relative, "family-care")
            #expect(r.status == 200 && (r.json["alerts"] as? [Any])?.isEmpty == false, "\(r.text)")
            r = try await timeline(relative, "treatment")
            #expect(r.status == 403, "\(r.text)")
            // The doctor's timeline from the command line.
            let doctorPath = dir + "/doctor.key.json"
            try JSONEncoder().encode(KeyFile(doctor)).write(to: URL(fileURLWithPath: doctorPath))
            let cli = try runCLI(["monitor", "timeline", "--node", node.url, "--gateway", gw.url, "--key", doctorPath, "--subject", subject.hex, "--purpose", "treatment"])
            #expect(cli.status == 0 && cli.stdout.contains("spo2-low") && cli.stdout.contains(doctor.publicKey.address.hex), "\(cli.stdout) \(cli.stderr)")
            r = try await timeline(stranger, "treatment")
            #expect(r.status == 403 && r.json["code"] as? String == "access-denied", "\(r.text)")
            // Every read, allowed or not, is in the patient's audit log.
            let audit = try await DataReadTests.signedGET(gw.http, "/v1/patients/\(subject.hex)/audit", key: patient, chainID: chain.chainID).0
            #expect((audit.json["entries"] as? [Any])?.count == 5, "\(audit.text)")
            // Every validator committed the same chain, and answers alike.
            try await node.agree()
            try await node.sameState(StateKeys.alert(oximeter.id, rule: "spo2-low"))
        }
    }
}
