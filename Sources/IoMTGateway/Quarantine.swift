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
        case unavailable(String)

        public var code: String {
            switch self {
            case .invalid: return "invalid-fence"
            case .unknownOrder: return "unknown-order"
            case .mismatch: return "fence-mismatch"
            case .unavailable: return "node-unavailable"
            }
        }

        public var description: String {
            switch self {
            case .invalid(let s): return s
            case .unknownOrder(let o): return "no quarantine order \(o) on the chain"
            case .mismatch: return "this fence (centre, radius in centimetres, salt) is not the one the order committed to"
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
        guard fence.commitment == record.order.fenceCommitment else { throw .mismatch }
        do { try store.addGeofence(order: r.order, device: record.order.device, fence: fence) } catch { throw .unavailable("\(error)") }
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
            return (r, g.fence)
        } catch {
            log("quarantine order \(g.order): unknown for now (\(error)); the wristband's positions are kept, not checked")
            return nil
        }
    }
}
