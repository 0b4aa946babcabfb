// Bad input to the stage commands: each is refused with one clear `error:` line (plus hints), a
// non-zero exit, and moves nothing.

import Foundation
import Testing

/// A policy file with a mistake, and where mvc must say the mistake is.
struct BadPolicy: Sendable, CustomTestStringConvertible {
    var label: String
    var yaml: String
    /// `mvc.yaml:LINE:` (1-based), which the message must contain.
    var line: Int
    var word: String
    var testDescription: String { label }
}

@Suite("Stages: bad input")
struct StageBadInputTests {
    @Test("an unknown stage is named, with the stages that exist")
    func unknownStage() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production")
        let before = try sb.stageSnapshot("iris-mlp")
        for args in [["promote", "iris-mlp@v1", "--to", "prod"], ["check", "iris-mlp@v1", "--for", "prod"],
                     ["rollback", "iris-mlp", "--stage", "prod"], ["demote", "iris-mlp", "--stage", "prod"],
                     ["history", "iris-mlp", "--stage", "prod"]] {
            let r = try sb.mvcFails(args, mentioning: "unknown stage 'prod'")
            #expect(r.stderr.contains("staging, production, archived"), "the known stages are listed: \(r)")
        }
        // Declared stages are listed too, and become valid.
        try sb.writePolicy("stages: [canary, shadow]\n")
        let r = try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "prod"], mentioning: "unknown stage 'prod'")
        #expect(r.stderr.contains("staging, production, archived, canary, shadow"), "\(r)")
        #expect(try sb.stageSnapshot("iris-mlp") == before)
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "canary", "--weight", "5")
        // A name that cannot be a stage at all.
        try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "Bad Stage"], mentioning: "stage name")
        try p.expectIntact()
    }

    @Test("a version of another artifact cannot be promoted or rolled back to")
    func otherArtifactsCommit() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production")
        let before = try sb.stageSnapshot("iris-mlp")
        let datasetPrefix = String(p.iris.id.prefix(12))
        for rev in ["iris-mlp@\(datasetPrefix)", "iris-mlp@\(p.iris.id)"] {
            let r = try sb.mvcFails(["promote", rev, "--to", "staging"], mentioning: "iris")
            #expect(r.stderr.contains("not of 'iris-mlp'"), "the error says whose commit it is: \(r)")
        }
        let r = try sb.mvcFails(["rollback", "iris-mlp", "--stage", "production", "--to", "iris@v1"], mentioning: "iris@v1")
        #expect(r.stderr.contains("not of 'iris-mlp'"), "\(r)")
        try sb.mvcFails(["rollback", "iris-mlp", "--stage", "production", "--to", p.iris.id], mentioning: "not of 'iris-mlp'")
        #expect(try sb.stageSnapshot("iris-mlp") == before, "nothing moved")
        #expect(try sb.stageStates("iris").isEmpty, "and nothing moved for the dataset either")
        try p.expectIntact()
    }

    @Test("rolling back a stage that never moved says there is no history")
    func rollbackWithoutHistory() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let before = try sb.stageSnapshot("iris-mlp")
        try sb.mvcFails(["rollback", "iris-mlp", "--stage", "production"], mentioning: "no history")
        try sb.mvcFails(["rollback", "iris-mlp", "--stage", "staging", "--to", "iris-mlp@v1"], mentioning: "no history")
        try sb.mvcFails(["rollback", "nope", "--stage", "production"], mentioning: "nope")
        #expect(try sb.stageSnapshot("iris-mlp") == before)
        try p.expectIntact()
    }

    static let badPolicies: [BadPolicy] = [
        BadPolicy(label: "a key indented wrongly", yaml: """
            stages: [canary, shadow]
            rules:
              production:
                from: [staging]
               metrics: [accuracy >= 0.92]

            """, line: 5, word: "mvc.yaml:5:"),
        BadPolicy(label: "a metric rule without a number", yaml: """
            rules:
              production:
                metrics:
                  - accuracy >= 0.92
                  - latency_p95_ms <=

            """, line: 5, word: "latency_p95_ms <="),
        BadPolicy(label: "a tab for indentation", yaml: "stages: [canary, shadow]\nrules:\n  production:\n\tfrom: [staging]\n",
                  line: 4, word: "mvc.yaml:4:"),
        // The mistake is an unclosed bracket or quote on line 4; the parser notices it later (on
        // line 5, or at the end of the file), so the message must name line 4 as well.
        BadPolicy(label: "an unclosed bracket", yaml: """
            stages: [canary, shadow]
            rules:
              production:
                from: [staging
                metrics: [accuracy >= 0.92]

            """, line: 4, word: "']'"),
        BadPolicy(label: "an unclosed quote", yaml: """
            stages: [canary, shadow]
            rules:
              production:
                from: "staging
                metrics: [accuracy >= 0.92]

            """, line: 4, word: "invalid policy"),
        BadPolicy(label: "an unknown key", yaml: """
            stages: [canary]

            rulez:
              production: {from: [staging]}

            """, line: 3, word: "rulez"),
    ]

    @Test("a policy file with a mistake is reported with its line and column", arguments: badPolicies)
    func badPolicy(_ c: BadPolicy) throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.writePolicy(c.yaml)
        let before = try sb.stageSnapshot("iris-mlp")
        for args in [["promote", "iris-mlp@v1", "--to", "staging"], ["check", "iris-mlp@v1", "--for", "production"]] {
            let r = try sb.mvcFails(args, mentioning: "invalid policy")
            let first = r.stderrLines.first ?? ""
            let locations = first.matches(of: #/mvc\.yaml:([0-9]+):([0-9]+)/#).map { (line: Int($0.output.1) ?? 0, column: Int($0.output.2) ?? 0) }
            #expect(!locations.isEmpty, "the error names mvc.yaml:LINE:COLUMN: \(r)")
            #expect(locations.contains { $0.line == c.line && $0.column >= 1 }, "the error points at line \(c.line): \(r)")
            #expect(first.contains(c.word), "\(r)")
        }
        #expect(try sb.stageSnapshot("iris-mlp") == before)
        try p.expectIntact()
    }

    @Test("a rule on a metric the version lacks says it is missing and how to attach one")
    func missingMetric() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.writePolicy("""
            rules:
              staging:
                metrics: [f1 >= 0.8]

            """)
        let before = try sb.stageSnapshot("iris-mlp")
        let r = try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "staging"], mentioning: "f1 >= 0.8")
        let first = r.stderrLines.first ?? ""
        #expect(first.contains("no metric 'f1'"), "\(r)")
        #expect(first.contains("mvc metric iris-mlp@v1 f1=VALUE"), "\(r)")
        let check = try sb.mvc(["check", "iris-mlp@v1", "--for", "staging", "--json"])
        #expect(check.status == 1, "\(check)")
        let e = try JSONDecoder().decode(EvaluationJSON.self, from: check.stdoutData)
        #expect(e.outcomes.count == 1 && e.outcomes.first?.passed == false)
        #expect(e.outcomes.first?.detail.contains("mvc metric iris-mlp@v1 f1=VALUE") == true, "\(e)")
        #expect(try sb.stageSnapshot("iris-mlp") == before)

        // Attaching it makes the rule pass.
        try sb.mvcOK("metric", "iris-mlp@v1", "f1=0.85")
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "staging")
        #expect(try sb.stageState("iris-mlp", "staging")?.commit == p.model.id)
        try p.expectIntact()
    }

    @Test("a retired version never serves traffic: archived takes no traffic weight")
    func noTrafficForArchived() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let v2 = try p.commitModelV2()
        try sb.mvcOK("promote", "iris-mlp@v2", "--to", "production")
        try sb.mvcOK("retire", "iris-mlp@v1", "-m", "superseded")
        try sb.mvcFails(["promote", "iris-mlp@v1", "--to", "canary", "--weight", "100"], mentioning: "unknown stage")

        // Without --force, a retired version must not be put back in front of users by way of
        // its `archived` stage and a weight.
        let r = try sb.mvc(["promote", "iris-mlp@v1", "--to", "archived", "--weight", "100"])
        #expect(r.status != 0, "a weight on 'archived' routes traffic to a retired version: \(r)")
        for key in ["user-1", "user-2"] {
            let d = try sb.json(RouteDecisionJSON.self, ["resolve", "iris-mlp", "--key", key])
            #expect(d.serve.stage == "production" && d.serve.id == v2.id, "\(key) is served \(d.serve.stage) v\(d.serve.version)")
        }
        try p.expectIntact()
    }
}
