// Support for the end-to-end tests: they drive the built `mvc` binary in throw-away directories,
// the way a user would, and never link MVCCore.
//
// - `MVCBinary` finds the executable (`MVC_BIN`, else next to the test bundle).
// - `Spawn` runs a program with posix_spawn, output to temp files (no pipe deadlocks), and reaps it
//   with wait4 to read its peak RSS.
// - `Sandbox` is one test's temp directory: a work tree, a scratch area and an "outside" area.
// - Decodable mirrors of the `--json` outputs, and small helpers (SHA-256 via `sha256sum`, sizes).

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

struct E2EError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Locating the binary

enum MVCBinary {
    /// The path of the `mvc` executable under test, found once.
    static let located: Result<String, E2EError> = locate()

    static func path() throws -> String { try located.get() }

    private static func locate() -> Result<String, E2EError> {
        if let explicit = ProcessInfo.processInfo.environment["MVC_BIN"], !explicit.isEmpty {
            return isExecutableFile(explicit)
                ? .success(explicit)
                : .failure(E2EError("MVC_BIN is set to '\(explicit)', which is not an executable file"))
        }
        // SwiftPM builds the `mvc` product into the same directory as the test bundle, because the
        // test target depends on it. Look there (and a couple of parents), starting from every
        // place the running test process can tell us about.
        var starts: [String] = []
        if let exe = realPath("/proc/self/exe") { starts.append(parent(exe)) }
        starts.append(Bundle.main.bundleURL.path)
        if let exe = Bundle.main.executableURL?.path { starts.append(parent(exe)) }
        if let arg0 = CommandLine.arguments.first, !arg0.isEmpty {
            let abs = arg0.hasPrefix("/") ? arg0 : FileManager.default.currentDirectoryPath + "/" + arg0
            starts.append(parent(realPath(abs) ?? abs))
        }
        var tried: [String] = []
        for start in starts {
            var dir = realPath(start) ?? start
            for _ in 0..<3 {
                let candidate = dir == "/" ? "/mvc" : dir + "/mvc"
                if !tried.contains(candidate) {
                    tried.append(candidate)
                    if isExecutableFile(candidate) { return .success(candidate) }
                }
                let up = parent(dir)
                if up == dir { break }
                dir = up
            }
        }
        return .failure(E2EError("""
            cannot find the 'mvc' executable; build it first ('swift build --build-tests'), \
            or set MVC_BIN to its path. Looked at: \(tried.joined(separator: ", "))
            """))
    }

    private static func parent(_ path: String) -> String {
        let p = (path as NSString).deletingLastPathComponent
        return p.isEmpty ? "/" : p
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}

func realPath(_ path: String) -> String? {
    guard let p = realpath(path, nil) else { return nil }
    defer { free(p) }
    return String(cString: p)
}

// MARK: - Running processes

/// What a finished child process left behind.
struct RunResult: CustomStringConvertible {
    var command: [String]
    /// The exit status, or 128 + the signal number when a signal ended it.
    var status: Int32
    var stdoutData: Data
    var stderrData: Data
    /// The child's peak resident set size in KiB: what mvc reports itself (`MVC_REPORT_PEAK_RSS`),
    /// else wait4's ru_maxrss.
    var maxRSSKiB: Int
    /// Our own resident set size in KiB just before the spawn. The child's ru_maxrss can never be
    /// below it (see `Spawn.run`), so it says how much of `maxRSSKiB` may not be the child's.
    var parentRSSKiB: Int

    var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
    var stderr: String { String(decoding: stderrData, as: UTF8.self) }
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }

    var description: String {
        "`\(command.joined(separator: " "))` exited \(status)\n--- stdout:\n\(stdout.prefix(4000))\n--- stderr:\n\(stderr.prefix(4000))"
    }
}

