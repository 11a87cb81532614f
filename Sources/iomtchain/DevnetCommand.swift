import ArgumentParser
import Dispatch
import Foundation
import IoMTCore
import IoMTNode
#if canImport(Glibc)
import Glibc
#endif

/// One node of a devnet, as written to `<dir>/devnet.json`.
struct DevnetMember: Codable {
    var name: String
    var role: String  // "validator" or "observer"
    var dataDir: String
    var http: String
    var p2p: String
    var nodeKey: String
    /// The arguments (after the executable) that start this node: a test or an operator restarts
    /// a killed node with exactly these.
    var arguments: [String]
}

struct DevnetManifest: Codable {
    var chainId: String
    var adminKey: String
    var members: [DevnetMember]
}

/// `iomtchain devnet`: a fresh consortium on 127.0.0.1, one OS process per node.
struct DevnetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devnet",
        abstract: "Create a consortium (genesis, keys, one data folder per node) and run each node as its own process on 127.0.0.1.",
        discussion: "Writes <data-dir>/devnet.json with every node's API and peer-to-peer address and the arguments that restart it, and <node folder>/node.pid. Stops every node on SIGINT or SIGTERM.")

    @Option(help: "Validators (n = 3f+1 tolerates f faulty).") var validators = 4
    @Option(help: "Observer nodes (follow the chain without voting; registered on-chain with the node role).") var observers = 0
    @Option(help: "Folder for the consortium (created; must not hold a devnet already unless --resume).") var dataDir = "./devnet"
    @Flag(help: "Restart the devnet already in --data-dir instead of creating one.") var resume = false
    @Option(help: "Block interval in milliseconds (BFT: pause after each decision; PoA: slot length; PoW: wanted time per block).") var blockIntervalMs: UInt64 = 100
    @Option(help: "Consensus mode written to genesis: bft (Tendermint), poa (round-robin authorities) or pow (proof of work).") var consensus: ConsensusMode.Kind = .bft
    @Option(help: "PoA/PoW: blocks on top of a block before it is final (default: poa max(2, ⌊validators/2⌋), pow 6).") var confirmationDepth: UInt32?
    @Option(help: "PoW: expected hashes per block at the start (the initial difficulty; retargeted every 20 blocks).") var powHashesPerBlock: UInt64 = 20_000

    func run() async throws {
        guard (1...16).contains(validators), (0...8).contains(observers) else { throw CLIError("--validators must be 1…16 and --observers 0…8") }
        let manifestPath = dataDir + "/devnet.json"
        let manifest: DevnetManifest
        if resume {
            manifest = try JSONDecoder().decode(DevnetManifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
        } else {
            guard !FileManager.default.fileExists(atPath: manifestPath) else { throw CLIError("\(manifestPath) exists: pass --resume to restart it, or choose another --data-dir") }
            manifest = try create()
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            try enc.encode(manifest).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
        }

        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        var children: [(DevnetMember, Process)] = []
        func stopAll() {
            for (_, p) in children where p.isRunning { p.terminate() }
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, children.contains(where: { $0.1.isRunning }) { usleep(50_000) }
            for (_, p) in children where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        do {
            for m in manifest.members where m.role == "validator" { children.append((m, try launch(executable, m))) }
            for (m, _) in children { try await waitHealthy(m) }
            let observersToStart = manifest.members.filter { $0.role == "observer" }
            if !observersToStart.isEmpty {
                if !resume { try await registerObservers(observersToStart, manifest: manifest) }
                for m in observersToStart { children.append((m, try launch(executable, m))) }
                for m in observersToStart { try await waitHealthy(m) }
            }
        } catch {
            stopAll()
            throw error
        }
        print("devnet \(manifest.chainId): \(children.count) nodes (manifest \(manifestPath); admin key \(manifest.adminKey))")
        for (m, p) in children { print("  \(m.name)\t\(m.role)\thttp://\(m.http)\tp2p \(m.p2p)\tpid \(p.processIdentifier)\tlog \(m.dataDir)/node.log") }
        print("stop with Ctrl-C (SIGINT) or SIGTERM")
        fflush(nil)

        await waitForSignal()
        print("stopping \(children.count) nodes")
        stopAll()
    }

    /// Genesis with one organisation per validator, keys, data folders and free ports.
    /// `extraAdmins` more member-admins of org-0 (keys in `admin-<i>.key.json`) give a benchmark
    /// many independent senders; `iomtchain devnet` itself creates none.
    func create(extraAdmins: Int = 0) throws -> DevnetManifest {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let dir = URL(fileURLWithPath: dataDir).standardizedFileURL.path
        let kinds = ["hospital", "clinic", "public-health-agency", "manufacturer"]
        let orgs = (0..<validators).map { i in Organisation(id: "org-\(i)", name: "\(kinds[i % kinds.count].capitalized) \(i)", kind: kinds[i % kinds.count]) }
        let admin = PrivateKey.generate(.ed25519)
        let adminPath = dir + "/admin.key.json"
        try KeyFile.save(admin, path: adminPath)
        let extra = (0..<extraAdmins).map { _ in PrivateKey.generate(.ed25519) }
        for (i, key) in extra.enumerated() { try KeyFile.save(key, path: dir + "/admin-\(i).key.json") }
        let validatorKeys = (0..<validators).map { _ in PrivateKey.generate(.ed25519) }
        let observerKeys = (0..<observers).map { _ in PrivateKey.generate(.ed25519) }
        let genesis = Genesis(
            chainId: "iomt-devnet", genesisTimeMs: nowMs(), organisations: orgs,
            admins: [.init(publicKey: admin.publicKey, organisation: orgs[0].id, label: "devnet admin")]
                + extra.enumerated().map { Genesis.Admin(publicKey: $1.publicKey, organisation: orgs[0].id, label: "bench admin \($0)") },
            adminQuorum: 1,
            validators: zip(validatorKeys, orgs).map { Validator(publicKey: $0.publicKey, organisation: $1.id) },
            consensus: ConsensusParameters(blockIntervalMs: blockIntervalMs),
            consensusMode: consensus == .bft ? nil : ConsensusMode(kind: consensus, confirmationDepth: confirmationDepth ?? (consensus == .poa ? UInt32(max(2, validators / 2)) : nil),
                                                                   initialDifficulty: ProofOfWork.compact(expectedHashes: powHashesPerBlock)))
        try genesis.validate()
        let ports = try freePorts(2 * (validators + observers))
        var members: [DevnetMember] = []
        for (i, key) in (validatorKeys + observerKeys).enumerated() {
            let isValidator = i < validators
            let name = isValidator ? "validator-\(i)" : "observer-\(i - validators)"
            let folder = DataFolder(path: dir + "/" + name)
            try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: true)
            try folder.writeGenesis(genesis)
            try KeyFile.save(key, path: folder.validatorKeyPath)
            members.append(DevnetMember(name: name, role: isValidator ? "validator" : "observer", dataDir: folder.path,
                                        http: "127.0.0.1:\(ports[2 * i])", p2p: "127.0.0.1:\(ports[2 * i + 1])", nodeKey: key.publicKey.text, arguments: []))
        }
        for i in members.indices {
            let m = members[i]
            var args = ["node", "run", "--data-dir", m.dataDir, "--http", m.http, "--consortium", "--p2p", m.p2p]
            if m.role == "observer" { args.append("--observer") }
            for other in members where other.name != m.name { args += ["--peer", "\(other.p2p)@\(other.nodeKey)"] }
            members[i].arguments = args
        }
        return DevnetManifest(chainId: genesis.chainId, adminKey: adminPath, members: members)
    }

    func launch(_ executable: String, _ m: DevnetMember) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = m.arguments
        let logPath = m.dataDir + "/node.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let logFile = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        logFile.seekToEndOfFile()
        p.standardOutput = logFile
        p.standardError = logFile
        try p.run()
        try "\(p.processIdentifier)\n".write(toFile: m.dataDir + "/node.pid", atomically: true, encoding: .utf8)
        return p
    }

    func waitHealthy(_ m: DevnetMember) async throws {
        let client = NodeClient(base: "http://\(m.http)")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let r = try? await client.request("GET", "/healthz"), r.status == 200 { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw CLIError("\(m.name) did not answer on http://\(m.http) within 30 s (see \(m.dataDir)/node.log)")
    }

    /// Observers are admitted to the network by an on-chain account with the node role.
    func registerObservers(_ observers: [DevnetMember], manifest: DevnetManifest) async throws {
        let admin = try KeyFile.load(path: manifest.adminKey)
        let client = NodeClient(base: "http://\(manifest.members[0].http)")
        struct AccountReply: Decodable { var nextNonce: UInt64 }
        var nonce = try await client.get("/v1/accounts/\(admin.publicKey.address.hex)", as: AccountReply.self).nextNonce
        for m in observers {
            let key = try PublicKey(text: m.nodeKey)
            let tx = Transaction(chainID: manifest.chainId, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                                 payload: .registerAccount(RegisterAccount(publicKey: key, role: .node, organisation: "org-0", label: m.name)))
                .signed(with: admin)
            let r = try await client.request("POST", "/v1/transactions?wait=commit&timeoutMs=30000", body: try JSONEncoder().encode(tx))
            guard r.status == 200 else { throw CLIError("registering \(m.name): \(client.problemText(r))") }
            nonce += 1
        }
    }

    func waitForSignal() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "devnet.signals")
            let once = Once()
            for sig in [SIGINT, SIGTERM] {
                let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                source.setEventHandler { if once.first() { c.resume() } }
                source.resume()
                Once.keep(source)
            }
        }
    }
}

/// Resumes a continuation once, and keeps signal sources alive for the process's life.
private final class Once: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []
    func first() -> Bool { lock.withLock { defer { done = true }; return !done } }
    static func keep(_ s: any DispatchSourceSignal) { sources.append(s) }
}

/// Ports the kernel reports free on 127.0.0.1 right now (bound to port 0 and released).
func freePorts(_ n: Int) throws -> [Int] {
    var fds: [Int32] = []
    defer { for fd in fds { close(fd) } }
    var ports: [Int] = []
    for _ in 0..<n {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError("socket() failed") }
        fds.append(fd)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok else { throw CLIError("could not find a free port") }
        ports.append(Int(UInt16(bigEndian: addr.sin_port)))
    }
    return ports
}

extension ConsensusMode.Kind: ExpressibleByArgument {}
