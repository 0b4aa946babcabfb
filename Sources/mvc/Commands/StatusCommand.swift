import ArgumentParser
import MVC

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show tracked paths that differ from their artifact's latest version.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let report = try repo.status()
            if global.json { printJSON(report); return }
            if let p = report.interrupted {
                warn("'\(p)' is being rewritten in place by a checkout, or was left partly rewritten by one that did not finish; if no checkout is running, check out a version of its artifact to finish it")
            }
            if report.changes.isEmpty {
                print(report.clean.isEmpty ? "nothing tracked yet" : (report.clean.count == 1 ? "clean: 1 artifact matches its latest version" : "clean: \(report.clean.count) artifacts match their latest version"))
                return
            }
            print(columns(report.changes.map { [$0.change.rawValue, $0.artifact, $0.path] }))
        }
    }
}
