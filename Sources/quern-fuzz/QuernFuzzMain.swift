import QuernCore
import QuernFuzz

#if canImport(Glibc)
    import Glibc
#endif

// Two builds of one file. scripts/fuzz.sh builds it with `--sanitize=fuzzer` and
// QUERN_LIBFUZZER: libFuzzer's own main drives `LLVMFuzzerTestOneInput`, and the
// harness is chosen by QUERN_FUZZ_TARGET (an environment variable, so libFuzzer's
// child processes inherit it). A plain build replays inputs: `quern-fuzz NAME FILE|DIR...`
// runs one harness on each file, which is how a finding is reproduced and debugged.

func warn(_ message: String) { try? Sys.writeAll(2, Array("quern-fuzz: \(message)\n".utf8)) }

nonisolated(unsafe) var selected: FuzzTarget?

func target() -> FuzzTarget {
    if let t = selected { return t }
    let name = Sys.environment("QUERN_FUZZ_TARGET") ?? ""
    guard let t = FuzzTargets.named(name) else {
        let names = FuzzTargets.all.map { "  \($0.name): \($0.input)" }.joined(separator: "\n")
        warn("set QUERN_FUZZ_TARGET to one of\n\(names)")
        exit(2)
    }
    selected = t
    return t
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    target().run(bytes)
    return 0
}

#if !QUERN_LIBFUZZER
    @main
    enum Replay {
        static func main() {
            let args = Array(CommandLine.arguments.dropFirst())
            guard let name = args.first, let t = FuzzTargets.named(name), args.count >= 2 else {
                let names = FuzzTargets.all.map { "  \($0.name): \($0.input)" }.joined(separator: "\n")
                warn("usage: quern-fuzz NAME FILE|DIR...\nharnesses:\n\(names)")
                exit(2)
            }
            selected = t
            var n = 0
            for arg in args.dropFirst() {
                let files =
                    Sys.isDirectory(arg)
                    ? ((try? Sys.listDirectory(arg)) ?? []).sorted().map { Path.join(arg, $0) } : [arg]
                for file in files {
                    guard let bytes = try? Sys.readFile(file, limit: 1 << 30) else {
                        warn("cannot read \(file)")
                        exit(1)
                    }
                    t.run(bytes)
                    n += 1
                }
            }
            print("\(name): \(n) inputs, all handled")
        }
    }
#endif
