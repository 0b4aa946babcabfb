import ArgumentParser
import MVC

@main
struct MVCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mvc",
        abstract: "Model version control: a content-addressed store for models, datasets and configs.",
        subcommands: [
            InitCommand.self, CommitCommand.self, LogCommand.self, ShowCommand.self, LsCommand.self,
            CheckoutCommand.self, StatusCommand.self, LineageCommand.self, ArtifactsCommand.self,
            CatObjectCommand.self, FsckCommand.self, VersionCommand.self,
        ]
    )
}

/// `mvc version`. Not the usual root `--version` flag: argument-parser would add that flag to every
/// subcommand, where it clashes with `mvc commit --version SEMVER`.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print mvc's version and the store format it reads.")

    @Flag(name: .long, help: "Print machine-readable JSON.")
    var json = false

    struct Output: Encodable { var version: String, formatVersion: Int }

    func run() {
        if json {
            printJSON(Output(version: MVCVersion.string, formatVersion: StoreConfig.currentFormatVersion))
        } else {
            print("mvc \(MVCVersion.string) (store format \(StoreConfig.currentFormatVersion))")
        }
    }
}
