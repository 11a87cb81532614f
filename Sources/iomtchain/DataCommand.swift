import ArgumentParser
@preconcurrency import Crypto
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway

/// Signs a GET for `target` with the account key and sends it to `base`.
/// (The gateway's account, which the signature names, comes from its `GET /v1/status`.)
func signedGET(_ base: String, _ target: String, key: PrivateKey, chainID: String, audience known: Address? = nil) async throws -> NodeClient.Reply {
    try await signedSend(base, "GET", target, body: [], key: key, chainID: chainID, audience: known)
}

func chainID(of node: String) async throws -> String {
    struct S: Decodable { var chainId: String }
    return try await NodeClient(base: node).get("/v1/status", as: S.self).chainId
}

/// A committed state value from the node (nil if there is none).
func stateValue(_ node: String, _ key: [UInt8]) async throws -> [UInt8]? {
    struct StateValue: Decodable { var value: String? }
    let r = try await NodeClient(base: node).request("GET", "/v1/state/" + Hex.encode(key))
    guard r.status == 200 else { throw CLIError(NodeClient(base: node).problemText(r)) }
    return try JSONDecoder().decode(StateValue.self, from: r.body).value.flatMap(Hex.decode)
}

func percentEncoded(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s }

/// `iomtchain data read`: what a practitioner, researcher or relative does to read a patient's
/// data — ask the gateway with a signed request, then fetch each blob from a node, check it
/// against its content id and its on-chain anchor, and decrypt it with the re-wrapped key.
struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Read a patient's data as an authorised reader.", subcommands: [Read.self])

    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a patient's readings of one category for one purpose: signed request, re-wrapped keys, blobs verified against their anchors, decrypted here.",
            discussion: "Prints one JSON object per reading; a summary goes to standard error. Every request is recorded in the gateway's audit log, which the patient can list (`iomtchain audit`).")
        @Option(help: "The gateway serving the patient's data.") var gateway: String
        @Option(help: "A node to fetch blobs and anchors from.") var node = "http://127.0.0.1:8080"
        @Option(help: "The reader's account key file.") var key: String
        @Option(help: "The reader's X25519 key file (its public key published with set-agreement-key).") var x25519: String
        @Option(help: "The patient's pseudonym.") var subject: String
        @Option(help: "Data category.") var category: String
        @Option(help: "Purpose.") var purpose: String
        @Option(help: "First reading time wanted (ms since 1970).") var from: Int64?
        @Option(help: "Last reading time wanted (ms since 1970).") var to: Int64?

        func run() async throws {
            let account = try KeyFile.load(path: key)
            guard let reader = try loadX25519Key(x25519) else { throw CLIError("no X25519 key file \(x25519)") }
            var target = "/v1/patients/\(subject)/data?category=\(percentEncoded(category))&purpose=\(percentEncoded(purpose))"
            if let from { target += "&from=\(from)" }
            if let to { target += "&to=\(to)" }
            let r = try await signedGET(gateway, target, key: account, chainID: try await chainID(of: node))
            guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            let reply = try JSONDecoder().decode(Gateway.DataReply.self, from: r.body)
            var readings = 0
            for b in reply.batches {
                guard let id = ContentID(b.cid) else { throw CLIError("the gateway named a bad content id \(b.cid)") }
                // The anchor on the chain: the batch root, blob digest and device the gateway claims.
                guard let bytes = try await stateValue(node, StateKeys.anchor(b.batchRoot)), let anchor = try? AnchorRecord(canonicalBytes: bytes) else { throw CLIError("REFUSED: batch \(b.batchRoot) is not anchored on the chain") }
                guard anchor.anchor.blobDigest == id.digest, anchor.anchor.device == b.device else { throw CLIError("REFUSED: batch \(b.batchRoot)'s anchor names another blob or device") }
                let blobReply = try await NodeClient(base: node).request("GET", "/v1/blobs/" + id.description)
                guard blobReply.status == 200 else { throw CLIError("GET blob \(id): \(NodeClient(base: node).problemText(blobReply))") }
                let blobBytes = Array(blobReply.body)
                guard id.matches(blobBytes) else { throw CLIError("REFUSED: the node's bytes for \(id) do not match the content id") }
                let opened: [BatchedReading]
                do { opened = try SealedBlob(bytes: blobBytes).open(dataKey: try SealedBlob.unwrap(b.key, with: reader)) } catch { throw CLIError("cannot open \(id): \(error)") }
                guard ReadingBatch(opened).root == b.batchRoot else { throw CLIError("REFUSED: \(id)'s readings do not rebuild the anchored root") }
                for x in opened {
                    let line = BlobCommand.BlobLine(gateway: x.gateway.hex, device: x.device.hex, sequence: x.sequence, kind: "\(x.reading.kind)", effectiveMs: x.reading.effectiveMs,
                                                    values: x.reading.values.map { "\($0.value) \($0.unit)" })
                    let e = JSONEncoder()
                    e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                    print(String(decoding: try e.encode(line), as: UTF8.self))
                    readings += 1
                }
            }
            FileHandle.standardError.write(Data("\(readings) readings from \(reply.batches.count) batches, each verified against its anchor; access by \(reply.basis)\(reply.reference.map { " \($0)" } ?? "") at height \(reply.height); audit entry \(reply.auditSeq)\n".utf8))
        }
    }
}

