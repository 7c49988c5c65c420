import QuernCore
import QuernTestSupport
import Testing

@testable import QuernTasks

@Suite("ClassificationMetrics")
struct ClassificationMetricsTests {
    // Rows: true class, columns: predicted.
    //        a  b  c
    //   a  [ 5, 1, 0 ]
    //   b  [ 2, 3, 1 ]
    //   c  [ 0, 0, 4 ]
    let m = ClassificationMetrics(labels: ["a", "b", "c"], confusion: [[5, 1, 0], [2, 3, 1], [0, 0, 4]])

    func close(_ x: Double?, _ y: Double) -> Bool { x.map { abs($0 - y) < 1e-9 } ?? false }

    @Test func accuracyAndPerClass() {
        #expect(m.total == 16)
        #expect(close(m.accuracy, 12.0 / 16))
        // a: precision 5/7, recall 5/6, F1 2pr/(p+r) = 10/13.
        let a = m.perClass(0)
        #expect(close(a.precision, 5.0 / 7) && close(a.recall, 5.0 / 6) && close(a.f1, 10.0 / 13) && a.support == 6)
        // b: precision 3/4, recall 3/6, F1 0.6.
        let b = m.perClass(1)
        #expect(close(b.precision, 0.75) && close(b.recall, 0.5) && close(b.f1, 0.6) && b.support == 6)
        // c: precision 4/5, recall 1, F1 8/9.
        let c = m.perClass(2)
        #expect(close(c.precision, 0.8) && close(c.recall, 1) && close(c.f1, 8.0 / 9) && c.support == 4)
    }

    @Test func macroAndWeightedMeansInTheJSON() throws {
        let o = try #require(m.json.objectValue)
        #expect(o["count"] == 16)
        #expect(close(o["accuracy"]?.doubleValue, 0.75))
        let macro = try #require(o["macro"]?.objectValue)
        #expect(close(macro["precision"]?.doubleValue, (5.0 / 7 + 0.75 + 0.8) / 3))
        #expect(close(macro["recall"]?.doubleValue, (5.0 / 6 + 0.5 + 1) / 3))
        #expect(close(macro["f1"]?.doubleValue, (10.0 / 13 + 0.6 + 8.0 / 9) / 3))
        let weighted = try #require(o["weighted"]?.objectValue)
        #expect(close(weighted["precision"]?.doubleValue, (6 * 5.0 / 7 + 6 * 0.75 + 4 * 0.8) / 16))
        #expect(close(weighted["recall"]?.doubleValue, 0.75), "weighted recall equals accuracy")
        #expect(close(weighted["f1"]?.doubleValue, (6 * 10.0 / 13 + 6 * 0.6 + 4 * 8.0 / 9) / 16))
        // Spot values as scikit-learn's classification_report prints them.
        #expect(String(format: "%.4f", macro["f1"]!.doubleValue!) == "0.7527")
        #expect(String(format: "%.4f", weighted["precision"]!.doubleValue!) == "0.7491")
        #expect(String(format: "%.4f", weighted["f1"]!.doubleValue!) == "0.7357")
        let perClass = try #require(o["per_class"]?.objectValue)
        #expect(perClass.keys == ["a", "b", "c"])
        #expect(perClass["b"]?.objectValue?["support"] == 6)
        #expect(o["confusion_matrix"] == [[5, 1, 0], [2, 3, 1], [0, 0, 4]])
        #expect(o["labels"] == ["a", "b", "c"])
    }

    @Test func classesWithoutPredictionsOrSupportAreZeroNotNaN() throws {
        let z = ClassificationMetrics(labels: ["x", "y", "unused"], confusion: [[2, 0, 0], [2, 0, 0], [0, 0, 0]])
        let y = z.perClass(1)
        #expect(y.precision == 0 && y.recall == 0 && y.f1 == 0 && y.support == 2)
        let u = z.perClass(2)
        #expect(u.precision == 0 && u.recall == 0 && u.f1 == 0 && u.support == 0)
        let text = String(decoding: JSONWriter.compact(z.json), as: UTF8.self)
        #expect(!text.contains("null"), "no NaN anywhere: \(text)")
        #expect(close(z.accuracy, 0.5))
        #expect(ClassificationMetrics(labels: ["a"], confusion: [[0]]).accuracy == 0)
    }
}

