import ArgumentParser
import MVC

struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List a version's files with sizes and blob ids.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Revision.")
    var revision: String

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let (_, c) = try repo.resolveCommit(revision)
            let files = try repo.files(ofTree: c.tree)
            if global.json { printJSON(files); return }
            print(columns(files.map { [String($0.size), $0.id.hex, $0.path + ($0.kind == .exec ? "*" : "")] }, rightAlign: [0]))
        }
    }
}
