/// Roles an account can hold (issue 2 §6). Raw values are part of the canonical encoding: never reuse one.
public enum Role: UInt8, Sendable, Codable, CaseIterable, CanonicalCodable, CustomStringConvertible {
    case memberAdmin = 1
    case node = 2
    case practitioner = 3
    case patient = 4
    case device = 5
    case gateway = 6
    case researcher = 7
    case supplyChainParty = 8
    case publicHealthOfficer = 9

    public var name: String {
        switch self {
        case .memberAdmin: return "member-admin"
        case .node: return "node"
        case .practitioner: return "practitioner"
        case .patient: return "patient"
        case .device: return "device"
        case .gateway: return "gateway"
        case .researcher: return "researcher"
        case .supplyChainParty: return "supply-chain-party"
        case .publicHealthOfficer: return "public-health-officer"
        }
    }

    public var description: String { name }

    public init?(name: String) {
        guard let r = Role.allCases.first(where: { $0.name == name }) else { return nil }
        self = r
    }

    public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        guard let v = Role(rawValue: t) else { throw .unknownTag(type: "Role", tag: t) }
        self = v
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let r = Role(name: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown role \"\(s)\"; one of \(Role.allCases.map(\.name).joined(separator: ", "))"))
        }
        self = r
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

public enum AccountStatus: UInt8, Sendable, Codable, CaseIterable, CanonicalCodable {
    case active = 1
    case suspended = 2
    /// Final: a revoked account never acts again.
    case revoked = 3

    public var name: String {
        switch self {
        case .active: return "active"
        case .suspended: return "suspended"
        case .revoked: return "revoked"
        }
    }

    public init?(name: String) {
        guard let v = AccountStatus.allCases.first(where: { $0.name == name }) else { return nil }
        self = v
    }

    public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let t: UInt8 = try r.read()
        guard let v = AccountStatus(rawValue: t) else { throw .unknownTag(type: "AccountStatus", tag: t) }
        self = v
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let v = AccountStatus(name: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown status \"\(s)\"; one of active, suspended, revoked"))
        }
        self = v
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

/// An account on the chain. Stored under `StateKeys.account(address)`.
public struct Account: Hashable, Sendable, Codable, CanonicalCodable {
    public var address: Address
    /// The current key (changes on rotation; the address does not).
    public var publicKey: PublicKey
    public var role: Role
    public var organisation: String
    public var status: AccountStatus
    /// The nonce the account's next transaction must carry.
    public var nonce: UInt64
    public var registeredAtHeight: UInt64
    /// Free text such as a device model. Never personal data: the API refuses nothing here, so the
    /// CLI and docs say so; later issues put identities behind pseudonyms.
    public var label: String

    public init(address: Address, publicKey: PublicKey, role: Role, organisation: String, status: AccountStatus = .active, nonce: UInt64 = 0, registeredAtHeight: UInt64, label: String = "") {
        self.address = address
        self.publicKey = publicKey
        self.role = role
        self.organisation = organisation
        self.status = status
        self.nonce = nonce
        self.registeredAtHeight = registeredAtHeight
        self.label = label
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(address)
        w.write(publicKey)
        w.write(role)
        w.write(organisation)
        w.write(status)
        w.write(nonce)
        w.write(registeredAtHeight)
        w.write(label)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        address = try r.read()
        publicKey = try r.read()
        role = try r.read()
        organisation = try r.read()
        status = try r.read()
        nonce = try r.read()
        registeredAtHeight = try r.read()
        label = try r.read()
    }
}

/// A consortium member: a hospital, clinic, agency or manufacturer.
public struct Organisation: Hashable, Sendable, Codable, CanonicalCodable {
    public var id: String
    public var name: String
    /// hospital, clinic, public-health-agency, manufacturer, laboratory, carrier, pharmacy, …
    public var kind: String

    public init(id: String, name: String, kind: String) {
        self.id = id
        self.name = name
        self.kind = kind
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(name)
        w.write(kind)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read()
        name = try r.read()
        kind = try r.read()
    }
}

/// A validator: a node key allowed to sign commits, with its voting power.
public struct Validator: Hashable, Sendable, Codable, CanonicalCodable {
    public var publicKey: PublicKey
    public var organisation: String
    public var power: UInt64

    public init(publicKey: PublicKey, organisation: String, power: UInt64 = 1) {
        self.publicKey = publicKey
        self.organisation = organisation
        self.power = power
    }

    public var address: Address { publicKey.address }

