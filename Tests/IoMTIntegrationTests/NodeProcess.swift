import Foundation
import IoMTCore
import IoMTNode
import Testing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The package root, found from this file's path.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.path + "/Package.swift") { return url.path }
    }
    fatalError("Package.swift not found above \(#filePath)")
}()

/// The real `iomtchain` binary (`IOMT_BIN`, else the debug build; scripts/test.sh builds it first).
let binaryPath: String = {
    if let p = ProcessInfo.processInfo.environment["IOMT_BIN"] { return p }
    return packageRoot + "/.build/debug/iomtchain"
}()

func temporaryFolder(_ tag: String = #function) -> String {
    let safe = tag.filter { $0.isLetter || $0.isNumber }.prefix(40)
    let path = NSTemporaryDirectory() + "iomt-it-\(safe)-\(UUID().uuidString.prefix(8))"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Runs `iomtchain` to completion and returns its exit code and output.
@discardableResult
func runCLI(_ args: [String], stdin: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    try runTool(binaryPath, args, stdin: stdin)
}

/// Waits for `p` to exit, at most `seconds`; past that it is killed and the test fails: a test
/// never hangs on a child process (tools' own timeouts, such as mosquitto_sub -W, rely on SIGALRM,
/// which a child of this multi-threaded process may inherit blocked).
func waitForExit(_ p: Process, seconds: Double, _ what: String) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        throw TestFailure("\(what) did not finish within \(Int(seconds)) s: killed")
    }
    p.waitUntilExit()
}

