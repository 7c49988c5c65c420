import QuernCore
import Testing

@Suite("Path")
struct PathTests {
    @Test func dirnameAndBasename() {
        #expect(Path.dirname("a/b/c.json") == "a/b")
        #expect(Path.dirname("c.json") == ".")
        #expect(Path.dirname("/c.json") == "/")
        #expect(Path.dirname("/srv/spool") == "/srv")
        #expect(Path.basename("a/b/c.json") == "c.json")
        #expect(Path.basename("c.json") == "c.json")
        #expect(Path.basename("/") == "")
    }

    @Test func join() {
        #expect(Path.join("a", "b") == "a/b")
        #expect(Path.join("a/", "b") == "a/b")
        #expect(Path.join("/srv/spool", "incoming/x.json") == "/srv/spool/incoming/x.json")
        #expect(Path.join("a", "/abs") == "/abs")
    }

    @Test func stem() {
        #expect(Path.stem("jobs/a.json") == "a")
        #expect(Path.stem("data.tar.gz") == "data.tar")
        #expect(Path.stem("noext") == "noext")
        #expect(Path.stem(".hidden") == ".hidden")
        #expect(Path.stem("dir.d/file") == "file")
    }

    @Test func normalizeAndAbsolute() {
        #expect(Path.normalize("/a//./b/") == "/a/b")
        #expect(Path.normalize("./a/./b") == "a/b")
        #expect(Path.normalize("//") == "/")
        #expect(Path.absolute("x/./y", relativeTo: "/base/") == "/base/x/y")
        #expect(Path.absolute("/abs/./p", relativeTo: "/base") == "/abs/p")
    }

    @Test func isInside() {
        #expect(Path.isInside("/a/b", "/a"))
        #expect(Path.isInside("/a", "/a"))
        #expect(Path.isInside("/a/b", "/a/"))
        #expect(!Path.isInside("/ab", "/a"))
        #expect(!Path.isInside("/a", "/a/b"))
        #expect(Path.isInside("/anything", "/"))
    }

    @Test("collapse resolves . and .. by name, never above the root")
    func collapse() {
        #expect(Path.collapse("/work/main/../shared/corpora/x.jsonl") == "/work/shared/corpora/x.jsonl")
        #expect(Path.collapse("/a/./b//c/..") == "/a/b")
        #expect(Path.collapse("/../../etc") == "/etc")
        #expect(Path.collapse("/") == "/")
    }
}
