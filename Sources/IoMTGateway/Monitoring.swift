import Foundation
import IoMTCore
import IoMTEdge

/// Remote monitoring (issue 6 §7): a patient's vitals timeline — the readings (as for any
/// consented read of vital signs: the consent decided by the chain, the read audited), the alerts
/// the gateway raised and cleared for the patient's devices, and who acknowledged each on-chain.
extension Gateway {
    public struct TimelineAlert: Sendable, Codable {
        public var alert: GatewayStore.StoredAlert
        /// For a raised alert: its acknowledgement on-chain, if any.
        public var acknowledgement: AlertAckRecord?
    }

    public struct TimelineReply: Sendable, Codable {
        public var data: DataReply
        public var alerts: [TimelineAlert]
    }

    /// The timeline, to a doctor (purpose `treatment`) or a family member (`family-care`) the
    /// patient's consent lets read their vital signs, or the patient.
    public func timeline(_ r: SignedRequestParts, subject: Hash, purpose: String, fromMs: Int64, toMs: Int64) async throws(ReadRefusal) -> TimelineReply {
        let data = try await readData(r, DataQuery(subject: subject, category: "vital-signs", purpose: purpose, fromMs: fromMs, toMs: toMs))
        let stored: [GatewayStore.StoredAlert]
        do { stored = try store.alerts(subject: subject, fromMs: fromMs, toMs: toMs) } catch {
            throw ReadRefusal(code: "internal-error", status: 500, description: "cannot read the alert log: \(error)")
        }
        var alerts: [TimelineAlert] = []
        for a in stored {
            var ack: AlertAckRecord?
            if a.event.state == .raised {
                ack = try? await node.state(StateKeys.alertAck(a.event.device, a.event.rule, a.event.effectiveMs)).map { try AlertAckRecord(canonicalBytes: $0) }
            }
            alerts.append(TimelineAlert(alert: a, acknowledgement: ack))
        }
        return TimelineReply(data: data, alerts: alerts)
    }
}
