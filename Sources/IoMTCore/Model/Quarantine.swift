/// Quarantine and social distancing (issue 6 §3; seed 002 §IV-B). A public-health officer orders a
/// patient's quarantine, naming the wristband bound to them; the geofence itself (a centre and a
/// radius in a site's frame, in centimetres) stays off-chain: the order carries only a salted
/// commitment to it, and the officer hands the fence to the gateway that watches the wristband,
/// which checks it against the commitment. Breaches and proximity contacts are gateway alerts
/// (`record-alert`: device, rule, time — never a position).

/// A geofence: the disc a quarantined person must stay in.
public struct Geofence: Hashable, Sendable, Codable {
    public var xCm: Int64
    public var yCm: Int64
    public var radiusCm: Int64
    /// 32 random bytes, so the commitment on-chain does not give the position away by a search.
    public var salt: [UInt8]

    public init(xCm: Int64, yCm: Int64, radiusCm: Int64, salt: [UInt8]) { self.xCm = xCm; self.yCm = yCm; self.radiusCm = radiusCm; self.salt = salt }

    public var commitment: Hash {
        var w = CanonicalWriter()
        w.write(xCm); w.write(yCm); w.write(radiusCm); w.writeBytes(salt)
        return Hash.domain("iomtchain/geofence/v1", w.bytes)
    }

    /// Whether a position (centimetres) is inside, with `marginCm` taken off the radius.
    public func contains(xCm x: Int64, yCm y: Int64, marginCm: Int64 = 0) -> Bool {
        let dx = Double(x - xCm), dy = Double(y - yCm), r = Double(max(0, radiusCm - marginCm))
        return dx * dx + dy * dy <= r * r
    }
}

/// A public-health officer of an agency orders a quarantine.
public struct OrderQuarantine: Hashable, Sendable, Codable, CanonicalCodable {
    public var orderID: Hash
    /// The patient's pseudonym.
    public var subject: Hash
    /// The wristband bound to the patient that reports their position.
    public var device: Address
    public var fenceCommitment: Hash
    public var fromMs: Int64
    public var untilMs: Int64

    public init(orderID: Hash, subject: Hash, device: Address, fenceCommitment: Hash, fromMs: Int64, untilMs: Int64) {
        self.orderID = orderID; self.subject = subject; self.device = device; self.fenceCommitment = fenceCommitment; self.fromMs = fromMs; self.untilMs = untilMs
    }

    public func encode(to w: inout CanonicalWriter) { w.write(orderID); w.write(subject); w.write(device); w.write(fenceCommitment); w.write(fromMs); w.write(untilMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        orderID = try r.read(); subject = try r.read(); device = try r.read(); fenceCommitment = try r.read(); fromMs = try r.read(); untilMs = try r.read()
    }
}

/// The quarantine ends before its term (a negative test, a transfer to hospital).
public struct LiftQuarantine: Hashable, Sendable, Codable, CanonicalCodable {
    public var orderID: Hash
    public init(orderID: Hash) { self.orderID = orderID }
    public func encode(to w: inout CanonicalWriter) { w.write(orderID) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { orderID = try r.read() }
}

/// An order as held in state (`StateKeys.quarantineOrder(id)`).
public struct QuarantineRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var order: OrderQuarantine
    public var agency: String
    public var officer: Address
    public var height: UInt64
    public var liftedMs: Int64?

    public init(order: OrderQuarantine, agency: String, officer: Address, height: UInt64, liftedMs: Int64? = nil) {
        self.order = order; self.agency = agency; self.officer = officer; self.height = height; self.liftedMs = liftedMs
    }

    /// In force at `atMs`: within its term and not lifted before.
    public func isActive(atMs: Int64) -> Bool { atMs >= order.fromMs && atMs < order.untilMs && (liftedMs.map { atMs < $0 } ?? true) }

    public func encode(to w: inout CanonicalWriter) { w.write(order); w.write(agency); w.write(officer); w.write(height); w.write(liftedMs.map { UInt64(bitPattern: $0) }) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        order = try r.read(); agency = try r.read(); officer = try r.read(); height = try r.read(); liftedMs = try r.readOptional(UInt64.self).map { Int64(bitPattern: $0) }
    }
}

extension StateKeys {
    public static func quarantineOrder(_ id: Hash) -> [UInt8] { Array("quarantine/".utf8) + id.bytes }
}
