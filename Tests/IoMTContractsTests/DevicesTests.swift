import Foundation
import IoMTContracts
import IoMTCore
import Testing

@Suite("Devices module")
struct DevicesTests {
    typealias C = Consortium
    static let gateway = C.ed25519(0xE1)
    static let patient = C.p256(0xE2)
    static let clinicGateway = C.ed25519(0xE3)
    static let oximeter = C.ed25519(0xE4)
    static let subject = Pseudonym.of(patient.publicKey.address)
    static let macKey = [UInt8](repeating: 0x5C, count: 32)

    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminA, .enrol(patient))
        l.apply(C.adminB, .register(clinicGateway, .gateway, "city-clinic"))
        return l
    }

    func device(_ l: Ledger, _ id: Address) -> DeviceRecord? { try? l.state.read(DeviceRecord.self, StateKeys.device(id)) ?? nil }

    static func anchor(_ device: Address, root: UInt8, count: UInt32 = 10) -> TransactionPayload {
        .anchorReadings(AnchorReadings(device: device, batchRoot: Hash.sha256([root]), blobDigest: Hash.sha256([root, 1]), firstMs: 1_000, lastMs: 2_000, count: count))
    }

    @Test("an owner registers a signing device bound to a pseudonym and a MAC device bound to a place; ids follow from the credential")
    func register() throws {
        var l = Self.ledger()
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject, label: "home SpO2")))
        let d = try #require(device(l, Self.oximeter.publicKey.address))
        #expect(d.owner == Self.patient.publicKey.address && d.organisation == "st-marys" && d.status == .active && d.subject == Self.subject && d.place == nil)
        let macHash = Hash.sha256(Self.macKey)
        l.apply(C.adminA, .registerDevice(RegisterDevice(macKeyHash: macHash, deviceType: "crowd-counter", place: "ward-7")))
        let m = try #require(device(l, DeviceID.forMACKey(hash: macHash)))
        #expect(m.macKeyHash == macHash && m.publicKey == nil && m.place == "ward-7")
        // Nothing on-chain but keys, hashes, a type and a place id.
        let bytes = m.canonicalBytes
        #expect(!(0...(bytes.count - Self.macKey.count)).contains { Array(bytes[$0..<$0 + Self.macKey.count]) == Self.macKey }, "the MAC key itself is not on-chain")
    }

    @Test("registration refusals change nothing")
    func refusals() {
        var l = Self.ledger()
        let k = Self.oximeter.publicKey
        l.reject(Self.patient, .registerDevice(RegisterDevice(deviceType: "thermometer", subject: Self.subject)), "invalid-argument")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: k, macKeyHash: .zero, deviceType: "thermometer", subject: Self.subject)), "invalid-argument")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer")), "invalid-argument")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", subject: Self.subject, place: "ward-1")), "invalid-argument")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", place: "ward-1")), "invalid-argument")
        l.reject(Self.patient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "Thermometer!", subject: Self.subject)), "invalid-argument")
        l.reject(C.adminA, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", place: "")), "invalid-argument")
        l.apply(C.adminA, .register(C.ed25519(0xE9), .researcher, "st-marys"))
        l.reject(C.ed25519(0xE9), .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", subject: Self.subject)), "unauthorised")
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", subject: Self.subject)))
        l.reject(C.adminA, .registerDevice(RegisterDevice(publicKey: k, deviceType: "thermometer", place: "ward-1")), "already-exists")
    }

    @Test("owner or organisation admin suspends, reactivates, revokes; revocation is final; others cannot")
    func status() {
        var l = Self.ledger()
        let id = Self.oximeter.publicKey.address
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject)))
        l.reject(C.adminB, .setDeviceStatus(SetDeviceStatus(device: id, status: .suspended)), "unauthorised")
        l.reject(Self.gateway, .setDeviceStatus(SetDeviceStatus(device: id, status: .suspended)), "unauthorised")
        l.apply(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .suspended, reason: "lost")))
        #expect(device(l, id)?.status == .suspended)
        l.reject(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .suspended)), "invalid-argument")
        l.apply(C.adminA, .setDeviceStatus(SetDeviceStatus(device: id, status: .active)))
        l.apply(C.adminA, .setDeviceStatus(SetDeviceStatus(device: id, status: .revoked)))
        l.reject(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .active)), "invalid-argument")
        l.reject(Self.patient, .setDeviceStatus(SetDeviceStatus(device: Address.zero, status: .active)), "invalid-argument")
    }

    @Test("a gateway of the device's organisation anchors a batch once; the record holds root, blob hash, range and count")
    func anchors() throws {
        var l = Self.ledger()
        let id = Self.oximeter.publicKey.address
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject)))
        let tx = l.apply(Self.gateway, Self.anchor(id, root: 1))
        let rec = try #require(try l.state.read(AnchorRecord.self, StateKeys.anchor(Hash.sha256([1]))))
        #expect(rec.gateway == Self.gateway.publicKey.address && rec.transaction == tx && rec.anchor.count == 10 && rec.height == l.context.height)
        l.reject(Self.gateway, Self.anchor(id, root: 1), "already-exists")
        l.reject(Self.clinicGateway, Self.anchor(id, root: 2), "unauthorised")
        l.reject(Self.patient, Self.anchor(id, root: 2), "unauthorised")
        l.reject(Self.gateway, Self.anchor(Address.zero, root: 2), "invalid-argument")
        l.reject(Self.gateway, Self.anchor(id, root: 2, count: 0), "invalid-argument")
        l.reject(Self.gateway, .anchorReadings(AnchorReadings(device: id, batchRoot: .zero, blobDigest: .zero, firstMs: 5, lastMs: 4, count: 1)), "invalid-argument")
        // Suspended: batches accepted while it was active are still anchored. Revoked: no more.
        l.apply(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .suspended)))
        l.apply(Self.gateway, Self.anchor(id, root: 3))
        l.apply(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .revoked)))
        l.reject(Self.gateway, Self.anchor(id, root: 4), "invalid-argument")
    }

    @Test("a gateway of the device's organisation records alerts; the latest state per rule is kept, no value on-chain")
    func alerts() throws {
        var l = Self.ledger()
        let id = Self.oximeter.publicKey.address
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject)))
        let raised = RecordAlert(device: id, rule: "spo2-low", severity: "critical", raised: true, atMs: 1_000)
        let tx = l.apply(Self.gateway, .recordAlert(raised))
        #expect(try l.state.read(AlertRecord.self, StateKeys.alert(id, rule: "spo2-low")) == AlertRecord(alert: raised, gateway: Self.gateway.publicKey.address, height: l.context.height, transaction: tx))
        var cleared = raised
        cleared.raised = false
        cleared.atMs = 2_000
        l.apply(Self.gateway, .recordAlert(cleared))
        #expect(try l.state.read(AlertRecord.self, StateKeys.alert(id, rule: "spo2-low"))?.alert == cleared)
        l.reject(Self.clinicGateway, .recordAlert(raised), "unauthorised")
        l.reject(Self.patient, .recordAlert(raised), "unauthorised")
        l.reject(Self.gateway, .recordAlert(RecordAlert(device: Address.zero, rule: "spo2-low", severity: "critical", raised: true, atMs: 1)), "invalid-argument")
        l.reject(Self.gateway, .recordAlert(RecordAlert(device: id, rule: "SpO2 < 90 for Mrs Smith", severity: "critical", raised: true, atMs: 1)), "invalid-argument")
        l.reject(Self.gateway, .recordAlert(RecordAlert(device: id, rule: "spo2-low", severity: "urgent", raised: true, atMs: 1)), "invalid-argument")
    }

    @Test("the owner, or a practitioner or admin of the device's organisation, requests intensive sampling until a time; others cannot; bad requests change nothing")
    func sampling() throws {
        var l = Self.ledger()
        let id = Self.oximeter.publicKey.address
        let nurse = C.ed25519(0xEA), outsider = C.ed25519(0xEB)
        l.apply(C.adminA, .register(nurse, .practitioner, "st-marys"))
        l.apply(C.adminB, .register(outsider, .practitioner, "city-clinic"))
        // The recipient of a patient's device is the patient's own X25519 key.
        let key = testAgreementKey(Self.patient)
        l.apply(Self.patient, .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject, recipientKey: key)))
        #expect(device(l, id)?.recipientKey == key && device(l, id)?.sampling == nil)
        // Small-order points are not keys: sealing for one would let anyone unwrap the data key.
        for weak in [[UInt8](repeating: 0, count: 32), [1] + [UInt8](repeating: 0, count: 31), [0xEC] + [UInt8](repeating: 0xFF, count: 30) + [0x7F]] {
            #expect(throws: KeyError.self) { try X25519Key(bytes: weak) }
            var w = CanonicalWriter()
            w.writeFixed(weak)
            #expect(throws: CanonicalDecodingError.self) { try X25519Key(canonicalBytes: w.bytes) }
        }
        #expect(throws: KeyError.self) { try X25519Key(bytes: [1, 2, 3]) }
        let now = l.context.timestampMs
        func ask(_ mode: String, _ until: Int64) -> TransactionPayload { .setDeviceSampling(SetDeviceSampling(device: id, mode: mode, untilMs: until, reason: "post-op watch")) }
        l.apply(nurse, ask("intensive", now + 3_600_000))
        let s = try #require(device(l, id)?.sampling)
        #expect(s == SamplingRequest(mode: "intensive", untilMs: now + 3_600_000, requestedBy: nurse.publicKey.address, height: l.context.height))
        #expect(s.isIntensive(atMs: now) && !s.isIntensive(atMs: now + 3_600_000))
        l.reject(outsider, ask("intensive", now + 1_000), "unauthorised")
        l.reject(Self.gateway, ask("intensive", now + 1_000), "unauthorised")
        l.reject(nurse, ask("turbo", now + 1_000), "invalid-argument")
        l.reject(nurse, ask("intensive", now), "invalid-argument")
        l.reject(nurse, ask("intensive", now + SetDeviceSampling.maxSpanMs + 1), "invalid-argument")
        l.reject(nurse, .setDeviceSampling(SetDeviceSampling(device: Address.zero, mode: "periodic", untilMs: 0)), "invalid-argument")
        #expect(device(l, id)?.sampling == s)
        l.apply(Self.patient, ask("periodic", 0))
        #expect(device(l, id)?.sampling?.isIntensive(atMs: now) == false)
        l.apply(C.adminA, ask("intensive", now + 60_000))
        l.apply(Self.patient, .setDeviceStatus(SetDeviceStatus(device: id, status: .revoked)))
        l.reject(nurse, ask("intensive", now + 60_000), "invalid-argument")
    }

    @Test("device payloads have a JSON form that round-trips")
    func json() throws {
        let payloads: [TransactionPayload] = [
            .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "pulse-oximeter", subject: Self.subject)),
            .registerDevice(RegisterDevice(macKeyHash: .zero, deviceType: "crowd-counter", place: "venue-12", label: "door A")),
            .setDeviceStatus(SetDeviceStatus(device: Address.zero, status: .revoked, reason: "stolen")),
            Self.anchor(Address.zero, root: 9),
            .recordAlert(RecordAlert(device: Address.zero, rule: "heart-rate-high", severity: "warning", raised: false, atMs: -3)),
            .registerDevice(RegisterDevice(publicKey: Self.oximeter.publicKey, deviceType: "ecg-patch", subject: Self.subject, recipientKey: try X25519Key(bytes: [UInt8](repeating: 1, count: 32)))),
            .setDeviceSampling(SetDeviceSampling(device: Address.zero, mode: "intensive", untilMs: 1_700_000_000_000, reason: "post-op")),
        ]
        for p in payloads {
            let data = try JSONEncoder().encode(p)
            #expect(try JSONDecoder().decode(TransactionPayload.self, from: data) == p, "\(String(decoding: data, as: UTF8.self))")
        }
    }
}
