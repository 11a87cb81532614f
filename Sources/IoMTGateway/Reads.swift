@preconcurrency import Crypto
import Foundation
import IoMTCore
import IoMTEdge

/// Serving patient data to readers (issue 5 §3, §5). A reader signs its request with its account
/// key; the gateway checks the signature, the request's freshness and nonce, then asks its node's
/// consent contract (latest committed height). If the reader may read, and the patient has
/// delegated re-wrapping to this gateway, each matching batch's data key is unwrapped with the
/// gateway's custody key and wrapped again for the reader's published X25519 key: the reader
/// fetches the blob from any node and decrypts it locally. Every request that names a patient,
/// answered or refused, is appended to the audit log before the reply, and the log is anchored
/// on-chain in contiguous runs.
extension Gateway {
    /// What a signed request carries, as received.
    public struct SignedRequestParts: Sendable {
        public var method: String
        /// Path and query, exactly as sent.
        public var target: String
        public var account: String?
        public var timestamp: String?
        public var nonce: String?
        public var signature: String?
        public var body: [UInt8]

        public init(method: String, target: String, account: String?, timestamp: String?, nonce: String?, signature: String?, body: [UInt8] = []) {
            self.method = method; self.target = target; self.account = account; self.timestamp = timestamp; self.nonce = nonce; self.signature = signature; self.body = body
        }
    }

    /// Why a read was refused. `code` is stable; `status` is the HTTP status.
    public struct ReadRefusal: Error, Sendable, CustomStringConvertible {
        public var code: String
        public var status: Int
        public var description: String
    }

    public struct DataQuery: Sendable {
        public var subject: Hash
        public var category: String
        public var purpose: String
        public var fromMs: Int64
        public var toMs: Int64

        public init(subject: Hash, category: String, purpose: String, fromMs: Int64, toMs: Int64) {
            self.subject = subject; self.category = category; self.purpose = purpose; self.fromMs = fromMs; self.toMs = toMs
        }
    }

    /// One batch the reader may open: where to fetch it, what to check it against, and its data
    /// key wrapped for the reader.
    public struct ServedBatch: Sendable, Codable {
        public var cid: String
        public var batchRoot: Hash
        public var device: Address
        public var firstMs: Int64
        public var lastMs: Int64
        public var count: Int
        public var anchorHeight: UInt64?
        public var anchorTransaction: Hash?
        public var key: SealedBlob.WrappedKey
    }

    public struct DataReply: Sendable, Codable {
        public var subject: Hash
        public var category: String
        public var purpose: String
        public var basis: String
        public var reference: Hash?
        /// The committed height the consent decision was taken at.
        public var height: UInt64
        public var batches: [ServedBatch]
        /// The audit entry recording this read.
        public var auditSeq: UInt64
    }

    /// Most batches one request serves (ask again with a later `from` for more).
    public static let maxServedBatches = 1_000

