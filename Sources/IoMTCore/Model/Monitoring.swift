/// Remote monitoring (issue 6 §7; seed 002 §IV-E): an alert about a patient's vitals is
/// acknowledged on-chain by a member of the care team the patient consented to, so the patient,
/// their doctors and their family see who took it up and when.

/// A practitioner with the patient's consent (vital signs, treatment) acknowledges an alert its
/// device's gateway raised at `raisedAtMs`.
public struct AcknowledgeAlert: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var rule: String
    public var raisedAtMs: Int64

    public init(device: Address, rule: String, raisedAtMs: Int64) { self.device = device; self.rule = rule; self.raisedAtMs = raisedAtMs }
    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(rule); w.write(raisedAtMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); rule = try r.read(); raisedAtMs = try r.read() }
}

/// An acknowledgement as held in state (`StateKeys.alertAck(device, rule, raisedAtMs)`).
public struct AlertAckRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var ack: AcknowledgeAlert
    public var by: Address
    /// The consent basis the acknowledger read the patient's vitals under.
    public var basis: String
    public var atMs: Int64
    public var height: UInt64

    public init(ack: AcknowledgeAlert, by: Address, basis: String, atMs: Int64, height: UInt64) { self.ack = ack; self.by = by; self.basis = basis; self.atMs = atMs; self.height = height }
    public func encode(to w: inout CanonicalWriter) { w.write(ack); w.write(by); w.write(basis); w.write(atMs); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { ack = try r.read(); by = try r.read(); basis = try r.read(); atMs = try r.read(); height = try r.read() }
}

extension StateKeys {
    public static func alertAck(_ device: Address, _ rule: String, _ raisedAtMs: Int64) -> [UInt8] {
        Array("alert-ack/".utf8) + device.bytes + UInt64(bitPattern: raisedAtMs).canonicalBytes + Array(rule.utf8)
    }
}
