import QuernCore
import QuernTestSupport
import Testing

extension UTF8Check {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { isValid($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
    }
}

@Suite("UTF8Check")
struct UTF8CheckTests {
    static let valid: [[UInt8]] = [
        [],
        Array("plain ASCII, longer than eight bytes".utf8),
        [0x7F],
        [0xC2, 0x80],  // U+0080, smallest two-byte
        [0xDF, 0xBF],  // U+07FF
        [0xE0, 0xA0, 0x80],  // U+0800, smallest three-byte
        [0xED, 0x9F, 0xBF],  // U+D7FF, just below the surrogates
        [0xEE, 0x80, 0x80],  // U+E000, just above them
        [0xEF, 0xBF, 0xBF],  // U+FFFF
        [0xF0, 0x90, 0x80, 0x80],  // U+10000, smallest four-byte
        [0xF4, 0x8F, 0xBF, 0xBF],  // U+10FFFF, the last scalar
        Array("é中😀".utf8),
        Array("12345678é".utf8),  // multi-byte right after the 8-byte fast path
        Array("1234567😀".utf8)  // multi-byte straddling the 8-byte window
    ]

    static let invalid: [(String, [UInt8])] = [
        ("lone continuation", [0x80]),
        ("continuation after ASCII", Array("abcdefgh".utf8) + [0xBF]),
        ("overlong NUL", [0xC0, 0x80]),
        ("overlong slash", [0xC0, 0xAF]),
        ("overlong C1", [0xC1, 0xBF]),
        ("overlong three-byte", [0xE0, 0x80, 0x80]),
        ("overlong three-byte U+07FF", [0xE0, 0x9F, 0xBF]),
        ("overlong four-byte", [0xF0, 0x80, 0x80, 0x80]),
        ("overlong four-byte U+FFFF", [0xF0, 0x8F, 0xBF, 0xBF]),
        ("high surrogate", [0xED, 0xA0, 0x80]),
        ("low surrogate", [0xED, 0xBF, 0xBF]),
        ("surrogate pair as CESU-8", [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
        ("U+110000", [0xF4, 0x90, 0x80, 0x80]),
        ("F5 lead", [0xF5, 0x80, 0x80, 0x80]),
        ("F7 lead", [0xF7, 0xBF, 0xBF, 0xBF]),
        ("five-byte lead", [0xF8, 0x88, 0x80, 0x80, 0x80]),
        ("FE", [0xFE]),
        ("FF", [0xFF]),
        ("truncated two-byte", [0xC3]),
        ("truncated three-byte", [0xE4, 0xB8]),
        ("truncated four-byte", [0xF0, 0x9F, 0x98]),
        ("truncated at the end after ASCII", Array("abcdefghij".utf8) + [0xF0, 0x9F]),
        ("bad second byte", [0xE4, 0x28, 0xAD]),
        ("bad third byte", [0xE4, 0xB8, 0x28]),
        ("bad fourth byte", [0xF0, 0x9F, 0x98, 0x41]),
        ("ASCII where continuation expected", [0xC3, 0x41])
    ]

    @Test(arguments: valid)
    func acceptsValidSequences(_ bytes: [UInt8]) {
        #expect(UTF8Check.isValid(bytes))
        // Also when embedded between ASCII runs that use the fast path.
        #expect(UTF8Check.isValid(Array("abcdefghijk".utf8) + bytes + Array("lmnopqrstuv".utf8)))
    }

    @Test(arguments: invalid)
    func refusesInvalidSequences(_ name: String, _ bytes: [UInt8]) {
        #expect(!UTF8Check.isValid(bytes), "\(name)")
        #expect(!UTF8Check.isValid(Array("abcdefghijk".utf8) + bytes + Array("lmnopqrstuv".utf8)), "\(name), embedded")
    }

    @Test func everyScalarEncodesToValidUTF8() {
        var all: [UInt8] = []
        for v in stride(from: UInt32(0), through: 0x10FFFF, by: 7) {
            guard let s = Unicode.Scalar(v) else { continue }
            all += Array(String(Character(s)).utf8)
        }
        #expect(UTF8Check.isValid(all))
    }

    @Test func agreesWithTheStandardLibraryOnRandomBytes() {
        var rng = SystemRandomNumberGenerator()
        // Bytes biased towards lead and continuation bytes so most sequences are interesting.
        let alphabet: [UInt8] = [
            0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
            0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF
        ]
        var disagreements = 0
        for _ in 0..<20000 {
            let n = Int.random(in: 1...12, using: &rng)
            let b = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
            let expected = String(validating: b, as: UTF8.self) != nil
            if UTF8Check.isValid(b) != expected {
                disagreements += 1
                if disagreements < 5 {
                    Issue.record("UTF8Check says \(!expected) for \(b.map { String($0, radix: 16) })")
                }
            }
        }
        #expect(disagreements == 0)
    }
}
