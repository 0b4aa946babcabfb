import ArgumentParser
import MVC

struct CommitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Store files or directories as the next version of an artifact.",
        discussion: "Prints NAME@vN and the commit id. Re-committing unchanged files with no new metadata makes no new version."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Files or directories inside the work tree.")
    var paths: [String]

    @Option(name: .long, help: "Artifact name, e.g. iris or vision/resnet50.")
    var name: String

    @Option(name: [.short, .long], help: "Commit message.")
    var message: String = ""

    @Option(name: .long, help: "model, dataset, config or other (default: the artifact's kind, or other).")
    var kind: String?

    @Option(name: .long, help: "An input it was made from: NAME@REV[:ROLE] (repeatable).")
    var input: [String] = []

    @Option(name: .long, help: "A parameter KEY=VALUE (repeatable).")
    var param: [String] = []

    @Option(name: .long, help: "A metric KEY=NUMBER (repeatable).")
    var metric: [String] = []

    @Option(name: .long, help: "Also tag this version with a semantic version, e.g. 1.4.0.")
    var version: String?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            var kindValue: ArtifactKind?
            if let kind {
                guard let k = ArtifactKind(rawValue: kind) else {
                    throw MVCError(.invalidArgument, "unknown kind '\(kind)'", hint: "use one of: model, dataset, config, other")
                }
                kindValue = k
            }
            var inputs: [InputSpec] = []
            for i in input { inputs.append(try InputSpec.parse(i)) }
            var params: [String: String] = [:], metrics: [String: Double] = [:]
            for p in param {
                let (k, v) = try splitPair(p, what: "parameter")
                params[k] = v
            }
            for m in metric {
                let (k, v) = try splitPair(m, what: "metric")
                guard let d = Double(v), d.isFinite else {
                    throw MVCError(.invalidArgument, "metric '\(k)' is not a number: '\(v)'", hint: "give metrics as KEY=NUMBER, e.g. accuracy=0.93")
                }
                metrics[k] = d
            }
            let request = CommitRequest(paths: paths, name: name, message: message, kind: kindValue, inputs: inputs,
                                        params: params, metrics: metrics, semver: version, baseDirectory: global.baseDirectory)
            let result = try repo.commit(request, progress: global.progress())
            for w in result.warnings { warn(w) }
            if !result.unchanged { mirrorAfterChange(repo) }
            if global.json {
                printJSON(result)
            } else {
                let tag = result.semver.map { " (\($0))" } ?? ""
                let note = result.unchanged ? " (unchanged)" : ""
                print("\(result.name)@v\(result.version) \(result.id.hex)\(tag)\(note)")
            }
        }
    }
}

func splitPair(_ s: String, what: String) throws(MVCError) -> (String, String) {
    guard let eq = s.firstIndex(of: "=") else {
        throw MVCError(.invalidArgument, "\(what) '\(s)' is not KEY=VALUE", hint: "e.g. --\(what == "metric" ? "metric accuracy=0.93" : "param lr=0.01")")
    }
    return (String(s[..<eq]), String(s[s.index(after: eq)...]))
}
