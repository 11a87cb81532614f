import Foundation
import Hummingbird
import IoMTContracts
import IoMTCore
import IoMTNode

/// The console's supply-chain page (issue 7 §5): a batch's journey as a timeline — materials and
/// sources, manufacture, tests, custody, storage, cold-chain excursions on a chart of the storage
/// range, administrations, recall — and its forward trace. Public chain data, as on the API.
extension API {
    func consoleSupplyChainRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/console/supply-chain") { req, _ in try await supplyChainPage(req) }
    }

    func supplyChainPage(_ req: Request) async throws -> Response {
        let q = req.uri.queryParameters
        let form = """
            <h1>Supply chain</h1>
            <form class="inline" action="/console/supply-chain"><label for="batch">Batch id, or GTIN and lot</label>
            <input id="batch" name="batch" placeholder="batch id (64 hex digits)" value="\(Console.escape(q.get("batch").map { String($0) } ?? ""))">
            <input name="gtin" placeholder="GTIN" value="\(Console.escape(q.get("gtin").map { String($0) } ?? ""))" aria-label="GTIN">
            <input name="lot" placeholder="lot" value="\(Console.escape(q.get("lot").map { String($0) } ?? ""))" aria-label="Lot"><button>Show</button></form>
            """
        var id: Hash?
        if let b = q.get("batch").map({ String($0) }), !b.isEmpty { id = Hash(hex: b) }
        else if let g = q.get("gtin").map({ String($0) }), let l = q.get("lot").map({ String($0) }), GS1.isValidGTIN(g), GS1.isValidLot(l) { id = GS1.batchID(gtin: g, lot: l) }
        guard let id else {
            let asked = q.get("batch") != nil || q.get("gtin") != nil
            return page("Supply chain", "Supply chain", form + (asked ? "<p class=\"bad\">That is not a batch id (64 hex digits) or a GTIN with its check digit and a lot.</p>" : ""),
                        status: asked ? .badRequest : .ok)
        }
        let (state, header) = await node.committedSnapshot()
        guard let d = try batchDetail(id, state: state, header: header) else {
            return page("Supply chain", "Supply chain", form + "<p class=\"bad\">No batch \(id.hex) was registered.</p>", status: .notFound)
        }
        let b = d.batch, r = b.registration
        let trace = try? BatchTrace.of(id, in: state)
        // The journey, in time order.
        var events: [(ms: Int64, html: String)] = [(r.manufacturedMs, "Manufactured by <strong>\(Console.escape(b.manufacturer))</strong>: GTIN \(Console.escape(r.gtin)), lot \(Console.escape(r.lot)), \(r.units) units of \(Console.escape(r.productCode))")]
        for s in d.sources { events.append((r.manufacturedMs, "Raw material \(Console.escape(s.registration.materialCode)) from \(Console.escape(s.registration.supplierCode)) (\(Console.escape(s.registration.originCountry)))")) }
        for t in d.tests { events.append((t.test.atMs, "Test \(Console.escape(t.test.testCode)) by \(Console.escape(t.organisation)): " + (t.test.passed ? "passed" : "<strong class=\"bad\">failed</strong>"))) }
        for c in d.transfers { events.append((c.atMs, "\(c.units) units from \(Console.escape(c.fromOrganisation)) to <strong>\(Console.escape(c.toOrganisation))</strong>, signed by both")) }
        for s in d.storage {
            events.append((s.sinceMs, "Stored at \(Console.escape(s.place ?? "?")) by \(Console.escape(s.organisation)), logger <code>\(s.device.hex.prefix(12))…</code>" + (s.untilMs != nil ? " (until \(Console.time(s.untilMs!)))" : "")))
        }
        for e in d.excursions {
            events.append((e.report.atMs, "<strong class=\"bad\">Cold-chain excursion</strong> at \(Console.escape(e.place ?? "?")): \(Console.centi(e.report.centiC)) °C; \(e.quarantined) units quarantined"))
        }
        if let recall = b.recall {
            let at = (try node.store.header(height: b.recalledHeight ?? 0))?.header.timestampMs ?? header.timestampMs
            events.append((at, "<strong class=\"bad\">Recalled</strong>: \(Console.escape(recall.reasonCode)) (block \(b.recalledHeight ?? 0))")) }
        let timeline = events.sorted { $0.ms < $1.ms }.map { "<li><time>\(Console.time($0.ms))</time> \($0.html)</li>" }.joined()
        let holdings = d.holdings.sorted { $0.key < $1.key }.map { "<tr><td>\(Console.escape($0.key))</td><td>\($0.value)</td><td>\(d.quarantined[$0.key] ?? 0)</td></tr>" }.joined()
        let materials = (trace?.materials ?? []).map { "<li><a href=\"/console/supply-chain?batch=\($0.hex)\"><code>\($0.hex.prefix(16))…</code></a></li>" }.joined()
        let forward = trace.map { t in
            "<p>\(t.organisations.count) organisations received units (\(Console.escape(t.organisations.sorted().joined(separator: ", ")))); \(t.administrations) doses given to \(t.patients.count) patients (pseudonyms; their organisations reach them)\(t.derived.isEmpty ? "" : "; \(t.derived.count) batches made from it")\(t.truncated ? " — truncated" : "").</p>"
        } ?? ""
        let status = b.recall != nil ? "<p class=\"bad\" id=\"batch-status\">Recalled: do not use.</p>" : (d.expired ? "<p class=\"bad\" id=\"batch-status\">Expired.</p>" : "<p class=\"ok\" id=\"batch-status\">In circulation.</p>")
        let body = form + """
            <h2>Batch <code>\(id.hex.prefix(16))…</code></h2>\(status)
            <ol class="timeline" id="journey">\(timeline)</ol>
            <h2>Cold chain</h2>\(Console.coldChainChart(minCentiC: r.minCentiC, maxCentiC: r.maxCentiC, excursions: d.excursions))
            <h2>Holdings</h2><div class="scroll"><table><thead><tr><th>Organisation</th><th>Units held</th><th>Quarantined</th></tr></thead><tbody>\(holdings)</tbody></table></div>
            <h2>Made from</h2><ul>\(materials.isEmpty ? "<li>no material batches</li>" : materials)</ul>
            <h2>Forward trace</h2>\(forward)
            """
        return page("Supply chain", "Supply chain", body)
    }
}

