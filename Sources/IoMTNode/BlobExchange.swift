import Foundation
import IoMTContracts
import IoMTCore
import IoMTStore

/// What consortium nodes say to each other about blobs (one peer-to-peer frame each, its own
/// envelope kind). Ids pair a request with its answer; they mean nothing to the other side.
public enum BlobMessage: Sendable, Equatable, CanonicalCodable {
    /// "Send me this blob if you hold it."
    case want(id: UInt64, digest: Hash)
    /// The blob (the receiver checks it against the digest it asked for).
    case have(id: UInt64, bytes: [UInt8])
    /// "I do not hold it."
    case missing(id: UInt64)
    /// "Keep a replica of this blob": with the authorisation the gateway gave for it (its account
    /// and signature over chain id and digest), which the replica checks as the first node did,
    /// then the bytes against their hash; stored durably, then acknowledged.
    case store(id: UInt64, bytes: [UInt8], account: Address, signature: Signature)
    /// "It is on my disk."
    case stored(id: UInt64, digest: Hash)

    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case .want(let id, let d): w.write(UInt8(1)); w.write(id); w.write(d)
        case .have(let id, let b): w.write(UInt8(2)); w.write(id); w.writeBytes(b)
        case .missing(let id): w.write(UInt8(3)); w.write(id)
        case .store(let id, let b, let a, let sig): w.write(UInt8(4)); w.write(id); w.writeBytes(b); w.write(a); w.write(sig)
        case .stored(let id, let d): w.write(UInt8(5)); w.write(id); w.write(d)
        }
    }

    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        let tag: UInt8 = try r.read()
        switch tag {
        case 1: self = .want(id: try r.read(), digest: try r.read())
        case 2: self = .have(id: try r.read(), bytes: try r.readBytes())
        case 3: self = .missing(id: try r.read())
        case 4: self = .store(id: try r.read(), bytes: try r.readBytes(), account: try r.read(), signature: try r.read())
        case 5: self = .stored(id: try r.read(), digest: try r.read())
        default: throw .unknownTag(type: "BlobMessage", tag: tag)
        }
    }
}

/// How the blob exchange reaches the other nodes: the authenticated peer-to-peer network in a
/// consortium, nothing for a solo node.
public protocol BlobPeers: Sendable {
    /// Peers connected now.
    func connected() -> [PublicKey]
    func send(_ message: BlobMessage, to peer: PublicKey) async
}

/// No peers (a solo dev node): blobs are kept locally only.
public struct NoBlobPeers: BlobPeers {
    public init() {}
    public func connected() -> [PublicKey] { [] }
    public func send(_ message: BlobMessage, to peer: PublicKey) async {}
}

