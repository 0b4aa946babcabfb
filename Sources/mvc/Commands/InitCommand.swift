import ArgumentParser
import MVC

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create an mvc store (.mvc) in a directory.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The work tree's root (default: the current directory).")
    var path: String?

    struct Output: Encodable { var workTree: String, store: String, formatVersion: Int }

    func run() throws {
        try runReporting { () throws(MVCError) in
            let target = path.map { $0.hasPrefix("/") ? $0 : global.baseDirectory + "/" + $0 } ?? global.baseDirectory
            let repo = try Repository.initialize(at: target)
            if global.json {
                printJSON(Output(workTree: repo.workTree, store: repo.storeDirectory, formatVersion: repo.config.formatVersion))
            } else {
                print("Initialized empty mvc store in \(repo.storeDirectory)")
            }
        }
    }
}
