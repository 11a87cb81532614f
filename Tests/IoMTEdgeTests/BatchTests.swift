import Crypto
import IoMTCore
@testable import IoMTEdge
import Testing

@Suite("reading batches and sealed blobs")
struct BatchTests {
    static let gateway = Address(bytes: [UInt8](repeating: 0x6A, count: 20))!
    static let device = Address(bytes: [UInt8](repeating: 0x6B, count: 20))!

    static func readings(_ n: Int, firstSequence: UInt64 = 1) -> [BatchedReading] {
        (0..<n).map { i in
            BatchedReading(gateway: gateway, device: device, sequence: firstSequence + UInt64(i), reading:
                Reading(kind: .heartRate, code: .loinc("8867-4"), effectiveMs: 1_700_000_000_000 + Int64(i) * 1000,
                        values: [Measurement(code: .loinc("8867-4"), value: DecimalValue(Int64(60 + i % 50)), unit: "/min")], sourceID: "r\(i)"))
        }
    }

    @Test("identical readings at other sequence numbers make another root: batches never collide on-chain")
    func uniqueRoots() {
        let a = ReadingBatch(Self.readings(1, firstSequence: 1)), b = ReadingBatch(Self.readings(1, firstSequence: 2))
        #expect(a.readings[0].reading == b.readings[0].reading && a.root != b.root)
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
            altered.reading.values[0].value = DecimalValue(mantissa: altered.reading.values[0].value.mantissa + 1, exponent: 0)
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

    @Test("batches are compressed before encryption: a 1,000-reading blob is several times smaller than its readings, and opens to them")
    func compressed() throws {
        let readings = Self.readings(1_000)
        let key = Self.key(1)
        let plainSize = readings.canonicalBytes.count
        let zipped = try SealedBlob.seal(readings, dataKey: SymmetricKey(size: .bits256), nonce: [UInt8](repeating: 1, count: 12), recipients: [key.publicKey], ephemerals: [Self.key(4)])
        let raw = try SealedBlob.seal(readings, dataKey: SymmetricKey(size: .bits256), nonce: [UInt8](repeating: 1, count: 12), recipients: [key.publicKey], ephemerals: [Self.key(4)], compression: .none)
        #expect(zipped.compression == .zlib && raw.compression == .none)
        #expect(raw.bytes.count > plainSize)
        #expect(zipped.bytes.count * 3 < plainSize, "\(zipped.bytes.count) bytes sealed from \(plainSize)")
        #expect(try SealedBlob(bytes: zipped.bytes).open(with: key) == readings)
        #expect(try SealedBlob(bytes: raw.bytes).open(with: key) == readings)
        // The compression byte is authenticated: flipping it fails, it is not silently misread.
        var flipped = zipped.bytes
        flipped[1] = 0
        #expect(throws: BlobError.authenticationFailed) { try SealedBlob(bytes: flipped).open(with: key) }
        flipped[1] = 9
        #expect(throws: BlobError.malformed("compression 9")) { try SealedBlob(bytes: flipped) }
    }

    @Test("zlib: round trip; a decompression bomb, truncated and trailing data are refused with a reason")
    func deflate() throws {
        let text = Array(String(repeating: "8867-4 /min heart-rate ", count: 500).utf8)
        let z = Deflate.compress(text)
        #expect(z.count < text.count / 10)
        #expect(try Deflate.decompress(z, maxOutput: text.count) == text)
        #expect(throws: Deflate.Failure.tooLarge(text.count - 1)) { try Deflate.decompress(z, maxOutput: text.count - 1) }
        let bomb = Deflate.compress([UInt8](repeating: 0, count: 8 << 20))
        #expect(bomb.count < 64 << 10)
        #expect(throws: Deflate.Failure.tooLarge(1 << 20)) { try Deflate.decompress(bomb, maxOutput: 1 << 20) }
        #expect(throws: Deflate.Failure.self) { try Deflate.decompress(Array(z.dropLast(3)), maxOutput: 1 << 20) }
        #expect(throws: Deflate.Failure.self) { try Deflate.decompress(z + [0], maxOutput: 1 << 20) }
        #expect(throws: Deflate.Failure.self) { try Deflate.decompress([1, 2, 3, 4], maxOutput: 1 << 20) }
        #expect(try Deflate.decompress(Deflate.compress([]), maxOutput: 0) == [])
    }
}

@Suite("edge alarms")
struct AlarmTests {
    static let device = Address(bytes: [UInt8](repeating: 7, count: 20))!
    static func spo2(_ v: Int64, at t: Int64 = 0) -> Reading {
        Reading(kind: .oxygenSaturation, code: .loinc("2708-6"), effectiveMs: t, values: [Measurement(code: .loinc("2708-6"), value: DecimalValue(v), unit: "%")])
    }

