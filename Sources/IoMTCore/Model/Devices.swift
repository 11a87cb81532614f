/// Devices and the readings they anchor (issue 4). On-chain a device is a key (or the hash of
/// a MAC key), a type, an owner and what it is bound to — a patient's pseudonym or a place —
/// never a name; an anchor is a batch's Merkle root, a blob's content hash, a time range and a
/// count, never a value.

/// A device's identity: `Address(deriving: publicKey)` for a signing device; for a MAC device, an
/// address derived from the hash of its key (the key itself never goes on-chain).
public enum DeviceID {
    public static func forMACKey(hash: Hash) -> Address {
        Address(bytes: Array(Hash.domain("iomt/device-mac/v1", hash.bytes).bytes.prefix(Address.byteCount)))!
    }
}

/// A device's owner registers it: its credential (exactly one of a signature key or the SHA-256 of a
/// 32-byte HMAC-SHA256 key provisioned out of band), its type, and what it is bound to (exactly one
/// of a patient pseudonym or a place id such as a ward, venue or vehicle).
public struct RegisterDevice: Hashable, Sendable, Codable, CanonicalCodable {
    public var publicKey: PublicKey?
    public var macKeyHash: Hash?
    /// A type from a short vocabulary such as `pulse-oximeter`, `ecg-patch`, `thermometer`,
    /// `wristband`, `cold-chain-logger`, `crowd-counter` (lower-case letters, digits, dashes).
    public var deviceType: String
    public var subject: Hash?
    public var place: String?
    public var label: String
    /// The X25519 key every batch's data key is wrapped for, so that the patient (or the place's
    /// owner) can open the device's blobs without the gateway: the patient's key for a device bound
    /// to a subject. Optional: without it only the gateway's custody key (and its configured
    /// recipients) can open them.
    public var recipientKey: X25519Key?

    public init(publicKey: PublicKey? = nil, macKeyHash: Hash? = nil, deviceType: String, subject: Hash? = nil, place: String? = nil, label: String = "", recipientKey: X25519Key? = nil) {
        self.publicKey = publicKey; self.macKeyHash = macKeyHash; self.deviceType = deviceType
        self.subject = subject; self.place = place; self.label = label; self.recipientKey = recipientKey
    }

    /// The id the device will have; nil unless exactly one credential is given.
    public var deviceID: Address? {
        switch (publicKey, macKeyHash) {
        case (let k?, nil): return k.address
        case (nil, let h?): return DeviceID.forMACKey(hash: h)
        default: return nil
        }
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(publicKey); w.write(macKeyHash); w.write(deviceType); w.write(subject); w.write(place); w.write(label); w.write(recipientKey)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        publicKey = try r.readOptional(); macKeyHash = try r.readOptional(); deviceType = try r.read()
        subject = try r.readOptional(); place = try r.readOptional(); label = try r.read(); recipientKey = try r.readOptional()
    }
}

/// The owner (or a member-admin of the owner's organisation) suspends, reactivates or revokes a device.
public struct SetDeviceStatus: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var status: AccountStatus
    public var reason: String

    public init(device: Address, status: AccountStatus, reason: String = "") { self.device = device; self.status = status; self.reason = reason }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(status); w.write(reason) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); status = try r.read(); reason = try r.read() }
}

/// Adaptive sampling on request (seed 001 §3.2.1): the device's owner, or a practitioner or
/// member-admin of its organisation, asks for `intensive` reporting until `untilMs` (or back to
/// `periodic`). The gateway tells the device in every upload reply; an active alarm asks for
/// intensive reporting whatever was requested.
public struct SetDeviceSampling: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    /// `intensive` or `periodic`.
    public var mode: String
    /// When an intensive request lapses (ms, UTC); at most `maxSpanMs` after the block's time.
    public var untilMs: Int64
    public var reason: String

    public static let modes = ["intensive", "periodic"]
    public static let maxSpanMs: Int64 = 7 * 24 * 3_600_000

    public init(device: Address, mode: String, untilMs: Int64, reason: String = "") { self.device = device; self.mode = mode; self.untilMs = untilMs; self.reason = reason }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(mode); w.write(untilMs); w.write(reason) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); mode = try r.read(); untilMs = try r.read(); reason = try r.read() }
}

