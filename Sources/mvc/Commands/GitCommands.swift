import ArgumentParser
import Foundation
import MVC

/// Mirrors the store into git after a command changed it. Never fails the command: the store is
/// already right, and 'mvc mirror sync' repairs the mirror later. `MVC_MIRROR=0` turns it off.
func mirrorAfterChange(_ repo: Repository) {
    guard ProcessInfo.processInfo.environment["MVC_MIRROR"] != "0" else { return }
    do throws(MVCError) {
        guard let mirror = try GitMirror.open(repo) else { return }
        let r = try mirror.sync()
        for c in r.conflicts {
            warn("git ref '\(c)' was moved by someone else; run 'mvc mirror sync' after checking it")
        }
        for a in r.ahead {
            warn("git ref '\(a)' is ahead of the store (fetched from elsewhere); run 'mvc mirror import'")
        }
    } catch {
        warn("git mirror not updated: \(error.message)")
    }
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data("warning: \(message.escapingControlCharacters)\n".utf8))
}

struct MirrorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirror",
        abstract: "The git mirror of the store under refs/mvc/.",
        subcommands: [MirrorSync.self, MirrorImport.self]
    )
}

struct MirrorSync: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sync", abstract: "Bring refs/mvc/ in the enclosing git repository up to date with the store (idempotent).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Also reset git refs that diverged from the store (never ones ahead of it).") var force = false

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo = try global.repository()
            guard let mirror = try GitMirror.open(repo) else {
                throw MVCError(.gitMirror, "'\(repo.workTree)' is not inside a git work tree", hint: "run 'git init' there first, or move the store into your code's repository")
            }
            let r = try mirror.sync(force: force)
            if global.json { printJSON(r) } else {
                print("mirrored: \(r.commitsWritten) git commit\(r.commitsWritten == 1 ? "" : "s") written, \(r.refsUpdated.count) ref\(r.refsUpdated.count == 1 ? "" : "s") updated")
                for c in r.conflicts { print("conflict: \(c) diverged from the store; left alone (--force resets it)") }
                for a in r.ahead { print("ahead: \(a) has moves the store lacks; run 'mvc mirror import'") }
            }
            if !r.conflicts.isEmpty { throw MVCError(.refMoved, "\(r.conflicts.count) git ref\(r.conflicts.count == 1 ? "" : "s") could not be updated") }
        }
    }
}

struct MirrorImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Recreate the store's commits, versions, stages and history from refs/mvc/ (after git fetch origin 'refs/mvc/*:refs/mvc/*').",
        discussion: "Creates the store at the git work tree's root when there is none. Artifact bytes are not in git: 'mvc checkout' then names the blobs that are missing."
    )
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let repo: Repository
            do throws(MVCError) {
                repo = try global.repository()
            } catch where error.code == .notARepository {
                guard let root = try GitMirror.gitWorkTree(containing: global.baseDirectory) else {
                    throw MVCError(.gitMirror, "not inside a git work tree", hint: "clone the repository first")
                }
                repo = try Repository.initialize(at: root)
            }
            guard let mirror = try GitMirror.open(repo) else {
                throw MVCError(.gitMirror, "'\(repo.workTree)' is not inside a git work tree")
            }
            let r = try mirror.importAll()
            if global.json { printJSON(r); return }
            print("imported \(r.objectsImported) object\(r.objectsImported == 1 ? "" : "s"), set \(r.refsSet.count) ref\(r.refsSet.count == 1 ? "" : "s")")
            for c in r.conflicts { print("kept local \(c): it differs from the mirror") }
        }
    }
}

struct HooksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hooks",
        abstract: "Install or remove the git hooks that keep code and artifacts in step.",
        subcommands: [HooksInstall.self, HooksUninstall.self]
    )
}

func gitMirrorOrFail(_ repo: Repository) throws(MVCError) -> GitMirror {
    guard let mirror = try GitMirror.open(repo) else {
        throw MVCError(.gitMirror, "'\(repo.workTree)' is not inside a git work tree", hint: "hooks belong to a git repository; run 'git init' first")
    }
    return mirror
}

struct HooksInstall: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "install", abstract: "Install post-checkout, post-merge, pre-commit and pre-push hooks (never over someone else's).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let mirror = try gitMirrorOrFail(try global.repository())
            let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
            let self_ = FileManager.default.isExecutableFile(atPath: exe) ? exe : (ProcessInfo.processInfo.arguments.first ?? "mvc")
            let r = try GitHooks.install(mirror, repo: try global.repository(), mvcPath: self_)
            if global.json { printJSON(r); return }
            for h in r.installed { print("installed \(h)") }
            for h in r.alreadyInstalled { print("\(h) already installed") }
            for h in r.skipped {
                print("skipped \(h): another tool's hook is there; to chain mvc, add this line to it: mvc hook \(h) \"$@\"")
            }
        }
    }
}

struct HooksUninstall: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "uninstall", abstract: "Remove the hooks mvc installed (only those).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try runReporting { () throws(MVCError) in
            let removed = GitHooks.uninstall(try gitMirrorOrFail(try global.repository()))
            if global.json { printJSON(removed); return }
            print(removed.isEmpty ? "no mvc hooks installed" : "removed \(removed.joined(separator: ", "))")
        }
    }
}

/// `mvc hook NAME ARGS...`: what the installed hook files call. Exits 0 outside an mvc repository
/// and whenever mvc trouble should not stop git; non-zero only when pre-commit refuses.
struct HookCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hook", abstract: "Run a git hook's logic (called by the installed hooks).", shouldDisplay: false)
    @Option(name: .customShort("C"), help: ArgumentHelp("The store's work tree, relative to git's.", valueName: "dir")) var directory: String?
    @Argument(help: "The hook: post-checkout, post-merge, pre-commit or pre-push.") var name: String
    @Argument(parsing: .allUnrecognized, help: "git's arguments to the hook.") var arguments: [String] = []

    func run() throws {
        guard let repo = try? Repository.discover(from: directory) else { return }
        let mirror: GitMirror
        do throws(MVCError) {
            guard let found = try GitMirror.open(repo) else { return }
            mirror = found
        } catch {
            warn("mvc's \(name) hook did nothing: \(error.message)")   // never stops git
            return
        }
        let stdin = name == "pre-push" ? (String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) ?? "") : ""
        let outcome = GitHooks.run(name, arguments: arguments, repo: repo, mirror: mirror, stdin: stdin)
        for m in outcome.messages { FileHandle.standardError.write(Data((m + "\n").utf8)) }
        if !outcome.allow { throw ExitCode(1) }
    }
}