extension Console {
    static func centi(_ c: Int32) -> String { String(format: "%.2f", Double(c) / 100) }

    /// The storage range as a band and each excursion's reading as a point, in SVG drawn here
    /// (excursions are what the chain holds; the loggers' other readings stay at the gateway).
    static func coldChainChart(minCentiC: Int32, maxCentiC: Int32, excursions: [ExcursionRecord]) -> String {
        let w = 600.0, h = 200.0, pad = 30.0
        let values = excursions.map { Double($0.report.centiC) / 100 } + [Double(minCentiC) / 100, Double(maxCentiC) / 100]
        let lo = (values.min() ?? 0) - 2, hi = (values.max() ?? 10) + 2
        func y(_ v: Double) -> Double { pad + (hi - v) / (hi - lo) * (h - 2 * pad) }
        let times = excursions.map(\.report.atMs)
        let t0 = Double(times.min() ?? 0), t1 = Double(max((times.max() ?? 1), (times.min() ?? 0) + 1))
        func x(_ t: Int64) -> Double { excursions.count < 2 ? w / 2 : pad + (Double(t) - t0) / (t1 - t0) * (w - 2 * pad) }
        let band = String(format: "<rect x=\"%.0f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" fill=\"#d7ecd9\"/>", pad, y(Double(maxCentiC) / 100), w - 2 * pad,
                          y(Double(minCentiC) / 100) - y(Double(maxCentiC) / 100))
        let labels = String(format: "<text x=\"2\" y=\"%.1f\">%@ °C</text><text x=\"2\" y=\"%.1f\">%@ °C</text>", y(Double(maxCentiC) / 100) + 4, centi(maxCentiC),
                            y(Double(minCentiC) / 100) + 4, centi(minCentiC))
        let points = excursions.map { e in
            String(format: "<circle class=\"excursion\" cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"#a00000\"><title>%@ °C at %@</title></circle>", x(e.report.atMs), y(Double(e.report.centiC) / 100),
                   centi(e.report.centiC), escape(time(e.report.atMs)))
        }.joined()
        return """
            <figure><svg id="cold-chain" viewBox="0 0 \(Int(w)) \(Int(h))" role="img" aria-label="Storage range \(centi(minCentiC)) to \(centi(maxCentiC)) °C with \(excursions.count) excursion(s)" width="100%">\(band)\(labels)\(points)</svg>
            <figcaption>Green: the batch's storage range. Red: readings that left it (\(excursions.count)).</figcaption></figure>
            """
    }
}
