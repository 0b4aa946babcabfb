import ArgumentParser
import MVC

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a version: provenance, parameters, metrics, files.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Revision: NAME, NAME@v3, NAME@1.4.0 or an id prefix.")
    var revision: String

    struct Input: Encodable { var id: String, role: String, artifact: String, version: Int }
    struct Output: Encodable {
        var id: String, artifact: String, version: Int, kind: String, tree: String, parents: [String], paths: [String]
        var inputs: [Input], code: CodeRef?, params: [String: String], metrics: [String: Double], environment: [String: String]
        var author: String, email: String, time: Int64, timezone: String, message: String, files: Int, bytes: UInt64
    }

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let (id, c) = try repo.resolveCommit(revision)
            let files = try repo.files(ofTree: c.tree)
            var inputs: [Input] = []
            for i in c.inputs {
                let ic = try repo.objects.readCommit(i.commit)
                inputs.append(Input(id: i.commit.hex, role: i.role, artifact: ic.artifact, version: ic.version))
            }
            let bytes = files.reduce(UInt64(0)) { $0 + $1.size }
            if global.json {
                printJSON(Output(id: id.hex, artifact: c.artifact, version: c.version, kind: c.kind.rawValue, tree: c.tree.hex,
                                 parents: c.parents.map(\.hex), paths: c.paths, inputs: inputs, code: c.code, params: c.params,
                                 metrics: c.metrics, environment: c.environment, author: c.author.name, email: c.author.email,
                                 time: c.author.time, timezone: formatDate(c.author).suffix(5).description, message: c.message,
                                 files: files.count, bytes: bytes))
                return
            }
            var rows: [[String]] = [
                ["commit", id.hex],
                ["artifact", "\(c.artifact)@v\(c.version) (\(c.kind.rawValue))"],
                ["author", "\(c.author.name) <\(c.author.email)>"],
                ["date", formatDate(c.author)],
                ["paths", c.paths.joined(separator: " ")],
                ["files", "\(files.count) (\(humanBytes(bytes)))"],
            ]
            for i in inputs { rows.append(["input", "\(i.artifact)@v\(i.version) as \(i.role) (\(String(i.id.prefix(12))))"]) }
            if let code = c.code { rows.append(["code", "\(code.commit)\(code.dirty ? " (dirty)" : "")"]) }
            for k in c.params.keys.sorted() { rows.append(["param", "\(k) = \(c.params[k]!)"]) }
            for k in c.metrics.keys.sorted() { rows.append(["metric", "\(k) = \(Commit.formatNumber(c.metrics[k]!))"]) }
            for k in c.environment.keys.sorted() { rows.append(["env", "\(k) = \(c.environment[k]!)"]) }
            print(columns(rows))
            if !c.message.isEmpty { print("\n" + c.message.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "    " + $0 }.joined(separator: "\n")) }
        }
    }
}
