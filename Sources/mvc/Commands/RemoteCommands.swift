import ArgumentParser
import Foundation
import MVC

struct RemoteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remote",
        abstract: "Manage remotes: a directory (/path, file:///path) or S3 (s3://bucket/prefix).",
        subcommands: [RemoteAdd.self, RemoteList.self, RemoteRemove.self]
    )
}

struct RemoteAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add", abstract: "Add a remote.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Its name, e.g. origin.") var name: String
    @Argument(help: "Its URL: /path, file:///path or s3://bucket/prefix.") var url: String

    func run() throws {
        try runReporting { () throws(MVCError) in
            try global.repository().addRemote(name, url: url)
            if global.json { printJSON(RemoteConfig(name: name, url: url)) } else { print("added remote \(name) \(url)") }
        }
    }
}

struct RemoteList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List remotes.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let all = try global.repository().remotes()
            if global.json { printJSON(all); return }
            if all.isEmpty { print("no remotes"); return }
            print(columns(all.map { [$0.name, $0.url] }))
        }
    }
}

struct RemoteRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a remote (its data stays where it is).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Its name.") var name: String

    func run() throws {
        try runReporting { () throws(MVCError) in
            try global.repository().removeRemote(name)
            if !global.json { print("removed remote \(name)") } else { printJSON(["removed": name]) }
        }
    }
}

struct PushCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Send what a remote lacks (objects in packs) and move its refs by compare-and-swap.",
        discussion: "Only missing objects travel; an interrupted push resumes where it stopped. A remote ref that has moved to something this store does not descend from is rejected (fetch first)."
    )
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The remote (default: the only one, or origin), then revisions (default: everything).") var arguments: [String] = []

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let (remoteName, revisions) = try splitRemote(repo, arguments)
            let r = try repo.remote(remoteName).push(revisions: revisions, progress: global.progress())
            if global.json { printJSON(r) } else {
                print("pushed to \(r.remote): \(r.objectsSent) object\(r.objectsSent == 1 ? "" : "s") (\(humanBytes(r.bytesSent))) in \(r.packsSent) pack\(r.packsSent == 1 ? "" : "s"), \(r.refsUpdated.count) ref\(r.refsUpdated.count == 1 ? "" : "s") updated")
            }
            if !r.rejected.isEmpty {
                throw MVCError(.refMoved, "rejected \(r.rejected.joined(separator: ", ")): the remote has moved past what this store has",
                               hint: "run 'mvc fetch \(r.remote)' and decide, then push again")
            }
        }
    }
}

/// `[REMOTE] [REV...]`: the first argument is a remote when one has that name.
func splitRemote(_ repo: Repository, _ args: [String]) throws(MVCError) -> (String?, [String]) {
    guard let first = args.first else { return (nil, []) }
    if try repo.remotes().contains(where: { $0.name == first }) { return (first, Array(args.dropFirst())) }
    return (nil, args)
}

struct FetchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "fetch", abstract: "Get what this store lacks from a remote, verifying every object, and fast-forward local refs.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The remote (default: the only one, or origin), then revisions (default: everything).") var arguments: [String] = []

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let (remoteName, revisions) = try splitRemote(repo, arguments)
            let r = try repo.remote(remoteName).fetch(revisions: revisions, progress: global.progress())
            mirrorAfterChange(repo)
            if global.json { printJSON(r); return }
            print("fetched from \(r.remote): \(r.objectsReceived) object\(r.objectsReceived == 1 ? "" : "s") (\(humanBytes(r.bytesReceived))), \(r.refsUpdated.count) ref\(r.refsUpdated.count == 1 ? "" : "s") updated")
            for d in r.diverged { print("diverged: \(d) (kept the local value; the remote's is under refs/remotes/)") }
        }
    }
}

struct PullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pull", abstract: "Fetch what revisions need from a remote and check them out.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The remote (optional), then one or more revisions.") var arguments: [String]
    @Option(name: .shortAndLong, help: "Check out into this directory instead of the work tree.") var output: String?
    @Flag(name: .long, help: "Overwrite local changes.") var force = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            let (remoteName, revisions) = try splitRemote(repo, arguments)
            guard !revisions.isEmpty else { throw MVCError(.invalidArgument, "pull needs a revision", hint: "e.g. mvc pull origin iris-mlp@production") }
            let f = try repo.remote(remoteName).fetch(revisions: revisions, progress: global.progress())
            mirrorAfterChange(repo)
            let out = output.map { $0.hasPrefix("/") ? $0 : global.baseDirectory + "/" + $0 }
            var results: [CheckoutResult] = []
            for rev in revisions { results.append(try repo.checkout(rev, into: out, force: force, progress: global.progress())) }
            if global.json { printJSON(results); return }
            print("fetched \(f.objectsReceived) object\(f.objectsReceived == 1 ? "" : "s") (\(humanBytes(f.bytesReceived)))")
            for r in results { print("\(r.revision) -> \(r.directory): \(r.written.count) written, \(r.unchanged) unchanged") }
        }
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Delete objects nothing can reach any more (after a grace period).",
        discussion: "Kept: everything reachable from a ref, a ref-log entry (rolled-back versions stay restorable), mvc.lock, or written or re-used in the grace period (default 14 days)."
    )
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Report what would be deleted; delete nothing.") var dryRun = false
    @Option(name: .long, help: "Say why an object is kept or would go.") var explain: String?
    @Option(name: .long, help: "Grace period in days.") var graceDays: Double = 14
    @Option(name: .long, help: "Collect on this remote instead (objects no remote ref reaches; takes the remote's gc lock).") var remote: String?

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            if let remote {
                if explain != nil { throw MVCError(.invalidArgument, "--explain works on the local store only", hint: "drop --remote, or run 'mvc gc --remote \(remote) --dry-run'") }
                let r = try repo.remote(remote).gc(dryRun: dryRun)
                if global.json { printJSON(r); return }
                print("\(dryRun ? "would delete" : "deleted") \(r.deleted.count) object\(r.deleted.count == 1 ? "" : "s") (\(humanBytes(r.bytesFreed))) on \(remote); kept \(r.reachable) reachable; \(r.packsRewritten) pack\(r.packsRewritten == 1 ? "" : "s") rewritten, \(r.packsDeleted) deleted")
                return
            }
            let grace = Int64(graceDays * 86_400)
            if let explain {
                let id = try repo.resolve(explain)
                let text = try repo.explainGC(id, grace: grace)
                if global.json { printJSON(["id": id.hex, "verdict": text]) } else { print("\(id.hex): \(text)") }
                return
            }
            let r = try repo.gc(dryRun: dryRun, grace: grace)
            if global.json { printJSON(r); return }
            let verb = dryRun ? "would delete" : "deleted"
            print("\(verb) \(r.deleted.count) object\(r.deleted.count == 1 ? "" : "s") (\(humanBytes(r.bytesFreed))); kept \(r.reachable) reachable, \(r.keptYoung) too recent to collect")
            if dryRun { for id in r.deleted.prefix(50) { print("  \(id.hex)") } }
        }
    }
}
