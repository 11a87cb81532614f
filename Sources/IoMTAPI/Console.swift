import Foundation
import HTTPTypes
import Hummingbird
import IoMTContracts
import IoMTCore
import IoMTNode
import NIOCore
import ServiceLifecycle
import Synchronization

/// The web console (issue 7), served by the node: server-rendered HTML, one navigation bar, live
/// updates over Server-Sent Events, and a small script written here (no JavaScript registry, no
/// build step). This first part has the explorer (latest blocks streaming in, a block with its
/// header, commit signatures and transactions, a transaction decoded with its Merkle proof
/// verified, search) and the consortium page (this node, the validator set, peers, mempool).
/// Everything shown is public chain data, as on the API.
extension API {
    func consoleRoutes(_ router: Router<BasicRequestContext>) {
        router.get("/console") { _, _ in Response(status: .seeOther, headers: [.location: "/console/explorer"]) }
        router.get("/console/explorer") { _, _ in try await explorerPage() }
        router.get("/console/consortium") { _, _ in try await consortiumPage() }
        router.get("/console/blocks/:height") { _, ctx in try await blockPage(ctx) }
        router.get("/console/tx/:hash") { _, ctx in try await transactionPage(ctx) }
        router.get("/console/search") { req, _ in try await search(req) }
        router.get("/console/events") { req, _ in
            // A reconnecting browser says where it was (Last-Event-ID); a first connection, from the page's newest.
            let resume = req.headers[HTTPField.Name("Last-Event-ID")!].flatMap { UInt64($0) }
            return await blockEvents(after: resume ?? req.uri.queryParameters.get("after").flatMap { UInt64(String($0)) })
        }
        router.get("/console/console.js") { _, _ in Self.asset(Console.script, type: "text/javascript; charset=utf-8") }
        router.get("/console/console.css") { _, _ in Self.asset(Console.style, type: "text/css; charset=utf-8") }
        router.get("/console/icon.svg") { _, _ in Self.asset(Console.icon, type: "image/svg+xml") }
        consoleSupplyChainRoutes(router)
        consoleHospitalRoutes(router)
        consolePublicHealthRoutes(router)
    }

    static func asset(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "max-age=300"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A whole page: the navigation bar, then `body`.
    func page(_ title: String, _ active: String, _ body: String, status: HTTPResponse.Status = .ok) -> Response {
        let nav = Console.pages.map { name, path in
            "<a href=\"\(path)\"\(name == active ? " aria-current=\"page\"" : "")>\(Console.escape(name))</a>"
        }.joined()
        let html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(Console.escape(title)) · IoMTChain</title><link rel="stylesheet" href="/console/console.css"><link rel="icon" href="/console/icon.svg"></head>
            <body><header><span class="brand">IoMTChain</span><nav>\(nav)</nav>
            <form class="search" action="/console/search" role="search"><label for="q" class="hidden">Search</label>
            <input id="q" name="q" placeholder="height, block or transaction hash, account" autocomplete="off"><button>Search</button></form></header>
            <main>\(body)</main><script src="/console/console.js"></script></body></html>
            """
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                                                   .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func notFound(_ what: String) -> Response {
        page("Not found", "", "<h1>Not found</h1><p>\(Console.escape(what))</p>", status: .notFound)
    }

    // MARK: explorer

    func explorerPage() async throws -> Response {
        let latest = await node.latestHeader.height
        var rows = ""
        var h = latest
        while h > 0, latest - h < 20 {
            if let b = try node.store.header(height: h) { rows += Console.blockRow(b.header) }
            h -= 1
        }
        let body = """
            <h1>Explorer</h1>
            <p>Latest blocks of chain <code>\(Console.escape(await node.status().chainId))</code>; new ones appear as they commit.</p>
            <div class="scroll"><table id="blocks" data-live="blocks"><thead><tr><th>Height</th><th>Block hash</th><th>Transactions</th><th>Time (UTC)</th><th>Proposer</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
        return page("Explorer", "Explorer", body)
    }