enum Spawn {
    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+) is not exported by Swift's Glibc
    /// module, so it is looked up at run time.
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(sym, to: AddChdir.self)
    }()

    /// Runs `executable` with `arguments` in `cwd` with exactly `environment`, stdin from
    /// /dev/null, stdout and stderr into temp files in `scratch` (so any amount of output is fine),
    /// and waits for it with wait4 to get its peak RSS.
    ///
    /// glibc's posix_spawn clones with CLONE_VM|CLONE_VFORK, and at exec Linux folds the peak RSS
    /// of the memory the child was using (ours) into the child's ru_maxrss. So we first reset our
    /// own high-water mark to our current RSS (`echo 5 > /proc/self/clear_refs`); what is left is
    /// reported as `parentRSSKiB`. The child's figure is thus an upper bound on its true peak.
    static func run(_ executable: String, _ arguments: [String], cwd: String, environment: [String: String],
                    scratch: String) throws -> RunResult {
        resetPeakRSS()
        let parentRSS = ownRSSKiB()
        var result = try start(executable, arguments, cwd: cwd, environment: environment, scratch: scratch).wait()
        result.parentRSSKiB = parentRSS
        return result
    }

    /// Resets this process's peak RSS to its current RSS (Linux 4.0+); best effort.
    private static func resetPeakRSS() {
        let fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = write(fd, "5", 1)
        close(fd)
    }

    /// VmRSS of this process in KiB, 0 if unknown.
    private static func ownRSSKiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return 0
    }

    /// The absolute path of a program found in PATH.
    static func which(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        throw E2EError("'\(name)' is not in PATH (\(path))")
    }
}

// MARK: - Fixtures

enum Fixtures {
    /// `<package>/Fixtures`, found from this source file's path.
    static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }   // Support.swift, MVCEndToEndTests, Tests
        return url.appendingPathComponent("Fixtures").path
    }()

    static func path(_ relative: String) -> String { directory + "/" + relative }

    static func data(_ relative: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path(relative))) }
}

// MARK: - Sandbox

/// One test's private temp directory, removed when the sandbox goes away (set MVC_E2E_KEEP=1 to
/// keep it for a post-mortem). Layout: `work/` is the work tree where mvc runs, `scratch/` holds
/// captured output and check-outs, `outside/` is a directory that nothing may ever write into.
final class Sandbox {
    let root: String
    let work: String
    let scratch: String
    let outside: String
    let home: String

    static let authorName = "E2E Tester"
    static let authorEmail = "e2e@example.com"
    static let authorTime: Int64 = 1_767_225_600
    static let authorDate = "1767225600 +0000"

