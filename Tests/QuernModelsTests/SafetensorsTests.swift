import Foundation
import QuernCore
import QuernModels
import QuernTestSupport
import Testing

@Suite("SafetensorsFile")
struct SafetensorsTests {
    @Test func encodeThenReadRoundTrips() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let tensors: [String: ([Int], [Float])] = [
            "b": ([3], [1, -2, 3.5]),
            "a.weight": ([2, 3], [0, 0.1, -0.2, 1e-30, .greatestFiniteMagnitude, -.leastNonzeroMagnitude]),
            "scalar": ([], [42])
        ]
        let bytes = Safetensors.encode(tensors)
        let headerLength = Int(UInt64(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))
        #expect((8 + headerLength) % 8 == 0, "the data section must start 8-byte aligned")
        let path = dir + "/model.safetensors"
        try Sys.writeFileAtomically(path, bytes)
        let file = try SafetensorsFile(path: path)
        #expect(Set(file.entries.keys) == Set(tensors.keys))
        #expect(file.metadata == ["format": "pt"])
        for (name, (shape, values)) in tensors {
            let e = try #require(file.entries[name])
            #expect(e.dtype == "F32")
            #expect(e.shape == shape)
            #expect(e.range.count == values.count * 4)
            let t = try file.float32(name, shape: shape)
            #expect(t.shape == shape)
            #expect(t.data.map(\.bitPattern) == values.map(\.bitPattern), "\(name)")
        }
        // Data is laid out in name order without gaps.
        let ordered = file.entries.values.sorted { $0.name < $1.name }
        #expect(ordered.first?.range.lowerBound == 0)
        for (x, y) in zip(ordered, ordered.dropFirst()) { #expect(x.range.upperBound == y.range.lowerBound) }
        #expect(bytes.count == 8 + headerLength + ordered.last!.range.upperBound)
    }

