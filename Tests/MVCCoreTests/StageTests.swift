import Foundation
import Synchronization
import Testing
@testable import MVCCore

/// A repository and the temp directory it lives in (removed when this is released).
struct StageFixture {
    let dir: TempDir
    let repo: Repository
}

/// A repository with a dataset and two model versions, fsync off (a throwaway store).
func stageFixture(policy: String? = nil) throws -> StageFixture {
    let dir = TempDir()
    try Repository.initialize(at: dir.path)
    dir.write(".mvc/config", String(decoding: dir.read(".mvc/config")!, as: UTF8.self) + "[core]\n\tfsync = false\n")
    let repo = try Repository.open(at: dir.path)
    if let policy { dir.write("mvc.yaml", policy) }
    dir.write("data/d.csv", "a,b\n1,2\n")
    _ = try repo.commit(CommitRequest(paths: ["data"], name: "ds", kind: .dataset, baseDirectory: dir.path))
    dir.write("m.bin", "weights v1")
    _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", kind: .model, inputs: [InputSpec(revision: "ds@v1")],
                                      metrics: ["accuracy": 0.9], baseDirectory: dir.path))
    dir.write("m.bin", "weights v2")
    _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", inputs: [InputSpec(revision: "ds@v1")],
                                      metrics: ["accuracy": 0.95], baseDirectory: dir.path))
    return StageFixture(dir: dir, repo: repo)
}

