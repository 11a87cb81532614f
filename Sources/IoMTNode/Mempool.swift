import IoMTContracts
import IoMTCore

/// Why a transaction was not admitted. Never stored; `code` is stable.
public enum AdmissionError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(String)
    case tooLarge(bytes: Int, limit: Int)
    case badSignature
    case duplicate(Hash)
    case mempoolFull(capacity: Int)
    case rejected(ContractError)
    /// The node could not record the transaction durably; it may still commit (query it).
    case storageUnavailable(String)

    public var code: String {
        switch self {
        case .malformed: return "malformed-transaction"
        case .tooLarge: return "transaction-too-large"
        case .badSignature: return "bad-signature"
        case .duplicate: return "duplicate-transaction"
        case .mempoolFull: return "mempool-full"
        case .rejected(let e): return e.code
        case .storageUnavailable: return "storage-unavailable"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let s): return "malformed transaction: \(s)"
        case .tooLarge(let b, let l): return "transaction is \(b) bytes; the limit is \(l)"
        case .badSignature: return "signature does not verify against signerKey"
        case .duplicate(let h): return "transaction \(h) is already pending or committed"
        case .mempoolFull(let c): return "mempool is full (\(c) transactions): retry later"
        case .rejected(let e): return e.description
        case .storageUnavailable(let s): return "the node could not record the transaction durably (\(s)); it may still commit: query it before resubmitting"
        }
    }
}

/// Admitted, not yet committed transactions in admission order, with the state they lead to.
///
/// Admission runs each transaction against `pendingState` (committed state plus every pending
/// transaction), so nonce gaps, replays and failing contract preconditions are refused at the door.
/// Bounded by `capacity`; when full, admission fails with `mempoolFull` (backpressure to clients).
struct Mempool {
    struct Entry {
        var tx: SealedTransaction
        var size: Int { tx.bytes.count }
        /// What this transaction wrote on top of the ones before it.
        var writes: [[UInt8]: [UInt8]?]
        /// What it read from the state before it (first read of each key it had not written).
        var reads: [[UInt8]: [UInt8]?]
        /// When it was first admitted (ms): what has waited long is gossiped again.
        var admittedAtMs: Int64
    }

    let capacity: Int
    private(set) var entries: [Entry] = []
    private(set) var hashes: Set<Hash> = []
    private(set) var pendingState: StateOverlay

    init(capacity: Int, committed: AuthenticatedState) {
        self.capacity = capacity
        pendingState = StateOverlay(base: committed)
    }

    var count: Int { entries.count }

    /// The signature each admitted transaction was verified with, by transaction hash.
    private(set) var verifiedSignatures: [Hash: Signature] = [:]

    /// Admits a transaction whose size and signature were already checked.
    /// `ignoringCapacity` is for transactions already acknowledged (restored after a restart,
    /// re-run after a block): the bound applies to new admissions only.
    mutating func admit(_ tx: SealedTransaction, context: ExecutionContext, ignoringCapacity: Bool = false, admittedAtMs: Int64? = nil) throws(AdmissionError) {
        guard !hashes.contains(tx.hash) else { throw .duplicate(tx.hash) }
        guard ignoringCapacity || entries.count < capacity else { throw .mempoolFull(capacity: capacity) }
        let touched: [[UInt8]]
        let recorder = ReadRecorder()
        pendingState.recorder = recorder
        defer { pendingState.recorder = nil }
        do { touched = try Runtime.apply(tx, to: &pendingState, context: context) } catch { throw .rejected(error) }
        var writes: [[UInt8]: [UInt8]?] = [:]
        for k in touched { writes[k] = pendingState.writes[k] ?? nil }
        entries.append(Entry(tx: tx, writes: writes, reads: recorder.reads, admittedAtMs: admittedAtMs ?? context.timestampMs))
        hashes.insert(tx.hash)
        verifiedSignatures[tx.hash] = tx.signed.signature
    }

    /// The longest prefix within the block limits.
    func candidateBlock(maxTransactions: Int, maxBytes: Int) -> [SealedTransaction] {
        var bytes = 0
        var out: [SealedTransaction] = []
        for e in entries.prefix(maxTransactions) {
            if bytes + e.size > maxBytes { break }
            bytes += e.size
            out.append(e.tx)
        }
        return out
    }

    /// Up to `limit` transactions admitted at or before `cutoffMs`, oldest first.
    func waiting(since cutoffMs: Int64, limit: Int) -> [SealedTransaction] {
        var out: [SealedTransaction] = []
        for e in entries where e.admittedAtMs <= cutoffMs {
            out.append(e.tx)
            if out.count >= limit { break }
        }
        return out
    }

    /// Whether the mempool starts with exactly these transactions, in this order.
    func startsWith(_ hashes: [Hash]) -> Bool {
        guard hashes.count <= entries.count else { return false }
        return zip(entries, hashes).allSatisfy { $0.tx.hash == $1 }
    }

    /// After a block commits: removes its transactions. If the block ran exactly the pending
    /// prefix (`exact`), the rest keep their recorded writes. Otherwise each remaining transaction,
    /// in order, is checked against the new pending state: if every value it read is still the
    /// value it would read now, it would run the same, and keeps its writes (Block-STM's
    /// validation); else it is run again, and dropped (returned) if it no longer applies.
    /// `reexecuteAll` runs every one again (the reference the validation is tested against).
    mutating func rebase(on committed: AuthenticatedState, removing included: Set<Hash>, exact: Bool, context: ExecutionContext,
                         reexecuteAll: Bool = false) -> [(SealedTransaction, ContractError)] {
        let remaining = entries.filter { !included.contains($0.tx.hash) }
        hashes.subtract(included)
        for h in included { verifiedSignatures.removeValue(forKey: h) }
        if exact {
            var writes: [[UInt8]: [UInt8]?] = [:]
            for e in remaining { for (k, v) in e.writes { writes[k] = v } }
            entries = remaining
            pendingState = StateOverlay(base: committed, writes: writes)
            return []
        }
        entries = []
        hashes = []
        verifiedSignatures = [:]
        pendingState = StateOverlay(base: committed)
        var dropped: [(SealedTransaction, ContractError)] = []
        for e in remaining {
            if !reexecuteAll, e.reads.allSatisfy({ pendingState.value(forKey: $0.key) == $0.value }) {
                for (k, v) in e.writes {
                    if let v { pendingState.set(k, v) } else { pendingState.delete(k) }
                }
                entries.append(e)
                hashes.insert(e.tx.hash)
                verifiedSignatures[e.tx.hash] = e.tx.signed.signature
                continue
            }
            do throws(AdmissionError) { try admit(e.tx, context: context, ignoringCapacity: true, admittedAtMs: e.admittedAtMs) } catch {
                if case .rejected(let c) = error { dropped.append((e.tx, c)) }
            }
        }
        return dropped
    }
}
