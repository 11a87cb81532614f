/// Venue crowding and ventilation (issue 6 §4; seed 001 §5.2). Crowd counters at a venue report
/// occupancy to the venue's gateway, which warns when it passes the venue's capacity and sets the
/// airflow of the venue's ventilation controllers to follow it. Each set-point command, each
/// controller's acknowledgement and each fan or filter fault is recorded on-chain by the gateway of
/// the controller's organisation; technicians list the open faults and close them.

/// The gateway commands a ventilation controller's airflow set-point (m³/h) for the occupancy it saw.
public struct CommandVentilation: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    /// 1, 2, …: one per command to this controller.
    public var sequence: UInt64
    public var setpointM3h: UInt32
    public var occupancy: UInt32

    public init(device: Address, sequence: UInt64, setpointM3h: UInt32, occupancy: UInt32) { self.device = device; self.sequence = sequence; self.setpointM3h = setpointM3h; self.occupancy = occupancy }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(sequence); w.write(setpointM3h); w.write(occupancy) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); sequence = try r.read(); setpointM3h = try r.read(); occupancy = try r.read() }
}

/// The controller reported (in a signed upload to the gateway) the airflow it applied for a command.
public struct AckVentilation: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var sequence: UInt64
    public var appliedM3h: UInt32
    public var atMs: Int64

    public init(device: Address, sequence: UInt64, appliedM3h: UInt32, atMs: Int64) { self.device = device; self.sequence = sequence; self.appliedM3h = appliedM3h; self.atMs = atMs }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(sequence); w.write(appliedM3h); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); sequence = try r.read(); appliedM3h = try r.read(); atMs = try r.read() }
}

/// A fan or filter fault a ventilation controller reported.
public struct ReportFault: Hashable, Sendable, Codable, CanonicalCodable {
    public var device: Address
    public var code: String
    public var atMs: Int64

    public static let codes = ["fan-stopped", "fan-degraded", "filter-clogged", "filter-missing", "sensor-failure"]

    public init(device: Address, code: String, atMs: Int64) { self.device = device; self.code = code; self.atMs = atMs }

    public func encode(to w: inout CanonicalWriter) { w.write(device); w.write(code); w.write(atMs) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { device = try r.read(); code = try r.read(); atMs = try r.read() }
}

/// A technician (a member-admin of the controller's organisation) closes a fault after the repair.
public struct ResolveFault: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public init(n: UInt64) { self.n = n }
    public func encode(to w: inout CanonicalWriter) { w.write(n) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) { n = try r.read() }
}

/// A controller's command with its acknowledgement, as held in state (`StateKeys.ventilationCommand(device, sequence)`).
public struct VentilationRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var command: CommandVentilation
    public var venue: String
    public var commandedAtMs: Int64
    public var height: UInt64
    public var ack: AckVentilation?

    public init(command: CommandVentilation, venue: String, commandedAtMs: Int64, height: UInt64, ack: AckVentilation? = nil) {
        self.command = command; self.venue = venue; self.commandedAtMs = commandedAtMs; self.height = height; self.ack = ack
    }

    public func encode(to w: inout CanonicalWriter) { w.write(command); w.write(venue); w.write(commandedAtMs); w.write(height); w.write(ack) }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        command = try r.read(); venue = try r.read(); commandedAtMs = try r.read(); height = try r.read(); ack = try r.readOptional()
    }
}

/// A fault as held in state (`StateKeys.fault(n)`).
public struct FaultRecord: Hashable, Sendable, Codable, CanonicalCodable {
    public var n: UInt64
    public var report: ReportFault
    public var venue: String
    public var organisation: String
    public var reportedHeight: UInt64
    public var resolvedBy: Address?
    public var resolvedMs: Int64?

    public init(n: UInt64, report: ReportFault, venue: String, organisation: String, reportedHeight: UInt64, resolvedBy: Address? = nil, resolvedMs: Int64? = nil) {
        self.n = n; self.report = report; self.venue = venue; self.organisation = organisation; self.reportedHeight = reportedHeight; self.resolvedBy = resolvedBy; self.resolvedMs = resolvedMs
    }

    public func encode(to w: inout CanonicalWriter) {
        w.write(n); w.write(report); w.write(venue); w.write(organisation); w.write(reportedHeight); w.write(resolvedBy); w.write(resolvedMs.map { UInt64(bitPattern: $0) })
    }
    public init(from r: inout CanonicalReader) throws(CanonicalDecodingError) {
        n = try r.read(); report = try r.read(); venue = try r.read(); organisation = try r.read(); reportedHeight = try r.read()
        resolvedBy = try r.readOptional(); resolvedMs = try r.readOptional(UInt64.self).map { Int64(bitPattern: $0) }
    }
}

extension StateKeys {
    /// The last command sequence of a controller (`UInt64`).
    public static func ventilationSequence(_ device: Address) -> [UInt8] { Array("ventilation/".utf8) + device.bytes }
    public static func ventilationCommand(_ device: Address, _ sequence: UInt64) -> [UInt8] { Array("ventilation/".utf8) + device.bytes + sequence.canonicalBytes }
    /// Faults, numbered (`UInt64` count; the n-th is `fault(n)`).
    public static let faultCount: [UInt8] = Array("faults/count".utf8)
    public static func fault(_ n: UInt64) -> [UInt8] { Array("faults/".utf8) + n.canonicalBytes }
    /// Set once a controller's fault of a code is open (`UInt64` n): one open fault per code.
    public static func openFault(_ device: Address, _ code: String) -> [UInt8] { Array("open-fault/".utf8) + device.bytes + Array(code.utf8) }
}
