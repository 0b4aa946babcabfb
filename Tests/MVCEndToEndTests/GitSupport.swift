// Support for the git mirror and hook tests: run `git` the way a user would (anywhere in the
// sandbox, with extra environment), read what mvc left in git (refs/mvc, trailers, reflogs, LFS
// pointers, mvc.lock), and set up a project whose code lives in git.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// MARK: - JSON mirrors

/// `mvc mirror sync --json`.
struct MirrorReportJSON: Decodable, Equatable {
    var commitsWritten: Int, refsUpdated: [String], conflicts: [String]
}

/// `mvc mirror import --json`.
struct ImportReportJSON: Decodable, Equatable {
    var objectsImported: Int, refsSet: [String], conflicts: [String]
}

/// `mvc hooks install --json`.
struct HookInstallJSON: Decodable, Equatable {
    var installed: [String], alreadyInstalled: [String], skipped: [String]
}

/// One path of `mvc.lock`.
struct LockEntry: Equatable {
    var artifact: String, version: Int, commit: String, kind: String, id: String
}

// MARK: - git

/// The four hooks mvc installs.
let mvcHookNames = ["post-checkout", "post-merge", "pre-commit", "pre-push"]

/// Slightly more than the 10 MiB pre-commit refuses.
let largeFileBytes = (10 << 20) + 1

extension Sandbox {
    /// The environment git (and the hooks it runs) gets: the sandbox's, without mvc's peak-RSS
    /// line, so that a hook's stderr is only what the hook says.
    func gitEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = environment(["MVC_REPORT_PEAK_RSS": "0"])
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `git` in `cwd` (default: the work tree); any exit status.
    func gitRun(_ arguments: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> RunResult {
        try Spawn.run(try Spawn.which("git"), arguments, cwd: cwd ?? work, environment: gitEnvironment(env), scratch: scratch)
    }

    /// Runs `git` and requires exit status 0.
    @discardableResult
    func gitOK(_ arguments: [String], cwd: String? = nil, env: [String: String] = [:],
               sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try gitRun(arguments, cwd: cwd, env: env)
        try #require(r.status == 0, "git failed: \(r)", sourceLocation: sourceLocation)
        return r
    }

    /// `git ...`'s stdout without the trailing newline.
    func gitText(_ arguments: [String], cwd: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try gitOK(arguments, cwd: cwd, sourceLocation: sourceLocation).stdout.trimmingCharacters(in: .newlines)
    }

    /// A private global git configuration (HOME is the sandbox's): default branch `main`, no
    /// signing, no advice noise. Applies to every repository of the sandbox, clones included.
    func writeGitGlobalConfig() throws {
        try writeAbsolute(home + "/.gitconfig", Data("""
            [init]
            \tdefaultBranch = main
            [commit]
            \tgpgsign = false
            [advice]
            \tdetachedHead = false
            [user]
            \tname = E2E Global
            \temail = global@example.com

            """.utf8))
    }

    /// `git init` in `dir` (default: the work tree) on branch `main`, with a local identity.
    func gitInitMain(_ dir: String? = nil) throws {
        let d = dir ?? work
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try gitOK(["init", "-q", "--initial-branch=main"], cwd: d)
        try gitOK(["config", "user.name", "E2E Git"], cwd: d)
        try gitOK(["config", "user.email", "git@example.com"], cwd: d)
        try gitOK(["config", "init.defaultBranch", "main"], cwd: d)
        try gitOK(["config", "commit.gpgsign", "false"], cwd: d)
    }

    /// `git add` then `git commit` of `paths` in `cwd`; returns the new HEAD.
    @discardableResult
    func gitCommitPaths(_ paths: [String], message: String, cwd: String? = nil,
                        sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try gitOK(["add", "--"] + paths, cwd: cwd, sourceLocation: sourceLocation)
        try gitOK(["commit", "-q", "-m", message], cwd: cwd, sourceLocation: sourceLocation)
        return try gitText(["rev-parse", "HEAD"], cwd: cwd, sourceLocation: sourceLocation)
    }

    /// `git for-each-ref refs/mvc` as ref name -> git commit id.
    func mvcGitRefs(in dir: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: String] {
        var out: [String: String] = [:]
        let text = try gitText(["for-each-ref", "--format=%(refname) %(objectname) %(objecttype)", "refs/mvc"], cwd: dir,
                               sourceLocation: sourceLocation)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 3 else { throw E2EError("unexpected for-each-ref line '\(line)'") }
            #expect(f[2] == "commit", "every refs/mvc ref names a commit: \(line)", sourceLocation: sourceLocation)
            out[String(f[0])] = String(f[1])
        }
        return out
    }

