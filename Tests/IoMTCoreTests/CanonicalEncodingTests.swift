import IoMTCore
import PropertyBased
import Testing

/// Round trip plus the two halves of strictness every value must satisfy:
/// `decode(encode(x)) == x`, `encode(decode(b)) == b`, no strict prefix decodes, and a trailing byte is refused.
func expectCanonicalRoundTrip<T: CanonicalCodable & Equatable>(_ value: T, sourceLocation: SourceLocation = #_sourceLocation) {
    let bytes = value.canonicalBytes
    do {
        let decoded = try T(canonicalBytes: bytes)
        #expect(decoded == value, sourceLocation: sourceLocation)
        #expect(decoded.canonicalBytes == bytes, sourceLocation: sourceLocation)
    } catch {
        Issue.record("\(T.self) failed to decode its own encoding: \(error)", sourceLocation: sourceLocation)
    }
    // Every strict prefix must throw (and never crash).
    let acceptedPrefixes = (0..<bytes.count).filter { (try? T(canonicalBytes: Array(bytes.prefix($0)))) != nil }
    #expect(acceptedPrefixes.isEmpty, "prefixes of lengths \(acceptedPrefixes) decoded", sourceLocation: sourceLocation)
    for extra: [UInt8] in [[0], [1], [0xFF, 0xFF]] {
        expectDecodingError(.trailingBytes(count: extra.count), sourceLocation: sourceLocation) { _ = try T(canonicalBytes: bytes + extra) }
    }
}

@Suite("Canonical encoding")
struct CanonicalEncodingTests {
    // MARK: layout

    @Test("integers are fixed-width big-endian")
    func integerLayout() {
        var w = CanonicalWriter()
        w.write(UInt8(0xAB))
        w.write(UInt16(0x0102))
        w.write(UInt32(0x0304_0506))
        w.write(UInt64(0x0708_090A_0B0C_0D0E))
        w.write(Int64(-2))
        w.write(true)
        w.write(false)
        #expect(w.bytes == [0xAB, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 1, 0])

        var r = CanonicalReader(w.bytes)
        #expect((try? r.read() as UInt8) == 0xAB)
        #expect((try? r.read() as UInt16) == 0x0102)
        #expect((try? r.read() as UInt32) == 0x0304_0506)
        #expect((try? r.read() as UInt64) == 0x0708_090A_0B0C_0D0E)
        #expect((try? r.read() as Int64) == -2)
        #expect((try? r.read() as Bool) == true)
        #expect((try? r.read() as Bool) == false)
        #expect(r.isAtEnd)
    }

    @Test("strings, arrays, optionals and enum tags have the documented layout")
    func compositeLayout() {
        // String: 32-bit byte length, then UTF-8 (not UTF-16, not a character count).
        #expect("hé".canonicalBytes == [0, 0, 0, 3, 0x68, 0xC3, 0xA9])
        #expect("".canonicalBytes == [0, 0, 0, 0])
        #expect(Organisation(id: "a", name: "", kind: "bc").canonicalBytes == [0, 0, 0, 1, 0x61, 0, 0, 0, 0, 0, 0, 0, 2, 0x62, 0x63])
        #expect(GovernanceParameters(adminQuorum: 2).canonicalBytes == [0, 0, 0, 2])
        #expect(Role.device.canonicalBytes == [5])
        #expect(AccountStatus.revoked.canonicalBytes == [3])
        #expect(GovernanceAction.setAdminQuorum(0x0102_0304).canonicalBytes == [4, 1, 2, 3, 4])
        #expect(TransactionPayload.approveProposal(ApproveProposal(proposal: Fixture.hash(0xEE))).canonicalBytes == [5] + [UInt8](repeating: 0xEE, count: 32))
        // Public keys: algorithm tag then the fixed-length key, no length prefix.
        let ed = Fixture.ed25519(1).publicKey
        #expect(ed.canonicalBytes == [1] + ed.bytes && ed.canonicalBytes.count == 33)
        let p = Fixture.p256(1).publicKey
        #expect(p.canonicalBytes == [2] + p.bytes && p.canonicalBytes.count == 34)
        // Arrays: 32-bit count.
        #expect([UInt64(1), 2].canonicalBytes == [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2])
        // Optionals: presence byte.
        let open = Proposal(id: Fixture.hash(1), action: .setAdminQuorum(1), proposer: Fixture.address(2), approvals: [], status: .open, createdAtHeight: 1)
        #expect(open.canonicalBytes.suffix(2) == [0, 0])
        var closed = open
        closed.closedAtHeight = 5
        closed.failure = "x"
        #expect(closed.canonicalBytes.suffix(15) == [1, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 1, 0x78])
    }