@Suite("Stages: promotion, rollback, history")
struct StageTests {
    @Test("promote, archive on replace, rollback, demote, and NAME@STAGE~K")
    func lifecycle() throws {
        let fixture = try stageFixture()
        let repo = fixture.repo
        let v1 = try repo.resolve("m@v1"), v2 = try repo.resolve("m@v2")
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "production", reason: "first"))
        let r = try repo.promote(PromoteRequest(revision: "m@v2", stage: "production", reason: "better"))
        #expect(r.moves.map(\.stage) == ["production", "archived"])
        #expect(try repo.resolve("m@production") == v2)
        #expect(try repo.resolve("m@production~1") == v1)
        #expect(try repo.resolve("m@archived") == v1)
        #expect(throws: MVCError.self) { try repo.resolve("m@production~2") }   // it was empty then

        _ = try repo.rollback("m", stage: "production", reason: "regression")
        #expect(try repo.resolve("m@production") == v1)
        let h = try repo.history("m", stage: "production")
        #expect(h.map(\.action) == [.rollback, .promote, .promote])
        #expect(h[0].from == v2 && h[0].to == v1 && h[0].reason == "regression\n")
        #expect(h.map(\.sequence) == [3, 2, 1])

        _ = try repo.demote("m", stage: "production")
        #expect(throws: MVCError.self) { try repo.resolve("m@production") }
        let e = #expect(throws: MVCError.self) { try repo.demote("m", stage: "production") }
        #expect(e?.message.contains("already empty") == true)
    }

    @Test("unknown stage, commit of another artifact, rollback with no history")
    func badInput() throws {
        let fixture = try stageFixture()
        let repo = fixture.repo
        let unknown = #expect(throws: MVCError.self) { try repo.promote(PromoteRequest(revision: "m@v1", stage: "canary")) }
        #expect(unknown?.message.contains("unknown stage 'canary'") == true)
        let other = #expect(throws: MVCError.self) { try repo.rollback("m", stage: "production", to: "ds@v1") }
        #expect(other?.code == .invalidArgument)
        let none = #expect(throws: MVCError.self) { try repo.rollback("m", stage: "staging") }
        #expect(none?.message.contains("no history") == true)
        let prefix = String(try repo.resolve("ds@v1").hex.prefix(10))
        #expect(throws: MVCError.self) { try repo.resolve("m@\(prefix)") }   // a commit of another artifact
    }

    @Test("retired versions are refused for promotion unless forced; bytes and lineage stay")
    func retire() throws {
        let fixture = try stageFixture()
        let repo = fixture.repo
        let v1 = try repo.resolve("m@v1")
        _ = try repo.retire("m@v1", reason: "leaks PII")
        #expect(try repo.isRetired(v1, artifact: "m"))
        #expect(try repo.resolve("m@archived") == v1)
        #expect(throws: MVCError.self) { try repo.promote(PromoteRequest(revision: "m@v1", stage: "staging")) }
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "staging", force: true))
        #expect(try repo.lineage("m@v1").count == 2)
        #expect(try repo.fsck().ok)
    }

    @Test("metrics attached later count for gates without changing the version's id")
    func gatesAndAnnotations() throws {
        let policy = """
        rules:
          production:
            from: [staging]
            metrics:
              - accuracy >= 0.92
              - latency_p95_ms <= 40
            require:
              inputs: [dataset]
        """
        let fixture = try stageFixture(policy: policy)
        let repo = fixture.repo
        let v2 = try repo.resolve("m@v2")
        _ = try repo.promote(PromoteRequest(revision: "m@v2", stage: "staging"))
        let refused = #expect(throws: MVCError.self) { try repo.promote(PromoteRequest(revision: "m@v2", stage: "production")) }
        #expect(refused?.message.contains("latency_p95_ms") == true)
        let eval = try repo.evaluate("m@v2", for: "production")
        #expect(eval.failures.map(\.rule) == ["latency_p95_ms <= 40"])
        try repo.annotate("m@v2", metrics: ["latency_p95_ms": 35], message: "load test")
        #expect(try repo.resolve("m@v2") == v2)
        #expect(try repo.metrics(of: v2) == ["accuracy": 0.95, "latency_p95_ms": 35])
        _ = try repo.promote(PromoteRequest(revision: "m@v2", stage: "production"))
        // v1 fails every rule at once, and all are listed.
        let all = try repo.evaluate("m@v1", for: "production")
        #expect(all.failures.count == 3)
    }

    @Test("routing keys split by weight, stably; shadow comes alongside")
    func routing() throws {
        let fixture = try stageFixture(policy: "stages: [canary, shadow]\n")
        let repo = fixture.repo
        let v1 = try repo.resolve("m@v1"), v2 = try repo.resolve("m@v2")
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "production"))
        _ = try repo.promote(PromoteRequest(revision: "m@v2", stage: "canary", weight: 10))
        _ = try repo.promote(PromoteRequest(revision: "m@v2", stage: "shadow"))
        var canary = 0
        for i in 0..<10_000 {
            let d = try repo.route("m", key: "user-\(i)")
            if d.serve.id == v2 { canary += 1 } else { #expect(d.serve.id == v1) }
            #expect(d.shadow?.id == v2)
        }
        #expect(canary > 900 && canary < 1100, "canary served \(canary) of 10000")
        #expect(try repo.route("m", key: "user-7").serve == (try repo.route("m", key: "user-7")).serve)
        // Completing the rollout clears the canary; aborting one restores the earlier state.
        let done = try repo.promote(PromoteRequest(revision: "m@canary", stage: "production"))
        #expect(done.moves.map(\.action) == [.promote, .archive, .complete])
        #expect(try repo.route("m", key: "anyone").serve.id == v2)
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "canary", weight: 50))
        _ = try repo.rollback("m", stage: "canary")
        #expect(try repo.stageState("m", "canary")?.commit == nil)
    }

    @Test("history at a point in time")
    func historyAt() throws {
        let fixture = try stageFixture()
        let repo = fixture.repo
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "production", reason: "launch"))
        let launched = try repo.stageState("m", "production")!.since.time
        #expect(try repo.stageAt("m", stage: "production", time: launched - 10) == nil)
        let at = try repo.stageAt("m", stage: "production", time: launched)
        #expect(at?.toVersion == 1 && at?.reason == "launch\n")
    }
}

@Suite("Stages: cost does not grow with history")
struct StageCostTests {
    /// Appends `count` moves to a stage in one batch (what `count` promotions leave behind).
    func synthesizeHistory(_ repo: Repository, count: Int, commits: [ObjectID]) throws {
        let ref = Repository.stageRef("m", "staging")
        let before = try repo.refs.read(ref)
        var previous = before
        var sequence = try before.map { try repo.objects.readMove($0).sequence } ?? 0
        let batch = repo.newBatch()
        for i in 0..<count {
            sequence += 1
            let move = StageMove(artifact: "m", stage: "staging", sequence: sequence, previous: previous, commit: commits[i % commits.count],
                                 weight: nil, action: .promote, actor: testActor, command: nil, reason: "move \(i)")
            previous = try batch.put(move)
        }
        try batch.commit()
        try repo.refs.update(ref, from: before, to: previous!, actor: testActor, message: "synthesized")
    }

