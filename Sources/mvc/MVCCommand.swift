import ArgumentParser
import MVC

@main
struct MVCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mvc",
        abstract: "Model version control: a content-addressed store for models, datasets and configs.",
        version: MVCVersion.string,
        subcommands: [
            InitCommand.self, CommitCommand.self, LogCommand.self, ShowCommand.self, LsCommand.self,
            CheckoutCommand.self, StatusCommand.self, LineageCommand.self, ArtifactsCommand.self,
            CatObjectCommand.self, FsckCommand.self,
        ]
    )
}