    // MARK: round trips

    @Test("every transaction payload kind round-trips", arguments: Fixture.allPayloads)
    func payloadRoundTrip(_ payload: TransactionPayload) {
        expectCanonicalRoundTrip(payload)
        let tx = Fixture.transaction(payload: payload)
        expectCanonicalRoundTrip(tx)
        expectCanonicalRoundTrip(SignedTransaction(transaction: tx, signature: Fixture.signature(0x5C)))
    }

    @Test("the fixtures cover every payload kind and governance action")
    func fixtureCoverage() {
        #expect(Set(Fixture.allPayloads.map(\.kind)) == Set(TransactionPayload.kinds))
        #expect(Set(Fixture.allGovernanceActions.map(\.name)).count == 8)
        // Every payload and action has a distinct tag byte.
        #expect(Set(Fixture.allPayloads.map { $0.canonicalBytes[0] }) == Set(1...55))
        #expect(Set(Fixture.allGovernanceActions.map { $0.canonicalBytes[0] }) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test("every governance action round-trips", arguments: Fixture.allGovernanceActions)
    func governanceRoundTrip(_ action: GovernanceAction) {
        expectCanonicalRoundTrip(action)
    }

    @Test("headers, commits, accounts, proposals and the other records round-trip")
    func recordRoundTrips() {
        expectCanonicalRoundTrip(Fixture.header)
        expectCanonicalRoundTrip(BlockHeader(chainID: "", height: 0, previousHash: .zero, transactionsRoot: MerkleTree.emptyRoot, transactionCount: 0, stateRoot: .zero, validatorsHash: .zero, timestampMs: .min, proposer: .zero))
        expectCanonicalRoundTrip(Commit(height: 9, round: 2, blockHash: Fixture.hash(7), signatures: []))
        expectCanonicalRoundTrip(Commit(height: .max, round: .max, blockHash: Fixture.hash(7), signatures: [
            CommitSignature(validator: Fixture.ed25519(1).publicKey, signature: Fixture.signature(1)),
            CommitSignature(validator: Fixture.p256(2).publicKey, signature: Fixture.signature(2)),
        ]))
        expectCanonicalRoundTrip(Fixture.account)
        for action in Fixture.allGovernanceActions {
            expectCanonicalRoundTrip(Proposal(id: Fixture.hash(9), action: action, proposer: Fixture.address(1), approvals: [Fixture.address(1), Fixture.address(2)], status: .open, createdAtHeight: 3))
        }
        expectCanonicalRoundTrip(Proposal(id: Fixture.hash(9), action: .setAdminQuorum(2), proposer: Fixture.address(1), approvals: [], status: .executed, createdAtHeight: 3, closedAtHeight: 4))
        expectCanonicalRoundTrip(Proposal(id: Fixture.hash(9), action: .setAdminQuorum(2), proposer: Fixture.address(1), approvals: [Fixture.address(3)], status: .failed, createdAtHeight: 3, closedAtHeight: 4, failure: "already-exists: organisation \"x\""))
        expectCanonicalRoundTrip(Fixture.organisation)
        expectCanonicalRoundTrip(Fixture.validator)
        expectCanonicalRoundTrip(Fixture.consensus)
        expectCanonicalRoundTrip(GovernanceParameters(adminQuorum: 3))
        expectCanonicalRoundTrip(AddressSet([Fixture.address(9), Fixture.address(1), Fixture.address(5), Fixture.address(1)]))
        expectCanonicalRoundTrip(InclusionProof(leafIndex: 3, treeSize: 7, path: [Fixture.hash(1), Fixture.hash(2)]))
        expectCanonicalRoundTrip([Fixture.validator, Validator(publicKey: Fixture.p256(7).publicKey, organisation: "b", power: 1)])
        for role in Role.allCases { expectCanonicalRoundTrip(role) }
        for status in AccountStatus.allCases { expectCanonicalRoundTrip(status) }
        for status in [Proposal.Status.open, .executed, .failed] { expectCanonicalRoundTrip(status) }
    }

    @Test("random transactions round-trip exactly and re-encode to identical bytes")
    func randomTransactionsRoundTrip() async {
        await propertyCheck(count: 300, input: Generators.transaction) { tx in
            let bytes = tx.canonicalBytes
            let decoded = try #require(try? Transaction(canonicalBytes: bytes))
            #expect(decoded == tx)
            #expect(decoded.canonicalBytes == bytes)
            #expect(decoded.hash == tx.hash)
            // Byte-exact, not merely equal up to Unicode canonical equivalence.
            #expect(Array(decoded.chainID.utf8) == Array(tx.chainID.utf8))
            if case .registerAccount(let a) = tx.payload, case .registerAccount(let b) = decoded.payload {
                #expect(Array(a.label.utf8) == Array(b.label.utf8))
                #expect(a.role == b.role)
            }
            let signed = SignedTransaction(transaction: tx, signature: Signature(bytes: tx.hash.bytes + tx.hash.bytes)!)
            let sb = signed.canonicalBytes
            #expect((try? SignedTransaction(canonicalBytes: sb))?.canonicalBytes == sb)
            #expect((try? SignedTransaction(canonicalBytes: sb + [0])) == nil)
            #expect((try? SignedTransaction(canonicalBytes: Array(sb.dropLast()))) == nil)
        }
    }

    @Test("a mutated encoding either is refused or re-encodes to exactly the mutated bytes")
    func mutatedEncodingsAreCanonical() async {
        let gen = Generator<([UInt8], Int, UInt8), Shrink.None<([UInt8], Int, UInt8)>> { rng in
            let tx = rng.transaction()
            let bytes = SignedTransaction(transaction: tx, signature: Signature(bytes: rng.bytes(64...64))!).canonicalBytes
            return (bytes, Int.random(in: 0..<bytes.count, using: &rng), UInt8.random(in: 1...255, using: &rng))
        }
        await propertyCheck(count: 400, input: gen) { bytes, index, xor in
            var mutated = bytes
            mutated[index] ^= xor
            if let decoded = try? SignedTransaction(canonicalBytes: mutated) {
                #expect(decoded.canonicalBytes == mutated)
                #expect(decoded.canonicalBytes != bytes)
            }
        }
    }

    // MARK: strict decoding

    @Test("trailing bytes are refused")
    func trailingBytes() {
        let bytes = Fixture.header.canonicalBytes
        expectDecodingError(.trailingBytes(count: 1)) { _ = try BlockHeader(canonicalBytes: bytes + [0]) }
        expectDecodingError(.trailingBytes(count: 3)) { _ = try BlockHeader(canonicalBytes: bytes + [1, 2, 3]) }
        expectDecodingError(.trailingBytes(count: 1)) { _ = try String(canonicalBytes: "abc".canonicalBytes + [0]) }
    }

    @Test("every prefix of a valid encoding throws unexpectedEnd", arguments: Fixture.allPayloads)
    func truncation(_ payload: TransactionPayload) {
        let bytes = SignedTransaction(transaction: Fixture.transaction(payload: payload), signature: Fixture.signature(3)).canonicalBytes
        for n in 0..<bytes.count {
            do {
                _ = try SignedTransaction(canonicalBytes: Array(bytes.prefix(n)))
                Issue.record("prefix of length \(n) of \(bytes.count) decoded")
            } catch {
                guard case .unexpectedEnd = error else {
                    Issue.record("prefix \(n): expected unexpectedEnd, got \(error)")
                    continue
                }
            }
        }
    }

    @Test("an optional's presence byte must be 0 or 1")
    func badPresenceByte() {
        var p = Proposal(id: Fixture.hash(1), action: .setAdminQuorum(1), proposer: Fixture.address(2), approvals: [], status: .open, createdAtHeight: 1)
        var bytes = p.canonicalBytes
        let closedAt = bytes.count - 2 // closedAtHeight's presence byte, then failure's
        #expect(Array(bytes.suffix(2)) == [0, 0])
        for bad: UInt8 in [2, 0x80, 0xFF] {
            var b = bytes
            b[closedAt] = bad
            expectDecodingError(.invalidPresenceByte(bad, offset: closedAt)) { _ = try Proposal(canonicalBytes: b) }
            b = bytes
            b[closedAt + 1] = bad
            expectDecodingError(.invalidPresenceByte(bad, offset: closedAt + 1)) { _ = try Proposal(canonicalBytes: b) }
        }
        // "Present" with no value behind it is a truncation, not a nil.
        bytes[closedAt + 1] = 1
        expectDecodingError(.unexpectedEnd(needed: 4, offset: bytes.count)) { _ = try Proposal(canonicalBytes: bytes) }
        p.failure = ""
        #expect((try? Proposal(canonicalBytes: p.canonicalBytes)) == p)
    }

    @Test("booleans must be 0 or 1")
    func badBool() {
        expectDecodingError(.invalidBool(2, offset: 1)) {
            var r = CanonicalReader([1, 2])
            _ = try r.read() as Bool
            _ = try r.read() as Bool
        }
    }

    @Test("unknown enum tags are refused")
    func unknownTags() {
        func mutate<T: CanonicalCodable>(_ v: T, at i: Int = 0, to tag: UInt8, as _: T.Type = T.self) -> [UInt8] {
            var b = v.canonicalBytes
            b[i] = tag
            return b
        }
        let payload = Fixture.allPayloads[0]
        for tag: UInt8 in [0, 56, 0x7F, 0xFF] {
            expectDecodingError(.unknownTag(type: "TransactionPayload", tag: tag)) { _ = try TransactionPayload(canonicalBytes: mutate(payload, to: tag)) }
        }
        let action = TransactionPayload.proposeGovernance(.setAdminQuorum(2))
        for tag: UInt8 in [0, 9, 0xFF] {
            expectDecodingError(.unknownTag(type: "GovernanceAction", tag: tag)) { _ = try TransactionPayload(canonicalBytes: mutate(action, at: 1, to: tag)) }
        }
        for tag: UInt8 in [0, 10, 0xFF] {
            expectDecodingError(.unknownTag(type: "Role", tag: tag)) { _ = try Role(canonicalBytes: [tag]) }
        }
        for tag: UInt8 in [0, 4, 0xFF] {
            expectDecodingError(.unknownTag(type: "AccountStatus", tag: tag)) { _ = try AccountStatus(canonicalBytes: [tag]) }
            expectDecodingError(.unknownTag(type: "ProposalStatus", tag: tag)) { _ = try Proposal.Status(canonicalBytes: [tag]) }
        }
        for tag: UInt8 in [0, 3, 0xFF] {
            expectDecodingError(.unknownTag(type: "SignatureAlgorithm", tag: tag)) { _ = try PublicKey(canonicalBytes: mutate(Fixture.ed25519(1).publicKey, to: tag)) }
        }
        // Inside a transaction: the payload tag follows chainID, sender (20), signerKey (33) and nonce (8).
        let tx = Fixture.transaction()
        let tagOffset = 4 + Fixture.chainID.utf8.count + 20 + 33 + 8
        #expect(tx.canonicalBytes[tagOffset] == 1)
        expectDecodingError(.unknownTag(type: "TransactionPayload", tag: 0x7F)) { _ = try Transaction(canonicalBytes: mutate(tx, at: tagOffset, to: 0x7F)) }
        // A role inside a RegisterAccount: after the payload tag and the 33-byte key.
        expectDecodingError(.unknownTag(type: "Role", tag: 0)) { _ = try Transaction(canonicalBytes: mutate(tx, at: tagOffset + 1 + 33, to: 0)) }
    }

    @Test("invalid UTF-8 is refused", arguments: [
        [0xFF], [0x80], [0xC3, 0x28], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xE2, 0x82], [0x61, 0xFE, 0x62],
    ] as [[UInt8]])
    func invalidUTF8(_ raw: [UInt8]) {
        var w = CanonicalWriter()
        w.writeBytes(raw)
        expectDecodingError(.invalidUTF8(offset: 0)) { _ = try String(canonicalBytes: w.bytes) }
        // Inside a record: Organisation.name follows id "ab" (4 + 2 bytes).
        var o = CanonicalWriter()
        o.write("ab")
        o.writeBytes(raw)
        o.write("hospital")
        expectDecodingError(.invalidUTF8(offset: 6)) { _ = try Organisation(canonicalBytes: o.bytes) }
    }

