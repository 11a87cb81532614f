import Crypto
import IoMTCore
@testable import IoMTEdge
import Testing

@Suite("reading batches and sealed blobs")
struct BatchTests {
    static func readings(_ n: Int) -> [Reading] {
        (0..<n).map { i in
            Reading(kind: .heartRate, code: .loinc("8867-4"), effectiveMs: 1_700_000_000_000 + Int64(i) * 1000,
                    values: [Measurement(code: .loinc("8867-4"), value: DecimalValue(Int64(60 + i % 50)), unit: "/min")], sourceID: "r\(i)")
        }
    }

    static func key(_ seed: UInt8) -> Curve25519.KeyAgreement.PrivateKey {
        try! Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: seed, count: 32))
    }

    @Test("every reading of a batch is proven to its root; a changed reading, index or root is not", arguments: [1, 2, 3, 7, 64, 100])
    func proofs(n: Int) throws {
        let batch = ReadingBatch(Self.readings(n))
        for i in 0..<n {
            let p = try #require(batch.proof(i))
            #expect(ReadingBatch.verify(batch.readings[i], proof: p, root: batch.root))
            var altered = batch.readings[i]
            altered.values[0].value = DecimalValue(mantissa: altered.values[0].value.mantissa + 1, exponent: 0)
            #expect(!ReadingBatch.verify(altered, proof: p, root: batch.root))
            #expect(!ReadingBatch.verify(batch.readings[i], proof: p, root: Hash.sha256([1])))
            if n > 1 { #expect(!ReadingBatch.verify(batch.readings[(i + 1) % n], proof: p, root: batch.root)) }
        }
        #expect(batch.firstMs == 1_700_000_000_000 && batch.lastMs == 1_700_000_000_000 + Int64(n - 1) * 1000)
    }

    @Test("a sealed blob opens for each recipient, not for others; any changed byte fails and changes its content id")
    func blobs() throws {
        let readings = Self.readings(20)
        let patient = Self.key(1), gateway = Self.key(2), stranger = Self.key(3)
        let blob = try SealedBlob.seal(readings, dataKey: SymmetricKey(data: [UInt8](repeating: 7, count: 32)), nonce: [UInt8](repeating: 9, count: 12),
                                       recipients: [patient.publicKey, gateway.publicKey], ephemerals: [Self.key(4), Self.key(5)])
        let bytes = blob.bytes
        let parsed = try SealedBlob(bytes: bytes)
        #expect(parsed == blob)
        #expect(try parsed.open(with: patient) == readings)
        #expect(try parsed.open(with: gateway) == readings)
        #expect(throws: BlobError.notARecipient) { try parsed.open(with: stranger) }
        // No reading value appears in clear.
        let plain = readings.canonicalBytes
        #expect(!(0...(bytes.count - 16)).contains { Array(bytes[$0..<$0 + 16]) == Array(plain[40..<56]) })

        let id = blob.contentID
        #expect(id.matches(bytes))
        for i in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
            var t = bytes
            t[i] ^= 0x01
            #expect(!id.matches(t))
            do {
                let b = try SealedBlob(bytes: t)
                _ = try b.open(with: patient)
                Issue.record("byte \(i) changed and the blob still opened")
            } catch {}
        }
        #expect(throws: BlobError.self) { try SealedBlob(bytes: Array(bytes.dropLast())) }
    }
}
