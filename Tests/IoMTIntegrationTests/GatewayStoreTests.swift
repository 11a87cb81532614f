@preconcurrency import Crypto
import Foundation
import GRDB
import IoMTCore
import IoMTEdge
import IoMTGateway
import Testing

@Suite("gateway queue: group commit")
struct GatewayStoreTests {
    static func upload(_ device: UInt8, _ counter: UInt64, readings n: Int = 2) -> GatewayStore.NewUpload {
        let r = Reading(kind: .heartRate, code: .loinc("8867-4"), effectiveMs: Int64(counter), values: [Measurement(code: .loinc("8867-4"), value: DecimalValue(70), unit: "/min")])
        return GatewayStore.NewUpload(device: Address(bytes: [UInt8](repeating: device, count: 20))!, counter: counter, readings: Array(repeating: r, count: n), receivedMs: 1)
    }

    @Test("uploads committed together are judged one by one: a replay inside the group writes nothing and refuses only itself; counters and readings survive reopening")
    func groupCommit() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var store: GatewayStore? = try GatewayStore(path: dir + "/gateway.sqlite")
        let results = try store!.accept([Self.upload(1, 1), Self.upload(1, 1), Self.upload(2, 5, readings: 3), Self.upload(1, 2), Self.upload(2, 4)])
        #expect(try results[0].get() == 1...2)
        #expect(results[1] == .failure(.replay(device: Self.upload(1, 1).device, counter: 1, last: 1)))
        #expect(try results[2].get() == 3...5)
        #expect(try results[3].get() == 6...7)
        #expect(results[4] == .failure(.replay(device: Self.upload(2, 4).device, counter: 4, last: 5)))
        #expect(try store!.counts().readings == 7)
        store = nil
        let reopened = try GatewayStore(path: dir + "/gateway.sqlite")
        #expect(try reopened.lastCounter(Self.upload(1, 1).device) == 2)
        #expect(try reopened.accept([Self.upload(1, 2)]).first == .failure(.replay(device: Self.upload(1, 1).device, counter: 2, last: 2)))
        #expect(try reopened.accept([Self.upload(1, 3)]).first.map { try? $0.get() } == 8...9)
    }

    @Test("quarantine geofences are sealed at rest: not in the database file in the clear, opened only with the gateway's key; an older gateway's clear rows are sealed and zeroed; a fence is deleted")
    func sealedGeofences() throws {
        let dir = temporaryFolder()
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/gateway.sqlite"
        let salt = [UInt8](repeating: 0x5A, count: 32), oldSalt = [UInt8](repeating: 0xA5, count: 32)
        let device = Address(bytes: [UInt8](repeating: 7, count: 20))!
        let fence = Geofence(xCm: 123_456_789, yCm: -987_654_321, radiusCm: 2_000, salt: salt)
        let old = Geofence(xCm: 55_555_555, yCm: 44_444_444, radiusCm: 1_000, salt: oldSalt)
        let key = SymmetricKey(size: .bits256)
        do {
            let store = try GatewayStore(path: path)
            // An older gateway's row, in the clear (the v12 table, as it wrote them).
            let db = try DatabaseQueue(path: path)
            try db.write { db in
                try db.execute(sql: "INSERT INTO geofences(order_id, device, x_cm, y_cm, radius_cm, salt) VALUES (?, ?, ?, ?, ?, ?)",
                               arguments: [Data(Hash.sha256([1]).bytes), Data(device.bytes), old.xCm, old.yCm, old.radiusCm, Data(oldSalt)])
            }
            try store.addGeofence(order: Hash.sha256([2]), device: device, fence: fence, key: key)
            let all = try store.geofences(key: key)
            #expect(Set(all.map(\.fence)) == [fence, old])
            #expect(Set(all.map(\.order)) == [Hash.sha256([1]), Hash.sha256([2])])
            try store.removeGeofence(order: Hash.sha256([2]))
            #expect(try store.geofences(key: key).map(\.fence) == [old])
            try store.checkpoint()
        }
        let file = Array(FileManager.default.contents(atPath: path) ?? Data()) + Array(FileManager.default.contents(atPath: path + "-wal") ?? Data())
        #expect(!file.isEmpty)
        #expect(!PHIScanTests.contains(file, salt) && !PHIScanTests.contains(file, oldSalt), "a fence's salt is in the database in the clear")
        var w = CanonicalWriter(); w.write(old.xCm); w.write(old.yCm)
        #expect(!PHIScanTests.contains(file, w.bytes), "the older gateway's fence centre is still in the database in the clear")
        // Another key (another gateway's database) opens nothing.
        let reopened = try GatewayStore(path: path)
        #expect(throws: (any Error).self) { try reopened.geofences(key: SymmetricKey(size: .bits256)) }
        #expect(try reopened.geofences(key: key).map(\.fence) == [old])
    }

    @Test("check-ins: one per token, sealed per venue when due, anchored / waiting / refused as the outbox marks their batch; a visit that exposed nobody stays local")
    func checkIns() throws {
        let dir = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try GatewayStore(path: dir + "/gateway.sqlite")
        let t = (0..<4).map { Hash.sha256([UInt8($0)]) }
        _ = try store.addCheckIn(CheckIn(tokenHash: t[0], venue: "library", inMs: 1_000, outMs: 61_000))
        _ = try store.addCheckIn(CheckIn(tokenHash: t[1], venue: "library", inMs: 2_000, outMs: 62_000))
        _ = try store.addCheckIn(CheckIn(tokenHash: t[2], venue: "cafe", inMs: 3_000, outMs: 63_000))
        #expect(throws: GatewayStore.CheckInRefusal.duplicateToken) { try store.addCheckIn(CheckIn(tokenHash: t[0], venue: "cafe", inMs: 4_000, outMs: 5_000)) }
        #expect(try store.sealCheckIns(nowMs: 1_500, maxAgeMs: 1_000) == 0)  // not due yet
        #expect(try store.checkIns(tokenHashes: t).allSatisfy { $0.root == nil && $0.anchored == nil })
        #expect(try store.sealCheckIns(nowMs: 2_000, maxAgeMs: 1_000) == 2)  // one batch per venue
        let batches = try store.unsignedCheckInBatches()
        #expect(batches.map(\.anchor.venue) == ["cafe", "library"] && batches.map(\.anchor.count) == [1, 2])
        #expect(batches[1].anchor.root == MerkleTree.root(leaves: [CheckIn(tokenHash: t[0], venue: "library", inMs: 1_000, outMs: 61_000).canonicalBytes,
                                                                    CheckIn(tokenHash: t[1], venue: "library", inMs: 2_000, outMs: 62_000).canonicalBytes]))
        try store.markCommitted(.checkIns, id: batches[1].id, height: 7)
        try store.markRefused(.checkIns, id: batches[0].id, code: "unauthorised")
        let stored = try store.checkIns(tokenHashes: [t[0], t[2]])
        #expect(stored.map(\.anchored) == [true, false])
        #expect(try store.checkIns(venue: "library", arrivedFrom: 0, before: 2_000).map(\.checkIn.tokenHash) == [t[0]])
        try store.addExposureReports([(venue: "library", part: 0, visits: 1, exposed: [t[1]], roots: [batches[1].anchor.root]), (venue: "cafe", part: 0, visits: 1, exposed: [], roots: [])],
                                     caseID: Hash.sha256([9]), cursor: 1, nowMs: 10_000)
        #expect(try store.caseCursor() == 1)
        #expect(try store.exposureReports(after: 0).map(\.venue) == ["library", "cafe"])
        #expect(try store.unsignedExposureReports().map(\.venue) == ["library"])
    }
}
