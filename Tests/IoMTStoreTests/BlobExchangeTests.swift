import Foundation
import IoMTCore
import IoMTNode
import IoMTStore
import Testing

/// Two or three blob exchanges wired by an in-memory network (the real one, over the P2P network
/// between node processes, is BlobReplicationTests on a devnet).
@Suite("blob exchange between nodes")
struct BlobExchangeTests {
    /// Delivers each message to the addressed exchange's `receive`, and records verdicts.
    final class Wire: @unchecked Sendable {
        let lock = NSLock()
        var nodes: [PublicKey: BlobExchange] = [:]
        var banned: [PublicKey] = []
        func peers(of me: PublicKey) -> Peers { Peers(wire: self, me: me) }
        struct Peers: BlobPeers {
            let wire: Wire
            let me: PublicKey
            func connected() -> [PublicKey] { wire.lock.withLock { wire.nodes.keys.filter { $0 != me } } }
            func send(_ message: BlobMessage, to peer: PublicKey) async {
                guard let target = wire.lock.withLock({ wire.nodes[peer] }) else { return }
                let bytes = message.canonicalBytes
                let me = self.me
                Task { if await !target.receive(bytes, from: me) { wire.lock.withLock { wire.banned.append(me) } } }
            }
        }
    }

    static let gateway = PrivateKey.generate(.ed25519)
    /// Only `gateway` may put, as the node's committed state would say.
    static let authorise: BlobExchange.Authorise = { account, signature, digest in
        guard account == gateway.publicKey.address else { return .unknownAccount(account) }
        return gateway.publicKey.isValidSignature(signature, for: BlobPutAuth.message(chainID: "test", digest: digest)) ? nil : .badSignature(account)
    }

    func network(_ n: Int, replicas: Int) throws -> (Wire, [PublicKey], [BlobExchange], [String]) {
        let wire = Wire()
        let root = NSTemporaryDirectory() + "iomt-blobx-\(UUID().uuidString.prefix(8))"
        var keys: [PublicKey] = [], exchanges: [BlobExchange] = [], dirs: [String] = []
        for i in 0..<n {
            let key = PrivateKey.generate(.ed25519).publicKey
            let dir = root + "/n\(i)"
            let x = BlobExchange(store: try BlobStore(folder: dir), peers: wire.peers(of: key), replicationFactor: replicas, timeoutMs: 30_000, authorise: Self.authorise)
            wire.lock.withLock { wire.nodes[key] = x }
            keys.append(key); exchanges.append(x); dirs.append(dir)
        }
        return (wire, keys, exchanges, dirs)
    }

    @Test("a put is kept on exactly the replication factor's nodes; another node fetches it; a replica request without the gateway's authorisation is refused and its sender reported")
    func replicas() async throws {
        let (wire, keys, x, dirs) = try network(3, replicas: 2)
        let blob = Array("sealed readings".utf8), id = ContentID(of: blob)
        let sig = Self.gateway.sign(BlobPutAuth.message(chainID: "test", digest: id.digest))
        let placed = try await x[0].put(blob, as: id, account: Self.gateway.publicKey.address, signature: sig)
        // (Acknowledgements come in milliseconds; the 30 s timeout only bounds a failure on a loaded machine.)
        #expect(placed.holders.count == 2 && placed.holders[0] == "self", "\(placed)")
        let holding = dirs.indices.filter { FileManager.default.fileExists(atPath: dirs[$0] + "/\(id)") }
        #expect(holding.count == 2 && holding.contains(0))
        let expected = BlobExchange.rendezvous(id.digest, among: [keys[1], keys[2]], count: 1)
        #expect(holding.contains(keys.firstIndex(of: expected[0])!), "the peer rendezvous hashing picks holds it")
        let other = try #require((0..<3).first { !holding.contains($0) })
        let (bytes, source) = try await x[other].get(id)
        #expect(bytes == blob && source != "self")

        // Wrong put arguments change nothing.
        await #expect(throws: BlobExchange.Failure.self) { try await x[0].put(blob + [1], as: id, account: Self.gateway.publicKey.address, signature: sig) }

        // A peer asking for a replica with a forged authorisation: refused, not stored, reported.
        let junk = Array("not put by any gateway".utf8)
        let forged = BlobMessage.store(id: 7, bytes: junk, account: Self.gateway.publicKey.address, signature: sig)
        #expect(await x[1].receive(forged.canonicalBytes, from: keys[0]) == false)
        #expect(!FileManager.default.fileExists(atPath: dirs[1] + "/\(ContentID(of: junk))"))
        // Garbage is refused too; an unknown blob is answered missing everywhere, quickly.
        #expect(await x[1].receive([0xFF, 1, 2], from: keys[0]) == false)
        await #expect(throws: BlobExchange.Failure.notFound(ContentID(of: junk))) { try await x[2].get(ContentID(of: junk)) }
        #expect(wire.lock.withLock { wire.banned.isEmpty }, "honest exchanges never reported each other")
    }

    @Test("a tampered local copy is set aside and replaced by a good one from a peer")
    func heal() async throws {
        let (_, _, x, dirs) = try network(2, replicas: 2)
        let blob = [UInt8](repeating: 9, count: 10_000), id = ContentID(of: blob)
        let sig = Self.gateway.sign(BlobPutAuth.message(chainID: "test", digest: id.digest))
        _ = try await x[0].put(blob, as: id, account: Self.gateway.publicKey.address, signature: sig)
        var bad = blob
        bad[5_000] = 8
        try Data(bad).write(to: URL(fileURLWithPath: dirs[1] + "/\(id)"))
        let (bytes, source) = try await x[1].get(id)
        #expect(bytes == blob && source != "self")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dirs[1] + "/\(id)")) == Data(blob))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dirs[1]).contains { $0.hasPrefix("\(id).tampered-") })
    }
}