    func blockPage(_ ctx: BasicRequestContext) async throws -> Response {
        guard let height = UInt64(try ctx.parameters.require("height")), let b = try node.store.block(height: height) else {
            return notFound("No block at that height.")
        }
        let hd = b.header
        var sigs = ""
        for s in b.commit?.signatures ?? [] {
            sigs += "<tr><td><code>\(s.validator.address.hex)</code></td><td><code class=\"short\">\(Hex.encode(s.signature.bytes).prefix(32))…</code></td></tr>"
        }
        var txs = ""
        for (i, t) in b.transactions.enumerated() {
            txs += "<tr><td>\(i)</td><td><a href=\"/console/tx/\(t.hash.hex)\"><code>\(t.hash.hex.prefix(16))…</code></a></td><td>\(Console.escape(t.transaction.payload.kind))</td>"
                + "<td><a href=\"/console/search?q=\(t.transaction.sender.hex)\"><code>\(t.transaction.sender.hex.prefix(12))…</code></a></td></tr>"
        }
        let nav = (height > 1 ? "<a href=\"/console/blocks/\(height - 1)\">← \(height - 1)</a> " : "") + "<a href=\"/console/blocks/\(height + 1)\">\(height + 1) →</a>"
        let body = """
            <h1>Block \(height)</h1><p class="pager">\(nav)</p>
            <dl class="fields">
            <dt>Hash</dt><dd><code>\(b.hash.hex)</code></dd>
            <dt>Time (UTC)</dt><dd>\(Console.time(hd.timestampMs))</dd>
            <dt>Proposer</dt><dd><code>\(hd.proposer.hex)</code></dd>
            <dt>Previous</dt><dd><code>\(hd.previousHash.hex)</code></dd>
            <dt>Transactions root</dt><dd><code>\(hd.transactionsRoot.hex)</code> (\(hd.transactionCount))</dd>
            <dt>State root</dt><dd><code>\(hd.stateRoot.hex)</code></dd>
            <dt>Validators hash</dt><dd><code>\(hd.validatorsHash.hex)</code></dd>
            </dl>
            <h2>Commit: \(b.commit?.signatures.count ?? 0) signatures (round \(b.commit?.round ?? 0))</h2>
            <div class="scroll"><table><thead><tr><th>Validator</th><th>Signature</th></tr></thead><tbody>\(sigs)</tbody></table></div>
            <h2>Transactions</h2>
            <div class="scroll"><table><thead><tr><th>#</th><th>Hash</th><th>Kind</th><th>Sender</th></tr></thead><tbody>\(txs)</tbody></table></div>
            """
        return page("Block \(height)", "Explorer", body)
    }

