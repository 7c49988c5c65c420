import QuernCore
import QuernTestSupport
import Testing

@Suite("JSONWriter")
struct JSONWriterTests {
    static let awkwardStrings: [String] = [
        "", "plain", "quote \" inside", "back\\slash", "slash / stays", "new\nline", "cr\rlf\r\n", "tab\t",
        "nul \u{0} and bell \u{7} and esc \u{1B} and unit \u{1F}", "del \u{7F}",
        "é", "中文", "😀 emoji", "\u{10FFFF}", "mixed \"é\"\n\t\\😀",
        String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) })
    ]

    @Test(arguments: awkwardStrings)
    func stringsRoundTrip(_ s: String) throws {
        let encoded = JSONWriter.compact(.string(s))
        #expect(try JSONParser.parse(encoded) == .string(s))
        // Every control character is escaped: a written string never spans lines.
        let hasControlBytes = encoded.contains(where: { $0 < 0x20 })
        #expect(!hasControlBytes)
    }

    @Test func stringEscapesAreTheShortOnes() {
        var w = JSONWriter()
        w.string("a\"b\\c\nd\re\tf\u{1}g\u{1F}é😀")
        #expect(String(decoding: w.bytes, as: UTF8.self) == #""a\"b\\c\nd\re\tf\u0001g\u001fé😀""#)
    }

    @Test func floatsInShortestForm() {
        func f(_ v: Float) -> String {
            var w = JSONWriter(); w.float(v); return String(decoding: w.bytes, as: UTF8.self)
        }
        func d(_ v: Double) -> String {
            var w = JSONWriter(); w.double(v); return String(decoding: w.bytes, as: UTF8.self)
        }
        #expect(f(0.1) == "0.1")
        #expect(f(1.0 / 3.0) == "0.33333334")
        #expect(f(-2.5) == "-2.5")
        #expect(f(1e-7) == "1e-07")
        #expect(d(0.1) == "0.1")
        #expect(d(1.0 / 3.0) == "0.3333333333333333")
        #expect(d(3) == "3")
        #expect(d(-42) == "-42")
        #expect(d(0.5) == "0.5")
        #expect(d(1e300) == "1e+300")
    }

    @Test func nonFiniteNumbersBecomeNull() throws {
        for v in [Float.nan, .infinity, -.infinity] {
            var w = JSONWriter()
            w.float(v)
            #expect(w.bytes == Array("null".utf8))
        }
        for v in [Double.nan, .infinity, -.infinity, .signalingNaN] {
            #expect(JSONWriter.compact(.double(v)) == Array("null".utf8))
        }
        let doc = JSONWriter.compact(["a": .double(.nan), "b": [.double(.infinity), 1]])
        #expect(String(decoding: doc, as: UTF8.self) == #"{"a":null,"b":[null,1]}"#)
        #expect(try JSONParser.parse(doc) == ["a": nil, "b": [nil, 1]])
    }

    @Test func floatsRoundTripThroughText() throws {
        var generator = SystemRandomNumberGenerator()
        var values: [Float] = [
            0, -0.0, 1, .leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 0.1, 16_777_215, -1e-30
        ]
        for _ in 0..<2000 { values.append(Float(bitPattern: generator.next() as UInt32)) }
        for v in values where v.isFinite {
            var w = JSONWriter()
            w.float(v)
            let back = try #require(try JSONParser.parse(w.bytes).doubleValue)
            #expect(Float(back) == v, "\(v) wrote \(String(decoding: w.bytes, as: UTF8.self))")
        }
    }

    @Test func doublesRoundTripThroughText() throws {
        var generator = SystemRandomNumberGenerator()
        var values: [Double] = [
            0, 1, -1, 0.1, 1e15, 1e15 + 1, 123456789012345.6, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
            2.2250738585072014e-308
        ]
        for _ in 0..<2000 { values.append(Double(bitPattern: generator.next() as UInt64)) }
        for v in values where v.isFinite {
            let text = JSONWriter.compact(.double(v))
            let back = try #require(try JSONParser.parse(text).doubleValue)
            #expect(back == v, "\(v) wrote \(String(decoding: text, as: UTF8.self))")
        }
    }

    @Test func integersAreWrittenExactly() throws {
        for v: Int64 in [0, -1, 42, Int64.max, Int64.min] {
            let text = JSONWriter.compact(.int(v))
            #expect(String(decoding: text, as: UTF8.self) == String(v))
        }
    }

    @Test func compactOutputKeepsKeyOrder() {
        let v: JSONValue = ["z": 1, "a": [true, false, nil], "m": ["k": "v"], "e": [], "o": [:]]
        #expect(
            String(decoding: JSONWriter.compact(v), as: UTF8.self)
                == #"{"z":1,"a":[true,false,null],"m":{"k":"v"},"e":[],"o":{}}"#)
    }

    @Test func prettyOutput() throws {
        let v: JSONValue = [
            "a": 1, "b": [1, 2.5, "x"], "c": ["d": "e", "f": [:]], "g": [["h": nil]], "e": [], "m": [[1, 0], [0, 1]]
        ]
        let expected = """
            {
              "a": 1,
              "b": [1, 2.5, "x"],
              "c": {
                "d": "e",
                "f": {}
              },
              "g": [
                {
                  "h": null
                }
              ],
              "e": [],
              "m": [
                [1, 0],
                [0, 1]
              ]
            }

            """
        let pretty = JSONWriter.pretty(v)
        #expect(String(decoding: pretty, as: UTF8.self) == expected)
        #expect(try JSONParser.parse(pretty) == v)
    }

    @Test func documentsRoundTrip() throws {
        let v: JSONValue = [
            "version": 1, "name": "ü \"quoted\"\n", "nested": ["list": [1, -2, 0.75, true, nil, ["x": []]]],
            "big": 1e300, "small": -1.5e-300, "empty": ""
        ]
        #expect(try JSONParser.parse(JSONWriter.compact(v)) == v)
        #expect(try JSONParser.parse(JSONWriter.pretty(v)) == v)
        // Writing what was read gives the same bytes again.
        let once = JSONWriter.pretty(v)
        #expect(JSONWriter.pretty(try JSONParser.parse(once)) == once)
    }
}

@Suite("JSONObject")
struct JSONObjectTests {
    @Test func settingRemovingAndReplacingKeepsOrder() {
        var o = JSONObject()
        o["b"] = 1
        o["a"] = 2
        o["b"] = 3
        #expect(o.keys == ["b", "a"])
        #expect(o["b"] == 3)
        o["b"] = nil
        #expect(o.keys == ["a"])
        #expect(o["b"] == nil)
        o["b"] = 4
        #expect(o.keys == ["a", "b"])
        #expect(o.pairs.map(\.0) == ["a", "b"])
    }
}
