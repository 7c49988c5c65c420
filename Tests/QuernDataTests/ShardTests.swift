import Foundation
import QuernCore
import QuernData
import QuernTestSupport
import Testing

@Suite("shards")
struct ShardTests {
    /// Items of one shard's stream: ids, or the member of an unsafe-member failure.
    func items(_ path: String, _ spec: RecordSpec, _ selection: RecordStream.Selection) throws -> [String] {
        let stream = try RecordStream(path: path, spec: spec, selection: selection)
        var out: [String] = []
        while let item = try stream.next() {
            switch item {
            case .record(let r): out.append(r.id)
            case .failure(let f): out.append(f.id ?? "!" + f.member)
            }
        }
        return out
    }

    /// Every shard count from 1 to past the number of units: the shards' items, in shard
    /// order, are the whole stream's, each exactly once.
    func checkPartition(_ path: String, _ spec: RecordSpec, expectMembers: Int) throws {
        let whole = try items(path, spec, .all)
        for n in 1...(whole.count + 2) {
            let plan = try ShardPlan.make(path: path, spec: spec, limits: StreamLimits(), count: n)
            #expect(plan.mode == (expectMembers >= n ? .members : .records), "\(n) shards")
            #expect(plan.units == (plan.mode == .members ? expectMembers : whole.count))
            var joined: [String] = []
            for i in 0..<n { joined += try items(path, spec, plan.selection(try Shard(index: i, count: n))) }
            #expect(joined == whole, "\(n) shards, \(plan.mode)")
        }
    }

    @Test func membersOrRecordsEachExactlyOnceInInputOrder() throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        try tmp.write("src/a.jsonl", "{\"id\":\"a1\"}\n{\"id\":\"a2\"}\n{\"id\":\"a3\"}\n")
        try tmp.write("src/b.jsonl", "{\"id\":\"b1\"}\nnot json\n")
        try tmp.write("src/c.jsonl", "{\"id\":\"c1\"}\n")
        try tmp.write("src/skip.txt", "not a member the glob takes\n")
        try shell(
            "mkdir d && ln -s a.jsonl d/link.jsonl && tar -czf ../x.tar.gz a.jsonl d b.jsonl skip.txt c.jsonl",
            cwd: tmp.path + "/src")
        let spec = RecordSpec(format: .jsonl, members: "*.jsonl", idField: "id")
        // a, d/link (an unsafe member: one error item), b, c; the directory and the text file do not count.
        #expect(try RecordStream.countMembers(path: tmp.path + "/x.tar.gz", spec: spec) == 4)
        let all = try items(tmp.path + "/x.tar.gz", spec, .all)
        #expect(all == ["a1", "a2", "a3", "!d/link.jsonl", "b1", "!b.jsonl", "c1"], "\(all)")
        try checkPartition(tmp.path + "/x.tar.gz", spec, expectMembers: 4)

        // One plain file: one member, so two or more shards split its records.
        let single = try tmp.write("one.jsonl", (1...7).map { "{\"id\":\"r\($0)\"}" }.joined(separator: "\n"))
        try checkPartition(single, RecordSpec(format: .jsonl, idField: "id"), expectMembers: 1)
    }

    @Test func shardsFromArgumentsAndSchedulers() throws {
        let s = try Shard(parsing: "2/4")
        #expect(s == (try Shard(index: 2, count: 4)))
        #expect(s.name == "part-00002-of-00004")
        for bad in ["4/4", "-1/4", "1/0", "1", "a/b", "1/2/3"] {
            #expect(quernError { _ = try Shard(parsing: bad) }?.code == .invalidValue, "\(bad)")
        }
        // Slurm arrays may start anywhere (--array=5-8): the shard is the offset from the first.
        let slurm = ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"]
        #expect(try Shard.fromEnvironment(slurm) == (try Shard(index: 2, count: 4)))
        #expect(try Shard.fromEnvironment(["JOB_COMPLETION_INDEX": "3"], count: 5) == (try Shard(index: 3, count: 5)))
        #expect(
            quernError { _ = try Shard.fromEnvironment(["JOB_COMPLETION_INDEX": "3"]) }?.message.contains(
                "--shard-count") == true)
        #expect(try Shard.fromEnvironment([:]) == nil)
        let plan = ShardPlan(mode: .records, count: 3, units: 10)
        #expect((0..<3).map { plan.range(try! Shard(index: $0, count: 3)) } == [0..<3, 3..<6, 6..<10])
        #expect(try ShardPlan(json: plan.json) == plan)
    }
}