/// The sampling request in force for a device: who asked, for what, until when.
public struct SamplingRequest: Hashable, Sendable, Codable, CanonicalCodable {
    public var mode: String
    public var untilMs: Int64
    public var requestedBy: Address
    public var height: UInt64

    public init(mode: String, untilMs: Int64, requestedBy: Address, height: UInt64) { self.mode = mode; self.untilMs = untilMs; self.requestedBy = requestedBy; self.height = height }

    /// True while it asks for intensive reporting at `nowMs`.
    public func isIntensive(atMs nowMs: Int64) -> Bool { mode == "intensive" && nowMs < untilMs }

    public func encode(to w: inout CanonicalWriter) { w.write(mode); w.write(untilMs); w.write(requestedBy); w.write(height) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { mode = try r.read(); untilMs = try r.read(); requestedBy = try r.read(); height = try r.read() }
}

/// A gateway anchors one batch of a device's readings: the RFC 6962 root over the batch's canonical
/// (gateway, device, sequence, reading) leaves, the off-chain blob's content hash (its CIDv1 is `b` + base32 of 0x01 0x55 0x12 0x20 +
/// digest), the time range and count. No value, no name.
public struct AnchorReadings: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var batchRoot: Hash
    public var blobDigest: Hash
    public var firstMs: Int64
    public var lastMs: Int64
    public var count: UInt32

    public init(device: Address, batchRoot: Hash, blobDigest: Hash, firstMs: Int64, lastMs: Int64, count: UInt32) {
        self.device = device; self.batchRoot = batchRoot; self.blobDigest = blobDigest
        self.firstMs = firstMs; self.lastMs = lastMs; self.count = count
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(device); w.write(batchRoot); w.write(blobDigest); w.write(UInt64(bitPattern: firstMs)); w.write(UInt64(bitPattern: lastMs)); w.write(count)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        device = try r.read(); batchRoot = try r.read(); blobDigest = try r.read()
        firstMs = Int64(bitPattern: try r.read()); lastMs = Int64(bitPattern: try r.read()); count = try r.read()
    }
}

/// A registered device. Stored under `StateKeys.device(id)`.
public struct DeviceRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: Address
    public var publicKey: PublicKey?
    public var macKeyHash: Hash?
    public var deviceType: String
    public var subject: Hash?
    public var place: String?
    public var owner: Address
    public var organisation: String
    public var status: AccountStatus
    public var registeredAtHeight: UInt64
    public var label: String
    /// See `RegisterDevice.recipientKey`.
    public var recipientKey: X25519Key?
    /// The latest sampling request, if any (`SetDeviceSampling`).
    public var sampling: SamplingRequest?

    public init(id: Address, publicKey: PublicKey?, macKeyHash: Hash?, deviceType: String, subject: Hash?, place: String?, owner: Address, organisation: String, status: AccountStatus, registeredAtHeight: UInt64, label: String, recipientKey: X25519Key? = nil, sampling: SamplingRequest? = nil) {
        self.id = id; self.publicKey = publicKey; self.macKeyHash = macKeyHash; self.deviceType = deviceType
        self.subject = subject; self.place = place; self.owner = owner; self.organisation = organisation
        self.status = status; self.registeredAtHeight = registeredAtHeight; self.label = label
        self.recipientKey = recipientKey; self.sampling = sampling
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(publicKey); w.write(macKeyHash); w.write(deviceType); w.write(subject); w.write(place)
        w.write(owner); w.write(organisation); w.write(status); w.write(registeredAtHeight); w.write(label)
        w.write(recipientKey); w.write(sampling)
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); publicKey = try r.readOptional(); macKeyHash = try r.readOptional(); deviceType = try r.read()
        subject = try r.readOptional(); place = try r.readOptional(); owner = try r.read(); organisation = try r.read()
        status = try r.read(); registeredAtHeight = try r.read(); label = try r.read()
        recipientKey = try r.readOptional(); sampling = try r.readOptional()
    }
}

