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

/// The largest absolute difference between two vectors.
func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

/// Texts (and pairs) as a text model's tokenizer encodes them, at its maximum length.
func encodings(_ model: BertModel, _ texts: [(text: String, pair: String?)]) -> [TokenSequence] {
    let t = model.makeTokenizer()
    return texts.map { c in c.pair.map { t.encode(c.text, $0) } ?? t.encode(c.text) }
}

/// The worst cosine between each row of `embeddings` (`[n, dimension]`) and its reference.
func worstCosine(_ embeddings: [Float], _ expected: [[Float]], dimension h: Int) -> Double {
    var worst = 1.0
    for (i, e) in expected.enumerated() {
        var dot = 0.0, na = 0.0, nb = 0.0
        for d in 0..<h {
            let a = Double(embeddings[i * h + d]), b = Double(e[d])
            dot += a * b
            na += a * a
            nb += b * b
        }
        worst = min(worst, dot / (na * nb).squareRoot())
    }
    return worst
}

/// A row of a text model's reference file (scripts/make_tiny_bert.py, make_tiny_xlmr.py):
/// the text (and pair), its ids, and the float64 reference's vectors by name.
struct ReferenceRow {
    let text: String
    let pair: String?
    let ids: [Int32]
    let vectors: [String: [Float]]

    var embedding: [Float] { vectors["embedding"] ?? [] }
    var cls: [Float] { vectors["cls"] ?? [] }
    var max: [Float] { vectors["max"] ?? [] }
    var logits: [Float] { vectors["logits"] ?? [] }

    static func read(_ path: String) throws -> [ReferenceRow] {
        try Sys.readFile(path).split(separator: 0x0A).map { line in
            let o = try #require(try JSONParser.parse(Array(line)).objectValue)
            var vectors: [String: [Float]] = [:]
            for key in ["embedding", "cls", "max", "logits"] {
                if let a = o[key]?.arrayValue { vectors[key] = a.map { Float($0.doubleValue!) } }
            }
            return ReferenceRow(
                text: try #require(o["text"]?.stringValue), pair: o["text_pair"]?.stringValue,
                ids: try #require(o["ids"]?.arrayValue).map { Int32($0.intValue!) }, vectors: vectors)
        }
    }
}
