import ArgumentParser
import MVC

struct ArtifactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "artifacts", abstract: "List every artifact with its latest version.")

    @OptionGroup var global: GlobalOptions

    struct Row: Encodable { var name: String, kind: String, version: Int, id: String }

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            var rows: [Row] = []
            for name in try repo.artifactNames() {
                guard let head = try repo.head(of: name) else { continue }
                let c = try repo.objects.readCommit(head)
                rows.append(Row(name: name, kind: c.kind.rawValue, version: c.version, id: head.hex))
            }
            if global.json { printJSON(rows); return }
            print(columns(rows.map { [$0.name, $0.kind, "v\($0.version)", String($0.id.prefix(12))] }))
        }
    }
}
