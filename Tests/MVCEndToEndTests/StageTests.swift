// Stages, end to end: promote to staging, a gated promotion to production that fails listing every
// failed rule and passes once the missing metric is attached, dry runs and `mvc check`, a canary
// rollout with a shadow, rollback, retire, history at a point in time, and model cards.

import Foundation
import Testing

/// The issue's gate, as a user would write it (flow style).
let gatedPolicy = """
    rules:
      production: {from: [staging], metrics: [accuracy >= 0.92, latency_p95_ms <= 40], require: {inputs: [dataset]}}

    """

@Suite("Stages: promote, gate, roll out, roll back, retire, audit")
struct StageTests {
    @Test("promote to staging records who, when, why and the command")
    func promoteToStaging() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        #expect(try sb.mvcOK("stages").stdout == "no stages set\n")
        #expect(try sb.mvcOK("history", "iris-mlp").stdout == "no stage moves yet\n")

        let r = try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging", "-m", "first candidate")
        #expect(r.stdout == "iris-mlp@staging: (empty) -> v1 (promote)\n")
        #expect(r.stderr.isEmpty, "\(r)")

        let states = try sb.stageStates("iris-mlp")
        #expect(states.count == 1)
        let staging = try #require(states.first)
        #expect(staging.stage == "staging" && staging.commit == p.model.id && staging.version == 1)
        #expect(staging.weight == nil && staging.sequence == 1)
        #expect(staging.since == SignatureJSON(name: Sandbox.authorName, email: Sandbox.authorEmail, time: Sandbox.authorTime, tzOffsetMinutes: 0))

        let history = try sb.stageHistory("iris-mlp")
        #expect(history.count == 1)
        let move = try #require(history.first)
        #expect(move.action == "promote" && move.stage == "staging" && move.from == nil && move.to == p.model.id)
        #expect(move.fromVersion == nil && move.toVersion == 1)
        #expect(move.reason == "first candidate\n")
        #expect(move.command == "mvc promote iris-mlp@v1 --to staging -m 'first candidate'")
        #expect(move.move == staging.move)

        // NAME@staging is a revision.
        #expect(try sb.show("iris-mlp@staging").id == p.model.id)