    @Test("valid UTF-8, including NUL and 4-byte scalars, is accepted byte for byte")
    func validUTF8() throws {
        for s in ["", "\u{0}", "a\u{0}b", "é", "e\u{301}", "日本語", "🏥🩺", "\u{10FFFF}"] {
            let decoded = try String(canonicalBytes: s.canonicalBytes)
            #expect(Array(decoded.utf8) == Array(s.utf8))
        }
    }

    @Test("no Unicode normalisation: canonically equivalent strings are different bytes and different transactions")
    func noNormalisation() throws {
        let nfc = "caf\u{E9}", nfd = "cafe\u{301}"
        #expect(nfc == nfd) // Swift's String equality is canonical equivalence…
        #expect(nfc.canonicalBytes != nfd.canonicalBytes) // …but the wire form keeps the bytes that were sent.
        let a = Fixture.transaction(payload: .registerAccount(RegisterAccount(publicKey: Fixture.ed25519(1).publicKey, role: .device, organisation: "o", label: nfc)))
        var b = a
        b.payload = .registerAccount(RegisterAccount(publicKey: Fixture.ed25519(1).publicKey, role: .device, organisation: "o", label: nfd))
        #expect(a.hash != b.hash)
        let decoded = try Transaction(canonicalBytes: b.canonicalBytes)
        #expect(decoded.canonicalBytes == b.canonicalBytes && decoded.hash == b.hash)
    }

