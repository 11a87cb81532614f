import Dispatch
import IoMTCore
import IoMTEdge

/// Group commit of uploads: every upload waiting while one SQLite transaction is written goes
/// into the next, so many uploads share one fsync. The writes run on a dedicated thread, never on
/// Swift's cooperative pool, which a blocking fsync would stall. Each upload still gets its own
/// answer: a replay in one does not refuse the others.
actor UploadCommitter {
    private let store: GatewayStore
    private let maxUnanchored: Int
    private let writer = DispatchQueue(label: "iomtchain.gateway.queue-writer")
    private var waiting: [(upload: GatewayStore.NewUpload, reply: CheckedContinuation<Result<ClosedRange<Int64>, Gateway.UploadError>, Never>)] = []
    private var writing = false
    /// Readings waiting for a committed anchor, as of the last commit (the backpressure measure).
    private var unanchored: Int

    init(store: GatewayStore, maxUnanchored: Int) throws {
        self.store = store
        self.maxUnanchored = maxUnanchored
        unanchored = try store.unanchoredCount()
    }

    func submit(_ upload: GatewayStore.NewUpload) async -> Result<ClosedRange<Int64>, Gateway.UploadError> {
        await withCheckedContinuation { c in
            waiting.append((upload, c))
            if !writing {
                writing = true
                Task { await drain() }
            }
        }
    }

    private func drain() async {
        while !waiting.isEmpty {
            var group = waiting
            waiting = []
            // Backpressure: refuse what would push the queue past its bound, before writing.
            var room = maxUnanchored - unanchored
            var admitted: [(upload: GatewayStore.NewUpload, reply: CheckedContinuation<Result<ClosedRange<Int64>, Gateway.UploadError>, Never>)] = []
            for item in group {
                if item.upload.readings.count <= room {
                    room -= item.upload.readings.count
                    admitted.append(item)
                } else {
                    item.reply.resume(returning: .failure(.overloaded(unanchored)))
                }
            }
            group = admitted
            let uploads = group.map(\.upload)
            let store = self.store
            let outcome: Result<(results: [Result<ClosedRange<Int64>, UploadRefusal>], unanchored: Int), any Error> = await withCheckedContinuation { c in
                writer.async { c.resume(returning: Result { (try store.accept(uploads), try store.unanchoredCount()) }) }
            }
            switch outcome {
            case .success(let r):
                unanchored = r.unanchored
                for (item, result) in zip(group, r.results) { item.reply.resume(returning: result.mapError { .refused($0) }) }
            case .failure(let e):
                for item in group { item.reply.resume(returning: .failure(.unavailable("queue: \(e)"))) }
            }
        }
        writing = false
    }

    /// Called after anchors commit, so the backpressure bound sees the queue shrink between uploads.
    func refreshUnanchored() {
        if let n = try? store.unanchoredCount() { unanchored = n }
    }
}
