import ArgumentParser
import MVC

struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Verify every object's id and every ref's target; with --repair, re-fetch damaged objects from a remote."
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Check this remote's packs and refs instead of the local store.")
    var remote: String?

    @Flag(name: .long, help: "Re-fetch missing or corrupt objects from the remotes that have them.")
    var repair = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            var report: FsckReport
            if let remote {
                report = try repo.remote(remote).fsck(progress: global.progress())
            } else {
                report = try repo.fsck(progress: global.progress())
                if repair && !report.ok {
                    var repaired: [String] = []
                    let damaged = report.problems.compactMap { ObjectID(hex: $0.subject) }
                    for config in try repo.remotes() {
                        let client = try repo.remote(config.name)
                        repaired += try client.repair(damaged.filter { !repaired.contains($0.hex) }).map(\.hex)
                    }
                    if !global.json { for r in repaired { print("repaired \(r)") } }
                    report = try repo.fsck(progress: global.progress())
                }
            }
            if global.json { printJSON(report) } else {
                for p in report.problems { print("error: \(p.subject): \(p.problem.escapingControlCharacters)") }
                print("checked \(report.objectsChecked) objects, \(report.refsChecked) refs: \(report.problems.isEmpty ? "no problems" : "\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")")
            }
            if !report.ok {
                throw MVCError(.corruptObject, "\(remote.map { "remote '\($0)'" } ?? "the store") has \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")",
                               hint: remote == nil && !repair ? "'mvc fsck --repair' re-fetches damaged objects from a remote that has them" : "restore the affected objects from a copy")
            }
        }
    }
}