    @Test
    func zeroSizeTensorsAreAllowed() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        // A zero-size tensor has data_offsets [n, n], the same start as the next tensor.
        // Hugging Face's writer produces such files; they are valid.
        let path = tmp.path + "/m.safetensors"
        try Sys.writeFileAtomically(path, Safetensors.encode(["a": ([0, 4], []), "b": ([2], [1, 2]), "c": ([0], [])]))
        let file = try SafetensorsFile(path: path)
        #expect(try file.float32("a").shape == [0, 4])
        #expect(try file.float32("b").data == [1, 2])
        // Written by hand so the order does not depend on hashing: the empty tensor first.
        let handMade =
            #"{"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        try Sys.writeFileAtomically(path, safetensorsBytes(header: handMade, data: f32([3])))
        #expect(try SafetensorsFile(path: path).float32("w").data == [3])
        let reversed =
            #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#
        try Sys.writeFileAtomically(path, safetensorsBytes(header: reversed, data: f32([3])))
        #expect(try SafetensorsFile(path: path).float32("w").data == [3])
    }

    @Test func readsFilesMadeByOtherWritersWithOtherDtypes() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        // F64 [2], F16 [2] (1.0 = 0x3C00, -2.0 = 0xC000), BF16 [2] (1.0 = 0x3F80, -0.5 = 0xBF00), I32 [1].
        let data =
            le((0.5 as Double).bitPattern) + le((-1e10 as Double).bitPattern)
            + le(UInt16(0x3C00)) + le(UInt16(0xC000)) + le(UInt16(0x3F80)) + le(UInt16(0xBF00)) + le(Int32(7))
        let header =
            #"{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},"h":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},"#
            + #""bf":{"dtype":"BF16","shape":[1,2],"data_offsets":[20,24]},"i":{"dtype":"I32","shape":[1],"data_offsets":[24,28]}}"#
        let path = dir + "/m.safetensors"
        try Sys.writeFileAtomically(path, safetensorsBytes(header: header, data: data))
        let file = try SafetensorsFile(path: path)
        #expect(try file.float32("d").data == [0.5, -1e10])
        #expect(try file.float32("h").data == [1, -2])
        #expect(try file.float32("bf", shape: [1, 2]).data == [1, -0.5])
        let integer = quernError { _ = try file.float32("i") }
        #expect(integer?.code == .modelMismatch)
    }

    @Test func missingTensorAndWrongShapeAreMismatches() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/m.safetensors"
        try Sys.writeFileAtomically(path, Safetensors.encode(["w": ([2, 3], [1, 2, 3, 4, 5, 6])]))
        let file = try SafetensorsFile(path: path)
        let missing = quernError { _ = try file.float32("nope") }
        #expect(missing?.code == .modelMismatch)
        #expect(missing?.message.contains("\"nope\"") == true)
        let shape = quernError { _ = try file.float32("w", shape: [3, 2]) }
        #expect(shape?.code == .modelMismatch)
        #expect(shape?.message.contains("\"w\"") == true)
    }

    static let badFiles: [(String, [UInt8])] = [
        ("empty file", []),
        ("shorter than the length field", [1, 0, 0, 0, 0, 0, 0]),
        ("length past the end", le(UInt64(1000)) + Array(#"{"a":{}}"#.utf8)),
        ("length one past the end", le(UInt64(9)) + Array(#"{"x":1} "#.utf8)),
        ("length over the 100 MiB cap", le(UInt64(200 << 20)) + Array("{}".utf8)),
        ("header not JSON", safetensorsBytes(header: "{not json", data: [])),
        ("header not an object", safetensorsBytes(header: "[1, 2]", data: [])),
        ("entry without dtype", safetensorsBytes(header: #"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, data: f32([1]))),
        ("entry without offsets", safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1]}}"#, data: f32([1]))),
        ("entry not an object", safetensorsBytes(header: #"{"a":3}"#, data: [])),
        (
            "three offsets",
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#, data: f32([1, 2]))
        ),
        (
            "unknown dtype",
            safetensorsBytes(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}}"#, data: f32([1]))
        ),
        (
            "bytes past the end of the data",
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: f32([1]))
        ),
        (
            "reversed offsets",
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}"#, data: f32([1]))
        ),
        (
            "shape needs more bytes",
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: f32([1, 2]))
        ),
        (
            "shape needs fewer bytes",
            safetensorsBytes(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}"#, data: f32([1, 2]))
        ),
        (
            "dtype size mismatch",
            safetensorsBytes(header: #"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#, data: f32([1, 2]))
        ),
        (
            "overlapping tensors",
            safetensorsBytes(
                header:
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: f32([1, 2, 3]))
        ),
        (
            "one tensor inside another",
            safetensorsBytes(
                header:
                    #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                data: f32([1, 2, 3, 4]))
        ),
        (
            "duplicate tensor names",
            safetensorsBytes(
                header:
                    #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                data: f32([1, 2]))
        )
    ]

    @Test(arguments: badFiles)
    func malformedFilesAreModelInvalid(_ name: String, _ bytes: [UInt8]) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/bad.safetensors"
        try Sys.writeFileAtomically(path, bytes)
        let e = quernError { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .modelInvalid, "\(name): \(String(describing: e))")
        #expect(e?.message.contains(path) == true)
    }

    @Test func errorsNameTheTensor() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/bad.safetensors"
        try Sys.writeFileAtomically(
            path,
            safetensorsBytes(
                header: #"{"layers.3.bias":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: f32([1, 2])))
        let named = quernError { _ = try SafetensorsFile(path: path) }
        #expect(named?.message.contains("layers.3.bias") == true)
        try Sys.writeFileAtomically(
            path,
            safetensorsBytes(
                header:
                    #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                data: f32([1, 2, 3])))
        let overlap = quernError { _ = try SafetensorsFile(path: path) }
        #expect(overlap?.message.contains("\"x\"") == true && overlap?.message.contains("\"y\"") == true)
    }

    @Test(arguments: [
        #"{"a":{"dtype":"F32","shape":[2,1.5],"data_offsets":[0,8]}}"#,
        #"{"a":{"dtype":"F32","shape":[2,"x"],"data_offsets":[0,8]}}"#,
        #"{"a":{"dtype":"F32","shape":[-1,-2],"data_offsets":[0,8]}}"#,
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,"x"]}}"#,
        #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[-4,4]}}"#
    ])
    func malformedShapesAndOffsetsAreModelInvalid(_ header: String) throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/bad.safetensors"
        try Sys.writeFileAtomically(path, safetensorsBytes(header: header, data: f32([1, 2])))
        let e = quernError { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .modelInvalid, "\(header)")
    }

    @Test
    func hugeHeaderLengthIsModelInvalid() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = tmp.path
        let path = dir + "/bad.safetensors"
        try Sys.writeFileAtomically(path, le(UInt64.max) + Array("{}".utf8))
        let e = quernError { _ = try SafetensorsFile(path: path) }
        #expect(e?.code == .modelInvalid)
    }
}
