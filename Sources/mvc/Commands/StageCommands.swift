import ArgumentParser
import Foundation
import MVC

/// The command line as typed, for the audit trail (quoted where needed, one line).
func recordedCommand() -> String {
    let args = CommandLine.arguments.dropFirst().map { a -> String in
        a.isEmpty || a.contains(where: { " \"'$\\".contains($0) }) ? "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'" : a
    }
    let line = (["mvc"] + args).joined(separator: " ").escapingControlCharacters
    // The audit trail keeps at most 4 KiB of it (a long -m reason is recorded in full anyway).
    return line.utf8.count <= 4000 ? line : String(decoding: Array(line.utf8.prefix(3990)), as: UTF8.self) + " [...]"
}

func describe(_ m: StageHistoryEntry) -> String {
    let from = m.fromVersion.map { "v\($0)" } ?? "(empty)"
    let to = m.toVersion.map { "v\($0)" } ?? "(empty)"
    return "\(m.artifact)@\(m.stage): \(from) -> \(to)\(m.weight.map { " at \($0)%" } ?? "") (\(m.action.rawValue))"
}

func printMoves(_ r: MoveResult, json: Bool) {
    for w in r.warnings { warn(w) }
    if json { printJSON(r); return }
    if r.unchanged && r.moves.isEmpty { print("nothing moved"); return }
    for m in r.moves { print(describe(m)) }
}

struct PromoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Move a stage (staging, production, ...) to a version, if the policy allows it.",
        discussion: "A compare-and-swap of the stage ref: if another process moved it since it was read, nothing moves. Promoting to production moves the replaced version to archived."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The version: NAME@vN, NAME@1.4.0, NAME@STAGE, NAME or an id.") var revision: String
    @Option(name: .long, help: "The stage.") var to: String
    @Option(name: [.short, .long], help: "Why (recorded in the audit trail).") var message: String = ""
    @Option(name: .long, help: "Traffic weight in percent, for a rollout stage such as canary.") var weight: Int?
    @Flag(name: .long, help: "Evaluate the policy without moving anything.") var dryRun = false
    @Flag(name: .long, help: "Promote even a retired version or one that fails the policy.") var force = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let r = try repo.promote(PromoteRequest(revision: revision, stage: to, reason: message, weight: weight, force: force,
                                                    dryRun: dryRun, command: recordedCommand()))
            if !r.moves.isEmpty { mirrorAfterChange(repo) }
            if dryRun {
                if global.json { printJSON(r.evaluation) } else if let e = r.evaluation { printEvaluation(e) }
                if let e = r.evaluation, !e.passed { throw MVCError(.invalidArgument, "\(e.revision) would not be promoted to \(e.stage)") }
                return
            }
            printMoves(r, json: global.json)
        }
    }
}

func printEvaluation(_ e: PolicyEvaluation) {
    if e.outcomes.isEmpty { print("\(e.revision) -> \(e.stage): no rules for \(e.stage)"); return }
    print(columns(e.outcomes.map { [$0.passed ? "pass" : "FAIL", $0.rule, $0.detail] }))
    print("\(e.revision) -> \(e.stage): \(e.passed ? "allowed" : "refused (\(e.failures.count) rule\(e.failures.count == 1 ? "" : "s") failed)")")
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Evaluate the promotion policy for a version and a stage (for CI); exit 1 when it fails.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The version.") var revision: String
    @Option(name: .customLong("for"), help: "The stage it would be promoted to.") var stage: String

    func run() throws {
        try runReporting { () throws(MVCError) in
            let e = try global.repository().evaluate(revision, for: stage)
            if global.json { printJSON(e) } else { printEvaluation(e) }
            if !e.passed { throw MVCError(.invalidArgument, "\(e.revision) does not meet the rules for \(e.stage)") }
        }
    }
}

