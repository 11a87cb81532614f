import Foundation
import IoMTCore
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The HTTP request a device sends a gateway (`POST /v1/readings`): the body, its content type,
/// and the device id, counter and signature or MAC (`UploadAuth`) in the `X-IoMT-*` headers.
public enum DeviceUpload {
    public static func request(gateway: String, device: Address, counter: UInt64, contentType: String, tag: [UInt8], body: [UInt8], timeout: TimeInterval = 60) -> URLRequest {
        var req = URLRequest(url: URL(string: (gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway) + "/v1/readings")!)
        req.httpMethod = "POST"
        req.httpBody = Data(body)
        req.timeoutInterval = timeout
        req.setValue(contentType, forHTTPHeaderField: "Content-Type")
        req.setValue(device.hex, forHTTPHeaderField: "X-IoMT-Device")
        req.setValue(String(counter), forHTTPHeaderField: "X-IoMT-Counter")
        req.setValue(Hex.encode(tag), forHTTPHeaderField: "X-IoMT-Signature")
        return req
    }
}
