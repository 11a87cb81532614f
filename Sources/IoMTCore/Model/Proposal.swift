/// A governance proposal, stored under `StateKeys.proposal(id)`; its id is the proposing
/// transaction's hash.
public struct Proposal: Hashable, Sendable, Codable, CanonicalCodable {
    public enum Status: UInt8, Hashable, Sendable, Codable, CanonicalCodable {
        case open = 1
        case executed = 2
        /// Reached quorum but the action could no longer be applied (see `failure`).
        case failed = 3

        public func encode(to w: inout CanonicalWriter) { w.write(rawValue) }
        public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
            let t: UInt8 = try r.read()
            guard let v = Status(rawValue: t) else { throw .unknownTag(type: "ProposalStatus", tag: t) }
            self = v
        }
    }

    public var id: Hash
    public var action: GovernanceAction
    public var proposer: Address
    public var approvals: [Address]
    public var status: Status
    public var createdAtHeight: UInt64
    public var closedAtHeight: UInt64?
    public var failure: String?

    public init(id: Hash, action: GovernanceAction, proposer: Address, approvals: [Address], status: Status, createdAtHeight: UInt64, closedAtHeight: UInt64? = nil, failure: String? = nil) {
        self.id = id
        self.action = action
        self.proposer = proposer
        self.approvals = approvals
        self.status = status
        self.createdAtHeight = createdAtHeight
        self.closedAtHeight = closedAtHeight
        self.failure = failure
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(id); w.write(action); w.write(proposer); w.write(approvals); w.write(status)
        w.write(createdAtHeight); w.write(closedAtHeight); w.write(failure)
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        id = try r.read(); action = try r.read(); proposer = try r.read(); approvals = try r.readArray()
        status = try r.read(); createdAtHeight = try r.read(); closedAtHeight = try r.readOptional(); failure = try r.readOptional()
    }
}