/// `iomtchain audit`: a patient (or its organisation's privacy officer) lists who read its data,
/// with each anchored entry checked against the chain.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "List every read of a patient's data at a gateway (granted or refused), verified against the anchored audit runs.")
    @Option(help: "The gateway.") var gateway: String
    @Option(help: "A node to verify anchors against.") var node = "http://127.0.0.1:8080"
    @Option(help: "The patient's (or member-admin's) account key file.") var key: String
    @Option(help: "The patient's pseudonym.") var subject: String
    @Option(help: "Entries after this number.") var after: UInt64 = 0
    @Flag(help: "Print a FHIR R4 Bundle of AuditEvent resources instead.") var fhir = false

    struct Reply: Decodable { var gateway: Address; var entries: [GatewayStore.AuditRecord] }

    func run() async throws {
        let account = try KeyFile.load(path: key)
        let chain = try await chainID(of: node)
        let base = "/v1/patients/\(subject)/audit?after=\(after)"
        if fhir {
            let r = try await signedGET(gateway, base + "&format=fhir", key: account, chainID: chain)
            guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
            return
        }
        let r = try await signedGET(gateway, base, key: account, chainID: chain)
        guard r.status == 200 else { throw CLIError(NodeClient(base: gateway).problemText(r)) }
        let reply = try JSONDecoder().decode(Reply.self, from: r.body)
        struct Line: Encodable { var entry: AuditEntry; var anchored: String }
        var checked: [UInt64: Hash] = [:]
        var previous: UInt64? = after == 0 ? 0 : nil
        for rec in reply.entries {
            // The patient's entries are numbered 1, 2, 3, …: one left out is a gap.
            guard rec.entry.subject.hex == subject else { throw CLIError("the gateway listed an entry of another subject (\(rec.entry.subject))") }
            if let p = previous, p == .max || rec.entry.subjectSeq != p + 1 {
                throw CLIError("GAP: after this patient's entry \(p) the gateway listed entry \(rec.entry.subjectSeq)")
            }
            previous = rec.entry.subjectSeq
            var status = "not anchored yet"
            if let run = rec.run, let proof = rec.proof {
                guard proof.verify(leaf: rec.entry.canonicalBytes, root: run.root) else { throw CLIError("TAMPERED: entry \(rec.entry.seq) is not in its run's root") }
                if checked[run.firstSeq] == nil {
                    if let b = try await stateValue(node, StateKeys.auditAnchor(reply.gateway, firstSeq: run.firstSeq)), let rec = try? AuditAnchorRecord(canonicalBytes: b) {
                        checked[run.firstSeq] = rec.anchor.root
                    }
                }
                if let onChain = checked[run.firstSeq] {
                    guard onChain == run.root else { throw CLIError("TAMPERED: run \(run.firstSeq)…\(run.lastSeq) has another root on the chain") }
                    status = "verified against the chain"
                } else {
                    status = "run not committed yet"
                }
            }
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try e.encode(Line(entry: rec.entry, anchored: status)), as: UTF8.self))
        }
    }
}