@Suite("RowEncoder")
struct RowEncoderTests {
    let row = ResultRow(
        id: "r\"1",
        fields: [
            ("label", .string("a,b")), ("score", .float(0.5)), ("probabilities", .floats([0.25, 0.75, .nan])),
            ("correct", .bool(true)), ("n", .int(3))
        ])

    @Test func jsonLines() throws {
        var e = RowEncoder(format: .jsonl)
        let line = e.encode(row)
        #expect(
            String(decoding: line, as: UTF8.self)
                == #"{"id":"r\"1","label":"a,b","score":0.5,"probabilities":[0.25,0.75,null],"correct":true,"n":3}"#
                + "\n")
        #expect(e.header == nil)
        let parsed = try JSONParser.parse(Array(line.dropLast()))
        #expect(
            parsed == [
                "id": "r\"1", "label": "a,b", "score": 0.5, "probabilities": [0.25, 0.75, nil], "correct": true, "n": 3
            ])
        // Awkward strings stay one line.
        let tricky = e.encode(ResultRow(id: "x\ny", fields: [("label", .string("tab\there \u{1}"))]))
        let newlines = tricky.filter { $0 == 0x0A }.count
        #expect(newlines == 1)
        #expect(try JSONParser.parse(Array(tricky.dropLast())) == ["id": "x\ny", "label": "tab\there \u{1}"])
    }

    @Test func csvWithHeaderOnceAndVectorColumns() {
        var e = RowEncoder(format: .csv)
        let first = String(decoding: e.encode(row), as: UTF8.self)
        #expect(
            first == "id,label,score,probabilities_0,probabilities_1,probabilities_2,correct,n\n"
                + "\"r\"\"1\",\"a,b\",0.5,0.25,0.75,,true,3\n")
        #expect(
            e.header == [
                "id", "label", "score", "probabilities_0", "probabilities_1", "probabilities_2", "correct", "n"
            ])
        let second = String(
            decoding: e.encode(
                ResultRow(
                    id: "plain",
                    fields: [
                        ("label", .string("line\nbreak")), ("score", .float(1)),
                        ("probabilities", .floats([1, 0, 0])), ("correct", .bool(false)), ("n", .int(-1))
                    ])),
            as: UTF8.self)
        #expect(second == "plain,\"line\nbreak\",1.0,1.0,0.0,0.0,false,-1\n")
    }

    @Test func csvResumedWithItsHeaderWritesNoHeader() {
        var e = RowEncoder(format: .csv, header: ["id", "label"])
        let out = String(
            decoding: e.encode(ResultRow(id: "a", fields: [("label", .string("cr\rhere"))])), as: UTF8.self)
        #expect(out == "a,\"cr\rhere\"\n")
    }
}

@Suite("score top-k")
struct TopKTests {
    @Test("the k largest, best first, ties in input order, k past the count")
    func top() {
        let v: [Float] = [0.1, 0.9, 0.5, 0.9, -1, 0.7]
        #expect(Scorer.top(3, of: v[...]) == [1, 3, 5])
        #expect(Scorer.top(1, of: v[...]) == [1])
        #expect(Scorer.top(10, of: v[...]) == [1, 3, 5, 2, 0, 4])
        // A slice that does not start at 0 is indexed from its own start.
        #expect(Scorer.top(2, of: v[2...]) == [1, 3])
        let many = (0..<500).map { Float(($0 * 7919) % 1000) / 1000 }
        #expect(Scorer.top(7, of: many[...]) == Array(many.indices.sorted { many[$0] > many[$1] }.prefix(7)))
    }
}