    init() throws {
        let base = realPath(FileManager.default.temporaryDirectory.path) ?? "/tmp"
        var template = Array((base + "/mvc-e2e-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw E2EError("mkdtemp failed in '\(base)': errno \(errno)") }
        root = String(cString: made)
        work = root + "/work"
        scratch = root + "/scratch"
        outside = root + "/outside"
        home = root + "/home"
        for dir in [work, scratch, outside, home] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
    }

    deinit {
        if ProcessInfo.processInfo.environment["MVC_E2E_KEEP"] == "1" { return }
        // Tests may leave read-only files or directories behind; make everything removable first.
        if let walker = FileManager.default.enumerator(atPath: root) {
            while let rel = walker.nextObject() as? String {
                let p = root + "/" + rel
                var st = stat()
                if lstat(p, &st) == 0, st.st_mode & S_IFMT == S_IFDIR { chmod(p, 0o755) }
            }
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Absolute path of `relative` inside the work tree.
    func path(_ relative: String) -> String { relative.isEmpty ? work : work + "/" + relative }

    // MARK: Files

    func write(_ relative: String, _ text: String, mode: mode_t? = nil) throws {
        try write(relative, Data(text.utf8), mode: mode)
    }

    func write(_ relative: String, _ data: Data, mode: mode_t? = nil) throws {
        try writeAbsolute(path(relative), data, mode: mode)
    }

    func writeAbsolute(_ absolute: String, _ data: Data, mode: mode_t? = nil) throws {
        let dir = (absolute as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try data.write(to: URL(fileURLWithPath: absolute))
        if let mode { chmod(absolute, mode) }
    }

    /// Copies `Fixtures/<fixture>` to `<work>/<relative>` (default: the same relative path).
    func copyFixture(_ fixture: String, to relative: String? = nil) throws {
        try write(relative ?? fixture, try Fixtures.data(fixture))
    }

    func read(_ relative: String) throws -> Data { try readAbsolute(path(relative)) }
    func readAbsolute(_ absolute: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: absolute)) }

    func exists(_ relative: String) -> Bool { existsAbsolute(path(relative)) }
    func existsAbsolute(_ absolute: String) -> Bool {
        var st = stat()
        return lstat(absolute, &st) == 0
    }

    func remove(_ relative: String) throws { try FileManager.default.removeItem(atPath: path(relative)) }

    /// Permission bits of a file.
    func mode(ofAbsolute absolute: String) -> mode_t {
        var st = stat()
        guard stat(absolute, &st) == 0 else { return 0 }
        return st.st_mode & 0o7777
    }

    /// Every regular file below `absolute`, relative to it, sorted.
    func files(under absolute: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: absolute) else { return [] }
        var out: [String] = []
        while let rel = walker.nextObject() as? String {
            var st = stat()
            if lstat(absolute + "/" + rel, &st) == 0, st.st_mode & S_IFMT == S_IFREG { out.append(rel) }
        }
        return out.sorted()
    }

    /// The sum of the sizes of every regular file below `absolute`.
    func totalSize(under absolute: String) -> UInt64 {
        guard let walker = FileManager.default.enumerator(atPath: absolute) else { return 0 }
        var total: UInt64 = 0
        while let rel = walker.nextObject() as? String {
            var st = stat()
            if lstat(absolute + "/" + rel, &st) == 0, st.st_mode & S_IFMT == S_IFREG { total += UInt64(st.st_size) }
        }
        return total
    }

    // MARK: Processes

    /// The environment every child gets: PATH from the test process, a private HOME (so no global
    /// git or mvc settings leak in), a fixed author and date.
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env: [String: String] = [
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "LANG": "C",
            "LC_ALL": "C",
            "TMPDIR": scratch,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_DATE": Sandbox.authorDate,
            "GIT_COMMITTER_DATE": Sandbox.authorDate,
            "MVC_AUTHOR_NAME": Sandbox.authorName,
            "MVC_AUTHOR_EMAIL": Sandbox.authorEmail,
            "MVC_AUTHOR_DATE": Sandbox.authorDate,
            "MVC_REPORT_PEAK_RSS": "1",
        ]
        for (k, v) in extra { env[k] = v }
        return env
    }

    /// Runs `mvc` with `arguments` in `cwd` (default: the work tree).
    func mvc(_ arguments: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> RunResult {
        try Spawn.run(try MVCBinary.path(), arguments, cwd: cwd ?? work, environment: environment(env), scratch: scratch)
    }

    func mvc(_ arguments: String..., cwd: String? = nil) throws -> RunResult { try mvc(arguments, cwd: cwd) }

    /// Runs `mvc` and requires exit status 0.
    @discardableResult
    func mvcOK(_ arguments: [String], cwd: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try mvc(arguments, cwd: cwd)
        try #require(r.status == 0, "expected success: \(r)", sourceLocation: sourceLocation)
        return r
    }

    @discardableResult
    func mvcOK(_ arguments: String..., cwd: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        try mvcOK(arguments, cwd: cwd, sourceLocation: sourceLocation)
    }

    /// Runs `mvc`, expecting it to fail the documented way: a non-zero exit, and on stderr one
    /// `error: ...` line (whose text contains `word`, case-insensitively) optionally followed by
    /// `hint: ...` lines.
    @discardableResult
    func mvcFails(_ arguments: [String], mentioning word: String, cwd: String? = nil,
                  sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try mvc(arguments, cwd: cwd)
        expectCleanError(r, mentioning: word, sourceLocation: sourceLocation)
        return r
    }

    /// Runs any program found in PATH.
    func run(_ program: String, _ arguments: [String], cwd: String? = nil) throws -> RunResult {
        try Spawn.run(try Spawn.which(program), arguments, cwd: cwd ?? work, environment: environment(), scratch: scratch)
    }

    // MARK: Running unprivileged

    /// Whether permission checks can be exercised: tests run as a normal user, or as root with
    /// `setpriv` available to run mvc as `nobody` (root reads files whatever their mode).
    static let canDropPrivileges: Bool = getuid() != 0 || (try? Spawn.which("setpriv")) != nil

    static let unprivilegedID = 65534   // nobody / nogroup

    /// When running as root, hands the work tree to `nobody` so `mvcUnprivileged` can use it.
    func handToUnprivilegedUser() throws {
        guard getuid() == 0 else { return }
        chmod(root, 0o755)
        let r = try run("chown", ["-R", "\(Sandbox.unprivilegedID):\(Sandbox.unprivilegedID)", work, home])
        guard r.status == 0 else { throw E2EError("chown failed: \(r)") }
    }

    /// Runs mvc as this user, or as `nobody` (through `setpriv`) when running as root.
    func mvcUnprivileged(_ arguments: [String]) throws -> RunResult {
        guard getuid() == 0 else { return try mvc(arguments) }
        let id = Sandbox.unprivilegedID
        return try Spawn.run(try Spawn.which("setpriv"),
                             ["--reuid=\(id)", "--regid=\(id)", "--clear-groups", "--", try MVCBinary.path()] + arguments,
                             cwd: work, environment: environment(), scratch: scratch)
    }

    // MARK: git

    @discardableResult
    func git(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try run("git", arguments)
        try #require(r.status == 0, "git failed: \(r)", sourceLocation: sourceLocation)
        return r
    }

    /// `git init` in the work tree with a local identity.
    func gitInit() throws {
        try git("init", "-q")
        try git("config", "user.name", "E2E Git")
        try git("config", "user.email", "git@example.com")
        try git("config", "commit.gpgsign", "false")
    }

    /// Commits exactly `paths` to git; returns the new HEAD.
    @discardableResult
    func gitCommit(_ paths: [String], message: String = "code") throws -> String {
        try git(["add", "--"] + paths)
        try git("commit", "-q", "-m", message)
        return try gitHead()
    }

    func gitHead() throws -> String {
        try git("rev-parse", "HEAD").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func git(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try run("git", arguments)
        try #require(r.status == 0, "git failed: \(r)", sourceLocation: sourceLocation)
    }

    // MARK: Hashing

    /// SHA-256 of a file, by `sha256sum` (independent of mvc's own hashing).
    func sha256(ofFile absolute: String) throws -> String {
        let r = try run("sha256sum", ["--", absolute])
        guard r.status == 0, let hex = r.stdout.split(separator: " ").first, hex.count == 64 else {
            throw E2EError("sha256sum failed: \(r)")
        }
        return String(hex)
    }

    func sha256(of data: Data) throws -> String {
        let tmp = scratch + "/hash-\(UInt64.random(in: 0...UInt64.max))"
        try data.write(to: URL(fileURLWithPath: tmp))
        defer { unlink(tmp) }
        return try sha256(ofFile: tmp)
    }

    // MARK: JSON

    func json<T: Decodable>(_ type: T.Type, _ arguments: [String], cwd: String? = nil,
                            sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
        // Options go before a `--` (after it every word is a path).
        var args = arguments
        args.insert("--json", at: args.firstIndex(of: "--") ?? args.endIndex)
        let r = try mvcOK(args, cwd: cwd, sourceLocation: sourceLocation)
        do {
            return try JSONDecoder().decode(T.self, from: r.stdoutData)
        } catch {
            throw E2EError("cannot decode \(T.self) from \(r): \(error)")
        }
    }
}

/// Checks a failed run for the documented error shape (see `Sandbox.mvcFails`).
func expectCleanError(_ r: RunResult, mentioning word: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard r.status != 0 else {
        Issue.record("expected a failure: \(r)", sourceLocation: sourceLocation)
        return
    }
    #expect(r.status < 128, "mvc was killed by a signal or crashed: \(r)", sourceLocation: sourceLocation)
    let lines = r.stderrLines
    guard let first = lines.first else {
        Issue.record("no error message on stderr: \(r)", sourceLocation: sourceLocation)
        return
    }
    #expect(first.hasPrefix("error: "), "stderr should start with 'error: ': \(r)", sourceLocation: sourceLocation)
    #expect(first.lowercased().contains(word.lowercased()), "the error should mention '\(word)': \(r)", sourceLocation: sourceLocation)
    #expect(lines.dropFirst().allSatisfy { $0.hasPrefix("hint: ") }, "one error line, then only hints: \(r)",
            sourceLocation: sourceLocation)
}

// MARK: - Parsing `mvc commit` output

/// `NAME@vN <64 hex>[ (SEMVER)][ (unchanged)]`, the one line `mvc commit` prints.
struct CommitLine: Equatable {
    var name: String
    var version: Int
    var id: String
    var semver: String?
    var unchanged: Bool

    init?(_ output: String) {
        let regex = #/^([A-Za-z0-9._/-]+)@v([0-9]+) ([0-9a-f]{64})(?: \(([0-9][0-9A-Za-z.+-]*)\))?( \(unchanged\))?\n$/#
        guard let m = output.wholeMatch(of: regex), let v = Int(m.output.2) else { return nil }
        name = String(m.output.1)
        version = v
        id = String(m.output.3)
        semver = m.output.4.map(String.init)
        unchanged = m.output.5 != nil
    }
}

extension Sandbox {
    /// `mvc commit ...`, requiring success and a well-formed result line.
    @discardableResult
    func commit(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) throws -> CommitLine {
        let r = try mvcOK(["commit"] + arguments, sourceLocation: sourceLocation)
        return try #require(CommitLine(r.stdout), "unexpected commit output: \(r)", sourceLocation: sourceLocation)
    }
}

// MARK: - JSON mirrors of mvc's outputs

struct ShowJSON: Decodable {
    struct Input: Decodable { var id: String, role: String, artifact: String, version: Int }
    struct Code: Decodable { var commit: String, dirty: Bool }
    var id: String, artifact: String, version: Int, kind: String, tree: String, parents: [String], paths: [String]
    var inputs: [Input], code: Code?, params: [String: String], metrics: [String: Double], environment: [String: String]
    var author: String, email: String, time: Int64, timezone: String, message: String, files: Int, bytes: UInt64
}

struct LsEntryJSON: Decodable, Equatable {
    var path: String, kind: String, size: UInt64, id: String
}

struct LogEntryJSON: Decodable {
    var version: Int, id: String, semver: [String], author: String, email: String, time: Int64, message: String
}

struct LineageNodeJSON: Decodable, Equatable {
    var id: String, artifact: String, version: Int, kind: String, role: String?, depth: Int, repeated: Bool
}

struct StatusJSON: Decodable {
    struct Change: Decodable, Equatable { var artifact: String, path: String, change: String }
    var changes: [Change]
    var clean: [String]
    var interrupted: String?
}

struct CheckoutJSON: Decodable {
    var revision: String, id: String, directory: String, written: [String], unchanged: Int
    var removed: [String], kept: [String], bytesWritten: UInt64
    var rewrittenInPlace: [String]
}

struct CommitJSON: Decodable {
    var name: String, version: Int, id: String, tree: String, semver: String?
    var files: Int, bytes: UInt64, newBytes: UInt64, unchanged: Bool
}

struct ArtifactJSON: Decodable, Equatable {
    var name: String, kind: String, version: Int, id: String
}

struct FsckJSON: Decodable {
    struct Problem: Decodable { var subject: String, problem: String }
    var objectsChecked: Int, refsChecked: Int, problems: [Problem]
}

// MARK: - Common scenario

/// The README's flow, set up in a fresh sandbox: a git repository with one code commit
/// (`train.py`), an mvc store, and three artifacts:
/// - `iris` (dataset, `data/` = iris.csv + README.md), tagged 1.0.0;
/// - `train-config` (config, `config/train.yaml`);
/// - `iris-mlp` (model, `model/model.safetensors`) made from both, with a parameter and a metric.
struct IrisProject {
    let sandbox: Sandbox
    let codeCommit: String?
    let iris: CommitLine
    let config: CommitLine
    let model: CommitLine

    static func make(git: Bool = true) throws -> IrisProject {
        let sb = try Sandbox()
        var head: String? = nil
        if git {
            try sb.gitInit()
            try sb.write("train.py", "print('training')\n")
            head = try sb.gitCommit(["train.py"])
        }
        try sb.copyFixture("data/iris.csv")
        try sb.copyFixture("data/README.md")
        try sb.copyFixture("config/train.yaml")
        try sb.copyFixture("model/model.safetensors")
        try sb.mvcOK("init")
        let iris = try sb.commit("data/", "--name", "iris", "--kind", "dataset", "--version", "1.0.0", "-m", "150 rows")
        let config = try sb.commit("config/train.yaml", "--name", "train-config", "--kind", "config")
        let model = try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--kind", "model",
                                  "--input", "iris@v1", "--input", "train-config@v1",
                                  "--param", "lr=0.01", "--metric", "accuracy=0.93")
        return IrisProject(sandbox: sb, codeCommit: head, iris: iris, config: config, model: model)
    }

    /// The store still verifies, and every version made by `make` still checks out byte-exact.
    func expectIntact(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let sb = sandbox
        let fsck = try sb.mvc("fsck")
        #expect(fsck.status == 0, "fsck should pass: \(fsck)", sourceLocation: sourceLocation)
        let out = sb.scratch + "/intact-\(UInt64.random(in: 0...UInt64.max))"
        for rev in ["iris@v1", "train-config@v1", "iris-mlp@v1"] {
            try sb.mvcOK(["checkout", rev, "-o", out], sourceLocation: sourceLocation)
        }
        for f in ["data/iris.csv", "data/README.md", "config/train.yaml", "model/model.safetensors"] {
            #expect(try sb.readAbsolute(out + "/" + f) == Fixtures.data(f), "\(f) should check out unchanged",
                    sourceLocation: sourceLocation)
        }
    }
}

