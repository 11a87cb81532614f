import ArgumentParser
import Foundation
import IoMTCore

/// Signs `payload` with the key file's account, submits it and waits for the commit; prints the reply.
func submitAndWait(_ payload: TransactionPayload, keyPath: String, node: String) async throws {
    let key = try KeyFile.load(path: keyPath)
    let client = NodeClient(base: node)
    let chain = try await chainID(of: node)
    let nonce = try await client.get("/v1/accounts/\(key.publicKey.address.hex)", as: TxCommand.AccountReply.self).nextNonce ?? 0
    let tx = Transaction(chainID: chain, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: payload).signed(with: key)
    let r = try await client.request("POST", "/v1/transactions?wait=commit", body: try JSONEncoder().encode(tx))
    guard (200..<300).contains(r.status) else { throw CLIError(client.problemText(r)) }
    print(String(decoding: r.body, as: UTF8.self))
}

/// `iomtchain batch`: the vaccine supply chain from the command line (docs/supply-chain.md).
struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch", abstract: "Register, countersign, transfer, recall and trace supply-chain batches; check a scan.",
        subcommands: [Register.self, Countersign.self, Transfer.self, Recall.self, AttachLogger.self, ReportExcursion.self, Administer.self, AdverseEvent.self,
                      Show.self, Trace.self, Scan.self, ProveSerial.self, Recalls.self, Immunizations.self, AdverseEvents.self])

    struct Administer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An attested practitioner records giving one unit (by its serial) to a patient (by pseudonym).")
        @Option(help: "Practitioner key file.") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "Batch id.") var batch: String
        @Option(help: "The patient's pseudonym.") var subject: String
        @Option(help: "The unit's serial (its SHA-256 goes on-chain).") var serial: String
        func run() async throws {
            guard let s = Hash(hex: subject) else { throw CLIError("--subject is 64 hex digits") }
            guard GS1.isValidLot(serial) else { throw CLIError("--serial is 1…20 letters, digits or -./_") }
            try await submitAndWait(.administerDose(AdministerDose(batch: try BatchCommand.batchID(batch), subject: s, serialHash: Hash.sha256(Array(serial.utf8)), atMs: nowMs())),
                                    keyPath: key, node: node.node)
        }
    }

    struct AdverseEvent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "adverse-event",
                                                        abstract: "The patient, or an attested practitioner of an organisation that received the batch, reports a reaction (in codes).")
        @Option(help: "Key file (the patient's, or a practitioner's).") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "Batch id.") var batch: String
        @Option(help: "The patient's pseudonym.") var subject: String
        @Option(help: "snomed:<code> or meddra:<code>.") var reaction: String
        @Option(help: "\(ReportAdverseEvent.severities.joined(separator: ", ")).") var severity: String
        @Option(help: "Hours ago the reaction began.") var hoursAgo: Int64 = 0
        func run() async throws {
            guard let s = Hash(hex: subject) else { throw CLIError("--subject is 64 hex digits") }
            guard (0...8_760).contains(hoursAgo) else { throw CLIError("--hours-ago is 0…8760") }
            try await submitAndWait(.reportAdverseEvent(ReportAdverseEvent(batch: try BatchCommand.batchID(batch), subject: s, reactionCode: reaction, severity: severity,
                                                                           onsetMs: nowMs() - hoursAgo * 3_600_000)), keyPath: key, node: node.node)
        }
    }

    struct Recalls: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The recall feed: recalls after a number, with who holds units (waits up to --wait-ms for one).")
        @OptionGroup var node: NodeOption
        @Option(help: "After this recall number.") var after: UInt64 = 0
        @Option(help: "Wait up to this long for one (ms, ≤ 60000).") var waitMs = 0
        func run() async throws { try await BatchCommand.get(node.node, "/v1/recalls?after=\(after)&waitMs=\(min(max(waitMs, 0), 60_000))") }
    }

    struct Immunizations: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A batch's administrations as a FHIR R4 Bundle of Immunization (patients by pseudonym).")
        @OptionGroup var node: NodeOption
        @Argument(help: "Batch id.") var batch: String
        func run() async throws { try await BatchCommand.get(node.node, "/v1/batches/\(try BatchCommand.batchID(batch).hex)/immunizations") }
    }

    struct AdverseEvents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "adverse-events", abstract: "A batch's adverse-event reports as a FHIR R4 Bundle of AdverseEvent.")
        @OptionGroup var node: NodeOption
        @Argument(help: "Batch id.") var batch: String
        func run() async throws { try await BatchCommand.get(node.node, "/v1/batches/\(try BatchCommand.batchID(batch).hex)/adverse-events") }
    }

    struct NodeOption: ParsableArguments {
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
    }

    static func batchID(_ s: String) throws -> Hash {
        guard let h = Hash(hex: s) else { throw CLIError("a batch id is 64 hex digits (iomtchain batch scan prints it for a GTIN and lot)") }
        return h
    }

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A manufacturer registers a batch (GTIN, lot, serials) and holds all its units.")
        @Option(help: "The manufacturer's account key file.") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "GTIN-8/12/13/14 with its check digit.") var gtin: String
        @Option(help: "Lot number.") var lot: String
        @Option(help: "Product code (e.g. CVX208).") var productCode: String
        @Option(help: "A file with one unit serial per line (its Merkle root goes on-chain; the units are its line count).") var serials: String
        @Option(help: "Material batch ids, comma-separated.") var materials: String?
        @Option(help: "Days until expiry.") var expiresDays: Int64 = 365
        @Option(help: "Lowest storage temperature (°C).") var minC: Double = 2
        @Option(help: "Highest storage temperature (°C).") var maxC: Double = 8

        func run() async throws {
            let lines = String(decoding: try readInput(serials), as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            guard !lines.isEmpty, Set(lines).count == lines.count, lines.allSatisfy(GS1.isValidLot) else {
                throw CLIError("\(serials): one distinct serial per line (1…20 letters, digits or -./_)")
            }
            let materialIDs = try (materials ?? "").split(separator: ",").map { try BatchCommand.batchID(String($0)) }
            guard (1...18_250).contains(expiresDays) else { throw CLIError("--expires-days is 1…18250 (50 years)") }
            let now = nowMs()
            let b = RegisterBatch(gtin: gtin, lot: lot, productCode: productCode, units: UInt32(lines.count), serialsRoot: MerkleTree.root(leaves: lines.map { Array($0.utf8) }),
                                  materials: materialIDs, manufacturedMs: now, expiresMs: now + expiresDays * 86_400_000,
                                  minCentiC: Int32((minC * 100).rounded()), maxCentiC: Int32((maxC * 100).rounded()))
            FileHandle.standardError.write(Data("batch id \(b.id)\n".utf8))
            try await submitAndWait(.registerBatch(b), keyPath: key, node: node.node)
        }
    }

    struct Countersign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The receiver signs that it takes units of a batch from a sender (prints the signature and its expiry for `batch transfer`).")
        @Option(help: "The receiver's account key file.") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "Batch id.") var batch: String
        @Option(help: "Units.") var units: UInt32
        @Option(help: "The sender's account address.") var sender: String
        @Option(help: "The transfer's sequence (default: the batch's transfer count + 1, from the node).") var sequence: UInt64?
        @Option(help: "Hours the countersignature stays good.") var validHours: Int64 = 24

        func run() async throws {
            let key = try KeyFile.load(path: key)
            let id = try BatchCommand.batchID(batch)
            guard let from = Address(hex: sender) else { throw CLIError("--sender must be 40 hex digits") }
            let seq = try await BatchCommand.sequence(sequence, of: id, node: node.node)
            let until = nowMs() + validHours * 3_600_000
            let message = TransferCustody.message(chainID: try await chainID(of: node.node), batch: id, units: units, sender: from, receiver: key.publicKey.address,
                                                  sequence: seq, validUntilMs: until)
            print(Hex.encode(key.sign(message).bytes), until)
        }
    }

    /// The given sequence, or the batch's transfer count + 1 from the node.
    static func sequence(_ given: UInt64?, of id: Hash, node: String) async throws -> UInt64 {
        if let given { return given }
        guard let bytes = try await stateValue(node, StateKeys.batch(id)), let b = try? BatchRecord(canonicalBytes: bytes) else { throw CLIError("no batch \(id) on the chain") }
        return b.transfers + 1
    }

    struct Transfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The sender moves units to the receiver's organisation, with the receiver's countersignature.")
        @Option(help: "The sender's account key file.") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "Batch id.") var batch: String
        @Option(help: "Units.") var units: UInt32
        @Option(help: "The receiver's account address.") var receiver: String
        @Option(help: "The receiver's countersignature (`batch countersign` prints it, then its expiry).") var receiverSignature: String
        @Option(help: "The countersignature's expiry (ms), as `batch countersign` printed it.") var validUntil: Int64
        @Option(help: "The transfer's sequence (default: from the node).") var sequence: UInt64?

        func run() async throws {
            let id = try BatchCommand.batchID(batch)
            guard let to = Address(hex: receiver) else { throw CLIError("--receiver must be 40 hex digits") }
            guard let sig = Hex.decode(receiverSignature).flatMap(Signature.init(bytes:)) else { throw CLIError("--receiver-signature must be 128 hex digits") }
            let seq = try await BatchCommand.sequence(sequence, of: id, node: node.node)
            try await submitAndWait(.transferCustody(TransferCustody(batch: id, units: units, receiver: to, sequence: seq, validUntilMs: validUntil, receiverSignature: sig)), keyPath: key, node: node.node)
        }
    }

    struct Recall: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The manufacturer or a public-health officer recalls a batch.")
        @Option(help: "Account key file.") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "Batch id.") var batch: String
        @Option(help: "\(RecallBatch.reasonCodes.joined(separator: ", ")).") var reason: String

        func run() async throws {
            try await submitAndWait(.recallBatch(RecallBatch(batch: try BatchCommand.batchID(batch), reasonCode: reason)), keyPath: key, node: node.node)
        }
    }

    struct AttachLogger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "attach-logger",
                                                        abstract: "A holder places its cold-chain logger with units it holds (a storage record); --units 0 takes it off.")
        @Option(help: "Account key file (a supply-chain party or member-admin of the logger's organisation).") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "The logger's device id.") var device: String
        @Option(help: "Batch id.") var batch: String
        @Option(help: "Units the logger watches (0 takes it off the batch).") var units: UInt32
        @Option(help: "A file of the units' serials, one per line (as many as --units): an excursion then quarantines these very units.") var serials: String?
        func run() async throws {
            guard let d = Address(hex: device) else { throw CLIError("--device must be 40 hex digits") }
            var hashes: [Hash] = []
            if let serials {
                let list = try String(contentsOfFile: serials, encoding: .utf8).split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard list.allSatisfy(GS1.isValidLot) else { throw CLIError("--serials: each line is a serial of 1…20 letters, digits or -./_") }
                guard list.count == Int(units) else { throw CLIError("--serials lists \(list.count) serials, --units is \(units)") }
                hashes = list.map { Hash.sha256(Array($0.utf8)) }
            }
            try await submitAndWait(.attachLogger(IoMTCore.AttachLogger(device: d, batch: try BatchCommand.batchID(batch), units: units, serialHashes: hashes)), keyPath: key, node: node.node)
        }
    }

    struct ReportExcursion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "report-excursion",
                                                        abstract: "Report a logger's reading outside the batch's storage range by hand (a gateway reports them at once); its units are quarantined.")
        @Option(help: "Account key file (a supply-chain party of the logger's organisation).") var key: String
        @OptionGroup var node: NodeOption
        @Option(help: "The logger's device id.") var device: String
        @Option(help: "Batch id.") var batch: String
        @Option(help: "The temperature read (°C).") var celsius: Double
        @Option(help: "When (ms since 1970; default now).") var atMs: Int64?
        func run() async throws {
            guard let d = Address(hex: device) else { throw CLIError("--device must be 40 hex digits") }
            let e = IoMTCore.ReportExcursion(device: d, batch: try BatchCommand.batchID(batch), centiC: Int32((celsius * 100).rounded()), atMs: atMs ?? nowMs())
            try await submitAndWait(.reportExcursion(e), keyPath: key, node: node.node)
        }
    }

    struct ProveSerial: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "prove-serial",
                                                        abstract: "The manufacturer's inclusion proof of one serial in a batch's serials root (hex, for a label or a scan).")
        @Option(help: "The batch's serials file (one per line, as registered).") var serials: String
        @Option(help: "The serial.") var serial: String
        func run() async throws {
            let lines = String(decoding: try readInput(serials), as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            guard let i = lines.firstIndex(of: serial), let proof = MerkleTree.proof(leafHashes: lines.map { MerkleTree.leafHash(Array($0.utf8)) }, index: i) else {
                throw CLIError("\(serial) is not in \(serials)")
            }
            print(Hex.encode(proof.canonicalBytes))
        }
    }

    static func get(_ node: String, _ path: String) async throws {
        let client = NodeClient(base: node)
        let r = try await client.request("GET", path)
        guard r.status == 200 else { throw CLIError(client.problemText(r)) }
        print(String(decoding: r.body, as: UTF8.self))
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A batch, its holdings and custody chain.")
        @OptionGroup var node: NodeOption
        @Argument(help: "Batch id.") var batch: String
        func run() async throws { try await BatchCommand.get(node.node, "/v1/batches/\(try BatchCommand.batchID(batch).hex)") }
    }

    struct Trace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A batch back to its materials and forward to organisations and patients (pseudonyms).")
        @OptionGroup var node: NodeOption
        @Argument(help: "Batch id.") var batch: String
        func run() async throws { try await BatchCommand.get(node.node, "/v1/batches/\(try BatchCommand.batchID(batch).hex)/trace") }
    }

    struct Scan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What a scanner shows for a GTIN, lot and serial; exits 3 if the unit is flagged (unknown, recalled, expired, not the lot's serial, given already).")
        @OptionGroup var node: NodeOption
        @Option(help: "The pack's code as read by a scanner: a GS1 element string ((01)…(10)…(21)…, or raw with GS separators) or a GS1 Digital Link URI; instead of --gtin, --lot and --serial.") var code: String?
        @Option(help: "GTIN.") var gtin: String?
        @Option(help: "Lot.") var lot: String?
        @Option(help: "The unit's serial (AI 21).") var serial: String?
        @Option(help: "The serial's inclusion proof (hex, from prove-serial).") var proof: String?
        func run() async throws {
            let client = NodeClient(base: node.node)
            var path: String
            if let code {
                guard gtin == nil, lot == nil, serial == nil else { throw CLIError("--code carries the GTIN, lot and serial: give it alone") }
                path = "/v1/scan?code=\(percentEncoded(code))"
            } else {
                guard let gtin, let lot else { throw CLIError("give --code, or --gtin and --lot") }
                path = "/v1/scan?gtin=\(percentEncoded(gtin))&lot=\(percentEncoded(lot))"
            }
            if let serial { path += "&serial=\(percentEncoded(serial))" }
            if let proof { path += "&proof=\(percentEncoded(proof))" }
            let r = try await client.request("GET", path)
            guard r.status == 200 else { throw CLIError(client.problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
            if (try? JSONSerialization.jsonObject(with: r.body) as? [String: Any])?["flagged"] as? Bool == true { throw ExitCode(3) }
        }
    }
}
