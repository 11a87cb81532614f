import Foundation
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
}