    func transactionPage(_ ctx: BasicRequestContext) async throws -> Response {
        guard let hash = Hash(hex: try ctx.parameters.require("hash")), let (proof, index) = try node.transactionProof(hash) else {
            return notFound("No committed transaction with that hash.")
        }
        let (state, _) = await node.committedSnapshot()
        var validators = (try? read([Validator].self, StateKeys.validators, in: state)) ?? nil
        // The set that signed an old block may have changed since: its commit is then not checked here.
        if let v = validators, Validator.setHash(v) != proof.header.validatorsHash { validators = nil }
        let verdict: String
        do {
            try proof.verify(validators: validators)
            verdict = "<p class=\"ok\" id=\"verdict\">✓ Verified here: the signature is the sender's, the Merkle proof leads to block \(proof.header.height)'s transactions root, and "
                + (validators == nil ? "the block's commit was not checked (the validator set has changed since that block)." : "the block's commit carries more than two thirds of the validators' power.") + "</p>"
        } catch {
            verdict = "<p class=\"bad\" id=\"verdict\">✗ Not verified: \(Console.escape("\(error)"))</p>"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let decoded = String(decoding: try encoder.encode(proof.transaction.transaction), as: UTF8.self)
        let path = proof.proof.path.map { "<li><code>\($0.hex)</code></li>" }.joined()
        let body = """
            <h1>Transaction</h1>
            <dl class="fields">
            <dt>Hash</dt><dd><code>\(hash.hex)</code></dd>
            <dt>Kind</dt><dd>\(Console.escape(proof.transaction.transaction.payload.kind))</dd>
            <dt>Block</dt><dd><a href="/console/blocks/\(proof.header.height)">\(proof.header.height)</a>, index \(index) of \(proof.header.transactionCount)</dd>
            <dt>Sender</dt><dd><code>\(proof.transaction.transaction.sender.hex)</code> (nonce \(proof.transaction.transaction.nonce))</dd>
            </dl>
            \(verdict)
            <h2>Content</h2><pre>\(Console.escape(decoded))</pre>
            <h2>Merkle proof (RFC 6962), leaf \(proof.proof.leafIndex) of \(proof.proof.treeSize)</h2><ol class="proof">\(path)</ol>
            """
        return page("Transaction \(hash.hex.prefix(12))", "Explorer", body)
    }

    /// `?q=`: a height, a block or transaction hash, an account address, a device or a serial.
    func search(_ req: Request) async throws -> Response {
        let q = (req.uri.queryParameters.get("q").map { String($0) } ?? "").trimmingCharacters(in: .whitespaces)
        if let h = UInt64(q), try node.store.block(height: h) != nil { return Response(status: .seeOther, headers: [.location: "/console/blocks/\(h)"]) }
        if let hash = Hash(hex: q) {
            if try node.transactionProof(hash) != nil { return Response(status: .seeOther, headers: [.location: "/console/tx/\(hash.hex)"]) }
        }
        if let a = Address(hex: q) {
            let (state, _) = await node.committedSnapshot()
            if let account = try read(Account.self, StateKeys.account(a), in: state) {
                let body = """
                    <h1>Account</h1><dl class="fields"><dt>Address</dt><dd><code>\(a.hex)</code></dd>
                    <dt>Role</dt><dd>\(Console.escape(account.role.name))</dd><dt>Organisation</dt><dd>\(Console.escape(account.organisation))</dd>
                    <dt>Status</dt><dd>\(Console.escape(account.status.name))</dd><dt>Next nonce</dt><dd>\(account.nonce)</dd></dl>
                    """
                return page("Account", "Explorer", body)
            }
            if let d = try read(DeviceRecord.self, StateKeys.device(a), in: state) {
                let body = """
                    <h1>Device</h1><dl class="fields"><dt>Id</dt><dd><code>\(a.hex)</code></dd><dt>Type</dt><dd>\(Console.escape(d.deviceType))</dd>
                    <dt>Organisation</dt><dd>\(Console.escape(d.organisation))</dd><dt>Status</dt><dd>\(Console.escape(d.status.name))</dd></dl>
                    """
                return page("Device", "Explorer", body)
            }
        }
        return page("Search", "Explorer", "<h1>Search</h1><p>Nothing on the chain matches <code>\(Console.escape(String(q.prefix(80))))</code>.</p>", status: .notFound)
    }

    /// `GET /console/events?after=H` (or `Last-Event-ID: H` when the browser reconnects): one
    /// `block` event (with `id:` its height) per block committed after H, then per new one, for
    /// five minutes; the browser reconnects by itself. More than 50 behind, a `reload` event asks
    /// the page to load afresh instead. A comment every 15 s notices a gone client; at most
    /// `Console.maxStreams` streams are open at once (503 beyond).
    func blockEvents(after: UInt64?) async -> Response {
        let node = self.node
        let latestNow = await node.latestHeader.height
        guard Console.openStreams.add(1, ordering: .relaxed).newValue <= Console.maxStreams else {
            Console.openStreams.subtract(1, ordering: .relaxed)
            return Response(status: .serviceUnavailable, headers: [.retryAfter: "5"])
        }
        let behind = after.map { latestNow > $0 && latestNow - $0 > 50 } ?? false
        let start = min(latestNow, after ?? latestNow)
        let body = ResponseBody { writer in
            defer { Console.openStreams.subtract(1, ordering: .relaxed) }
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            if behind {
                try await writer.write(ByteBuffer(string: "event: reload\ndata: {}\n\n"))
                try await writer.finish(nil)
                return
            }
            var last = start
            let end = ContinuousClock.now + .seconds(300)
            var lastWrite = ContinuousClock.now
            // Ends at once when the server shuts down (SIGTERM, Ctrl-C): a stream never holds a
            // node's exit for its five minutes.
            while ContinuousClock.now < end, !Task.isCancelled, !Task.isShuttingDownGracefully {
                try await Task.sleep(for: .milliseconds(250))
                let latest = await node.latestHeader.height
                while last < latest {
                    last += 1
                    guard let b = try node.store.header(height: last) else { continue }
                    let event = Console.BlockEvent(height: last, hash: b.header.hash.hex, transactions: Int(b.header.transactionCount), time: Console.time(b.header.timestampMs),
                                                   proposer: b.header.proposer.hex)
                    let json = String(decoding: try JSONEncoder().encode(event), as: UTF8.self)
                    try await writer.write(ByteBuffer(string: "id: \(last)\nevent: block\ndata: \(json)\n\n"))
                    lastWrite = ContinuousClock.now
                }
                if ContinuousClock.now - lastWrite > .seconds(15) {
                    try await writer.write(ByteBuffer(string: ": ping\n\n"))
                    lastWrite = ContinuousClock.now
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: body)
    }

    // MARK: consortium

    func consortiumPage() async throws -> Response {
        let status = await node.status()
        var rows = ""
        var peers = "", role = "solo (development chain)", step = ""
        let (state, _) = await node.committedSnapshot()
        let validators = (try? read([Validator].self, StateKeys.validators, in: state)) ?? nil ?? []
        if let consensus {
            let info = await consensus()
            role = info.role
            step = "height \(info.height), round \(info.round), \(Console.escape(info.step))" + (info.haltReason.map { " — halted: \(Console.escape($0))" } ?? "")
            peers = info.peers.map { "<li><code>\($0.address.hex)</code></li>" }.joined()
        }
        // The last block each validator signed, among the latest 50.
        var lastSigned: [Address: UInt64] = [:]
        var h = status.height
        while h > 0, status.height - h < 50 {
            for s in try node.store.header(height: h)?.commit?.signatures ?? [] where lastSigned[s.validator.address] == nil { lastSigned[s.validator.address] = h }
            h -= 1
        }
        for v in validators {
            let signed = lastSigned[v.address]
            let behind = signed.map { status.height - $0 } ?? 50
            rows += "<tr class=\"\(behind >= 5 ? "alert" : "")\"><td><code>\(v.address.hex)</code></td><td>\(Console.escape(v.organisation))</td><td>\(v.power)</td><td>"
                + (signed.map { "<a href=\"/console/blocks/\($0)\">\($0)</a>" } ?? "none of the last 50")
                + (behind >= 5 ? " <strong>(not signing)</strong>" : "") + "</td></tr>"
        }
        let body = """
            <h1>Consortium</h1>
            <dl class="fields">
            <dt>Chain</dt><dd><code>\(Console.escape(status.chainId))</code></dd>
            <dt>Height</dt><dd id="height">\(status.height)</dd>
            <dt>Last block (UTC)</dt><dd>\(Console.time(status.latestBlockTimeMs))</dd>
            <dt>This node</dt><dd><code>\(status.validator.hex)</code> — \(Console.escape(role))\(step.isEmpty ? "" : "; \(step)")</dd>
            <dt>Mempool</dt><dd>\(status.mempoolSize) of \(status.mempoolCapacity)</dd>
            </dl>
            <h2>Validators</h2>
            <div class="scroll"><table><thead><tr><th>Validator</th><th>Organisation</th><th>Power</th><th>Last signed</th></tr></thead><tbody>\(rows)</tbody></table></div>
            <h2>Peers</h2><ul>\(peers.isEmpty ? "<li>none</li>" : peers)</ul>
            """
        return page("Consortium", "Consortium", body)
    }
}

/// The console's fixed parts: pages, escaping, the script and the style.
enum Console {
    static let pages: [(String, String)] = [("Consortium", "/console/consortium"), ("Explorer", "/console/explorer"), ("Supply chain", "/console/supply-chain"),
                                                ("Public health", "/console/public-health"), ("Hospital", "/console/hospital")]

    static let icon = ##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#0b3d60"/><path d="M4 8h8M8 4v8" stroke="#fff" stroke-width="2"/></svg>"##

    /// Event streams open now, and the most at once.
    static let openStreams = Atomic<Int>(0)
    static let maxStreams = 64

    struct BlockEvent: Codable { var height: UInt64; var hash: String; var transactions: Int; var time: String; var proposer: String }

    /// By Unicode scalar, not by character: a quote followed by a combining mark is one
    /// character, but its quote still ends an attribute.
    static func escape(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for c in s.unicodeScalars {
            switch c {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&#39;".unicodeScalars)
            default: out.append(c)
            }
        }
        return String(out)
    }

    /// `YYYY-MM-DD hh:mm:ss` (UTC).
    static func time(_ t: Int64) -> String { String(UTCTime.iso(t).prefix(19)).replacingOccurrences(of: "T", with: " ") }

    static func blockRow(_ h: BlockHeader) -> String {
        "<tr data-height=\"\(h.height)\"><td><a href=\"/console/blocks/\(h.height)\">\(h.height)</a></td><td><code>\(h.hash.hex.prefix(16))…</code></td>"
            + "<td>\(h.transactionCount)</td><td>\(time(h.timestampMs))</td><td><code>\(h.proposer.hex.prefix(12))…</code></td></tr>"
    }

    /// Live updates: a table marked `data-live="blocks"` gets each new block at its top.
    static let script = """
        "use strict";
        (function () {
          var table = document.querySelector('table[data-live="blocks"] tbody');
          if (!table || !window.EventSource) { return; }
          var top = table.querySelector('tr[data-height]');
          var source = new EventSource('/console/events' + (top ? '?after=' + top.getAttribute('data-height') : ''));
          source.addEventListener('reload', function () { source.close(); window.location.reload(); });
          source.addEventListener('block', function (e) {
            var b = JSON.parse(e.data);
            var first = table.querySelector('tr[data-height]');
            if (first && Number(first.getAttribute('data-height')) >= b.height) { return; }
            var tr = document.createElement('tr');
            tr.setAttribute('data-height', String(b.height));
            tr.className = 'new';
            function cell(node) { var td = document.createElement('td'); td.appendChild(node); tr.appendChild(td); }
            function text(s) { return document.createTextNode(s); }
            function code(s) { var c = document.createElement('code'); c.textContent = s; return c; }
            var a = document.createElement('a'); a.href = '/console/blocks/' + b.height; a.textContent = String(b.height);
            cell(a); cell(code(b.hash.slice(0, 16) + '\\u2026')); cell(text(String(b.transactions))); cell(text(b.time)); cell(code(b.proposer.slice(0, 12) + '\\u2026'));
            table.insertBefore(tr, table.firstChild);
            while (table.children.length > 50) { table.removeChild(table.lastChild); }
          });
        })();
        """

    /// Dark text on white and a blue that passes WCAG 2.1 AA (contrast ≥ 4.5:1); narrow screens
    /// scroll tables sideways instead of squeezing them.
    static let style = """
        *{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff}
        header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding:.5rem 1rem;background:#0b3d60;color:#fff}
        .brand{font-weight:700}nav a{color:#fff;margin-right:.8rem;text-decoration:none}nav a[aria-current=page]{text-decoration:underline;font-weight:700}
        .search{margin-left:auto;display:flex;gap:.3rem}.search input{min-width:14rem;padding:.3rem}.hidden{position:absolute;left:-9999px}
        main{padding:1rem;max-width:70rem}a{color:#0b5394}code{font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ccc;vertical-align:top}
        .scroll{overflow-x:auto}ol.timeline{padding-left:1.2rem}ol.timeline time{font-variant-numeric:tabular-nums;color:#444;margin-right:.5rem}
        form.inline{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center}form.inline input{padding:.3rem}svg text{font-size:11px;fill:#333}svg#cold-chain{max-width:600px;border:1px solid #ccc}
        ul.counts{display:flex;flex-wrap:wrap;gap:1rem;list-style:none;padding:0}.status{padding:0 .3rem;border-radius:3px;background:#e8eef4}
        .status-available{background:#d7ecd9}.status-out-of-service{background:#fde2e1}.status-maintenance{background:#fff4c2}tr.new{background:#fff4c2}tr.alert{background:#fde2e1}.ok{color:#1b5e20}.bad{color:#a00000}
        dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dd{margin:0}pre{background:#f4f4f4;padding:.5rem;overflow-x:auto}
        @media (max-width:40rem){dl.fields{grid-template-columns:1fr}.search{margin-left:0;width:100%}.search input{min-width:0;flex:1}}
        """
}
