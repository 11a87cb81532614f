import ArgumentParser
import Foundation
import Hummingbird
import IoMTAPI
import IoMTCore
import IoMTNode
import IoMTStore

struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Run a node.", subcommands: [Run.self, Init.self])

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a one-validator development chain in a data folder.")
        @Option(help: "Data folder.") var dataDir = "./data"
        @Option(help: "Chain id.") var chainId = "iomt-dev"
        @Option(help: "Block interval in milliseconds.") var blockIntervalMs: UInt64 = 200

        func run() throws {
            let folder = DataFolder(path: dataDir)
            if try folder.initialiseDev(chainId: chainId, nowMs: nowMs(), blockIntervalMs: blockIntervalMs) {
                print("created \(folder.genesisPath), \(folder.validatorKeyPath), \(folder.adminKeyPath)")
            } else {
                print("\(folder.genesisPath) exists; nothing changed")
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a node on a data folder (SQLite ledger inside it).")
        @Option(help: "Data folder with genesis.json and validator.key.json.") var dataDir = "./data"
        @Flag(help: "Create a one-validator development chain in the data folder on first start.") var dev = false
        @Option(help: "HTTP API address host:port (port 0 picks a free one).") var http = "127.0.0.1:8080"
        @Option(help: "Mempool capacity (transactions).") var mempoolCapacity = Node.defaultMempoolCapacity
        @Flag(help: "Run as a member of a consortium: the genesis's consensus (BFT, PoA or PoW) with the peers (needs --p2p).") var consortium = false
        @Flag(help: "With --consortium: follow the chain without voting (the key must be registered on-chain with the node role).") var observer = false
        @Option(help: "With --consortium: peer-to-peer listen address host:port.") var p2p = "127.0.0.1:26656"
        @Option(help: "With --consortium: nodes that keep each blob a gateway puts here (this one and the rest chosen among the connected peers by rendezvous hashing).") var blobReplicas = 3
        @Option(help: "With --consortium: a peer to dial, host:port or host:port@<node key> (repeatable).") var peer: [String] = []

        func run() async throws {
            let folder = DataFolder(path: dataDir)
            if dev, try folder.initialiseDev(nowMs: nowMs()) {
                log("initialised development chain in \(dataDir) (admin key: \(folder.adminKeyPath))")
            }
            guard folder.exists else {
                throw CLIError("no genesis.json in \(dataDir): pass --dev for a development chain, or run `iomtchain node init`")
            }
            try folder.lockForProcess()
            let node = try folder.openNode(mempoolCapacity: mempoolCapacity, requireValidator: !observer)
            guard consortium || node.genesis.mode.kind == .bft else {
                throw CLIError("this chain's genesis selects \(node.genesis.mode.kind) consensus, which runs only with --consortium (see `iomtchain devnet --consensus`)")
            }
            let restored = try await node.restorePending()
            let status = await node.status()
            log("chain \(status.chainId) at height \(status.height), block \(status.latestBlockHash); \(restored.restored) pending restored, \(restored.dropped) dropped")

            let parts = http.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw CLIError("--http must be host:port") }
            var consortiumStop: (@Sendable () async -> Void)?
            var consensusInfo: (@Sendable () async -> ConsensusInfo)?
            let blobStore = try BlobStore(folder: dataDir + "/blobs")
            let authorise: BlobExchange.Authorise = { [node] account, signature, digest in
                BlobExchange.check(account: account, signature: signature, digest: digest, chainID: node.genesis.chainId, state: await node.committedState)
            }
            var blobs: BlobExchange?
            if consortium {
                guard blobReplicas >= 1 else { throw CLIError("--blob-replicas must be at least 1") }
                let started = try await startConsortium(node: node, nodeKey: node.validatorKey, observer: observer, listen: p2p, peers: try peer.map(parsePeer),
                                                        blobStore: blobStore, blobReplicas: blobReplicas, authorise: authorise)
                consortiumStop = started.stop
                consensusInfo = started.info
                blobs = started.blobs
            }
            // Blobs of batches confirmed erased are deleted here as their confirmations commit.
            let sweeper = Task { [node, blobStore] in await ErasureSweeper(node: node, blobs: blobStore).run() }
            defer { sweeper.cancel() }
            let app = Application(
                router: API(node: node, consensus: consensusInfo, blobs: blobs ?? BlobExchange(store: blobStore, authorise: authorise)).router(),
                configuration: .init(address: .hostname(String(parts[0]), port: port), serverName: "iomtchain"),
                onServerRunning: { channel in
                    log("http listening on \(parts[0]):\(channel.localAddress?.port ?? port)")
                })
            if let consortiumStop {
                do { try await app.runService() } catch { await consortiumStop(); throw error }
                await consortiumStop()
            } else {
                let producer = Task { await node.runProducer() }
                defer { producer.cancel() }
                try await app.runService()
            }
        }
    }
}

/// One line to stderr, flushed (tests read it).
func log(_ s: String) {
    FileHandle.standardError.write(Data("[iomtchain] \(s)\n".utf8))
}