// MARK: - Per-command environment, and processes that run side by side

extension Sandbox {
    /// Runs `mvc` with `env` added to (or overriding) the sandbox's environment, e.g. another
    /// MVC_AUTHOR_DATE or MVC_AUTHOR_NAME for one command, and requires exit status 0.
    @discardableResult
    func mvcOK(_ arguments: [String], env: [String: String], cwd: String? = nil,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        let r = try mvc(arguments, cwd: cwd, env: env)
        try #require(r.status == 0, "expected success: \(r)", sourceLocation: sourceLocation)
        return r
    }

    /// Starts `mvc` in the work tree without waiting for it; `wait()` on the result for its outcome.
    func mvcStart(_ arguments: [String], env: [String: String] = [:]) throws -> StartedProcess {
        try Spawn.start(try MVCBinary.path(), arguments, cwd: work, environment: environment(env), scratch: scratch)
    }
}

/// A child started by `Spawn.start` and not yet reaped. Call `wait()` exactly once.
final class StartedProcess {
    let pid: pid_t
    let command: [String]
    private let outPath: String, errPath: String
    private let outFD: Int32, errFD: Int32
    private var reaped = false

    fileprivate init(pid: pid_t, command: [String], outPath: String, errPath: String, outFD: Int32, errFD: Int32) {
        self.pid = pid; self.command = command
        self.outPath = outPath; self.errPath = errPath; self.outFD = outFD; self.errFD = errFD
    }

