import ArgumentParser
import Dispatch
import Foundation
import IoMTContracts
import IoMTCore

/// `iomtchain bench-supply-chain`: trace-back and trace-forward over a supply chain of a million
/// units (issue 6's goal: under 50 ms). The chain state is built in memory by the real contracts
/// (materials, dose batches, two custody transfers each, every unit administered to one of 10,000
/// enrolled patients); the trace is the node's `GET /v1/batches/{id}/trace` query (`BatchTrace`).
struct BenchSupplyChainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-supply-chain", abstract: "Time supply-chain traces over a million units built by the real contracts (in memory).")
    @Option(help: "Dose batches.") var batches = 1_000
    @Option(help: "Units per dose batch (all administered).") var units = 1_000
    @Option(help: "Material lots (each dose batch is made from one).") var materials = 10
    @Option(help: "Enrolled patients the doses go to.") var patients = 10_000
    @Option(help: "Timed repetitions of each trace.") var repetitions = 21

    func run() async throws {
        let chainID = "iomt-bench"
        let admin = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 1, count: 32))
        let makerAdmin = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 2, count: 32))
        let carrierAdmin = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 3, count: 32))
        let nurse = try PrivateKey(algorithm: .ed25519, rawBytes: [UInt8](repeating: 4, count: 32))
        let genesis = Genesis(chainId: chainID, genesisTimeMs: 1_700_000_000_000,
                              organisations: [Organisation(id: "hospital", name: "Hospital", kind: "hospital"), Organisation(id: "pharma", name: "Pharma", kind: "manufacturer"),
                                              Organisation(id: "logistics", name: "Logistics", kind: "distributor")],
                              admins: [.init(publicKey: admin.publicKey, organisation: "hospital"), .init(publicKey: makerAdmin.publicKey, organisation: "pharma"),
                                       .init(publicKey: carrierAdmin.publicKey, organisation: "logistics")],
                              adminQuorum: 1, validators: [Validator(publicKey: admin.publicKey, organisation: "hospital")], consensus: ConsensusParameters())
        var state = genesis.initialState()
        var nonces: [Address: UInt64] = [:]
        var height: UInt64 = 1
        let now: Int64 = 1_700_000_001_000
        let unsigned = Signature(bytes: [UInt8](repeating: 0, count: 64))!  // execution does not check signatures (admission does)
        func run(_ items: [(PrivateKey, TransactionPayload)], signed: Bool = false) throws {
            var overlay = StateOverlay(base: state)
            let context = ExecutionContext(chainID: chainID, height: height, timestampMs: now)
            for (key, payload) in items {
                let a = key.publicKey.address
                let tx = Transaction(chainID: chainID, sender: a, signerKey: key.publicKey, nonce: nonces[a, default: 0], payload: payload)
                nonces[a, default: 0] += 1
                do { try Runtime.apply(signed ? tx.signed(with: key) : SignedTransaction(transaction: tx, signature: unsigned), to: &overlay, context: context) } catch {
                    throw CLIError("\(payload.kind) refused: \(error)")
                }
            }
            state = overlay.committed()
            height += 1
        }
        let t0 = DispatchTime.now()
        try run([(admin, .registerAccount(RegisterAccount(publicKey: nurse.publicKey, role: .practitioner, organisation: "hospital"))),
                 (admin, .attestPractitioner(AttestPractitioner(account: nurse.publicKey.address, profession: "nurse", licenceHash: Hash.sha256([1]))))])
        var subjects: [Hash] = []
        for chunk in stride(from: 0, to: patients, by: 1_000) {
            var items: [(PrivateKey, TransactionPayload)] = []
            for i in chunk..<min(patients, chunk + 1_000) {
                var seed = [UInt8](repeating: 0, count: 32)
                withUnsafeBytes(of: UInt64(i + 1).bigEndian) { seed.replaceSubrange(24..<32, with: $0) }
                let key = try PrivateKey(algorithm: .ed25519, rawBytes: seed)
                let x = try X25519Key(bytes: Array(Hash.sha256(seed).bytes))
                items.append((admin, .registerPatient(RegisterPatient(signedBy: key, agreementKey: x, chainID: chainID, organisation: "hospital"))))
                subjects.append(Pseudonym.of(key.publicKey.address))
            }
            try run(items)
        }
        let gtin = "09506000134352"
        func batch(_ lot: String, units: Int, materials: [Hash]) -> RegisterBatch {
            RegisterBatch(gtin: gtin, lot: lot, productCode: "CVX208", units: UInt32(units), serialsRoot: Hash.sha256(Array(lot.utf8)), materials: materials,
                          manufacturedMs: now - 1_000, expiresMs: now + 365 * 86_400_000, minCentiC: -8_000, maxCentiC: -6_000)
        }
        let materialIDs = (0..<materials).map { GS1.batchID(gtin: gtin, lot: "M-\($0)") }
        try run((0..<materials).map { (makerAdmin, .registerBatch(batch("M-\($0)", units: 1_000, materials: []))) })
        var doseIDs: [Hash] = []
        for chunk in stride(from: 0, to: batches, by: 100) {
            var items: [(PrivateKey, TransactionPayload)] = []
            for i in chunk..<min(batches, chunk + 100) {
                let b = batch("D-\(i)", units: units, materials: [materialIDs[i % materials]])
                doseIDs.append(b.id)
                items.append((makerAdmin, .registerBatch(b)))
                // Maker → logistics → hospital, each countersigned by the receiver.
                for (seq, from, to) in [(UInt64(1), makerAdmin, carrierAdmin), (2, carrierAdmin, admin)] {
                    let m = TransferCustody.message(chainID: chainID, batch: b.id, units: UInt32(units), sender: from.publicKey.address, receiver: to.publicKey.address, sequence: seq, validUntilMs: now + 1)
                    items.append((from, .transferCustody(TransferCustody(batch: b.id, units: UInt32(units), receiver: to.publicKey.address, sequence: seq, validUntilMs: now + 1, receiverSignature: to.sign(m)))))
                }
            }
            try run(items)
        }
        var dose = 0
        for id in doseIDs {
            var items: [(PrivateKey, TransactionPayload)] = []
            for u in 0..<units {
                items.append((nurse, .administerDose(AdministerDose(batch: id, subject: subjects[dose % subjects.count], serialHash: Hash.sha256(Array("\(id)-\(u)".utf8)), atMs: now))))
                dose += 1
            }
            try run(items)
        }
        let built = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
        print(String(format: "built: %d dose batches × %d units = %d units administered to %d patients, %d material lots, 2 custody transfers per batch, in %.1f s (%d state values)",
                     batches, units, batches * units, patients, materials, built, state.count))
        fflush(nil)

        func time(_ what: String, _ id: Hash, check: (BatchTrace) -> Bool) throws {
            var samples: [Double] = []
            var last: BatchTrace?
            for _ in 0..<repetitions {
                let t = DispatchTime.now()
                last = try BatchTrace.of(id, in: state)
                samples.append(Double(DispatchTime.now().uptimeNanoseconds - t.uptimeNanoseconds) / 1e6)
            }
            guard let last, check(last) else { throw CLIError("\(what): unexpected trace") }
            let p = Percentiles(samples)
            print(String(format: "%@: p50 %.2f ms, p99 %.2f ms over %d runs — %d materials, %d derived batches, %d organisations, %d patients, %d administrations%@",
                         what, p.p50, p.p99, samples.count, last.materials.count, last.derived.count, last.organisations.count, last.patients.count, last.administrations, last.truncated ? " (truncated)" : ""))
            fflush(nil)
        }
        try time("trace back from a dose batch", doseIDs[batches / 2]) { $0.materials.count == 1 && $0.administrations == UInt64(units) }
        try time("trace forward from a dose batch", doseIDs[batches / 2]) { $0.patients.count == min(units, patients) && $0.organisations.count == 3 }
        try time("trace forward from a material lot", materialIDs[0]) { $0.derived.count == (batches + materials - 1) / materials }
    }
}
