import IoMTCore

/// Quarantine orders (issue 6 §3): only a public-health officer of an organisation of kind
/// public-health-agency orders or lifts one, for an enrolled patient and the active wristband bound
/// to them; the geofence stays off-chain behind its commitment.
enum Quarantine {
    static func officer(_ sender: Account, state: StateOverlay, doing what: String) throws(ContractError) {
        let org = try state.read(Organisation.self, StateKeys.organisation(sender.organisation))
        guard sender.role == .publicHealthOfficer, org?.kind == "public-health-agency" else { throw .unauthorised("only a public-health officer of a public-health agency \(what)") }
    }

    static let maxDaysMs: Int64 = 60 * 86_400_000

    static func order(_ o: OrderQuarantine, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try officer(sender, state: state, doing: "orders a quarantine")
        guard try state.read(PatientRecord.self, StateKeys.patient(o.subject)) != nil else { throw .invalidArgument("no patient is enrolled under pseudonym \(o.subject)") }
        guard let d = try state.read(DeviceRecord.self, StateKeys.device(o.device)) else { throw .invalidArgument("unknown device \(o.device)") }
        guard d.deviceType == "wristband", d.subject == o.subject, d.status == .active else {
            throw .invalidArgument("device \(o.device) is not an active wristband bound to patient \(o.subject)")
        }
        // (No subtraction of untrusted times: an overflow would stop the node.)
        guard o.fromMs < o.untilMs, o.untilMs > context.timestampMs, o.untilMs <= context.timestampMs + maxDaysMs, o.fromMs >= o.untilMs - maxDaysMs else {
            throw .invalidArgument("the quarantine runs from fromMs to untilMs (after the block), at most 60 days")
        }
        guard state.value(forKey: StateKeys.quarantineOrder(o.orderID)) == nil else { throw .alreadyExists("quarantine order \(o.orderID)") }
        state.put(StateKeys.quarantineOrder(o.orderID), QuarantineRecord(order: o, agency: sender.organisation, officer: sender.address, height: context.height))
    }

    static func lift(_ l: LiftQuarantine, by sender: Account, state: inout StateOverlay, context: ExecutionContext) throws(ContractError) {
        try officer(sender, state: state, doing: "lifts a quarantine")
        guard var r = try state.read(QuarantineRecord.self, StateKeys.quarantineOrder(l.orderID)) else { throw .invalidArgument("unknown quarantine order \(l.orderID)") }
        guard r.agency == sender.organisation else { throw .unauthorised("order \(l.orderID) was made by \"\(r.agency)\"") }
        guard r.liftedMs == nil, context.timestampMs < r.order.untilMs else { throw .alreadyExists("the end of quarantine order \(l.orderID)") }
        r.liftedMs = context.timestampMs
        state.put(StateKeys.quarantineOrder(l.orderID), r)
    }
}
