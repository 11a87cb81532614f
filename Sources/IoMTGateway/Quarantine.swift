import Foundation
import IoMTCore
import IoMTEdge

/// Quarantine at the gateway (issue 6 §3): the officer hands over the geofence the chain's order
/// committed to; the gateway checks the wearer's wristband against it while the order is in force.
extension Gateway {
    public enum FenceError: Error, Sendable, CustomStringConvertible {
        case invalid(String)
        case unknownOrder(Hash)
        case mismatch
        case ended(Hash)
        case unavailable(String)

        public var code: String {
            switch self {
            case .invalid: return "invalid-fence"
            case .unknownOrder: return "unknown-order"
            case .mismatch: return "fence-mismatch"
            case .ended: return "quarantine-over"
            case .unavailable: return "node-unavailable"
            }
        }

        public var description: String {
            switch self {
            case .invalid(let s): return s
            case .unknownOrder(let o): return "no quarantine order \(o) on the chain"
            case .mismatch: return "this fence (centre, radius in centimetres, salt) is not the one the order committed to"
            case .ended(let o): return "quarantine order \(o) was lifted or is past its term: its geofence is not kept"
            case .unavailable(let s): return "the chain is unreachable: \(s)"
            }
        }
    }

    public struct FenceRequest: Sendable, Codable {
        public var order: Hash
        public var xM: Double
        public var yM: Double
        public var radiusM: Double
        /// 64 hex digits.
        public var salt: String
        public init(order: Hash, xM: Double, yM: Double, radiusM: Double, salt: String) { self.order = order; self.xM = xM; self.yM = yM; self.radiusM = radiusM; self.salt = salt }

        /// The fence in centimetres, as committed.
        public func fence() -> Geofence? {
            guard let s = Hex.decode(salt), s.count == 32, [xM, yM, radiusM].allSatisfy({ $0.isFinite && abs($0) < 1e7 }), radiusM > 0 else { return nil }
            return Geofence(xCm: Int64((xM * 100).rounded()), yCm: Int64((yM * 100).rounded()), radiusCm: Int64((radiusM * 100).rounded()), salt: s)
        }
    }

    /// Lifted, or past its term: nothing left to watch.
    static func isOver(_ r: QuarantineRecord, atMs: Int64) -> Bool { r.liftedMs != nil || atMs >= r.order.untilMs }

    func quarantineRecord(_ order: Hash) async throws -> QuarantineRecord? {
        let now = Self.nowMs()
        if let c = quarantineCache[order], now - c.atMs < configuration.deviceCacheMs { return c.record }
        do {
            let r = try await node.state(StateKeys.quarantineOrder(order)).map { try QuarantineRecord(canonicalBytes: $0) }
            quarantineCache[order] = (r, now)
            return r
        } catch {
            if let c = quarantineCache[order] { return c.record }
            throw error
        }
    }

    /// Takes a geofence for an order on the chain, if it is the one the order committed to.
    public func addFence(_ r: FenceRequest) async throws(FenceError) {
        guard let fence = r.fence() else { throw .invalid("xM, yM, radiusM (> 0) are metres; salt is 64 hex digits") }
        let record: QuarantineRecord?
        do { record = try await quarantineRecord(r.order) } catch { throw .unavailable("\(error)") }
        guard let record else { throw .unknownOrder(r.order) }
        guard !Self.isOver(record, atMs: Self.nowMs()) else { throw .ended(r.order) }
        guard fence.commitment == record.order.fenceCommitment else { throw .mismatch }
        do { try store.addGeofence(order: r.order, device: record.order.device, fence: fence, key: geofenceKey) } catch { throw .unavailable("\(error)") }
        geofences[record.order.device] = (r.order, fence)
    }

    /// Whether an RFID tag is one of this organisation's assets (the chain's answer, cached a minute).
    func isOwnAsset(_ tag: String) async -> Bool {
        let now = Self.nowMs()
        if let c = ownAssets[tag], now - c.atMs < 60_000 { return c.own }
        let value: [UInt8]?
        let organisation: String
        do {
            organisation = try await self.organisation()
            value = try await node.state(StateKeys.asset(tag))
        } catch {
            return ownAssets[tag]?.own ?? false
        }
        let own = value.flatMap { try? AssetRecord(canonicalBytes: $0) }?.organisation == organisation
        ownAssets[tag] = (own, now)
        if ownAssets.count > 100_000 { ownAssets.removeAll() }
        return own
    }

    /// The wristband's quarantine: its order (as the chain has it now) and fence, if one was handed over.
    func quarantine(of device: Address) async -> (record: QuarantineRecord, fence: Geofence)? {
        guard let g = geofences[device] else { return nil }
        do {
            guard let r = try await quarantineRecord(g.order) else { return nil }
            if Self.isOver(r, atMs: Self.nowMs()) {
                // Lifted or past its term: the person's home is no longer needed here.
                do {
                    try store.removeGeofence(order: g.order)
                    geofences[device] = nil
                    log("quarantine order \(g.order) is over: its geofence is deleted")
                } catch {
                    log("quarantine order \(g.order) is over, but its geofence could not be deleted yet: \(error)")
                }
                return nil
            }
            return (r, g.fence)
        } catch {
            log("quarantine order \(g.order): unknown for now (\(error)); the wristband's positions are kept, not checked")
            return nil
        }
    }

    /// The silence watch (every second): a wristband under a quarantine in force that has not
    /// reported for `quarantineSilenceMs` raises `wristband-silent` (critical) — a band taken off,
    /// switched off or out of reach is not a quarantine kept. Its next position clears it, and so
    /// does the end of the quarantine.
    func watchSilence() async {
        guard configuration.quarantineSilenceMs > 0 else { return }
        var events: [(AlarmEvent, sequence: Int64, excursion: GatewayStore.Excursion?)] = []
        for device in Array(geofences.keys) {
            let now = Self.nowMs()
            let q = await quarantine(of: device)
            if let q, q.record.isActive(atMs: now) {
                if let e = alarms.observeSilence(device: device, subject: q.record.order.subject, lastHeardMs: lastHeardMs[device] ?? startedMs,
                                                 nowMs: now, silentMs: configuration.quarantineSilenceMs) {
                    events.append((e, 0, nil))
                }
            } else if q != nil || geofences[device] == nil, let e = alarms.reset(device: device, rule: AlarmTracker.silenceRule, atMs: now) {
                // Not yet in force, or over (its fence deleted); an order the chain cannot be asked
                // about just now changes nothing.
                events.append((e, 0, nil))
            }
        }
        _ = storeAlerts(events)
    }
}