    /// Checks a signed request: the account exists and is active, the signature is its current
    /// key's, the timestamp is within `SignedRequest.maxSkewMs`, and (with `claimNonce`) the nonce
    /// is new. `readData` claims the nonce later, in the same write as its audit entry.
    func authenticate(_ r: SignedRequestParts, nowMs: Int64, claimNonce: Bool = true) async -> (reader: Address, account: Account?, digest: Hash, nonce: String?, refusal: ReadRefusal?) {
        func refuse(_ code: String, _ status: Int, _ d: String) -> ReadRefusal { ReadRefusal(code: code, status: status, description: d) }
        let claimed = r.account.flatMap(Address.init(hex:)) ?? .zero
        guard let ts = r.timestamp.flatMap({ Int64($0) }), let nonce = r.nonce, (16...64).contains(nonce.utf8.count), Hex.decode(nonce) != nil,
              let sigHex = r.signature, let sigBytes = Hex.decode(sigHex), let signature = Signature(bytes: sigBytes), r.account.flatMap(Address.init(hex:)) != nil else {
            return (claimed, nil, Hash.sha256(Array(r.target.utf8)), nil,
                    refuse("missing-credentials", 401, "sign the request: X-IoMT-Account (40 hex digits), X-IoMT-Timestamp (ms), X-IoMT-Nonce (16-64 hex digits), X-IoMT-Signature (hex, over iomtchain/request/v1)"))
        }
        let message = SignedRequest.message(chainID: chainID, audience: self.account.publicKey.address, method: r.method, target: r.target, timestampMs: ts, nonce: nonce, body: r.body)
        let digest = Hash.sha256(message)
        // Compared without subtracting: a timestamp near Int64.min or .max must not overflow.
        guard ts >= nowMs - SignedRequest.maxSkewMs, ts <= nowMs + SignedRequest.maxSkewMs else {
            return (claimed, nil, digest, nil, refuse("stale-request", 401, "the request's timestamp \(ts) is more than \(SignedRequest.maxSkewMs / 1000) s from the gateway's clock (\(nowMs))"))
        }
        let account: Account?
        do { account = try await node.state(StateKeys.account(claimed)).map { try Account(canonicalBytes: $0) } } catch {
            return (claimed, nil, digest, nil, refuse("node-unavailable", 503, "cannot read the account from the chain: \(error)"))
        }
        guard let account else { return (claimed, nil, digest, nil, refuse("unknown-account", 401, "\(claimed) is not an account on the chain")) }
        guard account.status == .active else { return (claimed, account, digest, nil, refuse("account-not-active", 403, "account \(claimed) is \(account.status.name)")) }
        guard account.publicKey.isValidSignature(signature, for: message) else {
            return (claimed, account, digest, nil, refuse("bad-signature", 401, "the signature is not account \(claimed)'s over this request"))
        }
        if claimNonce {
            do {
                guard try store.claimNonce(account: claimed, nonce: nonce, atMs: nowMs, forgetBeforeMs: nowMs - 2 * SignedRequest.maxSkewMs) else {
                    return (claimed, account, digest, nonce, Self.replayed(nonce, claimed))
                }
            } catch {
                return (claimed, account, digest, nonce, refuse("internal-error", 500, "\(error)"))
            }
        }
        return (claimed, account, digest, nonce, nil)
    }

    /// A signed request by this gateway organisation's staff: an active practitioner or member-admin
    /// of it (who sees the ward's alerts whole).
    func checkStaff(_ r: SignedRequestParts) async throws(ReadRefusal) {
        let auth = await authenticate(r, nowMs: Self.nowMs())
        if let refusal = auth.refusal { throw refusal }
        let organisation: String
        do { organisation = try await self.organisation() } catch { throw ReadRefusal(code: "node-unavailable", status: 503, description: "\(error)") }
        guard let a = auth.account, [.practitioner, .memberAdmin].contains(a.role), a.organisation == organisation else {
            throw ReadRefusal(code: "access-denied", status: 403, description: "only a practitioner or member-admin of \"\(organisation)\" sees its alerts whole (unsigned, they come redacted)")
        }
    }

    static func replayed(_ nonce: String, _ account: Address) -> ReadRefusal {
        ReadRefusal(code: "replayed-request", status: 409, description: "nonce \(nonce) was already used by \(account): a replayed request")
    }

