import IoMTConsensus
import Foundation
import IoMTContracts
import IoMTCore
import Testing

@Suite("Accountability: equivocation evidence recorded on-chain")
struct AccountabilityTests {
    typealias C = Consortium

    static func vote(_ key: PrivateKey, _ value: UInt8?, height: UInt64 = 2, round: UInt32 = 0, chainID: String = C.chainID) -> SignedVote {
        SignedVote(signing: Vote(type: .prevote, height: height, round: round, valueID: value.map { Hash.sha256([$0]) }), chainID: chainID, with: key)
    }

    static func evidence(_ key: PrivateKey = C.validatorKey, chainID: String = C.chainID) -> RecordEvidence {
        RecordEvidence(evidence: Evidence.duplicateVotes(vote(key, 1, chainID: chainID), vote(key, 2, chainID: chainID)).canonicalBytes)
    }

    @Test("genesis gives each validator a node account of its organisation")
    func validatorAccount() {
        let l = Ledger()
        let acct = l.account(C.validatorKey)
        #expect(acct?.role == .node)
        #expect(acct?.organisation == "st-marys")
        #expect(acct?.status == .active)
    }

    @Test("a validator's two conflicting prevotes are recorded once, with offender, height and reporter")
    func recorded() throws {
        var l = Ledger()
        let payload = Self.evidence()
        let e = try Evidence(canonicalBytes: payload.evidence)
        l.apply(C.validatorKey, .recordEvidence(payload))
        let record = try #require(try l.state.read(EvidenceRecord.self, StateKeys.evidence(e.id)))
        #expect(record.offender == C.validatorKey.publicKey)
        #expect(record.offenderOrganisation == "st-marys")
        #expect(record.height == 2)
        #expect(record.kind == "duplicate-vote")
        #expect(record.reporter == C.validatorKey.publicKey.address)
        // The same evidence again, from anyone: refused, nothing written.
        l.reject(C.adminA, .recordEvidence(payload), "already-exists")
    }

    @Test("forged, non-conflicting, wrong-chain, non-validator and undecodable evidence is refused and changes nothing")
    func refusals() {
        var l = Ledger()
        var forged = Self.vote(C.validatorKey, 2)
        forged.signature = Self.vote(C.validatorKey, 3).signature
        l.reject(C.adminA, .recordEvidence(RecordEvidence(evidence: Evidence.duplicateVotes(Self.vote(C.validatorKey, 1), forged).canonicalBytes)), "invalid-argument")
        l.reject(C.adminA, .recordEvidence(RecordEvidence(evidence: Evidence.duplicateVotes(Self.vote(C.validatorKey, 1), Self.vote(C.validatorKey, 1, round: 1)).canonicalBytes)), "invalid-argument")
        l.reject(C.adminA, .recordEvidence(Self.evidence(chainID: "other-chain")), "invalid-argument")
        l.reject(C.adminA, .recordEvidence(Self.evidence(C.adminB)), "invalid-argument")
        l.reject(C.adminA, .recordEvidence(RecordEvidence(evidence: [1, 2, 3])), "invalid-argument")
        l.reject(C.adminA, .recordEvidence(RecordEvidence(evidence: [UInt8](repeating: 0, count: 20_000))), "invalid-argument")
        // Evidence from a later height than the block recording it.
        l.reject(C.adminA, .recordEvidence(RecordEvidence(evidence: Evidence.duplicateVotes(Self.vote(C.validatorKey, 1, height: 99), Self.vote(C.validatorKey, 2, height: 99)).canonicalBytes)), "invalid-argument")
    }

    @Test("the payload round-trips through JSON with the evidence as hex")
    func json() throws {
        let p = TransactionPayload.recordEvidence(Self.evidence())
        let data = try JSONEncoder().encode(p)
        #expect(String(decoding: data, as: UTF8.self).contains("\"type\":\"record-evidence\""))
        #expect(try JSONDecoder().decode(TransactionPayload.self, from: data) == p)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(TransactionPayload.self, from: Data(#"{"type":"record-evidence","evidence":"zz"}"#.utf8)) }
    }
}
