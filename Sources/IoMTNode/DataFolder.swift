import Foundation
#if canImport(Glibc)
import Glibc
#endif
import IoMTCore

extension KeyFile {
    public static func load(path: String) throws -> PrivateKey {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(KeyFile.self, from: data).privateKeyValue()
    }

    public static func save(_ key: PrivateKey, path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try enc.encode(KeyFile(key))
        guard FileManager.default.createFile(atPath: path, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}

/// A node's data folder: `genesis.json`, `validator.key.json`, `ledger.sqlite` (and, for the
/// dev chain, `admin.key.json`: the key of its one member-admin).
public struct DataFolder: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var genesisPath: String { path + "/genesis.json" }
    public var validatorKeyPath: String { path + "/validator.key.json" }
    public var adminKeyPath: String { path + "/admin.key.json" }
    public var ledgerPath: String { path + "/ledger.sqlite" }

    public var exists: Bool { FileManager.default.fileExists(atPath: genesisPath) }
    public var lockPath: String { path + "/LOCK" }

    public struct InUse: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "data folder \(path) is in use by another iomtchain node (lock \(path)/LOCK)" }
    }

    /// Takes the folder's exclusive lock for the life of the process, so two nodes never share a
    /// ledger. The kernel drops the lock when the process dies, even on kill -9.
    public func lockForProcess() throws {
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath]) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw InUse(path: path)
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { write(fd, $0, strlen($0)) }
        // fd is deliberately never closed: the lock lives as long as the process.
    }

    /// Creates a one-validator development chain: one organisation, one admin, one validator.
    /// Does nothing if the folder already has a genesis file.
    @discardableResult
    public func initialiseDev(chainId: String = "iomt-dev", nowMs: Int64, blockIntervalMs: UInt64 = 200) throws -> Bool {
        guard !exists else { return false }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let validator = PrivateKey.generate(.ed25519)
        let admin = PrivateKey.generate(.ed25519)
        let org = Organisation(id: "dev-hospital", name: "Development Hospital", kind: "hospital")
        let genesis = Genesis(
            chainId: chainId, genesisTimeMs: nowMs, organisations: [org],
            admins: [.init(publicKey: admin.publicKey, organisation: org.id, label: "dev admin")],
            adminQuorum: 1,
            validators: [Validator(publicKey: validator.publicKey, organisation: org.id)],
            consensus: ConsensusParameters(blockIntervalMs: blockIntervalMs))
        try KeyFile.save(validator, path: validatorKeyPath)
        try KeyFile.save(admin, path: adminKeyPath)
        try writeGenesis(genesis)
        return true
    }

    public func writeGenesis(_ g: Genesis) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(g).write(to: URL(fileURLWithPath: genesisPath), options: .atomic)
    }

    public func loadGenesis() throws -> (genesis: Genesis, bytes: [UInt8]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: genesisPath))
        return (try JSONDecoder().decode(Genesis.self, from: data), [UInt8](data))
    }

    /// Opens the node. `requireValidator: false` for a consortium observer, whose key
    /// (`validator.key.json`) is its node identity but not in the validator set.
    public func openNode(mempoolCapacity: Int = Node.defaultMempoolCapacity, requireValidator: Bool = true) throws -> Node {
        let (genesis, bytes) = try loadGenesis()
        let key = try KeyFile.load(path: validatorKeyPath)
        return try Node(databasePath: ledgerPath, genesis: genesis, genesisFile: bytes, validatorKey: key, mempoolCapacity: mempoolCapacity,
                        requireValidator: requireValidator)
    }
}