    /// Waits for the child to end and collects what it wrote, as `Spawn.run` does.
    func wait() throws -> RunResult {
        guard !reaped else { throw E2EError("process \(pid) was already waited for") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw E2EError("wait4 failed for \(pid): errno \(errno)") }
        }
        reaped = true
        let signal = status & 0x7f
        let exit = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        var stderrData = try Data(contentsOf: URL(fileURLWithPath: errPath))
        var maxRSS = usage.ru_maxrss
        var lines = String(decoding: stderrData, as: UTF8.self).components(separatedBy: "\n")
        if let i = lines.lastIndex(where: { $0.hasPrefix("mvc: peak RSS ") && $0.hasSuffix(" KiB") }),
           let kib = Int(lines[i].dropFirst("mvc: peak RSS ".count).dropLast(" KiB".count)) {
            maxRSS = kib
            lines.remove(at: i)
            stderrData = Data(lines.joined(separator: "\n").utf8)
        }
        return RunResult(command: command, status: exit,
                         stdoutData: try Data(contentsOf: URL(fileURLWithPath: outPath)),
                         stderrData: stderrData, maxRSSKiB: maxRSS, parentRSSKiB: 0)
    }

    deinit {
        if !reaped {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        close(outFD); close(errFD)
        unlink(outPath); unlink(errPath)
    }
}