    public func encode(to w: inout CanonicalWriter) {
        w.write(publicKey)
        w.write(organisation)
        w.write(power)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        publicKey = try r.read()
        organisation = try r.read()
        power = try r.read()
    }
}

/// Consensus parameters from genesis, held in state so governance can change them later.
public struct ConsensusParameters: Hashable, Sendable, Codable, CanonicalCodable {
    /// Largest encoded block body (sum of transaction encodings).
    public var maxBlockBytes: UInt64
    /// Largest encoded signed transaction.
    public var maxTransactionBytes: UInt64
    /// Most transactions in one block.
    public var maxBlockTransactions: UInt64
    /// A block is cut when this much time has passed since the last one and transactions wait.
    public var blockIntervalMs: UInt64

    public init(maxBlockBytes: UInt64 = 8 << 20, maxTransactionBytes: UInt64 = 64 << 10, maxBlockTransactions: UInt64 = 10_000, blockIntervalMs: UInt64 = 200) {
        self.maxBlockBytes = maxBlockBytes
        self.maxTransactionBytes = maxTransactionBytes
        self.maxBlockTransactions = maxBlockTransactions
        self.blockIntervalMs = blockIntervalMs
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(maxBlockBytes)
        w.write(maxTransactionBytes)
        w.write(maxBlockTransactions)
        w.write(blockIntervalMs)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        maxBlockBytes = try r.read()
        maxTransactionBytes = try r.read()
        maxBlockTransactions = try r.read()
        blockIntervalMs = try r.read()
    }
}

/// The admin quorum: how many distinct member-admins must approve a governance action.
public struct GovernanceParameters: Hashable, Sendable, Codable, CanonicalCodable {
    public var adminQuorum: UInt32

    public init(adminQuorum: UInt32) { self.adminQuorum = adminQuorum }

    public func encode(to w: inout CanonicalWriter) { w.write(adminQuorum) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { adminQuorum = try r.read() }
}

/// Where each record lives in the state tree. Keys are short ASCII prefixes plus binary ids.
public enum StateKeys {
    public static func account(_ a: Address) -> [UInt8] { Array("acct/".utf8) + a.bytes }
    public static func organisation(_ id: String) -> [UInt8] { Array("org/".utf8) + Array(id.utf8) }
    public static func proposal(_ id: Hash) -> [UInt8] { Array("gov/proposal/".utf8) + id.bytes }
    /// A validator set approved by governance and the first height it signs (`ScheduledValidators`).
    public static let scheduledValidators = Array("validators/scheduled".utf8)
    /// A recorded equivocation (`EvidenceRecord`), by evidence id.
    public static func evidence(_ id: Hash) -> [UInt8] { Array("evidence/".utf8) + id.bytes }
    public static let admins: [UInt8] = Array("gov/admins".utf8)
    public static let governance: [UInt8] = Array("gov/params".utf8)
    public static let validators: [UInt8] = Array("chain/validators".utf8)
    public static let consensus: [UInt8] = Array("chain/consensus".utf8)
    public static let chainID: [UInt8] = Array("chain/id".utf8)
}

/// A sorted list of addresses (the admin set).
public struct AddressSet: Hashable, Sendable, CanonicalCodable {
    public private(set) var members: [Address]

    public init(_ members: [Address]) { self.members = Array(Set(members)).sorted() }

    public func contains(_ a: Address) -> Bool { members.contains(a) }
    public mutating func insert(_ a: Address) { if !contains(a) { members.append(a); members.sort() } }
    public mutating func remove(_ a: Address) { members.removeAll { $0 == a } }
    public var count: Int { members.count }

    public func encode(to w: inout CanonicalWriter) { w.write(members) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let m: [Address] = try r.readArray()
        guard m == m.sorted(), Set(m).count == m.count else { throw .invalidValue("address set not sorted and distinct") }
        members = m
    }
}

extension Array: CanonicalEncodable where Element: CanonicalEncodable {
    public func encode(to w: inout CanonicalWriter) { w.write(self) }
}

extension Array: CanonicalDecodable where Element: CanonicalDecodable {
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { self = try r.readArray() }
}

/// A validator set that governance approved, waiting for its first height.
public struct ScheduledValidators: Hashable, Sendable, Codable, CanonicalCodable {
    public var effectiveHeight: UInt64
    public var validators: [Validator]

    public init(effectiveHeight: UInt64, validators: [Validator]) {
        self.effectiveHeight = effectiveHeight
        self.validators = validators
    }

    public func encode(to w: inout CanonicalWriter) { w.write(effectiveHeight); w.write(validators) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        effectiveHeight = try r.read()
        validators = try r.readArray()
    }
}
