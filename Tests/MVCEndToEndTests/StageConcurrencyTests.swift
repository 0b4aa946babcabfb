// Concurrent promotions: real `mvc promote` processes started at the same moment against the same
// stage. A stage move is a compare-and-swap of the stage ref, so whatever the interleaving every
// promotion that reports success is one move in the history, every one that fails says why and
// moved nothing, and the history stays one consistent chain.

import Foundation
import Testing

@Suite("Stages: concurrent promotions")
struct StageConcurrencyTests {
    /// What the rounds saw.
    struct Tally { var rounds = 0, successes = 0, conflicts = 0 }

    @Test("simultaneous promotions to production: every success is one move, every failure moved nothing")
    func simultaneousPromotions() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        // Five versions: each process of a round (at most four) promotes a version that neither the
        // stage nor any other process of the round holds, so no promotion is a no-op ("nothing
        // moved") whichever order they run in.
        var ids = [1: p.model.id]
        for v in 2...5 {
            try sb.write("model/model.safetensors", Data("weights of version \(v)\n".utf8))
            let c = try sb.commit("model/model.safetensors", "--name", "iris-mlp")
            try #require(c.version == v)
            ids[v] = c.id
        }
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production")

        var tally = Tally()
        func round(processes: Int) throws {
            let r = tally.rounds
            tally.rounds += 1
            let production = try sb.stageHistory("iris-mlp", stage: "production")
            let archived = try sb.stageHistory("iris-mlp", stage: "archived")
            let current = try #require(production.first?.toVersion)
            // Alternate which versions race, round by round.
            var candidates = (1...5).filter { $0 != current }
            candidates = Array(candidates[(r % candidates.count)...] + candidates[..<(r % candidates.count)])
            let targets = Array(candidates.prefix(processes))

            let started = try targets.map { v in
                try sb.mvcStart(["promote", "iris-mlp@v\(v)", "--to", "production", "-m", "round \(r)"])
            }
            let results = try started.map { try $0.wait() }

            var won: [Int] = []
            for (v, result) in zip(targets, results) {
                if result.status == 0 {
                    #expect(result.stdoutLines.first?.hasSuffix("-> v\(v) (promote)") == true,
                            "round \(r): a success reports its move: \(result)")
                    won.append(v)
                } else {
                    tally.conflicts += 1
                    expectCleanError(result, mentioning: "iris-mlp")
                    #expect(result.stderr.contains("moved since it was read") || result.stderr.contains("locked"),
                            "round \(r): a failed promotion says it lost the race: \(result)")
                    #expect(result.stdout.isEmpty, "round \(r): a failed promotion reports no move: \(result)")
                }
            }
            tally.successes += won.count
            #expect(!won.isEmpty, "round \(r): one of \(targets) must win: \(results)")

            let after = try sb.stageHistory("iris-mlp", stage: "production")
            let newMoves = Array(after.prefix(after.count - production.count).reversed())   // oldest first
            #expect(newMoves.count == won.count,
                    "round \(r): \(won.count) promotions of \(targets) succeeded but production moved \(newMoves.count) times: \(newMoves.map(\.toVersion)); \(results)")
            #expect(newMoves.compactMap(\.toVersion).sorted() == won.sorted(), "round \(r): the moves are the successful promotions")
            // One chain: sequences follow on, and each move starts where the one before it ended.
            var previous = production.first
            for m in newMoves {
                #expect(m.sequence == (previous?.sequence ?? 0) + 1, "round \(r): sequence \(m.sequence) after \(previous?.sequence ?? 0)")
                #expect(m.from == previous?.to, "round \(r): move \(m.sequence) starts from what the stage held")
                #expect(m.action == "promote" && m.reason == "round \(r)\n")
                previous = m
            }
            // The stage holds the last successful move's target.
            let state = try #require(try sb.stageState("iris-mlp", "production"))
            #expect(state.version == newMoves.last?.toVersion && state.commit == newMoves.last?.to, "round \(r)")
            #expect(state.commit == ids[state.version ?? 0])
            // Every successful promotion archived the version it replaced, and nothing else did.
            let archivedAfter = try sb.stageHistory("iris-mlp", stage: "archived")
            let newArchives = Array(archivedAfter.prefix(archivedAfter.count - archived.count).reversed())
            #expect(newArchives.compactMap(\.toVersion) == newMoves.compactMap(\.fromVersion),
                    "round \(r): the replaced versions are archived, once each")
        }

        for _ in 0..<20 { try round(processes: 2) }
        if tally.conflicts == 0 {
            // Two processes never overlapped closely enough: try harder.
            for _ in 0..<20 { try round(processes: 4) }
        }
        #expect(tally.conflicts > 0, "no round produced a conflict (\(tally)); the test did not exercise the race")
        #expect(try sb.stageHistory("iris-mlp", stage: "production").count == tally.successes + 1)

        let fsck = try sb.json(FsckJSON.self, ["fsck"])
        #expect(fsck.problems.isEmpty, "\(fsck.problems.map { "\($0.subject): \($0.problem)" })")
        try p.expectIntact()
    }

    /// The rounds above can leave a process exiting 1 after production moved: it won production,
    /// then lost the race on `archived`. Holding the ref locks by hand makes each case certain:
    /// another mvc "in the middle of an update" of exactly that ref.
    @Test("a promotion that meets a locked ref fails and moves nothing, whichever ref it is")
    func lockedRefs() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let v2 = try p.commitModelV2()
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production")
        let refs = sb.path(".mvc/refs/stages/iris-mlp")

        for stage in ["production", "archived"] {
            let lock = refs + "/\(stage).lock"
            try sb.writeAbsolute(lock, Data())
            let stages = try sb.mvcOK(["stages", "--json"]).stdout
            let history = try sb.mvcOK(["history", "iris-mlp", "--json"]).stdout
            let r = try sb.mvcFails(["promote", "iris-mlp@v2", "--to", "production"], mentioning: "locked")
            #expect(r.stdout.isEmpty, "\(r)")
            let now = try sb.mvcOK("stages").stdout
            #expect(try sb.mvcOK(["stages", "--json"]).stdout == stages,
                    "with \(stage).lock held, a promotion that fails moves nothing:\n\(now)")
            #expect(try sb.mvcOK(["history", "iris-mlp", "--json"]).stdout == history,
                    "with \(stage).lock held, a promotion that fails records no move")
            try FileManager.default.removeItem(atPath: lock)
            // Put things back as they were for the next case, whatever happened.
            if try sb.stageState("iris-mlp", "production")?.commit != p.model.id {
                try sb.mvcOK("rollback", "iris-mlp", "--stage", "production", "--to", "iris-mlp@v1")
            }
        }

        // Once the locks are gone, the promotion goes through, archiving the replaced version.
        let ok = try sb.mvcOK("promote", "iris-mlp@v2", "--to", "production")
        #expect(ok.stdout.hasPrefix("iris-mlp@production: v1 -> v2 (promote)\n"), "\(ok)")
        #expect(try sb.stageState("iris-mlp", "production")?.commit == v2.id)
        #expect(try sb.stageState("iris-mlp", "archived")?.commit == p.model.id)
        try p.expectIntact()
    }
}