extension Spawn {
    /// Like `run`, but returns as soon as the child is running (glibc's posix_spawn returns once
    /// the child has exec'd), so several children can run at the same moment.
    static func start(_ executable: String, _ arguments: [String], cwd: String, environment: [String: String],
                      scratch: String) throws -> StartedProcess {
        guard let addChdir else { throw E2EError("posix_spawn_file_actions_addchdir_np is not available") }
        let token = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let outPath = scratch + "/stdout-\(token)", errPath = scratch + "/stderr-\(token)"
        let outFD = open(outPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard outFD >= 0 else { throw E2EError("cannot create '\(outPath)': errno \(errno)") }
        let errFD = open(errPath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard errFD >= 0 else {
            close(outFD); unlink(outPath)
            throw E2EError("cannot create '\(errPath)': errno \(errno)")
        }
        var spawned = false
        defer { if !spawned { close(outFD); close(errFD); unlink(outPath); unlink(errPath) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)
        guard addChdir(&actions, cwd) == 0 else { throw E2EError("cannot chdir the child to '\(cwd)'") }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), defaults = sigset_t()
        sigemptyset(&empty)
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGINT, SIGTERM, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &defaults)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv { free(p) }; for p in envp { free(p) } }

        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attr, argv, envp)
        guard rc == 0 else { throw E2EError("cannot run '\(executable)': \(String(cString: strerror(rc)))") }
        spawned = true
        return StartedProcess(pid: pid, command: [executable] + arguments, outPath: outPath, errPath: errPath,
                              outFD: outFD, errFD: errFD)
    }
}