    /// Runs `body`, capturing its error.
    private static func attempt<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    /// Serves a reader the data keys of the subject's batches it may read; refusals are audited too.
    public func readData(_ r: SignedRequestParts, _ q: DataQuery) async throws(ReadRefusal) -> DataReply {
        let now = Self.nowMs()
        var auth = await authenticate(r, nowMs: now, claimNonce: false)
        // A replay is refused before any work (the claim itself is made atomically with the audit entry).
        if auth.refusal == nil, let nonce = auth.nonce, (try? store.nonceUsed(account: auth.reader, nonce: nonce)) == true {
            auth.refusal = Self.replayed(nonce, auth.reader)
        }
        // One write per request: the nonce (once the signature is good) and the audit entry go in
        // one SQLite transaction, so a replay is refused and recorded atomically.
        let claim = auth.refusal == nil ? auth.nonce.map { (auth.reader, $0, now, now - 2 * SignedRequest.maxSkewMs) } : nil
        func audited(allowed: Bool, basis: String, reference: Hash?, code: String, batches: Int) throws(ReadRefusal) -> AuditEntry {
            let written: (entry: AuditEntry, replayed: Bool)
            do {
                written = try store.appendAudit(claiming: claim, subject: q.subject) { seq, subjectSeq, replayed in
                    AuditEntry(seq: seq, subjectSeq: subjectSeq, atMs: now, reader: auth.reader, subject: q.subject, category: q.category, purpose: q.purpose, fromMs: q.fromMs, toMs: q.toMs,
                               allowed: allowed && !replayed, basis: replayed ? "denied" : basis, reference: replayed ? nil : reference,
                               code: replayed ? "replayed-request" : code, batches: replayed ? 0 : UInt32(batches), requestDigest: auth.digest)
                }
            } catch {
                throw ReadRefusal(code: "internal-error", status: 500, description: "cannot write the audit log, so nothing is served: \(error)")
            }
            if written.replayed { throw Self.replayed(auth.nonce ?? "", auth.reader) }
            return written.entry
        }
        func refuse(_ e: ReadRefusal) throws(ReadRefusal) -> Never {
            _ = try audited(allowed: false, basis: "denied", reference: nil, code: e.code, batches: 0)
            throw e
        }
        if let refusal = auth.refusal { try refuse(refusal) }
        // The three questions to the chain go out together.
        let node = self.node, reader = auth.reader
        async let decisionResult = Self.attempt { try await node.access(reader: reader, q) }
        async let keyResult = Self.attempt { try await node.state(StateKeys.agreementKey(reader)) }
        async let delegationResult = Self.attempt { try await node.state(StateKeys.delegations(of: q.subject)) }
        let decision: NodeLink.AccessReply
        switch await decisionResult {
        case .success(let d): decision = d
        case .failure(let e as NodeLink.QueryError): try refuse(ReadRefusal(code: e.code, status: 400, description: e.description))
        case .failure(let e): try refuse(ReadRefusal(code: "node-unavailable", status: 503, description: "cannot ask the consent contract: \(e)"))
        }
        let keyBytes = await keyResult, delegationBytes = await delegationResult
        guard decision.allowed else { try refuse(ReadRefusal(code: "access-denied", status: 403, description: decision.reason)) }
        let readerKey: X25519Key
        let delegated: Bool
        do {
            guard let k = try keyBytes.get().map({ try AgreementKeyRecord(canonicalBytes: $0) }) else {
                try refuse(ReadRefusal(code: "no-agreement-key", status: 409, description: "account \(auth.reader) has published no X25519 key (set-agreement-key): there is nothing to wrap data keys for"))
            }
            readerKey = k.key
            let set = try delegationBytes.get().map { try AddressSet(canonicalBytes: $0) }
            delegated = set?.contains(account.publicKey.address) ?? false
        } catch let e as ReadRefusal { throw e } catch {
            try refuse(ReadRefusal(code: "node-unavailable", status: 503, description: "cannot read keys from the chain: \(error)"))
        }
        // The patient reading its own data needs no delegation; anyone else does.
        guard delegated || decision.basis == "own" else {
            try refuse(ReadRefusal(code: "no-delegation", status: 403, description: "the patient has not let this gateway re-wrap its data keys (set-rewrap-delegation); ask the patient's agent"))
        }
        var served: [ServedBatch] = []
        do {
            let reader = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: readerKey.bytes)
            // The subject's own custody key (batches sealed before there were per-subject keys
            // were sealed for the gateway's).
            let custody = try store.subjectKey(q.subject, create: false).map { try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: $0) } ?? sealingKey
            for b in try store.readableBatches(subject: q.subject, category: q.category, fromMs: q.fromMs, toMs: q.toMs, limit: Self.maxServedBatches) {
                guard let cid = ContentID(b.cid) else { continue }
                let blob = try SealedBlob(bytes: try blobs.get(cid))
                served.append(ServedBatch(cid: b.cid, batchRoot: b.root, device: b.device, firstMs: b.firstMs, lastMs: b.lastMs, count: b.count,
                                          anchorHeight: b.committedHeight, anchorTransaction: b.txHash, key: try blob.rewrap(with: custody, for: reader)))
            }
        } catch {
            try refuse(ReadRefusal(code: "internal-error", status: 500, description: "cannot re-wrap the batches' keys: \(error)"))
        }
        let entry = try audited(allowed: true, basis: decision.basis, reference: decision.reference, code: "granted", batches: served.count)
        return DataReply(subject: q.subject, category: q.category, purpose: q.purpose, basis: decision.basis, reference: decision.reference,
                         height: decision.height, batches: served, auditSeq: entry.seq)
    }

    /// The audit log of one patient, for the patient or a member-admin of this gateway's
    /// organisation (its privacy officer). The request is signed like a read.
    public func auditLog(_ r: SignedRequestParts, subject: Hash, after: UInt64, limit: Int) async throws(ReadRefusal) -> [GatewayStore.AuditRecord] {
        let auth = await authenticate(r, nowMs: Self.nowMs())
        if let refusal = auth.refusal { throw refusal }
        guard let reader = auth.account else { throw ReadRefusal(code: "unknown-account", status: 401, description: "unknown account") }
        var allowed = Pseudonym.of(reader.address) == subject && reader.role == .patient
        if !allowed, reader.role == .memberAdmin {
            let me = try? await node.state(StateKeys.account(account.publicKey.address)).map { try Account(canonicalBytes: $0) }
            allowed = me?.organisation == reader.organisation
        }
        guard allowed else { throw ReadRefusal(code: "unauthorised", status: 403, description: "only the patient, or a member-admin of this gateway's organisation, lists a patient's audit log") }
        do { return try store.audit(subject: subject, after: after, limit: limit) } catch {
            throw ReadRefusal(code: "internal-error", status: 500, description: "\(error)")
        }
    }
}