    /// The `Mvc-Object:` trailer of a git commit, as git parses it: "KIND SHA256".
    func mvcTrailer(_ rev: String, in dir: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try gitText(["log", "-1", "--format=%(trailers:key=Mvc-Object,valueonly)", rev], cwd: dir, sourceLocation: sourceLocation)
    }

    /// The reflog messages of a ref, newest first.
    func reflog(_ ref: String, in dir: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        try gitText(["reflog", "show", "--format=%gs", ref], cwd: dir, sourceLocation: sourceLocation)
            .split(separator: "\n").map(String.init)
    }

    /// `git fsck --strict` passes, with nothing to say about any object.
    func expectGitFsckClean(in dir: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try gitRun(["fsck", "--strict", "--no-progress", "--no-dangling"], cwd: dir)
        #expect(r.status == 0, "git fsck --strict should pass: \(r)", sourceLocation: sourceLocation)
        let said = (r.stdout + r.stderr).lowercased()
        for bad in ["warning", "error", "missing", "broken", "bad", "invalid"] {
            #expect(!said.contains(bad), "git fsck should not report '\(bad)': \(r)", sourceLocation: sourceLocation)
        }
    }

    /// `git ls-tree -r REV [PATH]` as path -> (mode, blob id).
    func gitTree(_ rev: String, under path: String? = nil, in dir: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: (mode: String, oid: String)] {
        var out: [String: (String, String)] = [:]
        for line in try gitText(["ls-tree", "-r", rev] + (path.map { ["--", $0] } ?? []), cwd: dir, sourceLocation: sourceLocation)
            .split(separator: "\n") {
            guard let tab = line.firstIndex(of: "\t") else { throw E2EError("unexpected ls-tree line '\(line)'") }
            let f = line[..<tab].split(separator: " ")
            guard f.count == 3, f[1] == "blob" else { throw E2EError("unexpected ls-tree line '\(line)'") }
            out[String(line[line.index(after: tab)...])] = (String(f[0]), String(f[2]))
        }
        return out
    }

    /// Every path of `mvc.lock` in `dir` (default: the work tree), parsed from the layout mvc writes.
    func lockEntries(in dir: String? = nil) throws -> [String: LockEntry] {
        try parseLock(String(decoding: try readAbsolute((dir ?? work) + "/mvc.lock"), as: UTF8.self))
    }

    /// Replaces every hook mvc installed so that it points at a binary that does not exist.
    func pointHooksAtMissingBinary() throws {
        for name in mvcHookNames {
            let path = work + "/.git/hooks/" + name
            let text = String(decoding: try readAbsolute(path), as: UTF8.self)
            let rewritten = text.replacing(#/m='[^']*'/#, with: "m='/nonexistent/bin/mvc'")
            #expect(rewritten != text, "the hook names the mvc binary as m='...': \(text)")
            try writeAbsolute(path, Data(rewritten.utf8), mode: 0o755)
        }
    }
}

/// Parses the `mvc.lock` layout (`paths:` then two-space-indented paths with four-space fields).
func parseLock(_ text: String) throws -> [String: LockEntry] {
    var fields: [String: [String: String]] = [:]
    var current: String?
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        if line.hasPrefix("    "), let current, let colon = line.firstIndex(of: ":") {
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            fields[current, default: [:]][key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        } else if line.hasPrefix("  "), line.hasSuffix(":") {
            var p = line.dropFirst(2).dropLast()
            if p.hasPrefix("\"") && p.hasSuffix("\"") { p = p.dropFirst().dropLast() }
            current = String(p)
        }
    }
    var out: [String: LockEntry] = [:]
    for (path, f) in fields {
        guard let artifact = f["artifact"], let v = f["version"].flatMap({ Int($0) }), let commit = f["commit"],
              let kind = f["kind"], let id = f["id"] else { throw E2EError("incomplete mvc.lock entry '\(path)':\n\(text)") }
        out[path] = LockEntry(artifact: artifact, version: v, commit: commit, kind: kind, id: id)
    }
    return out
}

/// The environment that makes mvc record its changes at Unix time `time` (so that moves and
/// versions have a clear order).
func atTime(_ time: Int64) -> [String: String] { ["MVC_AUTHOR_DATE": "\(time) +0000"] }

/// The test process's PATH without any directory holding an `mvc` executable.
func pathWithoutMVC() -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    return path.split(separator: ":").filter { access("\($0)/mvc", X_OK) != 0 }.joined(separator: ":")
}