/// An anchored batch. Stored under `StateKeys.anchor(batchRoot)`: a root is anchored once.
public struct AnchorRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var anchor: AnchorReadings
    public var gateway: Address
    public var height: UInt64
    public var transaction: Hash

    public init(anchor: AnchorReadings, gateway: Address, height: UInt64, transaction: Hash) {
        self.anchor = anchor; self.gateway = gateway; self.height = height; self.transaction = transaction
    }

    public func encode(to w: inout CanonicalWriter) { w.write(anchor); w.write(gateway); w.write(height); w.write(transaction) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        anchor = try r.read(); gateway = try r.read(); height = try r.read(); transaction = try r.read()
    }
}

extension StateKeys {
    public static func device(_ id: Address) -> [UInt8] { Array("device/".utf8) + id.bytes }
    public static func anchor(_ root: Hash) -> [UInt8] { Array("anchor/".utf8) + root.bytes }
}

/// A gateway records that an edge alarm of a device was raised or cleared (issue 4 §5): the rule's
/// id and severity and the reading's time — never the value, which stays in the encrypted blob.
public struct RecordAlert: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    /// The alarm rule's id, e.g. `spo2-low` (1–64 lower-case letters, digits, dashes).
    public var rule: String
    /// `warning` or `critical`.
    public var severity: String
    /// True when raised, false when cleared.
    public var raised: Bool
    /// The time of the reading that raised or cleared it (ms, UTC).
    public var atMs: Int64

    public init(device: Address, rule: String, severity: String, raised: Bool, atMs: Int64) {
        self.device = device; self.rule = rule; self.severity = severity; self.raised = raised; self.atMs = atMs
    }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(rule); w.write(severity); w.write(raised); w.write(UInt64(bitPattern: atMs)) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        device = try r.read(); rule = try r.read(); severity = try r.read(); raised = try r.read(); atMs = Int64(bitPattern: try r.read())
    }
}

/// A device's latest alert state per rule. Stored under `StateKeys.alert(device, rule)`.
public struct AlertRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var alert: RecordAlert
    public var gateway: Address
    public var height: UInt64
    public var transaction: Hash

    public init(alert: RecordAlert, gateway: Address, height: UInt64, transaction: Hash) {
        self.alert = alert; self.gateway = gateway; self.height = height; self.transaction = transaction
    }

    public func encode(to w: inout CanonicalWriter) { w.write(alert); w.write(gateway); w.write(height); w.write(transaction) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        alert = try r.read(); gateway = try r.read(); height = try r.read(); transaction = try r.read()
    }
}

/// An alert as numbered in the chain's alert log (`StateKeys.alertLogEntry(n)`): raised and
/// cleared, in commit order — the history the latest-state key (`StateKeys.alert`) does not keep.
public struct AlertLogEntry: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var record: AlertRecord
    public init(n: UInt64, record: AlertRecord) { self.n = n; self.record = record }
    public func encode(to w: inout CanonicalWriter) { w.write(n); w.write(record) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { n = try r.read(); record = try r.read() }
}

extension StateKeys {
    public static func alert(_ device: Address, rule: String) -> [UInt8] { Array("alert/".utf8) + device.bytes + Array("/".utf8) + Array(rule.utf8) }
    /// Present (the log number) when the device's rule was raised at that time: what an
    /// acknowledgement names.
    public static func alertRaised(_ device: Address, rule: String, atMs: Int64) -> [UInt8] {
        Array("alert-raised/".utf8) + device.bytes + UInt64(bitPattern: atMs).canonicalBytes + Array(rule.utf8)
    }
    public static let alertLogCount: [UInt8] = Array("alert-log/count".utf8)
    public static func alertLogEntry(_ n: UInt64) -> [UInt8] { Array("alert-log/".utf8) + n.canonicalBytes }
}
