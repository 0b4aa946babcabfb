import ArgumentParser
import MVC

struct FsckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fsck", abstract: "Verify every object's id and every ref's target.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let report = try repo.fsck(progress: global.progress())
            if global.json { printJSON(report) } else {
                for p in report.problems { print("error: \(p.subject): \(p.problem.escapingControlCharacters)") }
                print("checked \(report.objectsChecked) objects, \(report.refsChecked) refs: \(report.problems.isEmpty ? "no problems" : "\(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")")
            }
            if !report.ok { throw MVCError(.corruptObject, "the store has \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")", hint: "restore the affected objects from a copy or remote") }
        }
    }
}
