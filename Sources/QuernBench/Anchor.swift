import Foundation
import QuernCore

/// A reference system run as a Python script: each bench starts its anchor the same way
/// and reads the JSON lines it prints. nil when the script or the interpreter is missing
/// (the bench then prints Quern's side alone).
enum Anchor {
    static func jsonLines(
        python: String, script: String?, arguments: [String],
        environment: [String: String] = [:]
    ) -> [JSONObject]? {
        guard let script, FileManager.default.fileExists(atPath: script) else { return nil }
        let p = Process()
        if python.contains("/") {
            guard FileManager.default.fileExists(atPath: python) else { return nil }
            p.executableURL = URL(fileURLWithPath: python)
            p.arguments = [script] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [python, script] + arguments
        }
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONParser.parse(String($0)).objectValue
        }
    }
}

/// `sh -c COMMAND` for making bench data with the usual tools (tar, zip, gzip); it must succeed.
func shell(_ command: String) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
        throw QuernError(.internalError, "`\(command)` exited \(p.terminationStatus)")
    }
}

/// The CPU's model name (/proc/cpuinfo), which every benchmark prints beside its figures.
func cpuModel() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") })
    else { return "unknown" }
    return line.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
}
