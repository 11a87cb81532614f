import Foundation
import IoMTCore
import IoMTEdge
import IoMTGateway
import IoMTStore
import Testing

/// Issue 5 §9: no protected health information on-chain. The device simulator uploads readings
/// that carry names, record numbers, serials and observation ids, as real exports do; afterwards
/// every block and every state value is scanned for any of them and for every plaintext reading
/// the gateway accepted.
@Suite("no protected health information on-chain")
struct PHIScanTests {
    @Test("after a simulator run, no block or state value holds a name, identifier or plaintext reading it produced", .timeLimit(.minutes(4)))
    func scan() async throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let setup = try await GatewayTests.setUp(dir, deviceKey: PrivateKey.generate(.ed25519))
        let gw = try GatewayProcess(dataDir: dir + "/gateway", key: setup.keyPath, node: setup.node.url, extraArgs: ["--batch-ms", "200"])
        let run = try runCLI(["simulate", "devices", "--node", setup.node.url, "--gateway", gw.url, "--admin-key", dir + "/node/admin.key.json",
                              "--devices", "14", "--seconds", "2", "--rate", "200", "--batch", "5", "--anomaly-rate", "0.3", "--seed", "11",
                              "--wait-anchored", "--identities", dir + "/identities.json"])
        #expect(run.status == 0 && run.stdout.contains("anchored: all") && run.stdout.contains(" 0 refused"), "\(run.stdout)\(run.stderr)")
        gw.kill9()
        setup.node.terminate()

        // The needles: every invented name, record number, serial and observation id, and the
        // canonical bytes of every reading the gateway accepted (its plaintext queue holds them).
        struct Identity: Decodable { var device: String; var name: String; var recordNumber: String; var serial: String }
        let people = try JSONDecoder().decode([Identity].self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/identities.json")))
        #expect(people.count == 14)
        var needles: [(String, [UInt8])] = people.flatMap { [("name \($0.name)", Array($0.name.utf8)), ("record number \($0.recordNumber)", Array($0.recordNumber.utf8)), ("serial \($0.serial)", Array($0.serial.utf8))] }
        let store = try GatewayStore(path: dir + "/gateway/gateway.sqlite")
        let readings = try store.counts().readings
        #expect(readings >= 50)
        var sourceIDs = Set<String>(), subjects = Set<String>()
        for seq in 1...Int64(readings) {
            guard let r = try store.reading(seq: seq) else { continue }
            needles.append(("reading \(seq)", r.reading.canonicalBytes))
            if !r.reading.sourceID.isEmpty { sourceIDs.insert(r.reading.sourceID) }
            if !r.reading.sourceSubject.isEmpty { subjects.insert(r.reading.sourceSubject) }
        }
        // The gateway did receive the identifiers (so finding none on-chain means something).
        #expect(sourceIDs.count >= 50 && !subjects.isEmpty && subjects.allSatisfy { $0.hasPrefix("Patient/MRN-") }, "\(subjects.prefix(3))")
        needles += sourceIDs.map { ("observation id \($0)", Array($0.utf8)) } + subjects.map { ("subject \($0)", Array($0.utf8)) }

        // The haystack: every block (header, transactions, commit) and every state entry.
        let ledger = try LedgerStore(path: dir + "/node/ledger.sqlite")
        let top = try #require(try ledger.latestHeight())
        var haystack: [UInt8] = []
        for h in 0...top {
            let block = try #require(try ledger.block(height: h))
            haystack += block.header.canonicalBytes
            for tx in block.transactions { haystack += tx.canonicalBytes }
            let stored = try ledger.header(height: h)?.commit
            if let c = block.commit ?? stored { haystack += c.canonicalBytes }
        }
        let state = try ledger.loadState()
        for (k, v) in state { haystack += k; haystack += v }
        #expect(state.count > 20 && haystack.count > 10_000)
        // A positive control: what is meant to be on-chain is found (device keys, anchor roots).
        let device = try #require(Address(hex: people[0].device))
        #expect(Self.contains(haystack, device.bytes), "the scan finds a device's id on-chain")

        let found = needles.filter { Self.contains(haystack, $0.1) }.map(\.0)
        #expect(found.isEmpty, "on-chain: \(found.prefix(10))")
    }

    /// Whether `needle` occurs in `haystack` (first-byte index, then compare).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first, haystack[i..<i + needle.count].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