    /// Objects read by a promote, a resolve, a route and a rollback.
    func work(_ repo: Repository) throws -> [Int] {
        func count(_ body: () throws -> Void) throws -> Int {
            let start = repo.objects.readCount.load(ordering: .relaxed)
            try body()
            return repo.objects.readCount.load(ordering: .relaxed) - start
        }
        return [
            try count { _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "staging")) },
            try count { _ = try repo.resolve("m@staging") },
            try count { _ = try repo.resolve("m@staging~1") },
            try count { _ = try repo.route("m", key: "k") },
            try count { _ = try repo.rollback("m", stage: "staging") },
        ]
    }

    @Test("promote, resolve and rollback read the same number of objects after 10 or 10,000 moves")
    func constantWork() throws {
        let fixture = try stageFixture()
        let repo = fixture.repo
        _ = try repo.promote(PromoteRequest(revision: "m@v1", stage: "production"))
        let commits = [try repo.resolve("m@v1"), try repo.resolve("m@v2")]
        try synthesizeHistory(repo, count: 10, commits: commits.reversed())
        let short = try work(repo)
        try synthesizeHistory(repo, count: 10_000, commits: commits.reversed())
        #expect(try repo.stageState("m", "staging")!.sequence > 10_000)
        let long = try work(repo)
        #expect(short == long, "work after 10 moves \(short), after 10,000 moves \(long)")
        #expect(long.allSatisfy { $0 < 20 })
    }
}

@Suite("Policy file")
struct PolicyTests {
    @Test("a syntax error names file, line and column")
    func syntaxError() {
        let e = #expect(throws: MVCError.self) { try Policy.parse("rules:\n  production:\n    from: [staging\n", path: "mvc.yaml") }
        #expect(e?.message.hasPrefix("invalid policy 'mvc.yaml:") == true)
        let pos = e?.message.dropFirst("invalid policy 'mvc.yaml:".count).prefix { $0 != "'" }
        #expect(pos.map { $0.split(separator: ":").count == 2 && $0.split(separator: ":").allSatisfy { Int($0) != nil } } == true, "\(e?.message ?? "")")
    }

    @Test("unknown keys, stages and malformed rules point at their line")
    func semanticErrors() {
        let unknownKey = #expect(throws: MVCError.self) { try Policy.parse("rules:\n  production:\n    metrcs: []\n") }
        #expect(unknownKey?.message.contains("mvc.yaml:3:5") == true, "\(unknownKey?.message ?? "")")
        let unknownStage = #expect(throws: MVCError.self) { try Policy.parse("rules:\n  canary:\n    kinds: [model]\n") }
        #expect(unknownStage?.message.contains("unknown stage 'canary'") == true)
        let badRule = #expect(throws: MVCError.self) { try Policy.parse("rules:\n  production:\n    metrics:\n      - accuracy => 0.9\n") }
        #expect(badRule?.message.contains("mvc.yaml:4:9") == true, "\(badRule?.message ?? "")")
    }

    @Test("a full policy parses")
    func full() throws {
        let p = try Policy.parse("""
        stages: [canary, shadow]
        archive_replaced: false
        rules:
          production:
            from: [staging, canary]
            kinds: [model]
            metrics: [accuracy >= 0.92, latency_p95_ms <= 40]
            require: {inputs: [dataset], clean_code: true}
        """)
        #expect(p.stages == ["staging", "production", "archived", "canary", "shadow"])
        #expect(!p.archiveReplaced)
        let r = try #require(p.rules["production"])
        #expect(r.from == ["staging", "canary"] && r.kinds == [.model] && r.requiredInputs == ["dataset"] && r.requireCleanCode)
        #expect(r.metrics.map(\.text) == ["accuracy >= 0.92", "latency_p95_ms <= 40"])
    }
}