extension Gateway {
    /// A reading's proof carries the reading itself. A place's reading is served to anyone; a
    /// patient's only to a signed request by the patient, a reader the consent contract allows
    /// for the reading's category and `purpose`, or a member-admin of this gateway's organisation
    /// (the custodian) — and every such request, served or refused, is in the audit log.
    public func protectedProof(sequence: Int64, request r: SignedRequestParts, purpose: String) async throws -> ReadingProof {
        let proof = try await proof(sequence: sequence)
        guard let stored = try store.reading(seq: sequence) else { throw ProofError.unknown }
        var subject = stored.batch?.subject
        if subject == nil {
            // Fails closed: a reading whose device cannot be looked up is not served.
            do { subject = try await deviceRecord(stored.device)?.subject } catch {
                throw ReadRefusal(code: "node-unavailable", status: 503, description: "cannot tell whose reading \(sequence) is: \(error)")
            }
        }
        guard let subject else { return proof }
        guard Purpose.all.contains(purpose) else { throw ReadRefusal(code: "invalid-query", status: 400, description: "purpose is one of \(Purpose.all.joined(separator: ", "))") }
        let reading = stored.reading
        let q = DataQuery(subject: subject, category: reading.kind.dataCategory, purpose: purpose, fromMs: reading.effectiveMs, toMs: reading.effectiveEndMs ?? reading.effectiveMs)
        let now = Self.nowMs()
        let auth = await authenticate(r, nowMs: now)
        var basis = "denied", reference: Hash?, refusal = auth.refusal
        if refusal == nil, let reader = auth.account {
            if reader.role == .memberAdmin, let me = try? await node.state(StateKeys.account(account.publicKey.address)).map({ try Account(canonicalBytes: $0) }),
               me.organisation == reader.organisation {
                basis = "custodian"
            } else {
                do {
                    let d = try await node.access(reader: auth.reader, q)
                    if !d.allowed {
                        refusal = ReadRefusal(code: "access-denied", status: 403, description: d.reason)
                    } else if d.basis != "own", try await node.state(StateKeys.delegations(of: subject)).map({ try AddressSet(canonicalBytes: $0) })?.contains(account.publicKey.address) != true {
                        // As for /data: only with the patient's delegation does this gateway serve others.
                        refusal = ReadRefusal(code: "no-delegation", status: 403, description: "the patient has not let this gateway serve its data to others (set-rewrap-delegation)")
                    } else {
                        basis = d.basis; reference = d.reference
                    }
                } catch {
                    refusal = ReadRefusal(code: "node-unavailable", status: 503, description: "cannot ask the consent contract: \(error)")
                }
            }
        }
        let allowed = refusal == nil
        _ = try store.appendAudit(subject: subject) { seq, subjectSeq, _ in
            AuditEntry(seq: seq, subjectSeq: subjectSeq, atMs: now, reader: auth.reader, subject: subject, category: q.category, purpose: purpose, fromMs: q.fromMs, toMs: q.toMs,
                       allowed: allowed, basis: basis, reference: reference, code: refusal?.code ?? "granted", batches: allowed ? 1 : 0, requestDigest: auth.digest)
        }
        if let refusal { throw refusal }
        return proof
    }
}

