import ArgumentParser
import Foundation
import IoMTCore
import IoMTNode

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Account keys.", subcommands: [Generate.self, Show.self, X25519KeyCommand.self])

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Generate a key pair into a key file (mode 0600).")
        @Option(help: "ed25519 or p256.") var algorithm = "ed25519"
        @Option(help: "Key file to write.") var out: String

        func run() throws {
            guard let alg = SignatureAlgorithm(name: algorithm) else { throw CLIError("unknown algorithm \(algorithm): use ed25519 or p256") }
            guard !FileManager.default.fileExists(atPath: out) else { throw CLIError("\(out) exists; refusing to overwrite a key") }
            let key = PrivateKey.generate(alg)
            try KeyFile.save(key, path: out)
            try printJSON(["publicKey": key.publicKey.text, "address": key.publicKey.address.hex, "file": out])
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a key file's public key and address (never the private key).")
        @Option(help: "Key file.") var key: String

        func run() throws {
            let k = try KeyFile.load(path: key)
            try printJSON(["algorithm": k.algorithm.description, "publicKey": k.publicKey.text, "address": k.publicKey.address.hex])
        }
    }
}
