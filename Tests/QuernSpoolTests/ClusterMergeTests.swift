import Foundation
import QuernCore
import QuernData
import QuernTasks
import QuernTestSupport
import Testing

@testable import QuernSpool

/// The merge's report arithmetic, as pure functions over the parts' reports.
@Suite("cluster merge")
struct ClusterMergeTests {
    /// An evaluate part: a two-class confusion matrix, its counts, its span of time.
    func part(_ shard: Int, confusion: [[Int]], start: String, finish: String, members: Int, resumed: Int = 0)
        -> JSONObject
    {
        let metrics = ClassificationMetrics(labels: ["no", "yes"], confusion: confusion).json
        let n = confusion.joined().reduce(0, +)
        let o: JSONValue = [
            "id": "j", "task": "evaluate", "model": ["path": "/m", "family": "mlp"], "precision": "fp32",
            "input": ["path": "/in.csv", "format": "csv", "members": .int(Int64(members))],
            "records": ["read": .int(Int64(n + 1)), "succeeded": .int(Int64(n)), "failed": 1],
            "timings": [
                "started_at": .string(start), "finished_at": .string(finish), "wall_seconds": 10,
                "model_load_seconds": 0.5, "process_seconds": 9
            ],
            "metrics": metrics, "resumed": .int(Int64(resumed)), "shard": ["index": .int(Int64(shard)), "count": 3],
            "host": .string("node\(shard)")
        ]
        return o.objectValue!
    }

    @Test(
        "counts are summed, metrics recomputed from the summed confusion matrix, the span runs first start to last finish"
    )
    func combinesReports() throws {
        let parts = [
            part(
                0, confusion: [[5, 1], [0, 4]], start: "2026-12-01T10:00:00.000Z", finish: "2026-12-01T10:00:10.000Z",
                members: 1),
            part(
                1, confusion: [[3, 0], [2, 5]], start: "2026-12-01T10:00:02.000Z", finish: "2026-12-01T10:00:20.000Z",
                members: 2, resumed: 1),
            part(
                2, confusion: [[1, 1], [1, 1]], start: "2026-12-01T10:00:01.000Z", finish: "2026-12-01T10:00:15.000Z",
                members: 2)
        ]
        let plan = try ShardPlan(json: ["mode": "records", "count": 3, "units": 30])
        let report = ClusterJob.combine(parts, id: "j", plan: plan, task: EvaluateTask.self).json.objectValue!
        #expect(report["records"] == ["read": 27, "succeeded": 24, "failed": 3])
        let metrics = try #require(report["metrics"]?.objectValue)
        #expect(metrics["confusion_matrix"] == [[9, 2], [3, 10]])
        #expect(metrics["accuracy"]?.doubleValue == 19.0 / 24.0)
        let timings = try #require(report["timings"]?.objectValue)
        #expect(
            timings["started_at"] == "2026-12-01T10:00:00.000Z" && timings["finished_at"] == "2026-12-01T10:00:20.000Z")
        #expect(timings["wall_seconds"]?.doubleValue == 20)
        #expect(
            timings["shard_wall_seconds_sum"]?.doubleValue == 30 && timings["process_seconds_sum"]?.doubleValue == 27)
        #expect(report["throughput"]?.objectValue?["records_per_second"]?.doubleValue == 27.0 / 20.0)
        #expect(report["resumed"] == 1)
        #expect(report["input"]?.objectValue?["members"] == 2, "record shards each read the members before their range")
        #expect(report["shards"]?.objectValue?["parts"]?.arrayValue?.count == 3)
        #expect(Array(report.keys.prefix(3)) == ["id", "task", "status"])
    }

    @Test("member shards read disjoint members; scores average by how many each part scored")
    func membersAndWeightedMeans() throws {
        var parts = [
            part(
                0, confusion: [[1, 0], [0, 1]], start: "2026-12-01T10:00:00.000Z", finish: "2026-12-01T10:00:01.000Z",
                members: 3),
            part(
                1, confusion: [[1, 0], [0, 1]], start: "2026-12-01T10:00:00.000Z", finish: "2026-12-01T10:00:01.000Z",
                members: 4)
        ]
        parts[0]["metrics"] = ["scored": 10, "mean_score": 0.5]
        parts[1]["metrics"] = ["scored": 30, "mean_score": 0.9]
        let plan = try ShardPlan(json: ["mode": "members", "count": 2, "units": 7])
        let report = ClusterJob.combine(parts, id: "s", plan: plan, task: ScoreTask.self).json.objectValue!
        #expect(report["input"]?.objectValue?["members"] == 7)
        #expect(report["metrics"]?.objectValue?["scored"] == 40)
        #expect(abs((report["metrics"]?.objectValue?["mean_score"]?.doubleValue ?? 0) - 0.8) < 1e-12)
    }
}