/// Runs an executable to completion and returns its exit code and output. Output goes through
/// files, not pipes: Foundation's pipe reads fail on EINTR when other children exit meanwhile.
@discardableResult
func runTool(_ path: String, _ args: [String], stdin: Data? = nil, timeoutSeconds: Double = 300) throws -> (status: Int32, stdout: String, stderr: String) {
    let base = NSTemporaryDirectory() + "iomt-cli-\(UUID().uuidString.prefix(8))"
    let inPath = base + ".in", outPath = base + ".out", errPath = base + ".err"
    defer { for p in [inPath, outPath, errPath] { try? FileManager.default.removeItem(atPath: p) } }
    _ = FileManager.default.createFile(atPath: inPath, contents: stdin ?? Data())
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: inPath))
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try p.run()
    try waitForExit(p, seconds: timeoutSeconds, "\(path) \(args.prefix(3).joined(separator: " "))")
    let o = (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data()
    let e = (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// A node running as a child process on a free loopback port.
final class NodeProcess: @unchecked Sendable {
    let dataDir: String
    let process = Process()
    let logPath: String
    private(set) var port = 0

    var url: String { "http://127.0.0.1:\(port)" }

    /// `port` 0 picks a free one; a fixed port lets a restarted node keep its address.
    init(dataDir: String, port: Int = 0, extraArgs: [String] = []) throws {
        self.dataDir = dataDir
        logPath = dataDir + ".log-\(UUID().uuidString.prefix(6))"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binaryPath)
        process.arguments = ["node", "run", "--dev", "--data-dir", dataDir, "--http", "127.0.0.1:\(port)"] + extraArgs
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardError = log
        process.standardOutput = log
        try process.run()
        self.port = try waitForPort()
    }

    private func waitForPort(timeout: TimeInterval = 60) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let r = text.range(of: "http listening on 127.0.0.1:") {
                let digits = text[r.upperBound...].prefix { $0.isNumber }
                if let p = Int(digits) { return p }
            }
            if !process.isRunning { throw TestFailure("node exited early (\(process.terminationStatus)):\n\(text)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw TestFailure("node did not start within \(timeout) s")
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// kill -9: no chance to flush or clean up.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func terminate() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    deinit { if process.isRunning { kill9() } }
}

/// A tiny HTTP client for the tests.
struct HTTP {
    var base: String

    struct Reply {
        var status: Int
        var body: Data
        var headers: [String: String]
        var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
        /// The body as a JSON array of objects (empty if it is not one).
        var jsonArray: [[String: Any]] { ((try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]]) ?? [] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func send(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json", headers extra: [String: String] = [:]) async throws -> Reply {
        var req = URLRequest(url: URL(string: base + path)!)
        req.httpMethod = method
        req.timeoutInterval = 30
        if let body {
            req.httpBody = body
            req.setValue(contentType, forHTTPHeaderField: "Content-Type")
        }
        for (k, v) in extra { req.setValue(v, forHTTPHeaderField: k) }
        let (data, resp): (Data, URLResponse)
        do {
            (data, resp) = try await URLSession.shared.data(for: req)
        } catch let e as URLError where e.code == .networkConnectionLost && method == "GET" {
            // A pooled keep-alive connection the server had just closed: a GET is safe to repeat
            // once (a server that is really gone fails the second time too).
            (data, resp) = try await URLSession.shared.data(for: req)
        }
        let http = resp as! HTTPURLResponse
        var headers: [String: String] = [:]
        for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
        return Reply(status: http.statusCode, body: data, headers: headers)
    }

    func get(_ path: String) async throws -> Reply { try await send("GET", path) }
    func post(_ path: String, _ body: Data) async throws -> Reply { try await send("POST", path, body: body) }
}

/// Builds signed transactions for a node's dev chain.
/// A dev node in `dir/node` (the folder is created), its HTTP client and its chain's keys.
func startDevNode(_ dir: String) throws -> (NodeProcess, HTTP, DevChain) {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let node = try NodeProcess(dataDir: dir + "/node")
    do {
        return (node, HTTP(base: node.url), try DevChain(dataDir: dir + "/node"))
    } catch {
        node.terminate()
        throw error
    }
}

struct DevChain {
    let admin: PrivateKey
    let chainID: String
    /// The organisation the admin belongs to (the hospital of the scenarios).
    let hospital: String

    init(dataDir: String) throws {
        admin = try KeyFile.load(path: dataDir + "/admin.key.json")
        chainID = try DataFolder(path: dataDir).loadGenesis().genesis.chainId
        hospital = "dev-hospital"
    }

    init(admin: PrivateKey, chainID: String, hospital: String) {
        self.admin = admin; self.chainID = chainID; self.hospital = hospital
    }

    func registration(nonce: UInt64, key: PublicKey = PrivateKey.generate(.ed25519).publicKey, role: Role = .device, label: String = "sensor") -> SignedTransaction {
        Transaction(chainID: chainID, sender: admin.publicKey.address, signerKey: admin.publicKey, nonce: nonce,
                    payload: .registerAccount(RegisterAccount(publicKey: key, role: role, organisation: "dev-hospital", label: label)))
            .signed(with: admin)
    }

    func json(_ tx: SignedTransaction) throws -> Data { try JSONEncoder().encode(tx) }
}

/// The consortium an application's scenario runs on (issue 6: each application end to end on a
/// real multi-node devnet): `iomtchain devnet --validators 4`, each validator its own OS process,
/// BFT over the encrypted peer-to-peer network. The scenario and its gateway talk to validator 0;
/// `agree()` then checks that every validator committed the same blocks, and `http(i)` reads
/// from another one.
final class ScenarioConsortium: @unchecked Sendable {
    let net: Devnet

    init() throws { net = try Devnet(validators: 4) }

    /// Validator 0's API, where the scenario's gateway and commands send their transactions.
    var url: String { "http://" + net.manifest.members[0].http }
    func http(_ i: Int) -> HTTP { net.http(i) }
    func terminate() { net.stop() }

    /// Waits (bounded) until every validator has committed validator 0's current height, and checks
    /// they hold the same block there (the same transactions, so the same state root). Returns
    /// the height.
    @discardableResult
    func agree(seconds: Double = 60) async throws -> Int {
        guard let h = await net.height(0), let hash = await net.blockHash(0, h) else { throw TestFailure("validator 0 does not answer") }
        for i in 1..<net.manifest.members.count {
            try await net.eventually("validator \(i) reaches height \(h)", seconds: seconds) { (await net.height(i) ?? 0) >= h }
            let other = await net.blockHash(i, h)
            guard other == hash else { throw TestFailure("validator \(i) holds block \(other ?? "none") at height \(h), validator 0 holds \(hash)") }
        }
        return h
    }

    /// Checks that every validator answers `path` alike (after `agree()`): the JSON bodies equal once
    /// the top-level keys in `ignoring` (each node's own height, say) are dropped.
    func sameAnswer(_ path: String, ignoring: Set<String> = ["height"]) async throws {
        func canonical(_ i: Int) async throws -> String {
            let r = try await http(i).get(path)
            var object = try JSONSerialization.jsonObject(with: r.body)
            if var d = object as? [String: Any] { for k in ignoring { d[k] = nil }; object = d }
            return "\(r.status) " + String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
        }
        let first = try await canonical(0)
        #expect(first.hasPrefix("200 "), "validator 0: \(path) → \(first.prefix(300))")
        for i in 1..<net.manifest.members.count {
            let other = try await canonical(i)
            #expect(other == first, "validator \(i) answers \(path) otherwise:\n\(other.prefix(500))\nvalidator 0:\n\(first.prefix(500))")
        }
    }

    /// `sameAnswer` for a state key: the value alike (the proof is of each node's own height).
    func sameState(_ key: [UInt8]) async throws {
        try await sameAnswer("/v1/state/" + Hex.encode(key), ignoring: ["height", "stateRoot", "proof", "header", "commit"])
    }
}

/// A four-validator devnet in its own folder, the HTTP client of validator 0 and the chain's keys
/// (the devnet's admin, of the hospital "org-0").
func startConsortium() throws -> (ScenarioConsortium, HTTP, DevChain) {
    let c = try ScenarioConsortium()
    do {
        let chain = DevChain(admin: try KeyFile.load(path: c.net.manifest.adminKey), chainID: c.net.manifest.chainId, hospital: "org-0")
        return (c, HTTP(base: c.url), chain)
    } catch {
        c.terminate()
        throw error
    }
}
