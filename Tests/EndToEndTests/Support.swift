// Helpers for the end-to-end tests: they run the built `quern` binary as a real
// subprocess against temporary spools under /tmp, with real files and real signals.
// Nothing here imports Quern's modules: the binary is the unit under test.

import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A failure that stops a test (every wait has a deadline; none hangs).
struct E2EFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Where things are: the repository (from this file's path), its fixtures, the binary.
enum E2E {
    /// `<repo>/Tests/EndToEndTests/Support.swift` → `<repo>`.
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return realpath(url.path)
    }()

    static let model = repoRoot + "/fixtures/models/digits-mlp"
    static let dataDir = repoRoot + "/fixtures/data"
    static let digitsTarGz = dataDir + "/digits.tar.gz"
    static let digitsCSV = dataDir + "/digits-test.csv"
    static let digitsJSONL = dataDir + "/digits-test.jsonl"
    static let expectedJSONL = dataDir + "/digits-test.expected.jsonl"

    /// The `quern` binary: `$QUERN_BIN`, else the file `quern` next to the running test
    /// bundle, else the usual build directories of this checkout.
    static let binary: String = {
        let env = ProcessInfo.processInfo.environment
        if let b = env["QUERN_BIN"], !b.isEmpty { return b }
        var dirs: [String] = []
        let bundle = Bundle.main.bundleURL
        dirs.append(bundle.path)
        dirs.append(bundle.deletingLastPathComponent().path)
        if let a0 = CommandLine.arguments.first {
            let abs = a0.hasPrefix("/") ? a0 : FileManager.default.currentDirectoryPath + "/" + a0
            let url = URL(fileURLWithPath: abs)
            dirs.append(url.deletingLastPathComponent().path)
            // A bundle directory (…/X.xctest/Contents/MacOS/X) sits further down.
            dirs.append(
                url.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                    .deletingLastPathComponent().path)
        }
        for scratch in [".build-e2e", ".build"] {
            dirs.append(repoRoot + "/\(scratch)/debug")
            dirs.append(repoRoot + "/\(scratch)/release")
        }
        for d in dirs {
            let p = d + "/quern"
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue,
                FileManager.default.isExecutableFile(atPath: p)
            {
                return p
            }
        }
        return repoRoot + "/.build/debug/quern"
    }()

    static func realpath(_ path: String) -> String {
        guard let p = Glibc.realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Polls `condition` until it holds; throws (failing the test) after `timeout` seconds.
    static func waitUntil(
        _ what: String, timeout: Double, poll: Double = 0.05,
        _ condition: () throws -> Bool
    ) async throws {
        let deadline = now() + timeout
        while true {
            if try condition() { return }
            if now() > deadline { throw E2EFailure("timed out after \(timeout) s waiting for \(what)") }
            try await Task.sleep(nanoseconds: UInt64(poll * 1e9))
        }
    }
}

// MARK: - Files

enum Files {
    static func read(_ path: String) throws -> Data {
        guard let d = FileManager.default.contents(atPath: path) else { throw E2EFailure("cannot read \(path)") }
        return d
    }

    static func text(_ path: String) throws -> String { String(decoding: try read(path), as: UTF8.self) }

    static func write(_ path: String, _ data: Data) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: path))
    }

    static func write(_ path: String, _ text: String) throws { try write(path, Data(text.utf8)) }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// Directory entries (dot-files included), sorted; empty if the directory is missing.
    static func list(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    static func size(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? -1
    }

    static func mkdir(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    static func symlink(_ path: String, to target: String) throws {
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    /// A JSON object from a file.
    static func json(_ path: String) throws -> [String: Any] {
        try JSON.object(read(path), what: path)
    }

    /// Lines of a text blob, without the empty string after a final newline.
    static func lines(_ data: Data) -> [Data] {
        var out: [Data] = []
        var start = data.startIndex
        for i in data.indices where data[i] == 0x0A {
            out.append(data[start..<i])
            start = i + 1
        }
        if start < data.endIndex { out.append(data[start..<data.endIndex]) }
        return out
    }
}

enum JSON {
    static func object(_ data: Data, what: String) throws -> [String: Any] {
        guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw E2EFailure("\(what) is not a JSON object: \(String(decoding: data.prefix(300), as: UTF8.self))")
        }
        return o
    }

    /// JSON Lines → objects.
    static func lines(_ data: Data, what: String) throws -> [[String: Any]] {
        try Files.lines(data).filter { !$0.isEmpty }.map { try object($0, what: what) }
    }

    static func encode(_ value: Any) throws -> Data {
        try JSONSerialization.data(
            withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    }

    /// `a.b.c` in nested objects.
    static func get(_ o: [String: Any], _ path: String) -> Any? {
        get(o, path.split(separator: ".").map(String.init))
    }

    /// A value by its keys, for keys that contain dots (`outputs` → `results.jsonl.gz`).
    static func get(_ o: [String: Any], _ keys: [String]) -> Any? {
        var cur: Any? = o
        for key in keys { cur = (cur as? [String: Any])?[key] }
        return cur
    }

    /// `report.json`'s entry for one output file: (sha256, bytes).
    static func output(_ report: [String: Any], _ name: String) -> (sha256: String?, bytes: Int?) {
        (
            get(report, ["outputs", name, "sha256"]) as? String,
            (get(report, ["outputs", name, "bytes"]) as? NSNumber)?.intValue
        )
    }

    static func int(_ o: [String: Any], _ path: String) -> Int? { (get(o, path) as? NSNumber)?.intValue }
    static func double(_ o: [String: Any], _ path: String) -> Double? { (get(o, path) as? NSNumber)?.doubleValue }
    static func string(_ o: [String: Any], _ path: String) -> String? { get(o, path) as? String }
    static func bool(_ o: [String: Any], _ path: String) -> Bool? { get(o, path) as? Bool }
}

// MARK: - Processes

/// One child process with stdout and stderr captured in files.
final class Child: @unchecked Sendable {
    let name: String
    let process = Process()
    let stdoutPath: String
    let stderrPath: String
    private let outHandle: FileHandle
    private let errHandle: FileHandle

    /// Environment variables of the test runner that would change quern's behaviour.
    static let scrubbed: Set<String> = ["QUERN_CHECKPOINT_SECONDS", "QUERN_ROOTS", "QUERN_SPOOL", "QUERN_LOG_LEVEL"]

    /// `blockStopSignals`: spawn with SIGTERM/SIGINT blocked, as a child of a thread that
    /// blocks them would be (the default spawns with them unblocked).
    init(
        _ executable: String, _ arguments: [String], env: [String: String] = [:], cwd: String? = nil,
        logDir: String, name: String, blockStopSignals: Bool = false
    ) throws {
        self.name = name
        try Files.mkdir(logDir)
        stdoutPath = logDir + "/\(name).out"
        stderrPath = logDir + "/\(name).err"
        for p in [stdoutPath, stderrPath] {
            guard FileManager.default.createFile(atPath: p, contents: nil) else {
                throw E2EFailure("cannot create \(p)")
            }
        }
        outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !Child.scrubbed.contains($0.key) }
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = outHandle
        process.standardError = errHandle
        // The test runner's threads may block SIGTERM/SIGINT (Dispatch worker threads do),
        // and a spawned child inherits the spawning thread's mask. Spawn with them
        // unblocked so the daemon sees the signals the tests send, as under a shell or
        // systemd.
        var stopSignals = sigset_t(), previous = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(blockStopSignals ? SIG_BLOCK : SIG_UNBLOCK, &stopSignals, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
    }

    /// `SigBlk`/`SigIgn`/`SigCgt` of the running child, for diagnosing a signal that had no effect.
    var signalMasks: String {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return "" }
        return status.split(separator: "\n").filter { $0.hasPrefix("Sig") }.joined(separator: " ")
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    func signal(_ sig: Int32) {
        if process.isRunning { _ = kill(pid, sig) }
    }

    struct Exit: CustomStringConvertible {
        let status: Int32
        let signaled: Bool
        var description: String { signaled ? "killed by signal \(status)" : "exit \(status)" }
    }

    /// Waits for the process to end; on timeout kills it and throws.
    @discardableResult
    func wait(timeout: Double) async throws -> Exit {
        let deadline = E2E.now() + timeout
        while process.isRunning {
            if E2E.now() > deadline {
                let masks = signalMasks
                signal(SIGKILL)
                throw E2EFailure(
                    "\(name) (pid \(pid)) did not exit within \(timeout) s; killed. \(masks)\nstderr:\n\(stderrTail)")
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        try? outHandle.close()
        try? errHandle.close()
        return Exit(status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal)
    }

    /// Last resort in `defer`: never leave a daemon behind.
    func killIfRunning() {
        guard process.isRunning else { return }
        _ = kill(pid, SIGKILL)
        let deadline = E2E.now() + 10
        while process.isRunning && E2E.now() < deadline { usleep(10_000) }
    }

    var stdout: String { (try? Files.text(stdoutPath)) ?? "" }
    var stderr: String { (try? Files.text(stderrPath)) ?? "" }
    var stderrTail: String { String(stderr.suffix(3000)) }
}

/// The result of a command run to completion.
struct RunResult: CustomStringConvertible {
    let exit: Child.Exit
    let stdout: String
    let stderr: String
    var status: Int32 { exit.signaled ? -exit.status : exit.status }
    var description: String { "\(exit); stdout: \(stdout.suffix(2000)); stderr: \(stderr.suffix(3000))" }
}

// MARK: - A scratch directory per test

/// A fresh directory under /tmp, removed by `remove()` (kept if `QUERN_E2E_KEEP` is set).
final class Scratch: @unchecked Sendable {
    let path: String
    var logs: String { path + "/logs" }
    private var counter = 0
    private var children: [Child] = []

    init(_ label: String) throws {
        var template = Array("/tmp/quern-e2e-\(label)-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw E2EFailure("mkdtemp failed: errno \(errno)")
        }
        path = String(cString: p)
    }

    /// Kills anything still running and deletes the directory.
    func remove() {
        for c in children { c.killIfRunning() }
        if ProcessInfo.processInfo.environment["QUERN_E2E_KEEP"] == nil {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    func file(_ name: String) -> String { path + "/" + name }

    private func nextName(_ label: String) -> String {
        counter += 1
        return String(format: "%03d-", counter) + label
    }

    /// Starts a process (its output goes to logs/); it is killed by `remove()` if still running.
    func start(
        _ executable: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil,
        label: String, blockStopSignals: Bool = false
    ) throws -> Child {
        let c = try Child(
            executable, args, env: env, cwd: cwd, logDir: logs, name: nextName(label),
            blockStopSignals: blockStopSignals)
        children.append(c)
        return c
    }

    /// Starts `quern ARGS`.
    func startQuern(
        _ args: [String], env: [String: String] = [:], cwd: String? = nil, label: String? = nil,
        blockStopSignals: Bool = false
    ) throws -> Child {
        try start(
            E2E.binary, args, env: env, cwd: cwd, label: label ?? "quern-\(args.first ?? "")",
            blockStopSignals: blockStopSignals)
    }

    /// Runs a program to completion (killing it and failing after `timeout`).
    func run(
        _ executable: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil,
        timeout: Double = 60, label: String? = nil
    ) async throws -> RunResult {
        let c = try start(
            executable, args, env: env, cwd: cwd,
            label: label ?? (executable as NSString).lastPathComponent)
        let exit = try await c.wait(timeout: timeout)
        return RunResult(exit: exit, stdout: c.stdout, stderr: c.stderr)
    }

    func quern(_ args: [String], env: [String: String] = [:], cwd: String? = nil, timeout: Double = 120) async throws
        -> RunResult
    {
        try await run(E2E.binary, args, env: env, cwd: cwd, timeout: timeout, label: "quern-\(args.first ?? "")")
    }

    /// `sh -c SCRIPT`, which must succeed.
    func sh(_ script: String, timeout: Double = 60) async throws {
        let r = try await run("/bin/sh", ["-c", script], timeout: timeout, label: "sh")
        guard r.status == 0 else { throw E2EFailure("`\(script)` failed: \(r)") }
    }

    /// The decompressed bytes of a gzip file, by `gzip -dc` (which also checks CRC and length).
    func gunzip(_ path: String) async throws -> Data {
        let out = file("logs/" + nextName("gunzip.bin"))
        try await sh("gzip -dc '\(path)' > '\(out)'")
        defer { try? FileManager.default.removeItem(atPath: out) }
        return try Files.read(out)
    }

    /// The SHA-256 of a file, by `sha256sum`.
    func sha256(_ path: String) async throws -> String {
        let r = try await run("/usr/bin/env", ["sha256sum", path], label: "sha256sum")
        guard r.status == 0, let hex = r.stdout.split(separator: " ").first else {
            throw E2EFailure("sha256sum failed: \(r)")
        }
        return String(hex)
    }

    /// `tar czf OUT -C DIR NAMES…`.
    func tarGz(_ out: String, from dir: String, _ names: [String]) async throws {
        let r = try await run("/usr/bin/env", ["tar", "czf", out, "-C", dir] + names, label: "tar")
        guard r.status == 0 else { throw E2EFailure("tar failed: \(r)") }
    }
}

// MARK: - Spools

/// A spool directory as the README's contract describes it.
struct SpoolDir {
    let root: String

    /// Creates the spool layout (quern would too; the tests need `incoming/` and `tmp/` to drop).
    init(_ root: String) throws {
        self.root = root
        for d in ["incoming", "tmp", "active", "done", "failed"] { try Files.mkdir(root + "/" + d) }
    }

    func dir(_ state: String) -> String { root + "/" + state }
    func job(_ state: String, _ id: String) -> String { root + "/\(state)/\(id)" }

    /// Entries of a state directory, dot-files excluded.
    func jobs(_ state: String) -> [String] { Files.list(dir(state)).filter { !$0.hasPrefix(".") } }

    /// Publishes manifest bytes the Maildir way: write in `tmp/`, then rename(2) into `incoming/`.
    func drop(_ name: String, _ bytes: Data) throws {
        let staged = root + "/tmp/drop.\(name)"
        try bytes.write(to: URL(fileURLWithPath: staged))
        guard rename(staged, root + "/incoming/" + name) == 0 else {
            throw E2EFailure("rename into incoming/\(name) failed: errno \(errno)")
        }
    }
}

// MARK: - Manifests and data

enum Manifests {
    /// A `predict` manifest (absolute paths) with overrides merged into `input` and the top level.
    static func predict(
        id: String?, input: String, format: String? = nil, input extraInput: [String: Any] = [:],
        task: String = "predict", model: String = E2E.model,
        _ extra: [String: Any] = [:]
    ) -> [String: Any] {
        var i: [String: Any] = ["path": input]
        if let format { i["format"] = format }
        for (k, v) in extraInput { i[k] = v }
        var m: [String: Any] = ["version": 1, "task": task, "model": model, "input": i]
        if let id { m["id"] = id }
        for (k, v) in extra { m[k] = v }
        return m
    }

    static func bytes(_ m: [String: Any]) throws -> Data { try JSON.encode(m) }
}

enum DigitsData {
    /// The CSV fixture: header line and data lines (without newlines).
    static func csv() throws -> (header: String, rows: [String]) {
        let lines = try Files.text(E2E.digitsCSV).split(separator: "\n", omittingEmptySubsequences: true).map(
            String.init)
        guard let header = lines.first else { throw E2EFailure("empty CSV fixture") }
        return (header, Array(lines.dropFirst()))
    }

    /// The JSONL fixture's records: (id, features, label).
    static func jsonl() throws -> [(id: String, features: [Int], label: Int)] {
        try JSON.lines(Files.read(E2E.digitsJSONL), what: "digits-test.jsonl").map { o in
            guard let id = o["id"] as? String, let f = o["features"] as? [NSNumber], let l = o["label"] as? NSNumber
            else {
                throw E2EFailure("unexpected fixture record \(o)")
            }
            return (id, f.map(\.intValue), l.intValue)
        }
    }

    /// A JSONL line with the given id and features.
    static func line(id: String, features: [Int]) -> String {
        "{\"id\":\"\(id)\",\"features\":[" + features.map(String.init).joined(separator: ",") + "]}"
    }
}

/// Deterministic pseudo-random bytes (a 64-bit LCG), for "random garbage" inputs.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> Data {
    var state = seed
    var out = Data(capacity: count)
    for _ in 0..<count {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        out.append(UInt8(truncatingIfNeeded: state >> 33))
    }
    return out
}

/// The roots every test passes: the repository (fixtures) and the test's scratch directory.
func rootArgs(_ scratch: Scratch) -> [String] { ["--root", E2E.repoRoot, "--root", scratch.path] }

/// The files every finished job has, and nothing else.
let doneFiles = ["errors.jsonl.gz", "job.log", "manifest.json", "report.json", "results.jsonl.gz"]
