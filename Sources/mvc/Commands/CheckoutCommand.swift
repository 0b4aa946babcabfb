import ArgumentParser
import MVC

struct CheckoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkout",
        abstract: "Restore a version's files, byte-exact, into the work tree or a directory.",
        discussion: "Refuses to overwrite files whose bytes are not in the store unless --force."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Revision.")
    var revision: String

    @Option(name: .shortAndLong, help: "Write into this directory instead of the work tree.")
    var output: String?

    @Flag(name: .long, help: "Overwrite local changes.")
    var force = false

    @Flag(name: .customLong("no-in-place"), help: "Replace every file whole; never rewrite a large file's changed chunks in place.")
    var noInPlace = false

    @Argument(parsing: .postTerminator, help: "Only these paths (as 'mvc ls' prints them).")
    var paths: [String] = []

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let out = output.map { $0.hasPrefix("/") ? $0 : global.baseDirectory + "/" + $0 }
            let r = try repo.checkout(revision, into: out, paths: paths, force: force, inPlace: !noInPlace, progress: global.progress())
            for w in r.warnings { warn(w) }
            if global.json { printJSON(r); return }
            let inPlace = r.rewrittenInPlace.isEmpty ? "" : ", \(r.rewrittenInPlace.count) in place"
            print("\(r.revision) -> \(r.directory): \(r.written.count) written (\(humanBytes(r.bytesWritten))\(inPlace)), \(r.unchanged) unchanged, \(r.removed.count) removed")
            for k in r.kept { print("kept untracked '\(k)'") }
        }
    }
}
