import ArgumentParser
import MVC

struct LineageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lineage", abstract: "Show what a version was made from (or, with --down, what was made from it).")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Revision.")
    var revision: String

    @Flag(name: .long, help: "Walk downstream: every version that used this one, recursively.")
    var down = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let nodes = try repo.lineage(revision, downstream: down)
            if global.json { printJSON(nodes); return }
            for n in nodes {
                let indent = String(repeating: "  ", count: n.depth)
                let role = n.role.map { "\($0): " } ?? ""
                print("\(indent)\(role)\(n.artifact)@v\(n.version) (\(n.kind.rawValue)) \(n.id.short)\(n.repeated ? " (see above)" : "")")
            }
        }
    }
}