extension NodeLink {
    struct StateValue: Decodable { var value: String? }

    /// A committed state value at the node's latest height (nil: none).
    public func state(_ key: [UInt8]) async throws -> [UInt8]? {
        let r = try await request("GET", "/v1/state/" + Hex.encode(key))
        guard r.status == 200 else { throw GatewayError.node("GET state: HTTP \(r.status)") }
        guard let hex = try JSONDecoder().decode(StateValue.self, from: r.body).value else { return nil }
        guard let bytes = Hex.decode(hex) else { throw GatewayError.node("state value is not hex") }
        return bytes
    }

    public struct AccessReply: Sendable, Decodable {
        public var allowed: Bool
        public var basis: String
        public var reference: Hash?
        public var reason: String
        public var height: UInt64
    }

    /// A malformed question (unknown category or purpose): the node's problem code.
    public struct QueryError: Error, CustomStringConvertible { public var code: String; public var description: String }

    /// The consent contract's decision at the node's latest committed height.
    public func access(reader: Address, _ q: Gateway.DataQuery) async throws -> AccessReply {
        func enc(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s }
        let r = try await request("GET", "/v1/access?reader=\(reader.hex)&subject=\(q.subject.hex)&category=\(enc(q.category))&purpose=\(enc(q.purpose))&from=\(q.fromMs)&to=\(q.toMs)")
        if r.status == 400 {
            let p = (try? JSONSerialization.jsonObject(with: r.body) as? [String: Any]) ?? [:]
            throw QueryError(code: p["code"] as? String ?? "invalid-query", description: p["detail"] as? String ?? "the node refused the question")
        }
        guard r.status == 200 else { throw GatewayError.node("GET /v1/access: HTTP \(r.status)") }
        return try JSONDecoder().decode(AccessReply.self, from: r.body)
    }
}

// Randomness stays out of the deterministic core (IoMTCore): these draw it here.
extension PatientSecret {
    /// A new random patient secret.
    public static func generate() -> PatientSecret {
        try! PatientSecret(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })
    }
}

extension SignedRequest {
    /// A fresh 128-bit nonce in hex.
    public static func newNonce() -> String { Hex.encode((0..<16).map { _ in UInt8.random(in: 0...255) }) }
}
