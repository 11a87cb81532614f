import IoMTCore

/// Venue ventilation (issue 6 §4): set-point commands, their acknowledgements and the fans' and
/// filters' faults, recorded by the gateway of the controller's organisation; faults closed by a
/// member-admin (the technicians' organisation).
enum Ventilation {
    /// The controller: a registered, not revoked `ventilation-controller` placed at a registered
    /// venue; the sender a gateway of its organisation. Returns the venue.
    static func controller(_ device: Address, gateway sender: Account, state: StateOverlay, doing what: String) throws(ContractError) -> String {
        try Devices.checkGateway(sender, for: device, state: state, doing: what)
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(device)), d.deviceType == "ventilation-controller", let venue = d.place,
              let v = try state.read(VenueRecord.self, StateKeys.venue(venue)) else {
            throw .invalidArgument("device \(device) is not a ventilation controller placed at a registered venue")
        }
        guard v.organisation == d.organisation else { throw .unauthorised("venue \"\(venue)\" belongs to \"\(v.organisation)\", not to the controller's \"\(d.organisation)\"") }
        return venue
    }

    static func command(_ c: CommandVentilation, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let venue = try controller(c.device, gateway: sender, state: state, doing: "commands ventilation")
        let last = try state.read(UInt64.self, StateKeys.ventilationSequence(c.device)) ?? 0
        guard c.sequence == last + 1 else { throw .invalidArgument("this is command \(last + 1) of controller \(c.device), not \(c.sequence)") }
        guard (1...1_000_000).contains(c.setpointM3h) else { throw .invalidArgument("setpointM3h is 1…1000000") }
        state.put(StateKeys.ventilationSequence(c.device), c.sequence)
        state.put(StateKeys.ventilationCommand(c.device, c.sequence), VentilationRecord(command: c, venue: venue, commandedAtMs: context.timestampMs, height: context.height))
    }

    static func ack(_ a: AckVentilation, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        _ = try controller(a.device, gateway: sender, state: state, doing: "records ventilation acknowledgements")
        guard var r = try state.read(VentilationRecord.self, StateKeys.ventilationCommand(a.device, a.sequence)) else {
            throw .invalidArgument("controller \(a.device) was never sent command \(a.sequence)")
        }
        guard r.ack == nil else { throw .alreadyExists("the acknowledgement of command \(a.sequence)") }
        guard a.atMs <= context.timestampMs + 300_000 else { throw .invalidArgument("atMs is in the future") }
        r.ack = a
        state.put(StateKeys.ventilationCommand(a.device, a.sequence), r)
    }

    static func reportFault(_ f: ReportFault, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        let venue = try controller(f.device, gateway: sender, state: state, doing: "reports faults")
        guard ReportFault.codes.contains(f.code) else { throw .invalidArgument("code is one of \(ReportFault.codes.joined(separator: ", "))") }
        guard f.atMs <= context.timestampMs + 300_000 else { throw .invalidArgument("atMs is in the future") }
        guard state.value(forKey: StateKeys.openFault(f.device, f.code)) == nil else { throw .alreadyExists("an open \(f.code) fault of controller \(f.device)") }
        let n = (try state.read(UInt64.self, StateKeys.faultCount) ?? 0) + 1
        state.put(StateKeys.faultCount, n)
        state.put(StateKeys.fault(n), FaultRecord(n: n, report: f, venue: venue, organisation: sender.organisation, reportedHeight: context.height))
        state.put(StateKeys.openFault(f.device, f.code), n)
    }

    static func resolveFault(_ r: ResolveFault, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        guard var f = try state.read(FaultRecord.self, StateKeys.fault(r.n)) else { throw .invalidArgument("unknown fault \(r.n)") }
        guard sender.role == .memberAdmin, sender.organisation == f.organisation else { throw .unauthorised("only a member-admin of \"\(f.organisation)\" closes its faults") }
        guard f.resolvedMs == nil else { throw .alreadyExists("the resolution of fault \(r.n)") }
        f.resolvedBy = sender.address
        f.resolvedMs = context.timestampMs
        state.put(StateKeys.fault(r.n), f)
        state.delete(StateKeys.openFault(f.report.device, f.report.code))
    }
}
