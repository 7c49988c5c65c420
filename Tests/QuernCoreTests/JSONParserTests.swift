import QuernCore
import QuernTestSupport
import Testing

@Suite("JSONParser: whole documents")
struct JSONParserDocumentTests {
    @Test func nestedDocumentKeepsStructureAndKeyOrder() throws {
        let text = """
            { "z": [1, {"b": [true, false, null], "a": {}}, []],
              "c": {"d": "e", "n": -2},
              "a": "last" }
            """
        let v = try JSONParser.parse(text)
        let expected: JSONValue = [
            "z": [1, ["b": [true, false, nil], "a": [:]], []],
            "c": ["d": "e", "n": -2],
            "a": "last"
        ]
        #expect(v == expected)
        let root = try #require(v.objectValue)
        #expect(root.keys == ["z", "c", "a"])
        #expect(root["c"]?.objectValue?.keys == ["d", "n"])
    }

    @Test func scalarsAtTheTopLevelAndTrailingWhitespace() throws {
        #expect(try JSONParser.parse("true \n\t\r ") == .bool(true))
        #expect(try JSONParser.parse("-1.5\n") == .double(-1.5))
        #expect(try JSONParser.parse("null") == .null)
        #expect(try JSONParser.parse("\"x\"") == .string("x"))
        #expect(try JSONParser.parse("[]") == .array([]))
        #expect(try JSONParser.parse("{}") == .object(JSONObject()))
    }

    @Test
    func leadingWhitespaceIsAllowed() throws {
        // RFC 8259: JSON-text = ws value ws. Manifests written by hand often start with a newline.
        #expect(try JSONParser.parse(" \t\r\n true \n") == .bool(true))
        #expect(try JSONParser.parse("\n{\"version\": 1}\n") == ["version": 1])
        #expect(try JSONParser.parse("  [1]") == [1])
    }

    @Test("a number beyond a double's range is refused: JSON has no infinity to write back")
    func numbersOutOfRange() throws {
        for text in ["1e309", "-1e400", "[1, 2e99999]"] {
            #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(text) }
        }
        #expect(try JSONParser.parse("1.7976931348623157e308") == .double(.greatestFiniteMagnitude))
        #expect(try JSONParser.parse("1e-400") == .double(0))
    }

    @Test func nestingIsBounded() throws {
        let ok = String(repeating: "[", count: 256) + String(repeating: "]", count: 256)
        #expect(try JSONParser.parse(ok).arrayValue != nil)
        let deep = String(repeating: "[", count: 257) + String(repeating: "]", count: 257)
        let e = try #require(syntaxError(deep))
        #expect(e.message.contains("nesting"))
        let deepObjects = String(repeating: "{\"a\":", count: 300) + "1" + String(repeating: "}", count: 300)
        #expect(syntaxError(deepObjects) != nil)
    }

