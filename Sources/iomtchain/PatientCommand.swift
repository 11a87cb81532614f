import ArgumentParser
@preconcurrency import Crypto
import Foundation
import IoMTCore
import IoMTGateway
import IoMTNode

/// `iomtchain patient`: what a patient's agent does — keep one secret, derive a key and a
/// pseudonym per organisation, look at its grants and emergency accesses.
struct PatientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patient", abstract: "A patient's keys, pseudonyms, grants and emergency accesses.",
        subcommands: [Secret.self, Keys.self, Enrolment.self, Show.self, Consents.self, Erasure.self])

    struct Secret: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a patient secret (32 random bytes, mode 0600): every organisation's keys and pseudonym derive from it.")
        @Option(help: "File to write.") var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else { throw CLIError("\(out) exists; refusing to overwrite a patient secret") }
            let s = PatientSecret.generate()
            let data = try JSONEncoder().encode(["patientSecret": Hex.encode(s.bytes)])
            guard FileManager.default.createFile(atPath: out, contents: data, attributes: [.posixPermissions: 0o600]) else { throw CLIError("cannot write \(out)") }
            try printJSON(["file": out])
        }
    }

    static func loadSecret(_ path: String) throws -> PatientSecret {
        guard let d = FileManager.default.contents(atPath: path),
              let hex = (try? JSONDecoder().decode([String: String].self, from: d))?["patientSecret"], let b = Hex.decode(hex),
              let s = try? PatientSecret(bytes: b) else { throw CLIError("\(path) is not a patient secret file") }
        return s
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Derive the patient's keys and pseudonym at one organisation; optionally write them as key files.",
            discussion: "The signing key file works with `tx submit --key`, the X25519 file with `blob open --key`. Give the printed publicKey and agreementKey to the organisation that enrols you (register-patient).")
        @Option(help: "Patient secret file.") var secret: String
        @Option(help: "Organisation id.") var organisation: String
        @Option(help: "Write the signing key file here.") var keyOut: String?
        @Option(help: "Write the X25519 key file here.") var x25519Out: String?

        func run() throws {
            let s = try PatientCommand.loadSecret(secret)
            let signing = s.signingKey(at: organisation), agreement = s.agreementKey(at: organisation)
            if let keyOut, !FileManager.default.fileExists(atPath: keyOut) { try KeyFile.save(signing, path: keyOut) }
            if let x25519Out, !FileManager.default.fileExists(atPath: x25519Out) {
                guard FileManager.default.createFile(atPath: x25519Out, contents: agreement.rawRepresentation, attributes: [.posixPermissions: 0o600]) else { throw CLIError("cannot write \(x25519Out)") }
            }
            try printJSON(["organisation": organisation, "publicKey": signing.publicKey.text, "address": signing.publicKey.address.hex,
                           "agreementKey": Hex.encode(Array(agreement.publicKey.rawRepresentation)), "pseudonym": s.pseudonym(at: organisation).hex])
        }
    }

    struct Enrolment: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign the patient's enrolment at an organisation; prints the register-patient payload its member-admin or practitioner submits.",
            discussion: "Hand the printed JSON to the organisation: `iomtchain tx submit --key ADMIN --payload \"$(cat enrolment.json)\"`. The signature binds your key, your X25519 key, this chain and that organisation.")
        @Option(help: "Patient secret file.") var secret: String
        @Option(help: "Organisation id.") var organisation: String
        @Option(help: "Node URL (for the chain id).") var node = "http://127.0.0.1:8080"

        func run() async throws {
            let s = try PatientCommand.loadSecret(secret)
            let agreement = try X25519Key(bytes: Array(s.agreementKey(at: organisation).publicKey.rawRepresentation))
            try printJSON(TransactionPayload.registerPatient(RegisterPatient(signedBy: s.signingKey(at: organisation), agreementKey: agreement,
                                                                              chainID: try await chainID(of: node), organisation: organisation)))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A patient's enrolment, X25519 key, grants and emergency accesses (with reviews).")
        @Option(help: "The patient's pseudonym.") var pseudonym: String
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

        func run() async throws { try await printGET(node, "/v1/patients/\(pseudonym)") }
    }

    struct Consents: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export a patient's grants as a FHIR R4 Bundle of Consent resources.")
        @Option(help: "The patient's pseudonym.") var pseudonym: String
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

        func run() async throws { try await printGET(node, "/v1/patients/\(pseudonym)/consents") }
    }
}