struct RollbackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Move a stage back to the version it held before its last move (or to --to REV).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Artifact name.") var name: String
    @Option(name: .long, help: "The stage.") var stage: String
    @Option(name: .long, help: "Roll back to this version instead.") var to: String?
    @Option(name: [.short, .long], help: "Why (recorded in the audit trail).") var message: String = ""
    @Flag(name: .long, help: "Roll back even to a retired version.") var force = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let r = try repo.rollback(name, stage: stage, to: to, reason: message, force: force, command: recordedCommand())
            if !r.moves.isEmpty { mirrorAfterChange(repo) }
            printMoves(r, json: global.json)
        }
    }
}

struct DemoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demote", abstract: "Clear a stage of an artifact.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Artifact name.") var name: String
    @Option(name: .long, help: "The stage.") var stage: String
    @Option(name: [.short, .long], help: "Why (recorded in the audit trail).") var message: String = ""

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let r = try repo.demote(name, stage: stage, reason: message, command: recordedCommand())
            mirrorAfterChange(repo)
            printMoves(r, json: global.json)
        }
    }
}

struct RetireCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "retire", abstract: "Archive a version and mark it retired: kept with its lineage, refused for promotion.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The version.") var revision: String
    @Option(name: [.short, .long], help: "Why (recorded in the audit trail).") var message: String = ""
    @Flag(name: .long, help: "Retire it even while it is in another stage.") var force = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let r = try repo.retire(revision, reason: message, force: force, command: recordedCommand())
            mirrorAfterChange(repo)
            if global.json { printJSON(r); return }
            for m in r.moves { print(describe(m)) }
            print("retired \(revision)")
        }
    }
}

struct StagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stages", abstract: "Show what each stage of each artifact (or of one) holds.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Artifact name (default: every artifact).") var name: String?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            var states: [StageState] = []
            if let name {
                try Names.validateArtifact(name)
                guard try repo.head(of: name) != nil else { throw MVCError(.unknownRevision, "no artifact named '\(name)'", hint: "see 'mvc artifacts'") }
                states = try repo.stageStates(name)
            } else {
                for n in try repo.artifactNames() { states.append(contentsOf: try repo.stageStates(n)) }
            }
            if global.json { printJSON(states); return }
            if states.isEmpty { print("no stages set"); return }
            print(columns(states.map { s in
                [s.artifact, s.stage, s.version.map { "v\($0)" } ?? "(empty)", s.commit.map { String($0.hex.prefix(12)) } ?? "-",
                 s.weight.map { "\($0)%" } ?? "", formatDate(s.since), s.since.name]
            }))
        }
    }
}

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "The audit trail of an artifact's stage moves: who moved what, when, why.",
        discussion: "With --stage and --at TIME: what the stage held at that time, who put it there and why. TIME is 'YYYY-MM-DD HH:MM[:SS]' (local time unless it ends in Z or +hh:mm), an ISO 8601 time, or Unix seconds."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Artifact name.") var name: String
    @Option(name: .long, help: "Only this stage.") var stage: String?
    @Option(name: .long, help: "A point in time (needs --stage).") var at: String?
    @Option(name: .long, help: "At most this many moves.") var limit: Int?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            if let at {
                guard let stage else { throw MVCError(.invalidArgument, "--at needs --stage", hint: "e.g. mvc history \(name) --stage production --at '2026-03-01 14:00'") }
                let time = try parseTime(at)
                let entry = try repo.stageAt(name, stage: stage, time: time)
                if global.json { printJSON(entry); return }
                guard let e = entry else { print("\(name)@\(stage) had not been set at \(at)"); return }
                guard let v = e.toVersion, let id = e.to else { print("\(name)@\(stage) was empty at \(at) (cleared \(formatDate(e.actor)) by \(e.actor.name))"); return }
                print("\(name)@\(stage) at \(at): v\(v) \(id.hex)")
                print("since \(formatDate(e.actor)), \(e.action.rawValue) by \(e.actor.name) <\(e.actor.email)>\(e.reason.isEmpty ? "" : ": " + e.reason.trimmingCharacters(in: .whitespacesAndNewlines))")
                return
            }
            let entries = try repo.history(name, stage: stage, limit: limit)
            if global.json { printJSON(entries); return }
            if entries.isEmpty { print("no stage moves yet"); return }
            print(columns(entries.map { e in
                [formatDate(e.actor), e.stage, e.action.rawValue,
                 "\(e.fromVersion.map { "v\($0)" } ?? "-") -> \(e.toVersion.map { "v\($0)" } ?? "-")\(e.weight.map { " (\($0)%)" } ?? "")",
                 e.actor.name, e.reason.split(separator: "\n").first.map(String.init) ?? ""]
            }))
        }
    }
}

