import ArgumentParser
import Foundation
import MVC

@main
struct MVCCommand: ParsableCommand {
    /// With `MVC_REPORT_PEAK_RSS=1`, prints `mvc: peak RSS <KiB> KiB` on stderr at exit: the
    /// high-water mark of this process's own memory (VmHWM). Tests and benchmarks use it because a
    /// parent's wait4 figure can include the parent's own memory (vfork-style spawns).
    static func main() {
        if ProcessInfo.processInfo.environment["MVC_REPORT_PEAK_RSS"] == "1" {
            atexit {
                guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
                      let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                      let kib = line.split(separator: " ").dropFirst().first else { return }
                FileHandle.standardError.write(Data("mvc: peak RSS \(kib) KiB\n".utf8))
            }
        }
        // Runs the command; exits (through atexit) with its status.
        let command: any ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do { var c = command; try c.run() } catch { exit(withError: error) }
        Foundation.exit(0)
    }

    static let configuration = CommandConfiguration(
        commandName: "mvc",
        abstract: "Model version control: a content-addressed store for models, datasets and configs.",
        subcommands: [
            InitCommand.self, CommitCommand.self, LogCommand.self, ShowCommand.self, LsCommand.self,
            CheckoutCommand.self, StatusCommand.self, LineageCommand.self, ArtifactsCommand.self,
            PromoteCommand.self, RollbackCommand.self, DemoteCommand.self, RetireCommand.self, StagesCommand.self,
            HistoryCommand.self, MetricCommand.self, CheckCommand.self, ResolveCommand.self, CardCommand.self,
            RemoteCommand.self, PushCommand.self, FetchCommand.self, PullCommand.self, GCCommand.self,
            MirrorCommand.self, HooksCommand.self, HookCommand.self,
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
