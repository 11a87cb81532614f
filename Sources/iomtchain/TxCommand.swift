import ArgumentParser
import Foundation
import IoMTAPI
import IoMTCore
import IoMTNode

struct TxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx", abstract: "Build, sign, submit and show transactions.",
        subcommands: [Build.self, Sign.self, Submit.self, Show.self])

    /// Flags that describe a payload. `--payload` takes the JSON form of any kind.
    struct PayloadOptions: ParsableArguments {
        @Option(help: "Kind: \(TransactionPayload.kinds.joined(separator: ", ")).") var type: String?
        @Option(help: "Payload as JSON (the `payload` object of the API), instead of the flags below.") var payload: String?
        @Option(help: "register-account: the new account's public key (ed25519:<hex> or p256:<hex>).") var publicKey: String?
        @Option(help: "register-account: role.") var role: String?
        @Option(help: "register-account: organisation id.") var organisation: String?
        @Option(help: "register-account: label (no personal data).") var label = ""
        @Option(help: "set-account-status, attest-practitioner, issue-credits: account address.") var account: String?
        @Option(help: "set-account-status: active, suspended or revoked.") var status: String?
        @Option(help: "set-account-status, set-device-sampling: reason.") var reason = ""
        @Option(help: "rotate-key: the new public key.") var newPublicKey: String?
        @Option(help: "approve-proposal: proposal id (hash).") var proposal: String?
        @Option(help: "set-device-sampling: the device's address.") var device: String?
        @Option(help: "set-device-sampling: intensive or periodic.") var mode: String?
        @Option(help: "set-device-sampling: how long an intensive request lasts, in minutes (≤ 10080); declare-emergency-access: how long access lasts (≤ 1440).") var minutes: Int64?
        @Option(help: "register-patient, set-agreement-key: the X25519 public key (64 hex digits).") var agreementKey: String?
        @Option(help: "register-patient: the patient's signature over its enrolment (`iomtchain patient enrolment` prints it).") var enrolmentSignature: String?
        @Option(help: "attest-practitioner: doctor, nurse, paramedic, pharmacist, midwife, technician, therapist, other.") var profession: String?
        @Option(help: "attest-practitioner: the licence id (only its SHA-256 goes on-chain).") var licenceId: String?
        @Flag(help: "attest-practitioner, set-rewrap-delegation: withdraw.") var withdraw = false
        @Option(help: "grant-consent: the grantee's account address.") var granteeAccount: String?
        @Option(help: "grant-consent: the grantee organisation (every attested practitioner, researcher and public-health officer of it), or with --grantee-role/--grantee-profession the organisation attribute.") var granteeOrganisation: String?
        @Option(help: "grant-consent: grantee attribute: role.") var granteeRole: String?
        @Option(help: "grant-consent: grantee attribute: profession.") var granteeProfession: String?
        @Option(help: "grant-consent, declare-emergency-access, request-dataset: data categories, comma-separated (\(DataCategory.all.joined(separator: ", "))).") var categories: String?
        @Option(help: "grant-consent: purposes, comma-separated (\(Purpose.all.joined(separator: ", "))).") var purposes: String?
        @Option(help: "grant-consent, request-dataset: first reading time covered (ms since 1970).") var dataFrom: Int64 = 0
        @Option(help: "grant-consent, request-dataset: last reading time covered (ms since 1970).") var dataUntil: Int64 = .max
        @Option(help: "grant-consent: days until the grant lapses.") var days: Int64 = 30
        @Option(help: "grant-consent: a FHIR R4 Consent resource (JSON file) to grant instead of the flags above.") var fhir: String?
        @Option(help: "grant-consent with --fhir: the consortium organisation a FHIR Organization reference stands for.") var fhirOrganisation: String?
        @Option(help: "revoke-consent: the grant's id.") var grant: String?
        @Option(help: "declare-emergency-access, request-erasure: the patient's pseudonym.") var subject: String?
        @Option(help: "declare-emergency-access: \(DeclareEmergencyAccess.reasonCodes.joined(separator: ", ")).") var reasonCode: String?
        @Option(help: "declare-emergency-access: the written statement (only its SHA-256 goes on-chain; keep the text).") var statement: String?
        @Option(help: "review-emergency-access: the access's id.") var access: String?
        @Option(help: "review-emergency-access: justified or unjustified.") var verdict: String?
        @Option(help: "review-emergency-access: a note (only its SHA-256 goes on-chain).") var note: String?
        @Option(help: "set-rewrap-delegation: the gateway account that may re-wrap the patient's data keys for allowed readers (with --withdraw: may no longer); request-dataset: the gateway holding the data.") var gateway: String?
        @Option(help: "request-dataset: rows (pseudonymised rows may be downloaded) or aggregates (differentially private answers only).") var datasetAccess: String?
        @Option(help: "request-dataset: credits paid, split among the patients in the dataset.") var price: UInt64 = 0
        @Option(help: "request-dataset: the privacy budget ε for aggregate queries (e.g. 1.0; at most 10).") var epsilon: Double = 1.0
        @Option(help: "cancel-dataset: the dataset's id.") var dataset: String?
        @Option(help: "issue-credits, transfer-credits: credits.") var amount: UInt64?
        @Option(help: "transfer-credits: the receiving account.") var to: String?

        /// A salted commitment to `text` (SHA-256 of a fresh 16-byte salt and the text): a licence
        /// number or a templated statement is short enough to guess from a plain hash. The salt
        /// goes to standard error, for the organisation to keep with the text (it shows the text
        /// matches the on-chain value).
        func commitment(_ text: String, _ what: String) -> Hash {
            var rng = SystemRandomNumberGenerator()
            let salt = (0..<16).map { _ in UInt8.random(in: 0...255, using: &rng) }
            FileHandle.standardError.write(Data("\(what) commitment: SHA-256(salt ‖ text), salt \(Hex.encode(salt)) — keep it with the text\n".utf8))
            return Hash.sha256(salt + Array(text.utf8))
        }

        func list(_ s: String) -> [String] { s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }

        func grantee() throws -> Grantee {
            if let a = granteeAccount {
                guard let address = Address(hex: a) else { throw CLIError("--grantee-account must be 40 hex digits") }
                return .account(address)
            }
            if granteeRole != nil || granteeProfession != nil {
                var role: Role?
                if let r = granteeRole {
                    guard let v = Role(name: r) else { throw CLIError("unknown --grantee-role; one of \(Role.allCases.map(\.name).joined(separator: ", "))") }
                    role = v
                }
                return .attributes(role: role, profession: granteeProfession, organisation: granteeOrganisation)
            }
            guard let o = granteeOrganisation else { throw CLIError("grant-consent needs --grantee-account, --grantee-organisation, or --grantee-role/--grantee-profession") }
            return .organisation(o)
        }

        func make() throws -> TransactionPayload {
            if let payload {
                do { return try JSONDecoder().decode(TransactionPayload.self, from: Data(payload.utf8)) } catch { throw CLIError("--payload: \(error)") }
            }
            guard let type else { throw CLIError("give --type or --payload") }
            func need(_ v: String?, _ flag: String) throws -> String {
                guard let v else { throw CLIError("\(type) needs --\(flag)") }
                return v
            }
            switch type {
            case "register-account":
                guard let role = Role(name: try need(role, "role")) else { throw CLIError("unknown role; one of \(Role.allCases.map(\.name).joined(separator: ", "))") }
                return .registerAccount(RegisterAccount(publicKey: try PublicKey(text: try need(publicKey, "public-key")), role: role, organisation: try need(organisation, "organisation"), label: label))
            case "set-account-status":
                guard let a = Address(hex: try need(account, "account")) else { throw CLIError("--account must be 40 hex digits") }
                guard let s = AccountStatus(name: try need(status, "status")) else { throw CLIError("--status must be active, suspended or revoked") }
                return .setAccountStatus(SetAccountStatus(account: a, status: s, reason: reason))
            case "rotate-key":
                return .rotateKey(RotateKey(newPublicKey: try PublicKey(text: try need(newPublicKey, "new-public-key"))))
            case "approve-proposal":
                guard let h = Hash(hex: try need(proposal, "proposal")) else { throw CLIError("--proposal must be 64 hex digits") }
                return .approveProposal(ApproveProposal(proposal: h))
            case "set-device-sampling":
                guard let d = Address(hex: try need(device, "device")) else { throw CLIError("--device must be 40 hex digits") }
                let m = try need(mode, "mode")
                return .setDeviceSampling(SetDeviceSampling(device: d, mode: m, untilMs: m == "periodic" ? 0 : nowMs() + (minutes ?? 60) * 60_000, reason: reason))
            case "register-patient":
                guard let sig = Hex.decode(try need(enrolmentSignature, "enrolment-signature")).flatMap(Signature.init(bytes:)) else { throw CLIError("--enrolment-signature must be 128 hex digits") }
                return .registerPatient(RegisterPatient(publicKey: try PublicKey(text: try need(publicKey, "public-key")), agreementKey: try X25519Key(hex: try need(agreementKey, "agreement-key")), signature: sig))
            case "set-agreement-key":
                return .setAgreementKey(SetAgreementKey(agreementKey: try X25519Key(hex: try need(agreementKey, "agreement-key"))))
            case "attest-practitioner":
                guard let a = Address(hex: try need(account, "account")) else { throw CLIError("--account must be 40 hex digits") }
                return .attestPractitioner(AttestPractitioner(account: a, profession: try need(profession, "profession"), licenceHash: commitment(try need(licenceId, "licence-id"), "licence id"), active: !withdraw))
            case "grant-consent":
                if let fhir {
                    let resource: FHIRConsent
                    do { resource = try JSONDecoder().decode(FHIRConsent.self, from: try readInput(fhir)) } catch { throw CLIError("\(fhir): not a FHIR Consent resource: \(error)") }
                    do { return .grantConsent(try resource.grant(nowMs: nowMs(), organisation: fhirOrganisation, defaultExpiresMs: nowMs() + days * 86_400_000)) } catch { throw CLIError("\(fhir): \(error)") }
                }
                return .grantConsent(GrantConsent(grantee: try grantee(), categories: list(try need(categories, "categories")), purposes: list(try need(purposes, "purposes")),
                                                  dataFromMs: dataFrom, dataUntilMs: dataUntil, expiresMs: nowMs() + days * 86_400_000))
            case "revoke-consent":
                guard let g = Hash(hex: try need(grant, "grant")) else { throw CLIError("--grant must be 64 hex digits") }
                return .revokeConsent(RevokeConsent(grant: g))
            case "declare-emergency-access":
                guard let s = Hash(hex: try need(subject, "subject")) else { throw CLIError("--subject must be a pseudonym (64 hex digits)") }
                guard let m = UInt32(exactly: minutes ?? 240) else { throw CLIError("--minutes must be 1…1440") }
                return .declareEmergencyAccess(DeclareEmergencyAccess(subject: s, reasonCode: try need(reasonCode, "reason-code"), statementHash: commitment(try need(statement, "statement"), "statement"),
                                                                      categories: list(try need(categories, "categories")), minutes: m))
            case "set-rewrap-delegation":
                guard let g = Address(hex: try need(gateway, "gateway")) else { throw CLIError("--gateway must be an account address (40 hex digits)") }
                return .setRewrapDelegation(SetRewrapDelegation(gateway: g, active: !withdraw))
            case "request-erasure":
                guard let s = Hash(hex: try need(subject, "subject")) else { throw CLIError("--subject must be your pseudonym (64 hex digits)") }
                return .requestErasure(RequestErasure(subject: s))
            case "review-emergency-access":
                guard let a = Hash(hex: try need(access, "access")) else { throw CLIError("--access must be 64 hex digits") }
                return .reviewEmergencyAccess(ReviewEmergencyAccess(access: a, verdict: try need(verdict, "verdict"), noteHash: note.map { commitment($0, "note") }))
            case "request-dataset":
                guard let g = Address(hex: try need(gateway, "gateway")) else { throw CLIError("--gateway must be an account address (40 hex digits)") }
                guard epsilon.isFinite, epsilon >= 0, epsilon <= 10 else { throw CLIError("--epsilon is 0…10") }
                return .requestDataset(RequestDataset(gateway: g, categories: list(try need(categories, "categories")), fromMs: dataFrom, untilMs: dataUntil,
                                                      access: try need(datasetAccess, "dataset-access"), price: price, epsilonMilli: UInt64((epsilon * 1000).rounded())))
            case "cancel-dataset":
                guard let d = Hash(hex: try need(dataset, "dataset")) else { throw CLIError("--dataset must be 64 hex digits") }
                return .cancelDataset(CancelDataset(dataset: d))
            case "issue-credits":
                guard let a = Address(hex: try need(account, "account")) else { throw CLIError("--account must be 40 hex digits") }
                guard let amount else { throw CLIError("issue-credits needs --amount") }
                return .issueCredits(IssueCredits(account: a, amount: amount))
            case "transfer-credits":
                guard let a = Address(hex: try need(to, "to")) else { throw CLIError("--to must be 40 hex digits") }
                guard let amount else { throw CLIError("transfer-credits needs --amount") }
                return .transferCredits(TransferCredits(to: a, amount: amount))
            case "seal-dataset", "charge-privacy-budget":
                throw CLIError("\(type) is signed by the dataset's gateway, not from the command line")
            case "propose-governance":
                throw CLIError("propose-governance takes --payload '{\"type\":\"propose-governance\",\"action\":…}'")
            default:
                throw CLIError("unknown --type \(type); one of \(TransactionPayload.kinds.joined(separator: ", "))")
            }
        }
    }

    struct TxOptions: ParsableArguments {
        @Option(help: "Sender's key file.") var key: String
        @Option(help: "Nonce (default: ask the node for the sender's next nonce).") var nonce: UInt64?
        @Option(help: "Chain id (default: ask the node).") var chainId: String?
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
    }

    struct AccountReply: Decodable { var nextNonce: UInt64? }
    struct StatusReply: Decodable { var chainId: String }

    static func build(_ o: TxOptions, _ p: PayloadOptions) async throws -> (Transaction, PrivateKey) {
        let key = try KeyFile.load(path: o.key)
        let client = NodeClient(base: o.node)
        let chainID: String
        if let c = o.chainId { chainID = c } else { chainID = try await client.get("/v1/status", as: StatusReply.self).chainId }
        let nonce: UInt64
        if let n = o.nonce { nonce = n } else {
            nonce = try await client.get("/v1/accounts/\(key.publicKey.address.hex)", as: AccountReply.self).nextNonce ?? 0
        }
        return (Transaction(chainID: chainID, sender: key.publicKey.address, signerKey: key.publicKey, nonce: nonce, payload: try p.make()), key)
    }

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an unsigned transaction (JSON) built from flags.")
        @OptionGroup var tx: TxOptions
        @OptionGroup var payload: PayloadOptions

        func run() async throws {
            let (t, _) = try await TxCommand.build(tx, payload)
            try printJSON(t)
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign an unsigned transaction (JSON file or stdin); print the signed JSON.")
        @Option(help: "Signer's key file.") var key: String
        @Option(help: "Unsigned transaction JSON (default: stdin).") var file: String?

        func run() throws {
            let k = try KeyFile.load(path: key)
            let t = try JSONDecoder().decode(Transaction.self, from: try readInput(file))
            guard t.signerKey == k.publicKey else { throw CLIError("the transaction's signerKey is \(t.signerKey), the key file holds \(k.publicKey)") }
            try printJSON(t.signed(with: k))
        }
    }

    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a signed transaction from a JSON file/stdin, or build and sign one from flags (--key …) and submit it.")
        @Option(help: "Signed transaction JSON (default: stdin unless --key is given).") var file: String?
        @Option(help: "Sender's key file: build and sign from flags.") var key: String?
        @Option(help: "Nonce (default: ask the node).") var nonce: UInt64?
        @Option(help: "Chain id (default: ask the node).") var chainId: String?
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"
        @Flag(help: "Wait until the transaction commits.") var wait = false
        @OptionGroup var payload: PayloadOptions

        func run() async throws {
            let body: Data
            if let key {
                var o = try TxOptions.parse(["--key", key, "--node", node])
                o.nonce = nonce
                o.chainId = chainId
                let (t, k) = try await TxCommand.build(o, payload)
                body = try JSONEncoder().encode(t.signed(with: k))
            } else {
                body = try readInput(file)
            }
            let client = NodeClient(base: node)
            let r = try await client.request("POST", "/v1/transactions" + (wait ? "?wait=commit" : ""), body: body)
            guard (200..<300).contains(r.status) else { throw CLIError(client.problemText(r)) }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a transaction with its block, index and Merkle proof (verified here).")
        @Argument(help: "Transaction hash.") var hash: String
        @Option(help: "Node URL.") var node = "http://127.0.0.1:8080"

        func run() async throws {
            let r = try await NodeClient(base: node).request("GET", "/v1/transactions/\(hash)")
            guard (200..<300).contains(r.status) else { throw CLIError(NodeClient(base: node).problemText(r)) }
            if let p = try? JSONDecoder().decode(TransactionProof.self, from: r.body) {
                do { try p.verify() } catch { throw CLIError("the node's proof does not verify: \(error)") }
            }
            print(String(decoding: r.body, as: UTF8.self))
        }
    }
}