/// Off-chain blobs held by the consortium (issue 4 §3). A gateway puts a sealed blob on its node;
/// the node keeps it and asks `replicationFactor − 1` peers, chosen by rendezvous hashing of the
/// blob's digest with their keys, to keep replicas, waiting for their acknowledgements. Any node
/// serves any blob: from its disk, else fetched from whichever peer holds it. Every copy is checked
/// against its content id wherever it lands: a tampered local file is set aside and fetched again,
/// and a peer that answers with bytes that are not the blob it was asked for is reported (the
/// network bans it).
public actor BlobExchange {
    public let store: BlobStore
    public let replicationFactor: Int
    /// Largest blob accepted (it must fit one peer-to-peer frame).
    public let maxBlobBytes: Int
    let peers: any BlobPeers
    let timeoutMs: UInt64
    /// Who may store a blob: an active gateway or member-admin account whose key signed
    /// `BlobPutAuth.message` for this chain and digest (checked against committed state).
    public typealias Authorise = @Sendable (_ account: Address, _ signature: Signature, _ digest: Hash) async -> PutRefusal?
    public nonisolated let authorise: Authorise
    /// Blob files are read, hashed, written and fsync'd here, not on Swift's cooperative threads
    /// (two of them here: a 4 MiB write and its fsyncs would stall every task of the node). A
    /// concurrent queue: puts of different blobs overlap their fsyncs (each writes its own
    /// temporary file and renames it into place; the same blob twice ends the same either way).
    private let io = DispatchQueue(label: "iomtchain.blobs.io", attributes: .concurrent)

    /// Request ids start at a random point, so a late answer to a request of a previous run
    /// of this node cannot be taken for the answer to a new one.
    private var nextID = UInt64.random(in: 1...(UInt64.max / 2))
    private enum Waiting {
        case fetch(digest: Hash, asked: Set<PublicKey>, missing: Set<PublicKey>, done: CheckedContinuation<(bytes: [UInt8], peer: PublicKey)?, Never>)
        case replicate(digest: Hash, peer: PublicKey, done: CheckedContinuation<Bool, Never>)
    }
    private var waiting: [UInt64: Waiting] = [:]

    public init(store: BlobStore, peers: any BlobPeers = NoBlobPeers(), replicationFactor: Int = 3, maxBlobBytes: Int = (4 << 20) - 1_024, timeoutMs: UInt64 = 5_000,
                authorise: @escaping Authorise) {
        self.store = store; self.peers = peers; self.replicationFactor = max(1, replicationFactor)
        self.maxBlobBytes = maxBlobBytes; self.timeoutMs = timeoutMs; self.authorise = authorise
    }

    /// Why a put is not authorised.
    public enum PutRefusal: Error, Equatable, Sendable, CustomStringConvertible {
        case unknownAccount(Address)
        case badSignature(Address)
        case notAllowed(String)
        public var description: String {
            switch self {
            case .unknownAccount(let a): return "no active account \(a)"
            case .badSignature(let a): return "the signature does not verify with account \(a)'s key for this blob on this chain"
            case .notAllowed(let role): return "a \(role) account cannot store blobs; gateways do"
            }
        }
    }

    /// The standard check against a committed state: an active gateway or member-admin account
    /// whose key signed `BlobPutAuth.message(chainID, digest)`.
    public static func check(account address: Address, signature: Signature, digest: Hash, chainID: String, state: AuthenticatedState) -> PutRefusal? {
        let overlay = StateOverlay(base: state)
        guard let account = try? overlay.read(Account.self, StateKeys.account(address)), account.status == .active else { return .unknownAccount(address) }
        guard account.publicKey.isValidSignature(signature, for: BlobPutAuth.message(chainID: chainID, digest: digest)) else { return .badSignature(address) }
        guard account.role == .gateway || account.role == .memberAdmin else { return .notAllowed(account.role.name) }
        return nil
    }

    private func onIO<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (c: CheckedContinuation<T, Never>) in io.async { c.resume(returning: work()) } }
    }
    private func storePut(_ bytes: [UInt8]) async -> Result<ContentID, BlobStore.Failure> {
        let store = self.store
        return await onIO { Result { () throws(BlobStore.Failure) in try store.put(bytes) } }
    }
    private func storeGet(_ id: ContentID) async -> Result<[UInt8], BlobStore.Failure> {
        let store = self.store
        return await onIO { Result { () throws(BlobStore.Failure) in try store.get(id) } }
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case mismatch(expected: ContentID, got: ContentID)
        case tooLarge(Int, limit: Int)
        case notFound(ContentID)
        case erased(ContentID)
        case io(String)
        public var description: String {
            switch self {
            case .erased(let id): return "blob \(id) was erased at its patient's request"
            case .mismatch(let e, let g): return "the bytes are blob \(g), not \(e)"
            case .tooLarge(let n, let limit): return "a blob of \(n) bytes exceeds the limit of \(limit)"
            case .notFound(let id): return "no node of the consortium holds blob \(id)"
            case .io(let s): return s
            }
        }
    }

    public struct Placement: Sendable, Codable, Equatable {
        public var cid: String
        /// Nodes that hold it durably: this one ("self") and the peers that acknowledged a replica.
        public var holders: [String]
        public var replicationFactor: Int
    }

    /// The peers (at most `count`) that should hold `digest`: highest SHA-256(digest ‖ key) first.
    public static func rendezvous(_ digest: Hash, among peers: [PublicKey], count: Int) -> [PublicKey] {
        peers.map { (Hash.sha256(digest.bytes + $0.bytes), $0) }
            .sorted { $1.0.bytes.lexicographicallyPrecedes($0.0.bytes) }
            .prefix(max(0, count)).map(\.1)
    }

    /// Stores `bytes` as blob `id` here and on `replicationFactor − 1` peers, for `account`,
    /// whose `signature` authorises it (already checked by the caller; the replicas check it again).
    public func put(_ bytes: [UInt8], as id: ContentID, account: Address, signature: Signature) async throws(Failure) -> Placement {
        guard bytes.count <= maxBlobBytes else { throw .tooLarge(bytes.count, limit: maxBlobBytes) }
        let actual = ContentID(of: bytes)
        guard actual == id else { throw .mismatch(expected: id, got: actual) }
        if case .failure(let e) = await storePut(bytes) {
            if case .erased = e { throw .erased(id) }
            throw .io(e.description)
        }
        var holders = ["self"]
        let targets = Self.rendezvous(id.digest, among: peers.connected(), count: replicationFactor - 1)
        await withTaskGroup(of: (PublicKey, Bool).self) { group in
            for peer in targets {
                group.addTask { (peer, await self.replicate(bytes, digest: id.digest, account: account, signature: signature, to: peer)) }
            }
            for await (peer, ok) in group where ok { holders.append(peer.text) }
        }
        return Placement(cid: id.description, holders: holders, replicationFactor: replicationFactor)
    }

    private func replicate(_ bytes: [UInt8], digest: Hash, account: Address, signature: Signature, to peer: PublicKey) async -> Bool {
        let id = takeID()
        return await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            waiting[id] = .replicate(digest: digest, peer: peer, done: c)
            Task {
                await peers.send(.store(id: id, bytes: bytes, account: account, signature: signature), to: peer)
                try? await Task.sleep(nanoseconds: timeoutMs * 1_000_000)
                self.expire(id)
            }
        }
    }

    /// The blob's bytes and where they came from (`self` or the peer's key): from this node's
    /// disk if it holds a good copy, else from the first peer that answers with the right bytes
    /// (kept here afterwards).
    public func get(_ id: ContentID) async throws(Failure) -> (bytes: [UInt8], source: String) {
        switch await storeGet(id) {
        case .success(let bytes): return (bytes, "self")
        case .failure(.tampered):
            log("blob \(id) on disk does not match its id: set aside, fetching a good copy from a peer")
            store.quarantine(id)
        case .failure(.notFound): break
        case .failure(.erased): throw .erased(id)
        case .failure(let e): throw .io(e.description)
        }
        guard let (bytes, peer) = await fetch(id.digest) else { throw .notFound(id) }
        if case .failure(let e) = await storePut(bytes) { log("could not keep blob \(id) fetched from \(peer): \(e)") }
        return (bytes, peer.text)
    }

    private func fetch(_ digest: Hash) async -> (bytes: [UInt8], peer: PublicKey)? {
        let asked = Set(peers.connected())
        guard !asked.isEmpty else { return nil }
        let id = takeID()
        return await withCheckedContinuation { (c: CheckedContinuation<(bytes: [UInt8], peer: PublicKey)?, Never>) in
            waiting[id] = .fetch(digest: digest, asked: asked, missing: [], done: c)
            Task {
                for p in asked { await peers.send(.want(id: id, digest: digest), to: p) }
                try? await Task.sleep(nanoseconds: timeoutMs * 1_000_000)
                self.expire(id)
            }
        }
    }

    private func takeID() -> UInt64 { defer { nextID += 1 }; return nextID }

    private func expire(_ id: UInt64) {
        switch waiting.removeValue(forKey: id) {
        case .fetch(_, _, _, let c): c.resume(returning: nil)
        case .replicate(_, _, let c): c.resume(returning: false)
        case nil: break
        }
    }

    /// Handles one frame from `peer`. Returns false for garbage or for a blob that is not the one
    /// asked for, so the network can disconnect and ban the peer.
    public func receive(_ frame: [UInt8], from peer: PublicKey) async -> Bool {
        let message: BlobMessage
        do { message = try BlobMessage(canonicalBytes: frame, maxLength: maxBlobBytes + 64) } catch { return false }
        switch message {
        case .want(let id, let digest):
            if case .success(let bytes) = await storeGet(ContentID(digest: digest)) {
                await peers.send(.have(id: id, bytes: bytes), to: peer)
            } else {
                await peers.send(.missing(id: id), to: peer)
            }
        case .have(let id, let bytes):
            guard case .fetch(let digest, let asked, _, let c)? = waiting[id], asked.contains(peer) else { return true } // late or unasked: ignore
            guard Hash.sha256(bytes) == digest else {
                log("peer \(peer) answered blob \(ContentID(digest: digest)) with other bytes: refused")
                noteMissing(id, from: peer)
                return false
            }
            waiting[id] = nil
            c.resume(returning: (bytes, peer))
        case .missing(let id):
            noteMissing(id, from: peer)
        case .store(let id, let bytes, let account, let signature):
            guard bytes.count <= maxBlobBytes else { return false }
            let digest = Hash.sha256(bytes)
            // The replica trusts no peer's word: the gateway's own authorisation must hold here
            // too (a peer relaying blobs no gateway put is refused and reported).
            if let refusal = await authorise(account, signature, digest) {
                log("peer \(peer) asked to keep blob \(ContentID(digest: digest)) without a valid put authorisation (\(refusal)): refused")
                return false
            }
            switch await storePut(bytes) {
            case .success(let cid): await peers.send(.stored(id: id, digest: cid.digest), to: peer)
            case .failure(let e): log("could not keep a replica for \(peer): \(e)")
            }
        case .stored(let id, let digest):
            guard case .replicate(let expected, let from, let c)? = waiting[id], from == peer else { return true }
            guard digest == expected else { return false }
            waiting[id] = nil
            c.resume(returning: true)
        }
        return true
    }

    /// `peer` cannot answer fetch `id`; when no asked peer can, the fetch ends now, not at its timeout.
    private func noteMissing(_ id: UInt64, from peer: PublicKey) {
        guard case .fetch(let digest, let asked, var missing, let c)? = waiting[id], asked.contains(peer) else { return }
        missing.insert(peer)
        if missing == asked {
            waiting[id] = nil
            c.resume(returning: nil)
        } else {
            waiting[id] = .fetch(digest: digest, asked: asked, missing: missing, done: c)
        }
    }

    nonisolated func log(_ s: String) {
        FileHandle.standardError.write(Data("[iomtchain] blobs: \(s)\n".utf8))
    }
}
