import Foundation
import IoMTCore
import IoMTEdge

/// Venue crowding and ventilation at the venue's gateway (issue 6 §4): crowd counters' counts make
/// the venue's occupancy (the sum of its counters' latest counts), which raises `overcrowded` past
/// the venue's registered capacity (cleared at 90 % of it) and sets the airflow of the venue's
/// ventilation controllers; a controller's uploads acknowledge its commands (`airflow`) and report
/// fan and filter faults (an observation coded with the fault, value 1).
extension Gateway {
    public static let overcrowdedRule = "overcrowded"

    /// The airflow for an occupancy: per person, at least the empty venue's, rounded up to 50 m³/h.
    public static func setpoint(occupancy: UInt32, perPersonM3h: UInt32, minimumM3h: UInt32) -> UInt32 {
        let raw = max(UInt64(minimumM3h), UInt64(occupancy) * UInt64(perPersonM3h))
        return UInt32(min(1_000_000, (raw + 49) / 50 * 50))
    }

    func venueReadings(_ readings: [Reading], device: Address, record: DeviceRecord, firstSequence: Int64) async -> ([GatewayStore.StoredAlert], VentilationCommand?) {
        guard let place = record.place else { return ([], nil) }
        let venue: VenueRecord?
        do { venue = try await venueRecord(place) } catch { log("venue \(place): unknown for now (\(error))"); return ([], nil) }
        // Only this organisation's venues: a device of another organisation placed "at" it cannot drive them.
        guard let venue, venue.organisation == record.organisation else { return ([], nil) }
        var events: [(AlarmEvent, sequence: Int64, excursion: GatewayStore.Excursion?)] = []
        if record.deviceType == "crowd-counter" {
            for (i, r) in readings.enumerated() where r.code.code == "occupancy" {
                guard let v = r.values.first?.value.double, v.isFinite, v >= 0, v < 1e7 else { continue }
                counterCounts[device] = (venue.venue, UInt32(v.rounded()))
                let occupancy = counterCounts.values.filter { $0.venue == venue.venue }.reduce(UInt32(0)) { $0 &+ $1.count }
                // The venue's alarm is attributed to its first counter (by address), so it is raised and cleared on one device.
                let lead = counterCounts.filter { $0.value.venue == venue.venue }.keys.min() ?? device
                if !overcrowded.contains(venue.venue), occupancy > venue.capacity {
                    overcrowded.insert(venue.venue)
                    events.append((AlarmEvent(rule: Self.overcrowdedRule, severity: "warning", state: .raised, device: lead, subject: nil, value: "\(occupancy)", unit: "{persons}", effectiveMs: r.effectiveMs),
                                   firstSequence + Int64(i), nil))
                } else if overcrowded.contains(venue.venue), UInt64(occupancy) * 10 <= UInt64(venue.capacity) * 9 {
                    overcrowded.remove(venue.venue)
                    events.append((AlarmEvent(rule: Self.overcrowdedRule, severity: "warning", state: .cleared, device: lead, subject: nil, value: "\(occupancy)", unit: "{persons}", effectiveMs: r.effectiveMs),
                                   firstSequence + Int64(i), nil))
                }
                await commandVentilation(venue: venue.venue, occupancy: occupancy)
            }
            return (storeAlerts(events), nil)
        }
        // A ventilation controller: learn where it is (and, after a restart, its last command from
        // the chain), take its acknowledgements and faults, then set it for the venue's occupancy.
        let firstSeen = controllers[device] == nil
        if firstSeen {
            // Its last command: the chain's, or a later one still queued here (after a restart). If
            // the chain cannot be read, the controller is not taken on yet (numbering from 1 again
            // would only make refused commands).
            if lastCommand[device] == nil {
                do {
                    let chainSeq = try await node.state(StateKeys.ventilationSequence(device)).map { try UInt64(canonicalBytes: $0) } ?? 0
                    let queued = try store.queuedVentilation(device)
                    if let q = queued, q.sequence > chainSeq {
                        lastCommand[device] = (q.sequence, q.setpointM3h)
                        lastTold[device] = q.sequence
                    } else if chainSeq > 0 {
                        let last = try await node.state(StateKeys.ventilationCommand(device, chainSeq)).map { try VentilationRecord(canonicalBytes: $0) }
                        lastCommand[device] = (chainSeq, last?.command.setpointM3h ?? 0)
                        lastTold[device] = chainSeq  // it was told in an earlier reply
                        if last?.ack != nil { lastAcked[device] = chainSeq }
                    }
                } catch {
                    log("ventilation controller \(device): its last command is unknown for now (\(error))")
                    return ([], nil)
                }
            }
            controllers[device] = venue.venue
        }
        for r in readings {
            // The airflow it applied after the command it was last told (in an upload reply): that
            // command's acknowledgement.
            if r.code.code == "airflow", let v = r.values.first?.value.double, v.isFinite, v >= 0, v < 1e7, let told = lastTold[device], lastAcked[device] != told {
                queue(.ackVentilation(AckVentilation(device: device, sequence: told, appliedM3h: UInt32(v.rounded()), atMs: r.effectiveMs)))
                lastAcked[device] = told
            }
            let key = "\(device.hex)/\(r.code.code)"
            if ReportFault.codes.contains(r.code.code), let v = r.values.first?.value.double {
                // Reported once while it is open on the chain (a restart, a flapping value, a fault
                // still open: no duplicate the chain would refuse); again once a technician closed it.
                if v >= 1, !reportedFaults.contains(key) {
                    let open = (try? await node.state(StateKeys.openFault(device, r.code.code))) ?? nil
                    if open == nil { queue(.reportFault(ReportFault(device: device, code: r.code.code, atMs: r.effectiveMs))) }
                    reportedFaults.insert(key)
                }
                if v < 1 { reportedFaults.remove(key) }
            }
        }
        if firstSeen {
            let occupancy = counterCounts.values.filter { $0.venue == venue.venue }.reduce(UInt32(0)) { $0 &+ $1.count }
            await commandVentilation(venue: venue.venue, occupancy: occupancy)
        }
        lastTold[device] = lastCommand[device]?.sequence
        return ([], lastCommand[device].map { VentilationCommand(sequence: $0.sequence, setpointM3h: $0.setpointM3h) })
    }

    /// Sets every known controller of the venue to the airflow for `occupancy`, when it differs by at
    /// least 10 % from the one it was last sent (or it was sent none).
    func commandVentilation(venue: String, occupancy: UInt32) async {
        let target = Self.setpoint(occupancy: occupancy, perPersonM3h: configuration.airflowPerPersonM3h, minimumM3h: configuration.minimumAirflowM3h)
        for device in controllers.filter({ $0.value == venue }).keys.sorted() {
            let last = lastCommand[device]
            if let last, last.setpointM3h > 0, UInt64(max(target, last.setpointM3h) - min(target, last.setpointM3h)) * 10 < UInt64(last.setpointM3h) { continue }
            let sequence = (last?.sequence ?? 0) + 1
            queue(.commandVentilation(CommandVentilation(device: device, sequence: sequence, setpointM3h: target, occupancy: occupancy)))
            lastCommand[device] = (sequence, target)
        }
    }

    private func queue(_ payload: TransactionPayload) {
        do { try store.queue(payload, atMs: Self.nowMs()) } catch { log("could not queue \(payload.kind): \(error)") }
    }
}
