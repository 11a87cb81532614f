import Crypto
import IoMTCore

/// How a device authenticates one upload (a reading or a short batch) to a gateway.
///
/// The device signs (Ed25519 or P-256, with the key registered on-chain) or MACs (HMAC-SHA256 with
/// the key whose SHA-256 is registered on-chain) the canonical encoding of
/// `"iomt/upload/v1" ‖ chainID ‖ device ‖ counter ‖ contentType ‖ SHA-256(body)`. The counter is
/// the device's own, strictly increasing across its uploads: the gateway refuses one it has seen
/// (a replay) or any lower one (a reordering). One signature covers the whole batch, which is how
/// a gateway reaches many readings per second on few cores.
public enum UploadAuth {
    public static func message(chainID: String, device: Address, counter: UInt64, contentType: String, body: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter(capacity: 128)
        w.write("iomt/upload/v1"); w.write(chainID); w.write(device); w.write(counter); w.write(contentType); w.write(Hash.sha256(body))
        return w.bytes
    }

    public static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Checks `tag` (a 64-byte signature or a 32-byte MAC, as the device's credential says) over
    /// `message`. `macKey` is the gateway's provisioned copy for a MAC device.
    public static func verify(device: DeviceRecord, macKey: [UInt8]?, message: [UInt8], tag: [UInt8]) throws(UploadRefusal) {
        guard device.status == .active else { throw .deviceNotActive(device.id, device.status) }
        if let key = device.publicKey {
            guard let sig = Signature(bytes: tag), key.isValidSignature(sig, for: message) else { throw .badSignature(device.id) }
        } else if let hash = device.macKeyHash {
            guard let macKey, Hash.sha256(macKey) == hash else { throw .noMACKey(device.id) }
            let expected = mac(key: macKey, message: message)
            // Constant-time comparison: a MAC is a secret the attacker tries to guess byte by byte.
            guard tag.count == expected.count, zip(tag, expected).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { throw .badSignature(device.id) }
        } else {
            throw .badSignature(device.id)
        }
    }
}

/// Why a gateway refused an upload before reading it. `code` is stable; the gateway counts each.
public enum UploadRefusal: Error, Equatable, Sendable, CustomStringConvertible {
    case missingCredentials(String)
    case unknownDevice(Address)
    case deviceNotActive(Address, AccountStatus)
    case badSignature(Address)
    case noMACKey(Address)
    case replay(device: Address, counter: UInt64, last: UInt64)
    /// The device's patient had its data erased.
    case subjectErased(Hash)

    public var code: String {
        switch self {
        case .subjectErased: return "subject-erased"
        case .missingCredentials: return "missing-credentials"
        case .unknownDevice: return "unknown-device"
        case .deviceNotActive: return "device-not-active"
        case .badSignature: return "bad-signature"
        case .noMACKey: return "no-mac-key"
        case .replay: return "replay"
        }
    }

    public var description: String {
        switch self {
        case .missingCredentials(let s): return "missing device credentials: \(s)"
        case .unknownDevice(let d): return "device \(d) is not registered on the chain"
        case .deviceNotActive(let d, let s): return "device \(d) is \(s.name)"
        case .badSignature(let d): return "the upload's signature or MAC does not verify with device \(d)'s registered key"
        case .noMACKey(let d): return "this gateway holds no MAC key matching device \(d)'s registration"
        case .replay(let d, let c, let l): return "counter \(c) of device \(d) is not above its last accepted counter \(l) (a replay or a reordering)"
        case .subjectErased(let s): return "the data of subject \(s) was erased at the patient's request; readings of its devices are refused"
        }
    }
}