    @Test func simpleEscapes() throws {
        let v = try JSONParser.parse(#""q\" b\\ s\/ \b\f\n\r\t end""#)
        #expect(v == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t end"))
    }

    @Test func unicodeEscapesIncludingSurrogatePairs() throws {
        #expect(try JSONParser.parse(#""\u0041\u00e9\u00E9\u4e2d""#) == .string("Aéé中"))
        #expect(try JSONParser.parse(#""\u0000""#) == .string("\u{0}"))
        // U+1F600 GRINNING FACE as a UTF-16 surrogate pair, and U+10FFFF, the last scalar.
        #expect(try JSONParser.parse(#""a\ud83d\ude00b""#) == .string("a😀b"))
        #expect(try JSONParser.parse(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
        // Raw UTF-8 is taken as it is.
        #expect(try JSONParser.parse("\"😀 é\"") == .string("😀 é"))
    }

    @Test(arguments: [
        #""\ud83d""#,  // high surrogate at the end
        #""\ud83dx""#,  // high surrogate followed by text
        #""\ud83d\u0041""#,  // high surrogate followed by a non-surrogate escape
        #""\ude00""#,  // lone low surrogate
        #""\ude00\ud83d""#,  // reversed pair
        #""\u12""#,  // short \u escape
        #""\u12G4""#,  // non-hex digit
        #""\x""#,  // unknown escape
        #""\'""#
    ])
    func badEscapesAreRefused(_ document: String) {
        #expect(syntaxError(document) != nil, "\(document) should be refused")
    }

    @Test func integers() throws {
        #expect(try JSONParser.parse("0") == .int(0))
        #expect(try JSONParser.parse("-0") == .int(0))
        #expect(try JSONParser.parse("42") == .int(42))
        #expect(try JSONParser.parse("-17") == .int(-17))
        #expect(try JSONParser.parse("999999999999999999") == .int(999_999_999_999_999_999))
        #expect(try JSONParser.parse("-999999999999999999") == .int(-999_999_999_999_999_999))
    }

    @Test
    func nineteenDigitIntegersStayIntegers() throws {
        // 19-digit ids (e.g. snowflake ids) are common; they fit in Int64 and must stay exact.
        #expect(try JSONParser.parse("1234567890123456789") == .int(1_234_567_890_123_456_789))
        #expect(try JSONParser.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSONParser.parse("-9223372036854775808") == .int(Int64.min))
    }

    @Test func integersBeyondInt64BecomeDoubles() throws {
        let v = try JSONParser.parse("123456789012345678901234567890")
        #expect(v == .double(1.2345678901234568e29))
    }

    @Test func doublesAndExponents() throws {
        let cases: [(String, Double)] = [
            ("1.5", 1.5), ("-0.25", -0.25), ("0.1", 0.1), ("3.141592653589793", 3.141592653589793),
            ("1e3", 1000), ("1E3", 1000), ("1e+3", 1000), ("2.5e-3", 0.0025), ("-4.5E-1", -0.45),
            ("1.7976931348623157e308", 1.7976931348623157e308), ("5e-324", .leastNonzeroMagnitude),
            ("4.9406564584124654e-324", .leastNonzeroMagnitude),
            ("2.2250738585072014e-308", 2.2250738585072014e-308), ("0.30000000000000004", 0.30000000000000004),
            ("123456789.123456789", 123456789.123456789), ("1.0", 1.0), ("0e0", 0)
        ]
        for (text, value) in cases {
            let v = try JSONParser.parse(text)
            guard case .double(let d) = v else {
                Issue.record("\(text) parsed as \(v), not a double")
                continue
            }
            #expect(d == value, "\(text)")
            #expect(d.bitPattern == value.bitPattern, "\(text) is not correctly rounded")
        }
    }

    @Test(arguments: [
        "01", "-01", "1.", ".5", "-", "+1", "1e", "1e+", "1.e5", "--1", "0x10", "1.5.2", "NaN", "Infinity", "-Infinity"
    ])
    func malformedNumbersAreRefused(_ text: String) {
        #expect(syntaxError(text) != nil, "\(text) should be refused")
    }

    @Test func duplicateKeysAreRefusedWithTheirPosition() throws {
        let e = try #require(syntaxError("{\n  \"a\": 1,\n  \"b\": 2,\n  \"a\": 3\n}"))
        #expect(e.message.contains("duplicate"))
        #expect(e.message.contains("\"a\""))
        #expect(e.line == 4)
        #expect(e.column == 3)
        // Duplicates inside nested objects too, and keys that are equal only after unescaping.
        #expect(syntaxError(#"{"x": {"k": 1, "k": 2}}"#) != nil)
        #expect(syntaxError(#"{"k": 1, "\u006b": 2}"#) != nil)
        // The same key in sibling objects is fine.
        #expect(syntaxError(#"[{"k": 1}, {"k": 2}]"#) == nil)
    }

    @Test(arguments: [
        #"{"a": 1} x"#, "[1] [2]", "1 2", "true false", #""a""b""#, "{} }", "nul", "[1,]", #"{"a":1,}"#,
        "[1 2]", #"{"a" 1}"#, #"{a: 1}"#, "", "   ", "[", "{", #"{"a":"#, #""abc"#
    ])
    func malformedOrTrailingDataIsRefused(_ text: String) {
        #expect(syntaxError(text) != nil, "\(text.debugDescription) should be refused")
    }

    @Test func trailingGarbageMessage() throws {
        let e = try #require(syntaxError("{\"a\": 1}\n\nx"))
        #expect(e.message.contains("after"))
        #expect(e.line == 3)
        #expect(e.column == 1)
    }

    @Test func invalidUTF8IsRefused() {
        let cases: [[UInt8]] = [
            [0x22, 0xC3, 0x28, 0x22],  // bad continuation
            [0x22, 0xC0, 0xAF, 0x22],  // overlong '/'
            [0x22, 0xED, 0xA0, 0x80, 0x22],  // encoded surrogate
            [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // beyond U+10FFFF
            [0x22, 0x61, 0xE4, 0xB8, 0x22],  // truncated sequence
            [0x22, 0xFF, 0x22],
            Array(#"{"k": ""#.utf8) + [0x80] + Array(#""}"#.utf8),
            Array(#"{""#.utf8) + [0xC3] + Array(#"": 1}"#.utf8)  // in a key
        ]
        for doc in cases {
            let e = syntaxError(doc)
            #expect(e != nil, "\(doc) should be refused")
            #expect(e?.message.contains("UTF-8") == true, "\(doc): \(e?.message ?? "")")
        }
    }

    @Test func controlCharactersInStringsAreRefused() {
        for c in UInt8(0)..<0x20 {
            let doc: [UInt8] = [0x22, 0x61, c, 0x62, 0x22]
            let e = syntaxError(doc)
            #expect(e?.message.contains("control character") == true, "byte \(c)")
        }
        // DEL is not a control character for JSON.
        #expect(syntaxError([0x22, 0x7F, 0x22]) == nil)
    }

    @Test func specialBytesAreFoundAtEveryOffsetOfLongStrings() throws {
        // Strings longer than a machine word, with the interesting byte at each position,
        // in whole documents and in skipped values.
        for at in 0..<40 {
            let before = String(repeating: "a", count: at), after = String(repeating: "b", count: 40 - at)
            #expect(
                try JSONParser.parse("\"\(before)\\n\(after)\"") == .string(before + "\n" + after), "escape at \(at)")
            #expect(
                try JSONParser.parse("\"\(before)\\\"\(after)\"") == .string(before + "\"" + after), "quote at \(at)")
            #expect(try JSONParser.parse("\"\(before)é\(after)\"") == .string(before + "é" + after), "UTF-8 at \(at)")
            #expect(try JSONParser.parse("\"\(before)\"") == .string(before), "end at \(at)")
            let control = Array("\"\(before)".utf8) + [0x01] + Array("\(after)\"".utf8)
            #expect(syntaxError(control)?.message.contains("control character") == true, "control at \(at)")
            #expect(syntaxError(control)?.offset == at + 1)
            let badUTF8 = Array("\"\(before)".utf8) + [0xC3, 0x28] + Array("\(after)\"".utf8)
            #expect(syntaxError(badUTF8)?.message.contains("UTF-8") == true, "bad UTF-8 at \(at)")
            let skipped = Array("{\"id\": 1, \"skip\": \"\(before)".utf8) + [0x1F] + Array("\(after)\"}".utf8)
            #expect(throws: JSONSyntaxError.self) { try fields(skipped, ["id"]) }
            let skippedUTF8 =
                Array("{\"id\": 1, \"skip\": \"\(before)".utf8) + [0xF0, 0x28, 0x8C, 0x28] + Array("\(after)\"}".utf8)
            #expect(throws: JSONSyntaxError.self) { try fields(skippedUTF8, ["id"]) }
            let fine = Array("{\"id\": 1, \"skip\": \"\(before)\\\"😀\(after)\"}".utf8)
            #expect(try fields(fine, ["id"]) == [.int(1)])
        }
    }

    @Test func errorsCarryLineAndColumn() throws {
        let e = try #require(syntaxError("{\n  \"a\": 1,\n  \"b\": tru\n}"))
        #expect(e.line == 3)
        #expect(e.column == 8)
        #expect(e.description.contains("line 3, column 8"))

        let e2 = try #require(syntaxError("[1, 2,\n 3,\n\n    @]"))
        #expect(e2.line == 4)
        #expect(e2.column == 5)
        #expect(e2.offset == 16)

        let e3 = try #require(syntaxError("\"ab\ncd\""))
        #expect(e3.line == 1)
        #expect(e3.column == 4)
    }
}

@Suite("JSONParser.fields(of:wanted:)")
struct JSONFieldsTests {
    @Test func buildsOnlyWantedKeysInWantedOrder() throws {
        let line =
            #"{"skip": {"deep": [1, 2, {"z": null, "w": "ünï"}]}, "features": [1, 2.5, -3e2], "id": "r1", "more": true}"#
        let v = try fields(line, ["id", "features", "absent"])
        #expect(v.count == 3)
        #expect(v[0] == .string("r1"))
        #expect(v[1] == .array([.int(1), .double(2.5), .double(-300)]))
        #expect(v[2] == nil)
    }

    @Test func emptyObjectAndNoWantedKeys() throws {
        #expect(try fields("{}", ["id"]) == [nil])
        #expect(try fields("  { }  ", []) == [])
        #expect(try fields(#"{"a": [1, {"b": "c"}]}"#, []) == [])
    }

    @Test func escapedKeysMatchWantedKeys() throws {
        let v = try fields(#"{"\u0069d": 7, "f\u00e9": "x"}"#, ["id", "fé"])
        #expect(v == [.int(7), .string("x")])
    }

    @Test func keysThatArePrefixesDoNotMatch() throws {
        let v = try fields(#"{"i": 1, "idx": 2, "id": 3}"#, ["id"])
        #expect(v == [.int(3)])
    }

    @Test func duplicateWantedKeyIsRefused() {
        #expect(throws: JSONSyntaxError.self) { try fields(#"{"id": 1, "id": 2}"#, ["id"]) }
        #expect(throws: JSONSyntaxError.self) { try fields(#"{"id": 1, "\u0069d": 2}"#, ["id"]) }
    }

    @Test(arguments: [
        #"{"id": 1, "skip": [1, 2,]}"#,
        #"{"id": 1, "skip": tru}"#,
        #"{"id": 1, "skip": {"a" 1}}"#,
        #"{"id": 1, "skip": 01}"#,
        #"{"id": 1, "skip": "unterminated}"#,
        #"{"id": 1, "skip": [[[[}"#,
        #"{"id": 1 "skip": 2}"#,
        #"{"id": 1,}"#,
        #"{"id": 1} trailing"#,
        #"{"id": 1}{"id": 2}"#,
        #"[1, 2]"#,
        #""just a string""#,
        "",
        #"{"id": 1, "skip": nan}"#
    ])
    func unwantedValuesAreStillValidated(_ line: String) {
        #expect(throws: JSONSyntaxError.self, "\(line)") { try fields(line, ["id"]) }
    }

    @Test func invalidUTF8AndControlCharactersInSkippedValuesAreRefused() {
        let badUTF8 = Array(#"{"id": 1, "skip": "a"#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try fields(badUTF8, ["id"]) }
        let control = Array(#"{"id": 1, "skip": "a"#.utf8) + [0x0A] + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try fields(control, ["id"]) }
        let badKey = Array(#"{"id": 1, ""#.utf8) + [0xFF] + Array(#"": 2}"#.utf8)
        #expect(throws: JSONSyntaxError.self) { try fields(badKey, ["id"]) }
    }

    @Test(arguments: [
        #"{"id": 1, "skip": "bad \q escape"}"#, #"{"id": 1, "skip": "\u12G4"}"#, #"{"id": 1, "skip": ["\ud800"]}"#
    ])
    func badEscapesInSkippedValuesAreRefused(_ line: String) {
        // `parse` refuses these documents; `fields` must agree on what is valid JSON.
        #expect(syntaxError(line) != nil)
        #expect(throws: JSONSyntaxError.self, "\(line)") { try fields(line, ["id"]) }
    }

    @Test func agreesWithParseOnValidRecords() throws {
        let lines = [
            #"{"id": "a", "features": [0, 1e-3, 123456789012, -0.5], "label": 3}"#,
            #"{"label": "x\"y", "id": 12, "nested": {"features": "not these"}}"#,
            #"{"features": [], "id": "\ud83d\ude00"}"#
        ]
        for line in lines {
            let whole = try #require(JSONParser.parse(line).objectValue)
            let picked = try fields(line, ["id", "features", "label"])
            #expect(picked == [whole["id"], whole["features"], whole["label"]], "\(line)")
        }
    }
}