    @Test("huge length prefixes fail fast without allocating")
    func hugeLengths() {
        // A string claiming 4 GiB.
        expectDecodingError(.lengthTooLarge(Int(UInt32.max), limit: 16 << 20)) { _ = try String(canonicalBytes: [0xFF, 0xFF, 0xFF, 0xFF, 0x61]) }
        // Within the limit but past the end of the input: refused before reading.
        expectDecodingError(.unexpectedEnd(needed: 16 << 20, offset: 4)) { _ = try String(canonicalBytes: [0x01, 0x00, 0x00, 0x00, 0x61]) }
        // A caller-chosen limit.
        expectDecodingError(.lengthTooLarge(5, limit: 4)) { _ = try String(canonicalBytes: "hello".canonicalBytes, maxLength: 4) }
        #expect((try? String(canonicalBytes: "hell".canonicalBytes, maxLength: 4)) == "hell")
        // Array counts are bounded by the remaining input, so reserveCapacity cannot explode.
        var commit = Commit(height: 1, blockHash: Fixture.hash(1), signatures: []).canonicalBytes
        let countAt = commit.count - 4
        commit.replaceSubrange(countAt..., with: [0xFF, 0xFF, 0xFF, 0xFF])
        expectDecodingError(.unexpectedEnd(needed: Int(UInt32.max), offset: commit.count)) { _ = try Commit(canonicalBytes: commit) }
        expectDecodingError(.unexpectedEnd(needed: Int(UInt32.max), offset: 4)) { _ = try AddressSet(canonicalBytes: [0xFF, 0xFF, 0xFF, 0xFF]) }
        var proof = InclusionProof(leafIndex: 0, treeSize: 1, path: []).canonicalBytes
        proof.replaceSubrange(16..., with: [0x7F, 0xFF, 0xFF, 0xFF, 0])
        expectDecodingError(.unexpectedEnd(needed: 0x7FFF_FFFF, offset: 20)) { _ = try InclusionProof(canonicalBytes: proof) }
        // The same transaction with the chain id's length set to the maximum.
        var tx = Fixture.transaction().canonicalBytes
        tx.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0xFF])
        expectDecodingError(.lengthTooLarge(Int(UInt32.max), limit: 16 << 20)) { _ = try Transaction(canonicalBytes: tx) }
    }

    @Test("values the type forbids are refused: off-curve keys, unsorted address sets")
    func invalidValues() {
        // A P-256 key whose x coordinate is the field prime: not a point.
        var key = Fixture.p256(1).publicKey.canonicalBytes
        key.replaceSubrange(2..., with: Hex.decode("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff")!)
        do {
            _ = try PublicKey(canonicalBytes: key)
            Issue.record("off-curve key decoded")
        } catch {
            guard case .invalidValue = error else { Issue.record("expected invalidValue, got \(error)"); return }
        }
        var w = CanonicalWriter()
        w.write([Fixture.address(2), Fixture.address(1)])
        expectDecodingError(.invalidValue("address set not sorted and distinct")) { _ = try AddressSet(canonicalBytes: w.bytes) }
        w = CanonicalWriter()
        w.write([Fixture.address(1), Fixture.address(1)])
        expectDecodingError(.invalidValue("address set not sorted and distinct")) { _ = try AddressSet(canonicalBytes: w.bytes) }
    }

    @Test("random bytes never crash the decoder")
    func randomGarbage() async {
        let gen = Generator<[UInt8], Shrink.None<[UInt8]>> { rng in
            // Small length prefixes so decoding gets past the first field now and then.
            var b = rng.bytes(0...200)
            if b.count >= 4, Bool.random(using: &rng) { b[0] = 0; b[1] = 0; b[2] = 0; b[3] = UInt8.random(in: 0...12, using: &rng) }
            return b
        }
        await propertyCheck(count: 300, input: gen) { bytes in
            if let t = try? SignedTransaction(canonicalBytes: bytes) { #expect(t.canonicalBytes == bytes) }
            if let h = try? BlockHeader(canonicalBytes: bytes) { #expect(h.canonicalBytes == bytes) }
            if let p = try? Proposal(canonicalBytes: bytes) { #expect(p.canonicalBytes == bytes) }
        }
    }
}
