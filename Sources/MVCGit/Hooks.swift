public import MVCCore
internal import Foundation

/// Git hooks that keep a code checkout and its artifacts in step. Each hook file only calls
/// `mvc hook NAME "$@"`; the logic is here. See docs/GIT.md.
public enum GitHooks {
    public static let names = ["post-checkout", "post-merge", "pre-commit", "pre-push"]
    static let marker = "# installed by mvc"

    /// Files larger than this may not be committed to git when mvc tracks artifacts (`pre-commit`).
    public static let largeFileBytes: UInt64 = 10 << 20

    public struct InstallReport: Sendable, Codable, Equatable {
        public var installed: [String]
        public var alreadyInstalled: [String]
        /// Hooks another tool wrote: left alone, with how to chain mvc into them.
        public var skipped: [String]
    }

    /// Where git runs hooks from: `git rev-parse --git-path hooks` honours `core.hooksPath` and
    /// linked worktrees; `.git/hooks` if git cannot say.
    static func hooksDirectory(_ mirror: GitMirror) -> String {
        let r = git(["rev-parse", "--git-path", "hooks"], in: mirror.gitWorkTree)
        let path = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, !path.isEmpty else { return mirror.gitDirectory + "/hooks" }
        return path.hasPrefix("/") ? path : mirror.gitWorkTree + "/" + path
    }

    /// A single-quoted shell word.
    static func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The hook file: git runs hooks in the work tree's root, so a store in a subdirectory is
    /// named relative to it (`-C`).
    static func script(_ name: String, mvcPath: String, storeDirectory: String?) -> String {
        let dir = storeDirectory.map { " -C " + shellQuote($0) } ?? ""
        return "#!/bin/sh\n\(marker): the logic lives in 'mvc hook'; 'mvc hooks uninstall' removes it\n"
            + "m=\(shellQuote(mvcPath)); [ -x \"$m\" ] || m=$(command -v mvc) || { echo \"mvc hook: mvc not found, skipping\" >&2; exit 0; }; exec \"$m\" hook\(dir) \(name) \"$@\"\n"
    }

