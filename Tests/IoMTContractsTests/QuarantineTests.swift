import IoMTContracts
import IoMTCore
import Testing

@Suite("Quarantine module: orders by public-health officers of an agency only, for a patient's own wristband; lifting")
struct QuarantineTests {
    typealias C = Consortium
    static let officer = C.ed25519(0xA3), hospitalOfficer = C.ed25519(0xA4), patient = C.ed25519(0xA5), other = C.ed25519(0xA6)
    static let band = C.ed25519(0xA7), oximeter = C.ed25519(0xA8), othersBand = C.ed25519(0xA9)

    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminC, .register(officer, .publicHealthOfficer, "health-agency"))
        l.apply(C.adminA, .register(hospitalOfficer, .publicHealthOfficer, "st-marys"))
        l.apply(C.adminA, .enrol(patient))
        l.apply(C.adminA, .enrol(other))
        let s = Pseudonym.of(patient.publicKey.address), o = Pseudonym.of(other.publicKey.address)
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: band.publicKey, deviceType: "wristband", subject: s)))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: oximeter.publicKey, deviceType: "pulse-oximeter", subject: s)))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: othersBand.publicKey, deviceType: "wristband", subject: o)))
        return l
    }

    static func order(_ l: Ledger, id: UInt8 = 1, device: PrivateKey = band, days: Int64 = 14) -> TransactionPayload {
        let fence = Geofence(xCm: 1_000, yCm: 2_000, radiusCm: 3_000, salt: [UInt8](repeating: 7, count: 32))
        return .orderQuarantine(OrderQuarantine(orderID: Hash.sha256([id]), subject: Pseudonym.of(patient.publicKey.address), device: device.publicKey.address,
                                                fenceCommitment: fence.commitment, fromMs: l.context.timestampMs, untilMs: l.context.timestampMs + days * 86_400_000))
    }

    @Test("only an agency's officer orders; the device must be the patient's own active wristband; 60 days at most; once")
    func ordering() throws {
        var l = Self.ledger()
        l.reject(Self.hospitalOfficer, Self.order(l), "unauthorised")
        l.reject(C.adminC, Self.order(l), "unauthorised")
        l.reject(Self.officer, Self.order(l, device: Self.oximeter), "invalid-argument")
        l.reject(Self.officer, Self.order(l, device: Self.othersBand), "invalid-argument")
        l.reject(Self.officer, Self.order(l, days: 61), "invalid-argument")
        // Extreme times are refused, not overflowed (an overflow would stop the node).
        l.reject(Self.officer, .orderQuarantine(OrderQuarantine(orderID: Hash.sha256([3]), subject: Pseudonym.of(Self.patient.publicKey.address), device: Self.band.publicKey.address,
                                                                fenceCommitment: Hash.sha256([4]), fromMs: .min, untilMs: l.context.timestampMs + 1)), "invalid-argument")
        l.reject(Self.officer, .orderQuarantine(OrderQuarantine(orderID: Hash.sha256([3]), subject: Pseudonym.of(Self.patient.publicKey.address), device: Self.band.publicKey.address,
                                                                fenceCommitment: Hash.sha256([4]), fromMs: l.context.timestampMs, untilMs: .max)), "invalid-argument")
        l.apply(Self.officer, Self.order(l))
        l.reject(Self.officer, Self.order(l), "already-exists")
        let r = try #require(try l.state.read(QuarantineRecord.self, StateKeys.quarantineOrder(Hash.sha256([1]))))
        #expect(r.agency == "health-agency" && r.isActive(atMs: l.context.timestampMs) && !r.isActive(atMs: l.context.timestampMs + 15 * 86_400_000))
        // A suspended wristband cannot be named.
        l.apply(C.adminA, .setDeviceStatus(SetDeviceStatus(device: Self.band.publicKey.address, status: .suspended, reason: "lost")))
        l.reject(Self.officer, Self.order(l, id: 2), "invalid-argument")
    }

    @Test("lifting: the ordering agency's officer, once, before the term")
    func lifting() throws {
        var l = Self.ledger()
        l.apply(Self.officer, Self.order(l))
        let lift = TransactionPayload.liftQuarantine(LiftQuarantine(orderID: Hash.sha256([1])))
        l.reject(Self.hospitalOfficer, lift, "unauthorised")
        l.reject(Self.officer, .liftQuarantine(LiftQuarantine(orderID: Hash.sha256([9]))), "invalid-argument")
        l.apply(Self.officer, lift)
        l.reject(Self.officer, lift, "already-exists")
        let r = try #require(try l.state.read(QuarantineRecord.self, StateKeys.quarantineOrder(Hash.sha256([1]))))
        #expect(r.liftedMs == l.context.timestampMs && !r.isActive(atMs: l.context.timestampMs))
    }

    @Test("the fence's commitment binds centre, radius and salt")
    func commitment() {
        let salt = [UInt8](repeating: 7, count: 32)
        let f = Geofence(xCm: 1_000, yCm: 2_000, radiusCm: 3_000, salt: salt)
        #expect(f.commitment != Geofence(xCm: 1_001, yCm: 2_000, radiusCm: 3_000, salt: salt).commitment)
        #expect(f.commitment != Geofence(xCm: 1_000, yCm: 2_000, radiusCm: 3_001, salt: salt).commitment)
        #expect(f.commitment != Geofence(xCm: 1_000, yCm: 2_000, radiusCm: 3_000, salt: [UInt8](repeating: 8, count: 32)).commitment)
        #expect(f.contains(xCm: 1_000, yCm: 5_000) && !f.contains(xCm: 1_000, yCm: 5_001) && !f.contains(xCm: 1_000, yCm: 4_950, marginCm: 100))
    }
}
