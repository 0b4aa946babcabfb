internal import CLibGit2
internal import MVCCore
#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// libgit2 is loaded and initialised once per process, from a lazy global (its documentation
/// requires the call before any other), with fsync of objects and refs turned on. nil when it
/// loaded; else why not.
private let libgit2Failure: String? = {
    var reason = [CChar](repeating: 0, count: 256)
    if mvc_git_load(&reason, reason.count) == 0 { return nil }
    return String(decoding: reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}()

/// A git object name (SHA-1, 20 bytes), as hex for people and maps.
public struct GitOID: Hashable, Sendable, CustomStringConvertible {
    public let hex: String
    var raw: git_oid {
        var oid = git_oid()
        _ = hex.withCString { mvc_git_oid_fromstr(&oid, $0) }
        return oid
    }
    init(_ oid: git_oid) {
        var o = oid
        var buf = [CChar](repeating: 0, count: 41)
        _ = mvc_git_oid_tostr(&buf, 41, &o)
        hex = buf.withUnsafeBufferPointer { String(validatingCString: $0.baseAddress!) } ?? ""
    }
    public init?(hex: String) {
        guard hex.count == 40, hex.allSatisfy(\.isHexDigit) else { return nil }
        self.hex = hex.lowercased()
    }
    public var description: String { hex }
}

/// Turns a libgit2 return code into an `MVCError`, reading `git_error_last` on this thread at once
/// (git2-rs's `try_call!`): every libgit2 call goes through here.
@discardableResult
func check(_ rc: Int32, _ call: String, _ subject: String = "") throws(MVCError) -> Int32 {
    guard rc < 0 else { return rc }
    var message = "error \(rc)"
    if let e = mvc_git_error_last(), let m = e.pointee.message { message = String(validatingCString: m) ?? message }
    mvc_git_error_clear()
    throw MVCError(.gitMirror, "git: \(call)\(subject.isEmpty ? "" : " '\(subject)'") failed: \(message)",
                   hint: "the mvc store is unaffected; 'mvc mirror sync' repairs the mirror")
}

/// An open git repository. Owns its libgit2 handle (freed in deinit); used by one thread at a time
/// (not Sendable: libgit2 forbids concurrent use of one `git_repository`).
final class GitRepository {
    let handle: OpaquePointer
    /// The work tree's root, with a trailing slash removed; nil for a bare repository.
    let workTree: String?
    let gitDirectory: String

    private init(handle: OpaquePointer) {
        self.handle = handle
        func path(_ p: UnsafePointer<CChar>?) -> String? {
            guard let p, var s = String(validatingCString: p) else { return nil }
            while s.count > 1 && s.hasSuffix("/") { s.removeLast() }
            return s
        }
        workTree = path(mvc_git_repository_workdir(handle))
        gitDirectory = path(mvc_git_repository_path(handle)) ?? ""
    }

    deinit { mvc_git_repository_free(handle) }

    /// The git repository whose work tree contains `path` (searching upwards), nil when none.
    /// Throws when there may be one but libgit2 cannot be loaded: that is not "no repository".
    static func discover(_ path: String) throws(MVCError) -> GitRepository? {
        // Most commands outside git never load libgit2: a few lstat calls say there is nothing
        // for it to find.
        guard mightFindRepository(from: path) else { return nil }
        if let libgit2Failure {
            throw MVCError(.gitMirror, "cannot look for the git repository around '\(path)': \(libgit2Failure)",
                           hint: "the git mirror needs libgit2 (Debian: apt-get install -y libgit2-1.5); MVC_MIRROR=0 turns the mirror off")
        }
        var repo: OpaquePointer?
        let rc = mvc_git_repository_open_ext(&repo, path, 0, nil)
        if rc < 0 { mvc_git_error_clear(); return nil }
        guard let repo else { return nil }
        return GitRepository(handle: repo)
    }

    /// False only when libgit2's discovery from `path` (`git_repository_open_ext`, no flags)
    /// certainly finds nothing: no directory from `path` up to the root, followed as written and
    /// with symlinks resolved, holds a `.git` entry or is itself a git directory (`HEAD`,
    /// `objects` and `refs`, or `HEAD` and `commondir`).
    static func mightFindRepository(from path: String) -> Bool {
        func exists(_ p: String) -> Bool {
            var st = stat()
            return lstat(p, &st) == 0
        }
        var starts = [path]
        if let resolved = realpath(path, nil) {
            starts.append(String(cString: resolved))
            free(resolved)
        }
        for start in starts {
            var dir = start.hasPrefix("/") ? start : "/"
            while true {
                let base = dir == "/" ? "" : dir
                if exists(base + "/.git") { return true }
                // A git directory, or a linked worktree's (which has `commondir` instead).
                if exists(base + "/HEAD") && (exists(base + "/commondir") || (exists(base + "/objects") && exists(base + "/refs"))) {
                    return true
                }
                if dir == "/" || dir.isEmpty { break }
                if let slash = dir.lastIndex(of: "/") {
                    dir = slash == dir.startIndex ? "/" : String(dir[..<slash])
                } else {
                    break
                }
            }
        }
        return false
    }

    /// Sets who appears in reflog entries written through this handle.
    func setIdentity(name: String, email: String) throws(MVCError) {
        try check(mvc_git_repository_set_ident(handle, name, email), "set identity")
    }

    func createBlob(_ bytes: [UInt8]) throws(MVCError) -> GitOID {
        var oid = git_oid()
        let rc = bytes.withUnsafeBytes { mvc_git_blob_create_from_buffer(&oid, handle, $0.baseAddress, $0.count) }
        try check(rc, "create blob")
        return GitOID(oid)
    }

    enum Mode: UInt32 {
        case file = 0o100644, executable = 0o100755, tree = 0o040000
    }

    /// Writes a tree from (name, oid, mode) entries; libgit2 sorts them as git requires.
    func createTree(_ entries: [(name: String, oid: GitOID, mode: Mode)]) throws(MVCError) -> GitOID {
        var builder: OpaquePointer?
        try check(mvc_git_treebuilder_new(&builder, handle, nil), "create tree")
        defer { mvc_git_treebuilder_free(builder) }
        for e in entries {
            var oid = e.oid.raw
            try check(mvc_git_treebuilder_insert(nil, builder, e.name, &oid, git_filemode_t(e.mode.rawValue)), "add tree entry", e.name)
        }
        var out = git_oid()
        try check(mvc_git_treebuilder_write(&out, builder), "write tree")
        return GitOID(out)
    }

    struct Person {
        var name: String, email: String, time: Int64, offsetMinutes: Int
    }

    func createCommit(tree: GitOID, parents: [GitOID], author: Person, message: String) throws(MVCError) -> GitOID {
        var sig: UnsafeMutablePointer<git_signature>?
        try check(mvc_git_signature_new(&sig, author.name.isEmpty ? "unknown" : author.name, author.email,
                                    git_time_t(author.time), Int32(author.offsetMinutes)), "create signature", author.name)
        defer { mvc_git_signature_free(sig) }
        var treeOID = tree.raw
        var treeObj: OpaquePointer?
        try check(mvc_git_tree_lookup(&treeObj, handle, &treeOID), "look up tree", tree.hex)
        defer { mvc_git_tree_free(treeObj) }
        var parentObjs: [OpaquePointer?] = []
        defer { for p in parentObjs { mvc_git_commit_free(p) } }
        for p in parents {
            var oid = p.raw
            var c: OpaquePointer?
            try check(mvc_git_commit_lookup(&c, handle, &oid), "look up commit", p.hex)
            parentObjs.append(c)
        }
        var out = git_oid()
        let rc = parentObjs.withUnsafeMutableBufferPointer { buf in
            mvc_git_commit_create(&out, handle, nil, sig, sig, "UTF-8", message, treeObj, buf.count, buf.baseAddress)
        }
        try check(rc, "create commit")
        return GitOID(out)
    }

    /// The target of a direct ref, nil when absent.
    func readRef(_ name: String) throws(MVCError) -> GitOID? {
        var oid = git_oid()
        let rc = mvc_git_reference_name_to_id(&oid, handle, name)
        if rc == GIT_ENOTFOUND.rawValue { mvc_git_error_clear(); return nil }
        try check(rc, "read ref", name)
        return GitOID(oid)
    }

    /// Compare-and-swap: moves `name` to `new` only if it still points at `expected` (nil: it
    /// must not exist). Writes a reflog entry with `message`.
    func updateRef(_ name: String, to new: GitOID, expected: GitOID?, message: String) throws(MVCError) {
        try check(mvc_git_reference_ensure_log(handle, name), "create reflog", name)
        var newOID = new.raw
        var ref: OpaquePointer?
        let rc: Int32
        if let expected {
            var cur = expected.raw
            rc = mvc_git_reference_create_matching(&ref, handle, name, &newOID, 1, &cur, message)
        } else {
            rc = mvc_git_reference_create(&ref, handle, name, &newOID, 0, message)
        }
        if rc == GIT_EMODIFIED.rawValue || rc == GIT_EEXISTS.rawValue {
            mvc_git_error_clear()
            throw MVCError(.refMoved, "git ref '\(name)' moved since it was read", hint: "run 'mvc mirror sync'")
        }
        try check(rc, "update ref", name)
        mvc_git_reference_free(ref)
    }

    /// Names of refs matching a glob such as `refs/mvc/*`.
    func refNames(glob: String) throws(MVCError) -> [String] {
        var iter: OpaquePointer?
        try check(mvc_git_reference_iterator_glob_new(&iter, handle, glob), "list refs", glob)
        defer { mvc_git_reference_iterator_free(iter) }
        var out: [String] = []
        while true {
            var name: UnsafePointer<CChar>?
            let rc = mvc_git_reference_next_name(&name, iter)
            if rc == GIT_ITEROVER.rawValue { mvc_git_error_clear(); break }
            try check(rc, "list refs", glob)
            if let name, let s = String(validatingCString: name) { out.append(s) }
        }
        return out.sorted()
    }

    struct CommitInfo {
        var tree: GitOID
        var parents: [GitOID]
        var message: String
    }

    func readCommit(_ id: GitOID) throws(MVCError) -> CommitInfo {
        var oid = id.raw
        var c: OpaquePointer?
        try check(mvc_git_commit_lookup(&c, handle, &oid), "look up commit", id.hex)
        defer { mvc_git_commit_free(c) }
        var parents: [GitOID] = []
        for i in 0..<mvc_git_commit_parentcount(c) { parents.append(GitOID(mvc_git_commit_parent_id(c, i).pointee)) }
        let message = mvc_git_commit_message(c).flatMap { String(validatingCString: $0) } ?? ""
        return CommitInfo(tree: GitOID(mvc_git_commit_tree_id(c).pointee), parents: parents, message: message)
    }

    /// The entries of a tree: (name, oid, mode).
    func readTree(_ id: GitOID) throws(MVCError) -> [(name: String, oid: GitOID, mode: UInt32)] {
        var oid = id.raw
        var t: OpaquePointer?
        try check(mvc_git_tree_lookup(&t, handle, &oid), "look up tree", id.hex)
        defer { mvc_git_tree_free(t) }
        var out: [(String, GitOID, UInt32)] = []
        for i in 0..<mvc_git_tree_entrycount(t) {
            guard let e = mvc_git_tree_entry_byindex(t, i) else { continue }
            let name = mvc_git_tree_entry_name(e).flatMap { String(validatingCString: $0) } ?? ""
            out.append((name, GitOID(mvc_git_tree_entry_id(e).pointee), UInt32(mvc_git_tree_entry_filemode(e).rawValue)))
        }
        return out
    }

    func readBlob(_ id: GitOID) throws(MVCError) -> [UInt8] {
        var oid = id.raw
        var b: OpaquePointer?
        try check(mvc_git_blob_lookup(&b, handle, &oid), "look up blob", id.hex)
        defer { mvc_git_blob_free(b) }
        let size = Int(mvc_git_blob_rawsize(b))
        guard size > 0, let p = mvc_git_blob_rawcontent(b) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: size))
    }

    func objectExists(_ id: GitOID) -> Bool {
        var odb: OpaquePointer?
        guard mvc_git_repository_odb(&odb, handle) == 0 else { mvc_git_error_clear(); return false }
        defer { mvc_git_odb_free(odb) }
        var oid = id.raw
        return mvc_git_odb_exists(odb, &oid) == 1
    }
}