// MARK: - A project whose code lives in git

/// A fresh sandbox whose work tree is a git repository on `main` (with `train.py` committed) and
/// an mvc store holding `iris` (tagged 1.0.0), `train-config` and `iris-mlp@v1`, each committed at
/// its own time. With `lockCommitted`, `.gitignore` and `mvc.lock` are committed to git too.
struct GitProject {
    let sandbox: Sandbox
    let iris: CommitLine
    let config: CommitLine
    let model: CommitLine

    /// The first of the times the versions are committed at; later steps use later times.
    static let t0: Int64 = 1_767_225_600

    static func make(hooks: Bool = false, lockCommitted: Bool = false) throws -> GitProject {
        let sb = try Sandbox()
        try sb.writeGitGlobalConfig()
        try sb.gitInitMain()
        try sb.write("train.py", "print('training')\n")
        try sb.gitCommitPaths(["train.py"], message: "code")
        try sb.copyFixture("data/iris.csv")
        try sb.copyFixture("data/README.md")
        try sb.copyFixture("config/train.yaml")
        try sb.copyFixture("model/model.safetensors")
        try sb.mvcOK("init")
        if hooks { try sb.mvcOK("hooks", "install") }
        func commit(_ args: [String], _ time: Int64) throws -> CommitLine {
            let r = try sb.mvcOK(["commit"] + args, env: atTime(time))
            return try #require(CommitLine(r.stdout), "unexpected commit output: \(r)")
        }
        let iris = try commit(["data/", "--name", "iris", "--kind", "dataset", "--version", "1.0.0", "-m", "150 rows"], t0)
        let config = try commit(["config/train.yaml", "--name", "train-config", "--kind", "config"], t0 + 10)
        let model = try commit(["model/model.safetensors", "--name", "iris-mlp", "--kind", "model",
                                "--input", "iris@v1", "--input", "train-config@v1", "--param", "lr=0.01", "--metric", "accuracy=0.93"], t0 + 20)
        if lockCommitted { try sb.gitCommitPaths([".gitignore", "mvc.lock"], message: "artifacts v1") }
        return GitProject(sandbox: sb, iris: iris, config: config, model: model)
    }

    /// Commits `iris-mlp@v2` (the second model fixture) at `time`; `env` adds to the environment.
    @discardableResult
    func commitModelV2(at time: Int64, env: [String: String] = [:]) throws -> CommitLine {
        let sb = sandbox
        try sb.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        let r = try sb.mvcOK(["commit", "model/model.safetensors", "--name", "iris-mlp",
                              "--input", "iris@v1", "--input", "train-config@v1", "--metric", "accuracy=0.95"],
                             env: atTime(time).merging(env) { $1 })
        return try #require(CommitLine(r.stdout), "unexpected commit output: \(r)")
    }

    /// The model file in the work tree holds exactly the bytes of `Fixtures/<fixture>`.
    func expectModel(_ fixture: String, _ why: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let bytes = try sandbox.read("model/model.safetensors")
        #expect(bytes == (try Fixtures.data(fixture)), "model/model.safetensors should hold \(fixture): \(why)",
                sourceLocation: sourceLocation)
    }
}
