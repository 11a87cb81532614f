import Foundation
import Hummingbird
import IoMTCore
import IoMTNode

/// The console's public-health page (issue 7 §6): the exposure notifications recorded, quarantine
/// breaches and silent wristbands, open ventilation faults, and fever detections with test results
/// on a place × hour grid (an SVG drawn here). Public chain data, as on the API: pseudonymous token
/// hashes, device ids, counts — never a position or a name.
extension API {
    func consolePublicHealthRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/console/public-health") { _, _ in try await publicHealthPage() }
    }

    func publicHealthPage() async throws -> Response {
        let (state, header) = await node.committedSnapshot()
        // Exposure notifications: the latest 20 records.
        let exposureCount = try read(UInt64.self, StateKeys.exposureCount, in: state) ?? 0
        var exposures = ""
        var n = exposureCount
        while n > 0, exposureCount - n < 20 {
            if let e = try read(ExposureRecord.self, StateKeys.exposureEntry(n), in: state) {
                exposures += "<tr><td>\(Console.time(e.atMs))</td><td><code>\(e.record.caseID.hex.prefix(12))…</code></td><td>\(Console.escape(e.record.venue))</td>"
                    + "<td>\(e.record.exposed.count)\(e.record.part > 0 ? " (part \(e.record.part))" : "")</td></tr>"
            }
            n -= 1
        }
        // Quarantine alerts: the latest 20 breaches and silences among the last 2,000 alerts.
        let alertCount = try read(UInt64.self, StateKeys.alertLogCount, in: state) ?? 0
        var quarantine = "", found = 0
        n = alertCount
        while n > 0, alertCount - n < 2_000, found < 20 {
            if let e = try read(AlertLogEntry.self, StateKeys.alertLogEntry(n), in: state),
               [AlarmRules.breach, AlarmRules.silence].contains(e.record.alert.rule) {
                let a = e.record.alert
                quarantine += "<tr class=\"\(a.raised ? "alert" : "")\" data-rule=\"\(Console.escape(a.rule))\"><td>\(Console.time(a.atMs))</td><td>\(Console.escape(a.rule))</td>"
                    + "<td>\(a.raised ? "raised" : "cleared")</td><td><code>\(a.device.hex.prefix(12))…</code></td></tr>"
                found += 1
            }
            n -= 1
        }
        // Open ventilation faults (the latest 20).
        let faultCount = try read(UInt64.self, StateKeys.faultCount, in: state) ?? 0
        var faults = ""
        found = 0
        n = faultCount
        while n > 0, faultCount - n < 2_000, found < 20 {
            if let f = try read(FaultRecord.self, StateKeys.fault(n), in: state), f.resolvedMs == nil {
                faults += "<tr><td>\(f.n)</td><td>\(Console.escape(f.venue))</td><td>\(Console.escape(f.report.code))</td></tr>"
                found += 1
            }
            n -= 1
        }
        // Fevers and test results over the last 24 hours, per place.
        let lastHour = header.timestampMs / 3_600_000, firstHour = lastHour - 23
        let places = Array((try read(StringList.self, StateKeys.outbreakPlaces, in: state)?.places ?? []).sorted().prefix(30))
        var cells: [OutbreakCell] = []
        for place in places {
            for h in firstHour...lastHour {
                if let c = try read(OutbreakCell.self, StateKeys.outbreakCell(place, h), in: state) { cells.append(c) }
            }
        }
        func rows(_ html: String, _ columns: Int) -> String { html.isEmpty ? "<tr><td colspan=\"\(columns)\">none yet</td></tr>" : html }
        let body = """
            <h1>Public health</h1>
            <h2>Fevers and test results, last 24 hours</h2>\(Console.outbreakGrid(places: places, firstHour: firstHour, lastHour: lastHour, cells: cells))
            <h2>Exposure notifications (\(exposureCount) recorded)</h2>
            <div class="scroll"><table id="exposures"><thead><tr><th>Recorded (UTC)</th><th>Case</th><th>Venue</th><th>Check-ins exposed</th></tr></thead><tbody>\(rows(exposures, 4))</tbody></table></div>
            <h2>Quarantine breaches and silent wristbands</h2>
            <div class="scroll"><table id="quarantine"><thead><tr><th>Time (UTC)</th><th>Alert</th><th>State</th><th>Wristband</th></tr></thead><tbody>\(rows(quarantine, 4))</tbody></table></div>
            <h2>Open ventilation faults</h2>
            <div class="scroll"><table id="faults"><thead><tr><th>#</th><th>Venue</th><th>Fault</th></tr></thead><tbody>\(rows(faults, 3))</tbody></table></div>
            """
        return page("Public health", "Public health", body)
    }
}

/// The alert rules the public-health page lists.
enum AlarmRules {
    static let breach = "geofence-breach", silence = "wristband-silent"
}

extension Console {
    /// Places down, hours across; a cell's red deepens with its fevers, a ring marks positive tests.
    static func outbreakGrid(places: [String], firstHour: Int64, lastHour: Int64, cells: [OutbreakCell]) -> String {
        guard !places.isEmpty else { return "<p>No fever or test result recorded yet.</p>" }
        let cellW = 22.0, cellH = 22.0, left = 120.0, top = 20.0
        let hours = Int(lastHour - firstHour + 1)
        let w = left + Double(hours) * cellW + 10, h = top + Double(places.count) * cellH + 10
        let byKey = Dictionary(cells.map { ("\($0.place)/\($0.hour)", $0) }, uniquingKeysWith: { a, _ in a })
        let most = max(1, cells.map(\.fevers).max() ?? 1)
        var svg = ""
        for (row, place) in places.enumerated() {
            let y = top + Double(row) * cellH
            svg += String(format: "<text x=\"2\" y=\"%.0f\">%@</text>", y + 15, escape(String(place.prefix(18))))
            for col in 0..<hours {
                let x = left + Double(col) * cellW
                let c = byKey["\(place)/\(firstHour + Int64(col))"]
                let fevers = c?.fevers ?? 0
                let shade = fevers == 0 ? "#f2f2f2" : String(format: "rgb(%d,%d,%d)", 255, Int(220 - 180 * Double(fevers) / Double(most)), Int(220 - 180 * Double(fevers) / Double(most)))
                svg += String(format: "<rect class=\"cell%@\" x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"%@\"", fevers > 0 ? " fever" : "", x, y, cellW - 2, cellH - 2, shade)
                if (c?.positives ?? 0) > 0 { svg += " stroke=\"#000\" stroke-width=\"2\"" }
                svg += "><title>\(escape(place)), \(time((firstHour + Int64(col)) * 3_600_000)): \(fevers) fever(s), \(c?.positives ?? 0) positive, \(c?.negatives ?? 0) negative</title></rect>"
            }
        }
        return """
            <figure><div class="scroll"><svg id="outbreak" viewBox="0 0 \(Int(w)) \(Int(h))" width="\(Int(w))" role="img" aria-label="Fevers and positive tests by place and hour">\(svg)</svg></div>
            <figcaption>Rows: places; columns: the last 24 hours (UTC), oldest left. Red: fevers detected (darker, more); black ring: a positive test.</figcaption></figure>
            """
    }
}
