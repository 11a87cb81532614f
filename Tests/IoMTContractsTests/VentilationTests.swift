import IoMTContracts
import IoMTCore
import Testing

@Suite("Ventilation module: set-point commands, acknowledgements and faults by the controller's gateway; faults closed by its organisation")
struct VentilationTests {
    typealias C = Consortium
    static let gateway = C.ed25519(0xB3), otherGateway = C.ed25519(0xB4), controller = C.ed25519(0xB5), counter = C.ed25519(0xB6), stray = C.ed25519(0xB7), squatter = C.ed25519(0xB8)

    static func ledger() -> Ledger {
        var l = Ledger()
        l.apply(C.adminA, .register(gateway, .gateway, "st-marys"))
        l.apply(C.adminC, .register(otherGateway, .gateway, "health-agency"))
        l.apply(C.adminA, .registerVenue(RegisterVenue(venue: "waiting-room", capacity: 30)))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: controller.publicKey, deviceType: "ventilation-controller", place: "waiting-room")))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: counter.publicKey, deviceType: "crowd-counter", place: "waiting-room")))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: stray.publicKey, deviceType: "ventilation-controller", place: "no-such-venue")))
        // Another organisation's venue, and a st-marys controller claiming to be placed there.
        l.apply(C.adminC, .registerVenue(RegisterVenue(venue: "agency-hall", capacity: 30)))
        l.apply(C.adminA, .registerDevice(RegisterDevice(publicKey: squatter.publicKey, deviceType: "ventilation-controller", place: "agency-hall")))
        return l
    }

    static var device: Address { controller.publicKey.address }

    @Test("commands: the controller's own gateway, in sequence, for a controller placed at a registered venue; each acknowledged once")
    func commands() throws {
        var l = Self.ledger()
        func command(_ seq: UInt64, _ d: Address = Self.device, setpoint: UInt32 = 450) -> TransactionPayload {
            .commandVentilation(CommandVentilation(device: d, sequence: seq, setpointM3h: setpoint, occupancy: 12))
        }
        l.reject(Self.otherGateway, command(1), "unauthorised")
        l.reject(C.adminA, command(1), "unauthorised")
        l.reject(Self.gateway, command(1, Self.counter.publicKey.address), "invalid-argument")
        l.reject(Self.gateway, command(1, Self.stray.publicKey.address), "invalid-argument")
        l.reject(Self.gateway, command(1, Self.squatter.publicKey.address), "unauthorised")
        l.reject(Self.gateway, command(2), "invalid-argument")
        l.reject(Self.gateway, command(1, setpoint: 0), "invalid-argument")
        l.apply(Self.gateway, command(1))
        l.apply(Self.gateway, command(2, setpoint: 900))
        let ack = TransactionPayload.ackVentilation(AckVentilation(device: Self.device, sequence: 2, appliedM3h: 880, atMs: l.context.timestampMs))
        l.reject(Self.gateway, .ackVentilation(AckVentilation(device: Self.device, sequence: 3, appliedM3h: 880, atMs: l.context.timestampMs)), "invalid-argument")
        l.reject(Self.otherGateway, ack, "unauthorised")
        l.apply(Self.gateway, ack)
        l.reject(Self.gateway, ack, "already-exists")
        let r = try #require(try l.state.read(VentilationRecord.self, StateKeys.ventilationCommand(Self.device, 2)))
        #expect(r.venue == "waiting-room" && r.command.setpointM3h == 900 && r.ack?.appliedM3h == 880)
        #expect(try l.state.read(VentilationRecord.self, StateKeys.ventilationCommand(Self.device, 1))?.ack == nil)
    }

    @Test("faults: one open per controller and code, listed with the venue; closed by a member-admin of the controller's organisation, then may open again")
    func faults() throws {
        var l = Self.ledger()
        let fault = TransactionPayload.reportFault(ReportFault(device: Self.device, code: "filter-clogged", atMs: l.context.timestampMs))
        l.reject(Self.gateway, .reportFault(ReportFault(device: Self.device, code: "smells-funny", atMs: l.context.timestampMs)), "invalid-argument")
        l.reject(Self.otherGateway, fault, "unauthorised")
        l.apply(Self.gateway, fault)
        l.reject(Self.gateway, fault, "already-exists")
        l.apply(Self.gateway, .reportFault(ReportFault(device: Self.device, code: "fan-stopped", atMs: l.context.timestampMs)))
        let f = try #require(try l.state.read(FaultRecord.self, StateKeys.fault(1)))
        #expect(f.venue == "waiting-room" && f.organisation == "st-marys" && f.resolvedMs == nil)
        l.reject(C.adminC, .resolveFault(ResolveFault(n: 1)), "unauthorised")
        l.reject(Self.gateway, .resolveFault(ResolveFault(n: 1)), "unauthorised")
        l.reject(C.adminA, .resolveFault(ResolveFault(n: 9)), "invalid-argument")
        l.apply(C.adminA, .resolveFault(ResolveFault(n: 1)))
        l.reject(C.adminA, .resolveFault(ResolveFault(n: 1)), "already-exists")
        #expect(try l.state.read(FaultRecord.self, StateKeys.fault(1))?.resolvedBy == C.adminA.publicKey.address)
        l.apply(Self.gateway, fault)  // the filter clogs again
        #expect(try l.state.read(UInt64.self, StateKeys.faultCount) == 3)
    }
}
