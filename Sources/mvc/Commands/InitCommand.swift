import ArgumentParser
import MVC

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create an mvc store (.mvc) in a directory.")

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The work tree's root (default: the current directory).")
    var path: String?

    @Option(help: ArgumentHelp("Chunk sizes MIN/AVG/MAX for the store's chunking, e.g. 32K/128K/512K (the default).",
                               valueName: "sizes"))
    var chunking: String?

    struct Output: Encodable { var workTree: String, store: String, formatVersion: Int }

    func run() throws {
        try runReporting { () throws(MVCError) in
            let target = path.map { $0.hasPrefix("/") ? $0 : global.baseDirectory + "/" + $0 } ?? global.baseDirectory
            let parameters = try chunking.map { (text) throws(MVCError) in try ChunkerParameters.parse(text) } ?? .standard
            let repo = try Repository.initialize(at: target, chunking: parameters)
            if global.json {
                printJSON(Output(workTree: repo.workTree, store: repo.storeDirectory, formatVersion: repo.config.formatVersion))
            } else {
                print("Initialized empty mvc store in \(repo.storeDirectory)")
            }
        }
    }
}
