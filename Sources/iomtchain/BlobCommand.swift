import ArgumentParser
@preconcurrency import Crypto
import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway

/// `iomtchain keys x25519`: the key a patient (or a place's owner) receives data keys with.
struct X25519KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "x25519",
        abstract: "Create (or show) an X25519 key file for receiving blobs' data keys; prints its public key.",
        discussion: "Give the printed public key as recipientKey when registering a device: every batch of the device is then sealed for it, and `iomtchain blob open --key FILE` opens them. The file holds the 32-byte private key (mode 0600); an existing file is read, never overwritten.")
    @Option(help: "Key file.") var out: String

    func run() throws {
        let key = try loadOrCreateX25519Key(out)
        try printJSON(["publicKey": Hex.encode(Array(key.publicKey.rawRepresentation)), "file": out])
    }
}

/// The X25519 key in `path` (32 raw bytes), or nil if there is no such file.
func loadX25519Key(_ path: String) throws -> Curve25519.KeyAgreement.PrivateKey? {
    guard let d = FileManager.default.contents(atPath: path) else { return nil }
    do { return try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: d) } catch { throw CLIError("\(path) is not an X25519 key file (32 raw bytes)") }
}

func loadOrCreateX25519Key(_ path: String) throws -> Curve25519.KeyAgreement.PrivateKey {
    if let k = try loadX25519Key(path) { return k }
    let k = Curve25519.KeyAgreement.PrivateKey()
    guard FileManager.default.createFile(atPath: path, contents: k.rawRepresentation, attributes: [.posixPermissions: 0o600]) else { throw CLIError("cannot write \(path)") }
    return k
}

/// `iomtchain blob open`: what a recipient does with a device's blob: fetch it by content id,
/// check the bytes against the id, unwrap the data key with its own X25519 key and decrypt.
struct BlobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "blob", abstract: "Encrypted reading blobs.", subcommands: [Open.self])

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decrypt a blob with a recipient's X25519 key and print its readings (one JSON object per line).",
            discussion: "The blob comes from a file (--file) or from a gateway's or node's GET /v1/blobs/{cid} (--from URL --cid CID); either way its bytes are checked against the content id first.")
        @Option(help: "The recipient's X25519 key file (`iomtchain keys x25519`).") var key: String
        @Option(help: "A blob file.") var file: String?
        @Option(help: "A gateway's or node's URL to fetch the blob from.") var from: String?
        @Option(help: "The blob's content id (CIDv1, bafkrei…).") var cid: String?

        func run() async throws {
            guard let recipient = try loadX25519Key(key) else { throw CLIError("no X25519 key file \(key)") }
            let id: ContentID?
            if let cid {
                guard let c = ContentID(cid) else { throw CLIError("--cid is not a CIDv1 (raw, sha2-256, base32)") }
                id = c
            } else { id = nil }
            let bytes: [UInt8]
            switch (file, from) {
            case (let f?, nil):
                bytes = Array(try readInput(f))
            case (nil, let base?):
                guard let id else { throw CLIError("--from needs --cid") }
                let r = try await NodeLink(base: base).request("GET", "/v1/blobs/" + id.description)
                guard r.status == 200 else { throw CLIError("GET \(base)/v1/blobs/\(id): HTTP \(r.status) \(String(decoding: r.body.prefix(300), as: UTF8.self))") }
                bytes = Array(r.body)
            default:
                throw CLIError("give exactly one of --file and --from")
            }
            if let id, !id.matches(bytes) { throw CLIError("REFUSED: the blob's bytes do not match \(id) (tampered or corrupt)") }
            let readings: [BatchedReading]
            do { readings = try SealedBlob(bytes: bytes).open(with: recipient) } catch { throw CLIError("cannot open the blob: \(error)") }
            for r in readings {
                let line = BlobLine(gateway: r.gateway.hex, device: r.device.hex, sequence: r.sequence, kind: "\(r.reading.kind)", effectiveMs: r.reading.effectiveMs,
                                    values: r.reading.values.map { "\($0.value) \($0.unit)" })
                let e = JSONEncoder()
                e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try e.encode(line), as: UTF8.self))
            }
        }
    }

    struct BlobLine: Encodable { var gateway: String; var device: String; var sequence: UInt64; var kind: String; var effectiveMs: Int64; var values: [String] }
}