    /// Writes the four hooks; never overwrites a hook mvc did not write.
    public static func install(_ mirror: GitMirror, repo: Repository, mvcPath: String) throws(MVCError) -> InstallReport {
        let dir = hooksDirectory(mirror)
        let root = mirror.gitWorkTree
        let storeDir: String? = repo.workTree == root ? nil : String(repo.workTree.dropFirst(root.count + 1))
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw MVCError(.io, "cannot create '\(dir)': \(error.localizedDescription)")
        }
        var report = InstallReport(installed: [], alreadyInstalled: [], skipped: [])
        for name in names {
            let path = dir + "/" + name
            let wanted = script(name, mvcPath: mvcPath, storeDirectory: storeDir)
            if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
                if existing == wanted { report.alreadyInstalled.append(name); continue }
                if !existing.contains(marker) { report.skipped.append(name); continue }
            }
            do {
                try Data(wanted.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
            } catch {
                throw MVCError(.io, "cannot write hook '\(path)': \(error.localizedDescription)")
            }
            report.installed.append(name)
        }
        return report
    }

    /// Removes the hooks mvc wrote (and only those).
    public static func uninstall(_ mirror: GitMirror) -> [String] {
        var removed: [String] = []
        for name in names {
            let path = hooksDirectory(mirror) + "/" + name
            if let existing = try? String(contentsOfFile: path, encoding: .utf8), existing.contains(marker) {
                try? FileManager.default.removeItem(atPath: path)
                removed.append(name)
            }
        }
        return removed
    }

    /// True while git is rebasing: hooks then do nothing.
    static func rebasing(_ mirror: GitMirror) -> Bool {
        ["rebase-merge", "rebase-apply"].contains { FileManager.default.fileExists(atPath: mirror.gitDirectory + "/" + $0) }
    }

    /// What a hook run has to say, and whether git may go on.
    public struct Outcome: Sendable {
        public var messages: [String] = []
        /// False only when the hook refuses (pre-commit); everything else lets git go on.
        public var allow = true
    }

    /// Runs hook `name` with git's arguments (and, for pre-push, git's stdin lines).
    public static func run(_ name: String, arguments: [String], repo: Repository, mirror: GitMirror, stdin: String = "") -> Outcome {
        var out = Outcome()
        if rebasing(mirror) { return out }
        do throws(MVCError) {
            switch name {
            case "post-checkout":
                // Arguments: previous HEAD, new HEAD, 1 for a branch checkout (0 for a file checkout).
                guard arguments.count >= 3, arguments[2] == "1" else { return out }
                out.messages += try restore(repo)
            case "post-merge":
                out.messages += try restore(repo)
            case "pre-commit":
                out = try preCommit(repo, mirror: mirror)
            case "pre-push":
                out.messages += try prePush(repo, mirror: mirror, remote: arguments.first ?? "origin")
            default:
                out.messages.append("mvc hook: unknown hook '\(name)'; nothing done")
            }
        } catch {
            // Never block git over mvc trouble the user cannot fix here: say why and go on.
            out.messages.append("mvc hook \(name): \(error.message.escapingControlCharacters) (git goes on)")
            if let hint = error.hint { out.messages.append("hint: \(hint)") }
            // A staged mvc.lock that does not parse is the user's to fix: refuse that commit.
            out.allow = !(name == "pre-commit" && error.code == .badConfig)
        }
        return out
    }

    /// Checks out what `mvc.lock` names; files already in place are skipped (stat cache).
    static func restore(_ repo: Repository) throws(MVCError) -> [String] {
        let lock = try repo.lockFile()
        var messages: [String] = []
        var done = Set<ObjectID>()
        for e in lock.entries where done.insert(e.commit).inserted {
            guard try repo.objects.contains(e.commit) else {
                messages.append("mvc: \(e.artifact)@v\(e.version) (for '\(e.path)') is not in this store; run 'mvc mirror import'")
                continue
            }
            do throws(MVCError) {
                let r = try repo.checkout(e.commit.hex)
                if !r.written.isEmpty || !r.removed.isEmpty {
                    messages.append("mvc: \(r.revision): \(r.written.count) file\(r.written.count == 1 ? "" : "s") restored, \(r.removed.count) removed")
                }
            } catch {
                messages.append("mvc: could not restore \(e.artifact)@v\(e.version): \(error.message.escapingControlCharacters)")
            }
        }
        return messages
    }

    static func git(_ args: [String], in dir: String) -> (status: Int32, out: String) {
        guard let r = Subprocess.run(["git", "-C", dir] + args, inheritStandardError: true) else { return (127, "") }
        return (r.status, r.text)
    }

    /// Refuses a git commit that adds a file mvc tracks, or a large file in a work tree with mvc
    /// artifacts, or an `mvc.lock` naming versions missing from the store.
    static func preCommit(_ repo: Repository, mirror: GitMirror) throws(MVCError) -> Outcome {
        var out = Outcome()
        let gitRoot = mirror.gitWorkTree
        let staged = git(["diff", "--cached", "--name-only", "-z", "--diff-filter=AMRC"], in: gitRoot).out
            .split(separator: "\0").map(String.init)
        let prefix = repo.workTree == gitRoot ? "" : String(repo.workTree.dropFirst(gitRoot.count + 1)) + "/"
        var refused: [String] = []
        // The work tree's mvc.lock says what mvc tracks; if it does not parse, say so but do not
        // block unrelated commits (a staged mvc.lock is checked on its own below).
        var lock = LockFile()
        do throws(MVCError) { lock = try repo.lockFile() } catch {
            out.messages.append("mvc: \(error.message) (tracked paths not checked)")
        }
        for path in staged {
            guard prefix.isEmpty || path.hasPrefix(prefix) else { continue }
            let rel = String(path.dropFirst(prefix.count))
            if rel == LockFile.fileName { continue }
            if let e = lock.entries.first(where: { rel == $0.path || rel.hasPrefix($0.path + "/") }) {
                refused.append("'\(path)' is tracked by mvc as part of \(e.artifact)")
                continue
            }
            // The staged blob's size, not the work tree's (the file may have changed or gone).
            let sized = git(["cat-file", "-s", ":" + path], in: gitRoot)
            if sized.status == 0, let size = UInt64(sized.out.trimmingCharacters(in: .whitespacesAndNewlines)), size > largeFileBytes {
                refused.append("'\(path)' is \(size >> 20) MiB")
            }
        }
        if staged.contains(prefix + LockFile.fileName) {
            let text = git(["show", ":" + prefix + LockFile.fileName], in: gitRoot).out
            do throws(MVCError) {
                let staged = try LockFile.parse(text, path: LockFile.fileName)
                for e in staged.entries where try !repo.objects.contains(e.commit) {
                    refused.append("\(LockFile.fileName) names \(e.artifact)@v\(e.version) (\(e.commit.short)), which is not in the mvc store")
                }
            } catch {
                refused.append("the staged \(error.message)")
            }
        }
        if !refused.isEmpty {
            out.allow = false
            out.messages.append("error: mvc refuses this git commit: " + refused.joined(separator: "; "))
            out.messages.append("hint: store artifacts with 'mvc commit PATH --name NAME' (they are then git-ignored); 'git restore --staged PATH' unstages a file")
        }
        return out
    }

    /// Mirrors the store, then pushes every `refs/mvc/...` ref to the same remote (explicit
    /// refspecs: a glob is refused by some transports), without running hooks again.
    /// Then, when the store has a default mvc remote, pushes the artifact bytes there too, so a
    /// clone of the code can fetch what its mvc.lock names.
    static func prePush(_ repo: Repository, mirror: GitMirror, remote: String) throws(MVCError) -> [String] {
        _ = try mirror.sync()
        var messages: [String] = []
        let refs = try mirror.git.refNames(glob: "refs/mvc/*")
        if !refs.isEmpty {
            let r = git(["push", "--no-verify", "--quiet", remote] + refs.map { "\($0):\($0)" }, in: mirror.gitWorkTree)
            if r.status != 0 {
                messages.append("mvc: pushing refs/mvc/ to '\(remote)' failed (exit \(r.status)); the code push goes on. Retry with: git push \(remote) 'refs/mvc/*:refs/mvc/*'")
            } else {
                messages.append("mvc: pushed \(refs.count) ref\(refs.count == 1 ? "" : "s") under refs/mvc/ to '\(remote)'")
            }
        }
        guard !(try repo.remotes()).isEmpty, let store = try? repo.remote(nil) else { return messages }
        do throws(MVCError) {
            let p = try store.push()
            messages.append("mvc: pushed \(p.objectsSent) object\(p.objectsSent == 1 ? "" : "s") to mvc remote '\(p.remote)'"
                            + (p.rejected.isEmpty ? "" : "; rejected \(p.rejected.joined(separator: ", ")) (run 'mvc fetch')"))
        } catch {
            messages.append("mvc: pushing artifacts to mvc remote '\(store.config.name)' failed: \(error.message.escapingControlCharacters); the code push goes on. Retry with: mvc push")
        }
        return messages
    }
}
