import Foundation
import Hummingbird
import IoMTCore
import IoMTNode

/// The console's hospital page (issue 7 §7): an organisation's RFID-tagged assets by status with
/// their last location and malfunctions, and a steriliser's log with its gaps. Public chain data,
/// as on the API (`/v1/assets`, `/v1/sterilisers/{device}/cycles`).
extension API {
    func consoleHospitalRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/console/hospital") { req, _ in try await hospitalPage(req) }
    }

    func hospitalPage(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        let (state, _) = await node.committedSnapshot()
        // By default the organisation of the node's own validator key (the hospital running it).
        let own = try read(Account.self, StateKeys.account(await node.status().validator), in: state)?.organisation
        let organisation = q.get("organisation").map { String($0) } ?? own ?? ""
        let steriliser = q.get("steriliser").map { String($0) } ?? ""
        var body = """
            <h1>Hospital</h1>
            <form class="inline" action="/console/hospital"><label for="organisation">Organisation</label>
            <input id="organisation" name="organisation" value="\(Console.escape(organisation))">
            <label for="steriliser">Steriliser</label><input id="steriliser" name="steriliser" placeholder="device id (40 hex digits)" value="\(Console.escape(steriliser))"><button>Show</button></form>
            """
        // Assets, up to 1,000, grouped by status.
        var assets: [AssetRecord] = []
        let tags = try read(StringList.self, StateKeys.assets(of: organisation), in: state)?.places ?? []
        // The newest 1,000 (a large hospital's board names how many it leaves out).
        for tag in tags.suffix(1_000) {
            if let a = try read(AssetRecord.self, StateKeys.asset(tag), in: state) { assets.append(a) }
        }
        let counts = AssetKinds.statuses.map { s in "<li><span class=\"status status-\(s)\">\(s)</span> \(assets.filter { $0.status == s }.count)</li>" }.joined()
        let rows = assets.sorted { ($0.status, $0.kind, $0.tag) < ($1.status, $1.kind, $1.tag) }.map { a in
            "<tr data-status=\"\(Console.escape(a.status))\"><td>\(Console.escape(a.tag))</td><td>\(Console.escape(a.kind))</td><td><span class=\"status status-\(Console.escape(a.status))\">\(Console.escape(a.status))</span></td>"
                + "<td>\(Console.escape(a.location ?? a.home))\(a.locationMs.map { " <time>\(Console.time($0))</time>" } ?? " (home)")</td>"
                + "<td>\(a.malfunctions)\(a.malfunction.map { " — \(Console.escape($0))" } ?? "")</td></tr>"
        }.joined()
        body += """
            <h2>Assets of \(Console.escape(organisation))</h2>\(tags.count > assets.count ? "<p>The newest \(assets.count) of \(tags.count) assets (counts below are of these).</p>" : "")<ul class="counts">\(counts)</ul>
            <div class="scroll"><table id="assets"><thead><tr><th>Tag</th><th>Kind</th><th>Status</th><th>Location</th><th>Malfunctions</th></tr></thead><tbody>\(rows)</tbody></table></div>
            """
        if !steriliser.isEmpty {
            if let device = Address(hex: steriliser) {
                let last = try read(UInt64.self, StateKeys.lastCycle(device), in: state) ?? 0
                let missing = try read(UInt64.self, StateKeys.missingCycles(device), in: state) ?? 0
                var n = last, cycles = ""
                while n > 0, last - n < 100 {
                    if let r = try read(SterilisationRecord.self, StateKeys.sterilisation(device, n), in: state) {
                        let c = r.cycle
                        let (length, overflow) = c.endMs.subtractingReportingOverflow(c.startMs)
                        cycles += "<tr class=\"\(c.passed ? "" : "alert")\"><td>\(c.cycle)</td><td>\(Console.time(c.startMs))</td><td>\(overflow ? "?" : "\(length / 60_000)") min</td>"
                            + "<td>\(Console.centi(c.maxCentiC)) °C, \(c.holdSeconds) s</td><td>\(c.passed ? "passed" : "<strong>failed</strong>")</td>"
                            + "<td>\(r.missingBefore > 0 ? "<strong class=\"bad\">\(r.missingBefore) missing before</strong>" : "")</td></tr>"
                    }
                    n -= 1
                }
                body += """
                    <h2>Steriliser <code>\(device.hex.prefix(12))…</code></h2>
                    <p id="sterilisation-summary">Last cycle \(last); \(missing == 0 ? "no cycle missing" : "<strong class=\"bad\">\(missing) cycle(s) missing</strong>") (numbers skipped in the log).</p>
                    <div class="scroll"><table id="cycles"><thead><tr><th>Cycle</th><th>Start (UTC)</th><th>Length</th><th>Peak, hold</th><th>Result</th><th>Gap</th></tr></thead><tbody>\(cycles)</tbody></table></div>
                    """
            } else {
                body += "<p class=\"bad\">A steriliser is a device id of 40 hex digits.</p>"
            }
        }
        return page("Hospital", "Hospital", body)
    }
}