    @Test("SpO2 below 90 raises once; values between 90 and 92 change nothing (hysteresis); 92 clears")
    func hysteresis() {
        var t = AlarmTracker()
        #expect(t.observe(Self.spo2(95), device: Self.device, subject: nil).isEmpty)
        let raised = t.observe(Self.spo2(88), device: Self.device, subject: nil)
        #expect(raised.map(\.state) == [.raised] && raised[0].rule == "spo2-low" && raised[0].severity == "critical" && raised[0].value == "88")
        #expect(t.isAlarming(Self.device))
        for v: Int64 in [87, 89, 90, 91, 89, 91] { #expect(t.observe(Self.spo2(v), device: Self.device, subject: nil).isEmpty, "\(v)") }
        #expect(t.observe(Self.spo2(92), device: Self.device, subject: nil).map(\.state) == [.cleared])
        #expect(!t.isAlarming(Self.device))
        #expect(t.observe(Self.spo2(91), device: Self.device, subject: nil).isEmpty, "91 is not below 90: no new alarm")
    }

    @Test("blood pressure watches its systolic component; other units and kinds are ignored; devices are separate")
    func components() {
        var t = AlarmTracker()
        let bp = Reading(kind: .bloodPressure, code: .loinc("85354-9"), effectiveMs: 0, values: [
            Measurement(code: .loinc("8480-6"), value: DecimalValue(190), unit: "mm[Hg]"), Measurement(code: .loinc("8462-4"), value: DecimalValue(100), unit: "mm[Hg]")])
        #expect(t.observe(bp, device: Self.device, subject: nil).map(\.rule) == ["systolic-high"])
        let f = Reading(kind: .bodyTemperature, code: .loinc("8310-5"), effectiveMs: 0, values: [Measurement(code: .loinc("8310-5"), value: DecimalValue(104), unit: "[degF]")])
        #expect(t.observe(f, device: Self.device, subject: nil).isEmpty, "rules apply to their own unit only")
        let other = Address(bytes: [UInt8](repeating: 8, count: 20))!
        #expect(t.observe(Self.spo2(80), device: other, subject: nil).count == 1)
        #expect(t.observe(Self.spo2(80), device: Self.device, subject: nil).count == 1)
    }

    @Test("a patient-specific rule replaces the general one for that patient only; bad rule sets are refused")
    func perPatient() throws {
        let copd = Hash.sha256([1])
        var rules = AlarmRule.defaults
        rules.append(AlarmRule(id: "spo2-low", kind: .oxygenSaturation, unit: "%", below: 85, clearAt: 88, severity: "critical", subject: copd))
        try AlarmRule.validate(rules)
        var t = AlarmTracker(rules: rules)
        #expect(t.observe(Self.spo2(87), device: Self.device, subject: copd).isEmpty, "this patient's threshold is 85")
        #expect(t.observe(Self.spo2(84), device: Self.device, subject: copd).count == 1)
        let other = Address(bytes: [UInt8](repeating: 9, count: 20))!
        #expect(t.observe(Self.spo2(87), device: other, subject: Hash.sha256([2])).count == 1, "everyone else keeps 90")
        #expect(throws: IngestError.self) { try AlarmRule.validate([AlarmRule(id: "x", kind: .heartRate, unit: "/min", above: 100, clearAt: 120)]) }
        var both = AlarmRule(id: "y", kind: .heartRate, unit: "/min", above: 100, clearAt: 90)
        both.below = 30
        #expect(throws: IngestError.self) { try AlarmRule.validate([both]) }
    }
}