/// Parses a point in time for `--at`.
func parseTime(_ s: String) throws(MVCError) -> Int64 {
    if let n = Int64(s) { return n }
    let iso = ISO8601DateFormatter()
    for opts: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds]] {
        iso.formatOptions = opts
        if let d = iso.date(from: s) { return Int64(d.timeIntervalSince1970) }
    }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone.current
    for format in ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd"] {
        f.dateFormat = format
        if let d = f.date(from: s) { return Int64(d.timeIntervalSince1970) }
    }
    throw MVCError(.invalidArgument, "cannot read the time '\(s)'", hint: "use 'YYYY-MM-DD HH:MM', an ISO 8601 time such as 2026-03-01T14:00:00Z, or Unix seconds")
}

struct MetricCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metric", abstract: "Attach metrics to an existing version (an annotation; its id does not change).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The version.") var revision: String
    @Argument(help: "Metrics as KEY=NUMBER.") var metrics: [String]
    @Option(name: [.short, .long], help: "Where they come from, e.g. 'eval on 2026-05 holdout'.") var message: String = ""

    func run() throws {
        try runReporting { () throws(MVCError) in
            var values: [String: Double] = [:]
            for m in metrics {
                let (k, v) = try splitPair(m, what: "metric")
                try Names.validateKey(k, what: "metric")
                guard let d = Double(v), d.isFinite else { throw MVCError(.invalidArgument, "metric '\(k)' is not a number: '\(v)'", hint: "give metrics as KEY=NUMBER") }
                values[k] = d
            }
            guard !values.isEmpty else { throw MVCError(.invalidArgument, "no metrics given", hint: "e.g. mvc metric \(revision) accuracy=0.94") }
            let repo = try global.repository()
            let id = try repo.annotate(revision, metrics: values, message: message)
            mirrorAfterChange(repo)
            if global.json { printJSON(["annotation": id.hex]); return }
            print("annotated \(repo.label(try repo.resolve(revision))) with \(values.keys.sorted().map { "\($0)=\(Commit.formatNumber(values[$0]!))" }.joined(separator: " ")) (\(id.short))")
        }
    }
}

struct ResolveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Which version serves a request: weighted rollout stages by a stable hash of the key, production otherwise; shadow alongside."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Artifact name.") var name: String
    @Option(name: .long, help: "The routing key (user id, request id...).") var key: String?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let d = try global.repository().route(name, key: key)
            if global.json { printJSON(d); return }
            print("\(d.serve.artifact)@v\(d.serve.version) \(d.serve.stage) \(d.serve.id.hex)")
            if let s = d.shadow { print("shadow: \(s.artifact)@v\(s.version) \(s.id.hex)") }
        }
    }
}

struct CardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "card", abstract: "Write a Markdown model card from what the store knows about a version.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The version.") var revision: String
    @Option(name: .shortAndLong, help: "Write to this file instead of stdout.") var output: String?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let card = try global.repository().card(revision)
            if global.json { printJSON(card); return }
            if let output {
                let path = output.hasPrefix("/") ? output : global.baseDirectory + "/" + output
                do { try Data(card.markdown.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                    throw MVCError(.io, "cannot write '\(output)': \(error.localizedDescription)")
                }
                print("wrote \(output)")
            } else {
                print(card.markdown, terminator: "")
            }
        }
    }
}
