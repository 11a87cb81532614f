import CPahoMQTT
import Dispatch
import Foundation
import IoMTCore
import IoMTEdge

/// MQTT intake through a real broker (Eclipse Mosquitto) with the Eclipse Paho C client.
///
/// A device publishes one upload at QoS 1 to `iomt/readings/{device}/{counter}/{signature}/{fhir|csv}`
/// (the same device id, counter and signature as the HTTP headers; the payload is the body). The
/// gateway holds a persistent session (clean session off, a fixed client id), so the broker keeps
/// QoS 1 messages for it while it is down. A message is acknowledged to the broker only after the
/// upload is durably queued or definitely refused; while the queue is overloaded or the node cannot
/// be asked about an unknown device, the message is left unacknowledged and delivered again. The
/// outcome (the HTTP API's 202 body or problem) is published to `iomt/replies/{device}`.
public final class MQTTIntake: @unchecked Sendable {
    public let gateway: Gateway
    public let uri: String
    public let clientID: String
    public static let topic = "iomt/readings/#"
    private var client: UnsafeMutableRawPointer?
    private let lock = NSLock()
    private var reconnecting = false
    /// Replies are published from here, never from Paho's message callback: the synchronous
    /// client allows no API call inside a callback (a publish there can block its receive thread,
    /// which then misses the broker closing the connection — Paho issue #1263).
    private let replies = DispatchQueue(label: "iomtchain.gateway.mqtt-replies")

    public init(gateway: Gateway, uri: String, clientID: String) {
        self.gateway = gateway
        self.uri = uri
        self.clientID = clientID
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Connects and subscribes on a thread of its own: the broker may deliver queued messages
    /// before the subscription returns, and handling them needs Swift's cooperative threads free.
    public func start() async throws {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread { [self] in c.resume(with: Result { try self.connect() }) }
        }
    }

    private func connect() throws {
        var rc: Int32 = 0
        let handle = iomt_mqtt_start(uri, clientID, Self.topic, 0, { ctx, topic, payload, length in
            let me = Unmanaged<MQTTIntake>.fromOpaque(ctx!).takeUnretainedValue()
            let body = payload.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
            return me.handle(topic: topic.map { String(cString: $0) } ?? "", body: body)
        }, { ctx, cause in
            let me = Unmanaged<MQTTIntake>.fromOpaque(ctx!).takeUnretainedValue()
            me.connectionLost(cause.map { String(cString: $0) } ?? "")
        }, Unmanaged.passUnretained(self).toOpaque(), &rc)
        guard let handle else { throw Failure(description: "MQTT \(uri): \(String(cString: iomt_mqtt_error(rc)))") }
        lock.withLock { client = handle }
    }

    public func stop() {
        if let c = lock.withLock({ let c = client; client = nil; return c }) { iomt_mqtt_stop(c) }
    }

    private func connectionLost(_ cause: String) {
        let start = lock.withLock { () -> Bool in
            guard !reconnecting else { return false }
            reconnecting = true
            return true
        }
        guard start else { return }
        gateway.log("MQTT connection lost (\(cause)); reconnecting")
        Thread.detachNewThread { [self] in
            while let c = lock.withLock({ client }) {
                if iomt_mqtt_reconnect(c, Self.topic, 0) == 0 { gateway.log("MQTT reconnected to \(uri)"); break }
                Thread.sleep(forTimeInterval: 1)
            }
            lock.withLock { reconnecting = false }
        }
    }

    final class Box: @unchecked Sendable { var value: Result<Gateway.Accepted, Gateway.UploadError>? }

    /// On Paho's thread: 1 = handled (acknowledge), 0 = deliver again later.
    func handle(topic: String, body: [UInt8]) -> Int32 {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "iomt", parts[1] == "readings", let device = Address(hex: String(parts[2])),
              let counter = UInt64(parts[3]), let tag = Hex.decode(String(parts[4])), parts[5] == "fhir" || parts[5] == "csv" else {
            gateway.log("MQTT: dropped a message on \"\(topic.prefix(200))\": the topic is not iomt/readings/{device}/{counter}/{signature}/{fhir|csv}")
            return 1
        }
        let type = parts[5] == "csv" ? "text/csv" : "application/fhir+json"
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        Task { [gateway] in
            box.value = await gateway.uploadResult(device: device, counter: counter, contentType: type, tag: tag, body: body)
            done.signal()
        }
        done.wait()
        let reply: [UInt8]
        switch box.value! {
        case .success(let a):
            reply = (try? JSONEncoder().encode(a)).map(Array.init) ?? []
        case .failure(let e):
            switch e {
            case .overloaded, .unavailable:
                // Not refused, not stored: leave it with the broker and take it again shortly.
                Thread.sleep(forTimeInterval: 0.2)
                return 0
            default:
                reply = Array(#"{"code":"\#(e.code)","detail":\#(String(decoding: (try? JSONEncoder().encode(e.description)) ?? Data(), as: UTF8.self)),"counter":\#(counter)}"#.utf8)
            }
        }
        replies.async { [self] in
            lock.withLock {
                guard let c = client else { return }
                _ = reply.withUnsafeBytes { iomt_mqtt_publish(c, "iomt/replies/\(device.hex)", $0.baseAddress, Int32($0.count), 1, 0) }
            }
        }
        return 1
    }
}