        // Promoting the same version again moves nothing.
        let again = try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging")
        #expect(again.stdout == "nothing moved\n")
        #expect(try sb.stageHistory("iris-mlp").count == 1)
        try p.expectIntact()
    }

    @Test("a gated promotion fails listing every failed rule, moves nothing, then passes once the metric is attached")
    func gatedPromotion() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.writePolicy(gatedPolicy)
        // v2 fails every rule: not in staging, accuracy too low, no latency, no dataset input.
        try sb.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--input", "train-config@v1", "--metric", "accuracy=0.90")

        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging", "-m", "candidate")
        let before = try sb.stageSnapshot("iris-mlp")
        let idBefore = try sb.show("iris-mlp@v1").id
        #expect(idBefore == p.model.id)

        let all = try sb.mvcFails(["promote", "iris-mlp@v2", "--to", "production"], mentioning: "does not meet the rules for production")
        let allLine = all.stderrLines.first ?? ""
        for rule in ["from: staging", "accuracy >= 0.92", "latency_p95_ms <= 40", "requires input: dataset"] {
            #expect(allLine.contains(rule), "the error line names the failed rule '\(rule)': \(all)")
        }
        #expect(allLine.contains("accuracy is 0.9") && allLine.contains("no input with role 'dataset'"), "\(all)")
        #expect(try sb.stageSnapshot("iris-mlp") == before, "a refused promotion moves nothing")

        // v1 is in staging, accurate enough and made from a dataset: only the latency is missing.
        let one = try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "production"], mentioning: "latency_p95_ms <= 40")
        let oneLine = one.stderrLines.first ?? ""
        #expect(oneLine.contains("no metric 'latency_p95_ms'"), "\(one)")
        #expect(oneLine.contains("mvc metric iris-mlp@v1 latency_p95_ms="), "the error says how to attach the metric: \(one)")
        for passing in ["from: staging", "accuracy >= 0.92", "requires input"] {
            #expect(!oneLine.contains(passing), "a rule that passed is not listed as failed: \(one)")
        }
        #expect(one.stdout.isEmpty)
        #expect(try sb.stageSnapshot("iris-mlp") == before, "a refused promotion moves nothing")
        #expect(try sb.stageState("iris-mlp", "production") == nil)

        // Attach the metric: an annotation, the version keeps its id.
        let metric = try sb.mvcOK("metric", "iris-mlp@v1", "latency_p95_ms=35", "-m", "load test")
        #expect(metric.stdout.hasPrefix("annotated iris-mlp@v1 with latency_p95_ms=35 ("), "\(metric)")
        let after = try sb.show("iris-mlp@v1")
        #expect(after.id == idBefore, "attaching a metric does not change the version's id")
        #expect(after.version == 1 && after.metrics["accuracy"] == 0.93)
        #expect(try sb.json([LogEntryJSON].self, ["log", "iris-mlp"]).map(\.version) == [2, 1])

        let ok = try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production", "-m", "launch")
        #expect(ok.stdout == "iris-mlp@production: (empty) -> v1 (promote)\n")
        let production = try #require(try sb.stageState("iris-mlp", "production"))
        #expect(production.commit == idBefore && production.version == 1)
        #expect(try sb.stageState("iris-mlp", "staging")?.commit == idBefore, "staging still holds it")
        #expect(try sb.stageState("iris-mlp", "archived") == nil, "nothing was replaced, so nothing is archived")
        let newest = try #require(try sb.stageHistory("iris-mlp", stage: "production").first)
        #expect(newest.action == "promote" && newest.reason == "launch\n" && newest.toVersion == 1)
        try p.expectIntact()
    }

    @Test("--dry-run and 'mvc check' evaluate the gate without moving anything")
    func dryRunAndCheck() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.writePolicy(gatedPolicy)
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging")
        let before = try sb.stageSnapshot("iris-mlp")

        // Failing: exit 1, a table of every rule on stdout, one error line.
        let check = try sb.mvcFails(["check", "iris-mlp@v1", "--for", "production"], mentioning: "does not meet the rules for production")
        #expect(check.status == 1, "\(check)")
        let table = check.stdoutLines
        #expect(table.count == 5, "\(check)")
        #expect(table.filter { $0.hasPrefix("FAIL  latency_p95_ms <= 40") }.count == 1, "\(check)")
        #expect(table.filter { $0.hasPrefix("pass  ") }.count == 3, "\(check)")
        #expect(table.last == "iris-mlp@v1 -> production: refused (1 rule failed)", "\(check)")

        let checkJSON = try sb.mvc(["check", "iris-mlp@v1", "--for", "production", "--json"])
        #expect(checkJSON.status == 1, "\(checkJSON)")
        let evaluation = try JSONDecoder().decode(EvaluationJSON.self, from: checkJSON.stdoutData)
        #expect(evaluation.revision == "iris-mlp@v1" && evaluation.stage == "production")
        #expect(evaluation.outcomes.map(\.rule) == ["from: staging", "accuracy >= 0.92", "latency_p95_ms <= 40", "requires input: dataset"])
        #expect(evaluation.outcomes.map(\.passed) == [true, true, false, true])
        #expect(!evaluation.passed)

        let dry = try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "production", "--dry-run"], mentioning: "would not be promoted")
        #expect(dry.stdout.contains("FAIL  latency_p95_ms <= 40"), "\(dry)")
        let dryJSON = try sb.mvc(["promote", "iris-mlp@v1", "--to", "production", "--dry-run", "--json"])
        #expect(dryJSON.status != 0, "\(dryJSON)")
        #expect(try JSONDecoder().decode(EvaluationJSON.self, from: dryJSON.stdoutData) == evaluation)
        #expect(try sb.stageSnapshot("iris-mlp") == before, "check and a dry run move nothing")

        // Passing: exit 0, every rule passes, and still nothing moves.
        try sb.mvcOK("metric", "iris-mlp@v1", "latency_p95_ms=35")
        let metricSnapshot = try sb.stageSnapshot("iris-mlp")
        let pass = try sb.mvcOK("check", "iris-mlp@v1", "--for", "production")
        #expect(pass.stdoutLines.last == "iris-mlp@v1 -> production: allowed", "\(pass)")
        #expect(pass.stdoutLines.dropLast().allSatisfy { $0.hasPrefix("pass  ") }, "\(pass)")
        let passJSON = try sb.json(EvaluationJSON.self, ["check", "iris-mlp@v1", "--for", "production"])
        #expect(passJSON.passed && passJSON.outcomes.count == 4)
        let detail = try #require(passJSON.outcomes.first { $0.rule == "latency_p95_ms <= 40" })
        #expect(detail.detail == "latency_p95_ms is 35")

        let dryPass = try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production", "--dry-run")
        #expect(dryPass.stdoutLines.last == "iris-mlp@v1 -> production: allowed", "\(dryPass)")
        #expect(try sb.stageSnapshot("iris-mlp") == metricSnapshot, "a dry run that passes moves nothing either")

        // A stage without rules.
        #expect(try sb.mvcOK("check", "iris-mlp@v1", "--for", "staging").stdout == "iris-mlp@v1 -> staging: no rules for staging\n")
        try p.expectIntact()
    }

    @Test("canary at 10% with a shadow, completing the rollout, rolling back, NAME@production~1")
    func canaryRollout() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.writePolicy("""
            stages: [canary, shadow]
            rules:
              production:
                from: [staging, canary]

            """)
        let v2 = try p.commitModelV2("--metric", "accuracy=0.95")
        try sb.write("model/model.safetensors", Data((0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
        let v3 = try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--input", "iris@v1")

        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging")
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production", "-m", "launch")
        let canary = try sb.mvcOK("promote", "iris-mlp@v2", "--to", "canary", "--weight", "10", "-m", "try v2 on 10%")
        #expect(canary.stdout == "iris-mlp@canary: (empty) -> v2 at 10% (promote)\n")
        try sb.mvcOK("promote", "iris-mlp@v3", "--to", "shadow")

        let states = try sb.stageStates("iris-mlp")
        #expect(states.map(\.stage) == ["canary", "production", "shadow", "staging"])
        #expect(states.map(\.version) == [2, 1, 3, 1])
        #expect(states.map(\.weight) == [10, nil, nil, nil])

        // `mvc stages` lines its columns up.
        let human = try sb.mvcOK("stages").stdout
        expectAlignedColumns(human, rows: states.map { s in
            [s.artifact, s.stage, s.version.map { "v\($0)" } ?? "(empty)", s.commit.map { String($0.prefix(12)) } ?? "-",
             s.weight.map { "\($0)%" } ?? "", "2026-01-01 00:00:00 +0000", s.since.name]
        })

        // 300 keys through the CLI (about 10 ms a process). The distribution over 10,000 keys is
        // covered by the unit test MVCCoreTests.StageTests.routing; here: roughly 10%, every key's
        // answer agrees with its bucket, and the shadow comes alongside.
        var served: [String: RouteDecisionJSON] = [:]
        for i in 0..<300 {
            let d = try sb.json(RouteDecisionJSON.self, ["resolve", "iris-mlp", "--key", "user-\(i)"])
            let bucket = try #require(d.bucket)
            #expect((0..<10_000).contains(bucket))
            if bucket < 1_000 {
                #expect(d.serve == RouteJSON(stage: "canary", artifact: "iris-mlp", version: 2, id: v2.id), "bucket \(bucket)")
            } else {
                #expect(d.serve == RouteJSON(stage: "production", artifact: "iris-mlp", version: 1, id: p.model.id), "bucket \(bucket)")
            }
            #expect(d.shadow == RouteJSON(stage: "shadow", artifact: "iris-mlp", version: 3, id: v3.id))
            #expect(d.weights == ["canary": 10] && d.key == "user-\(i)")
            served["user-\(i)"] = d
        }
        let toCanary = served.values.filter { $0.serve.stage == "canary" }.count
        #expect((15...51).contains(toCanary), "canary served \(toCanary) of 300 keys (expected 5% to 17%)")
        // Stable: the same key gets the same answer again, in both output forms.
        for i in stride(from: 0, to: 300, by: 30) {
            let key = "user-\(i)"
            #expect(try sb.json(RouteDecisionJSON.self, ["resolve", "iris-mlp", "--key", key]) == served[key])
            let text = try sb.mvcOK("resolve", "iris-mlp", "--key", key).stdout
            let s = try #require(served[key]).serve
            #expect(text == "iris-mlp@v\(s.version) \(s.stage) \(s.id)\nshadow: iris-mlp@v3 \(v3.id)\n")
        }
        // Without a key: production.
        let noKey = try sb.json(RouteDecisionJSON.self, ["resolve", "iris-mlp"])
        #expect(noKey.serve.stage == "production" && noKey.bucket == nil && noKey.shadow?.version == 3)

        // Completing the rollout: production = v2, canary cleared, the old production version archived.
        let done = try sb.mvcOK("promote", "iris-mlp@canary", "--to", "production", "-m", "rollout done")
        #expect(done.stdout == """
            iris-mlp@production: v1 -> v2 (promote)
            iris-mlp@archived: (empty) -> v1 (archive)
            iris-mlp@canary: v2 -> (empty) (complete)

            """)
        let after = Dictionary(uniqueKeysWithValues: try sb.stageStates("iris-mlp").map { ($0.stage, $0) })
        #expect(after["production"]?.commit == v2.id && after["production"]?.weight == nil)
        #expect(after["canary"]?.commit == nil && after["canary"]?.version == nil && after["canary"]?.weight == nil)
        #expect(after["archived"]?.commit == p.model.id)
        #expect(after["shadow"]?.commit == v3.id)
        for key in ["user-1", "user-2", "anyone"] {
            let d = try sb.json(RouteDecisionJSON.self, ["resolve", "iris-mlp", "--key", key])
            #expect(d.serve.id == v2.id && d.serve.stage == "production" && d.weights.isEmpty)
        }
        #expect(try sb.show("iris-mlp@production~1").id == p.model.id)

        // Rolling back: production goes back to v1, recorded as a move with its reason.
        let rollback = try sb.mvcOK("rollback", "iris-mlp", "--stage", "production", "-m", "p95 regression")
        #expect(rollback.stdout == "iris-mlp@production: v2 -> v1 (rollback)\n")
        #expect(try sb.stageState("iris-mlp", "production")?.commit == p.model.id)
        let production = try sb.stageHistory("iris-mlp", stage: "production")
        #expect(production.map(\.action) == ["rollback", "promote", "promote"])
        #expect(production.map(\.toVersion) == [1, 2, 1])
        #expect(production.map(\.sequence) == [3, 2, 1])
        #expect(production.first?.reason == "p95 regression\n" && production.first?.fromVersion == 2)
        #expect(production.first?.command == "mvc rollback iris-mlp --stage production -m 'p95 regression'")
        #expect(try sb.show("iris-mlp@production").id == p.model.id)
        #expect(try sb.show("iris-mlp@production~1").id == v2.id)
        #expect(try sb.show("iris-mlp@production~2").id == p.model.id)
        #expect(try sb.show("iris-mlp@production~0").id == p.model.id)
        try sb.mvcFails(["show", "iris-mlp@production~3"], mentioning: "only 2 earlier values")
        try p.expectIntact()
    }

    @Test("retire archives a version and refuses to promote it without --force; nothing is deleted")
    func retire() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let v2 = try p.commitModelV2()
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging")

        // Still in staging: refused, nothing changes.
        let before = try sb.stageSnapshot("iris-mlp")
        try sb.mvcFails(["retire", "iris-mlp@v1", "-m", "why"], mentioning: "still in staging")
        #expect(try sb.stageSnapshot("iris-mlp") == before)

        try sb.mvcOK("promote", "iris-mlp@v2", "--to", "staging")
        let r = try sb.mvcOK("retire", "iris-mlp@v1", "-m", "superseded by v2")
        #expect(r.stdout == "iris-mlp@archived: (empty) -> v1 (retire)\nretired iris-mlp@v1\n")
        let archived = try #require(try sb.stageState("iris-mlp", "archived"))
        #expect(archived.commit == p.model.id && archived.version == 1)
        let move = try #require(try sb.stageHistory("iris-mlp", stage: "archived").first)
        #expect(move.action == "retire" && move.reason == "superseded by v2\n")

        // Refused for promotion, with a message saying why; --force overrides.
        let staged = try sb.stageSnapshot("iris-mlp")
        try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "staging"], mentioning: "retired")
        try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "production"], mentioning: "retired")
        #expect(try sb.stageSnapshot("iris-mlp") == staged)
        let forced = try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging", "--force", "-m", "hotfix")
        #expect(forced.stdout == "iris-mlp@staging: v2 -> v1 (promote)\n")
        #expect(try sb.stageState("iris-mlp", "staging")?.commit == p.model.id)

        // Kept: the card says it is retired, its lineage and bytes are all there.
        let card = try sb.json(CardJSON.self, ["card", "iris-mlp@v1"])
        #expect(card.retired)
        #expect(!(try sb.json(CardJSON.self, ["card", "iris-mlp@v2"]).retired))
        #expect(try sb.mvcOK("card", "iris-mlp@v1").stdout.contains("**Retired.**"))
        let lineage = try sb.json([LineageNodeJSON].self, ["lineage", "iris-mlp@v1"])
        #expect(Set(lineage.map(\.id)) == [p.model.id, p.iris.id, p.config.id])
        let out = sb.scratch + "/v1"
        try sb.mvcOK("checkout", "iris-mlp@v1", "-o", out)
        #expect(try sb.readAbsolute(out + "/model/model.safetensors") == Fixtures.data("model/model.safetensors"))
        #expect(try sb.show("iris-mlp@v2").id == v2.id)
        try p.expectIntact()
    }

    @Test("history --at names what a stage held at a time, who put it there and why")
    func historyAt() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let v2 = try p.commitModelV2()
        // MVC_AUTHOR_DATE fixes the time of every move, so each move gets its own.
        let t1 = Sandbox.authorTime + 3_600, t2 = Sandbox.authorTime + 7_200, t3 = Sandbox.authorTime + 10_800
        try sb.mvcOK(["promote", "iris-mlp@v1", "--to", "production", "-m", "launch"], env: Sandbox.actor("Alice", at: t1))
        try sb.mvcOK(["promote", "iris-mlp@v2", "--to", "production", "-m", "better accuracy"], env: Sandbox.actor("Bob", at: t2))
        try sb.mvcOK(["rollback", "iris-mlp", "--stage", "production", "-m", "p95 regression"], env: Sandbox.actor("Carol", at: t3))

        func at(_ time: String, stage: String = "production", env: [String: String] = [:]) throws -> String {
            try StageTests.historyAt(sb, time, stage: stage, env: env)
        }
        let v1 = p.model.id
        #expect(try at("\(t1 - 1)") == "iris-mlp@production had not been set at \(t1 - 1)\n")
        #expect(try sb.mvcOK("history", "iris-mlp", "--stage", "production", "--at", "\(t1 - 1)", "--json").stdout == "null\n")
        #expect(try at("\(t1 + 1_800)") == """
            iris-mlp@production at \(t1 + 1_800): v1 \(v1)
            since 2026-01-01 01:00:00 +0000, promote by Alice <alice@example.com>: launch

            """)
        #expect(try at("\(t1)").hasPrefix("iris-mlp@production at \(t1): v1 \(v1)\n"), "a move counts from its own second")
        #expect(try at("2026-01-01T02:30:00Z") == """
            iris-mlp@production at 2026-01-01T02:30:00Z: v2 \(v2.id)
            since 2026-01-01 02:00:00 +0000, promote by Bob <bob@example.com>: better accuracy

            """)
        #expect(try at("2026-01-01 02:30", env: ["TZ": "UTC"]).hasPrefix("iris-mlp@production at 2026-01-01 02:30: v2 \(v2.id)\n"))
        #expect(try at("\(t3 + 60)") == """
            iris-mlp@production at \(t3 + 60): v1 \(v1)
            since 2026-01-01 03:00:00 +0000, rollback by Carol <carol@example.com>: p95 regression

            """)
        // Bob's promotion also archived v1, at the same time and by the same person.
        #expect(try at("\(t2 + 1)", stage: "archived").hasSuffix("archive by Bob <bob@example.com>: replaced in production by v2\n"))
        #expect(try at("\(t2 - 1)", stage: "archived") == "iris-mlp@archived had not been set at \(t2 - 1)\n")

        let entry = try sb.json(StageMoveJSON.self, ["history", "iris-mlp", "--stage", "production", "--at", "\(t2 + 5)"])
        #expect(entry.toVersion == 2 && entry.to == v2.id && entry.fromVersion == 1 && entry.action == "promote")
        #expect(entry.actor == SignatureJSON(name: "Bob", email: "bob@example.com", time: t2, tzOffsetMinutes: 0))
        #expect(entry.reason == "better accuracy\n" && entry.sequence == 2)

        // The whole trail, newest first.
        let trail = try sb.stageHistory("iris-mlp")
        #expect(trail.map(\.actor.name) == ["Carol", "Bob", "Bob", "Alice"])
        #expect(trail.map(\.stage) == ["production", "production", "archived", "production"])
        try sb.mvcFails(["history", "iris-mlp", "--at", "\(t2)"], mentioning: "--at needs --stage")
        try sb.mvcFails(["history", "iris-mlp", "--stage", "production", "--at", "yesterday-ish"], mentioning: "cannot read the time")
        try p.expectIntact()
    }

    /// `mvc history iris-mlp --stage STAGE --at TIME`, its output.
    static func historyAt(_ sb: Sandbox, _ time: String, stage: String, env: [String: String]) throws -> String {
        let r = try sb.mvcOK(["history", "iris-mlp", "--stage", stage, "--at", time], env: env)
        return r.stdout
    }

    @Test("a model card shows provenance, metrics with their source, stage history and files with SHA-256")
    func modelCard() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let v2 = try p.commitModelV2("--metric", "accuracy=0.95", "--param", "lr=0.005", "-m", "fine-tuned")
        let annotation = try sb.json([String: String].self, ["metric", "iris-mlp@v2", "latency_p95_ms=35", "-m", "load test"])
        let annotationID = try #require(annotation["annotation"])
        try sb.mvcOK("promote", "iris-mlp@v2", "--to", "staging", "-m", "candidate")
        let sha = try sb.sha256(ofFile: Fixtures.path("model/model-v2.safetensors"))
        let size = try Fixtures.data("model/model-v2.safetensors").count

        let md = try sb.mvcOK("card", "iris-mlp@v2").stdout
        for needle in [
            "# iris-mlp v2\n",
            "fine-tuned",
            "| Id | `\(v2.id)` |",
            "| Stages | staging |",
            "## Provenance",
            "| dataset | iris@v1 | `\(p.iris.id.prefix(12))` |",
            "| config | train-config@v1 | `\(p.config.id.prefix(12))` |",
            "Code: git commit `\(p.codeCommit ?? "?")`.",
            "| lr | 0.005 |",
            "| accuracy | 0.95 | commit |",
            "| latency_p95_ms | 35 | annotation \(annotationID.prefix(12)) by \(Sandbox.authorName) |",
            "## Stage history",
            "| staging | promote: empty → v2 | \(Sandbox.authorName) | candidate |",
            "| model/model.safetensors | \(size) | `\(sha)` |",
        ] {
            #expect(md.contains(needle), "the card should contain '\(needle)':\n\(md)")
        }

        let card = try sb.json(CardJSON.self, ["card", "iris-mlp@v2"])
        #expect(card.artifact == "iris-mlp" && card.version == 2 && card.id == v2.id && card.kind == "model")
        #expect(card.inputs.sorted { $0.role < $1.role } == [
            .init(role: "config", artifact: "train-config", version: 1, id: p.config.id),
            .init(role: "dataset", artifact: "iris", version: 1, id: p.iris.id),
        ])
        #expect(card.metrics["accuracy"] == .init(value: 0.95, source: "commit"))
        #expect(card.metrics["latency_p95_ms"] == .init(value: 35, source: "annotation \(annotationID.prefix(12)) by \(Sandbox.authorName)"))
        #expect(card.files == [.init(path: "model/model.safetensors", kind: "file", size: UInt64(size), id: sha)])
        #expect(card.totalBytes == UInt64(size))
        #expect(card.stages == ["staging"] && !card.retired && card.params == ["lr": "0.005"])
        #expect(card.stageHistory.map(\.reason) == ["candidate\n"])

        let written = try sb.mvcOK("card", "iris-mlp@v2", "-o", "card.md")
        #expect(written.stdout == "wrote card.md\n")
        #expect(try sb.read("card.md") == Data(md.utf8), "-o writes the same Markdown")
        try p.expectIntact()
    }
}
