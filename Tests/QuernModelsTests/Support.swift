import Foundation
import QuernCore
import QuernModels
import QuernTestSupport
import Testing

/// A safetensors file made by hand: 8-byte little-endian header length, header, data.
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    var out: [UInt8] = []
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { out += $0 }
    return out + h + data
}