extension PatientCommand {
    /// Shows that no live key for an erased patient's data remains: the chain's erasure record and
    /// each gateway's confirmation; each gateway's own report (custody key destroyed, no reading
    /// held); and every node asked for every one of the patient's blobs answers "erased".
    struct Erasure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the state of a patient's erasure: on-chain record and confirmations, gateways' custody keys and plaintext, nodes' blobs.",
            discussion: "Request erasure with `tx submit --key PATIENT --type request-erasure --subject PSEUDONYM`. Exits non-zero unless the erasure is complete everywhere it checked.")
        @Option(help: "The patient's pseudonym.") var pseudonym: String
        @Option(help: "Node URLs (repeatable); the first is asked for the chain's record.") var node: [String] = ["http://127.0.0.1:8080"]
        @Option(help: "Gateway URLs (repeatable) that held the patient's data.") var gateway: [String] = []

        struct Report: Encodable {
            var requested: ErasureRecord?
            var confirmations: [ErasureProgress]
            var gateways: [String: GatewayStore.ErasureReport]
            var blobs: Int
            var blobsStillServed: [String]
            var complete: Bool
        }

        func run() async throws {
            guard let subject = Hash(hex: pseudonym) else { throw CLIError("--pseudonym must be 64 hex digits") }
            let requested = try await stateValue(node[0], StateKeys.erasure(subject)).map { try ErasureRecord(canonicalBytes: $0) }
            let progress = try await stateValue(node[0], StateKeys.erasureProgress(subject)).map { try [ErasureProgress](canonicalBytes: $0) } ?? []
            var reports: [String: GatewayStore.ErasureReport] = [:]
            var cids = Set<String>()
            for g in gateway {
                reports[g] = try await NodeClient(base: g).get("/v1/patients/\(pseudonym)/erasure", as: GatewayStore.ErasureReport.self)
                struct Held: Decodable { var cids: [String] }
                cids.formUnion(try await NodeClient(base: g).get("/v1/patients/\(pseudonym)/erasure/blobs", as: Held.self).cids)
            }
            var served: [String] = []
            for n in node + gateway {
                for cid in cids.sorted() {
                    let r = try await NodeClient(base: n).request("GET", "/v1/blobs/\(cid)")
                    if r.status == 200 { served.append("\(n) \(cid)") }
                }
            }
            let complete = requested != nil && served.isEmpty && reports.values.allSatisfy { $0.custodyKey != "held" && $0.readingsHeld == 0 && $0.state == "confirmed" }
                && progress.allSatisfy(\.complete)
            try printJSON(Report(requested: requested, confirmations: progress, gateways: reports, blobs: cids.count, blobsStillServed: served, complete: complete))
            if !complete { throw ExitCode(3) }
        }
    }
}

/// `iomtchain access`: ask a node whether a reader may read a patient's data.
struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access", abstract: "Ask a node's consent contract: may READER read SUBJECT's data of CATEGORY for PURPOSE? (at the latest committed height)")
    @Option(help: "The reader's account address.") var reader: String
    @Option(help: "The patient's pseudonym.") var subject: String
    @Option(help: "Data category.") var category: String
    @Option(help: "Purpose.") var purpose: String
    @Option(help: "First reading time wanted (ms since 1970).") var from: Int64?
    @Option(help: "Last reading time wanted (ms since 1970).") var to: Int64?
    @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

    func run() async throws {
        var q = "reader=\(reader)&subject=\(subject)&category=\(category)&purpose=\(purpose)"
        if let from { q += "&from=\(from)" }
        if let to { q += "&to=\(to)" }
        try await printGET(node, "/v1/access?" + q)
    }
}

/// GETs `path` from the node and prints the body, or fails with the node's problem.
func printGET(_ node: String, _ path: String) async throws {
    let client = NodeClient(base: node)
    let r = try await client.request("GET", path)
    guard (200..<300).contains(r.status) else { throw CLIError(client.problemText(r)) }
    print(String(decoding: r.body, as: UTF8.self))
}
