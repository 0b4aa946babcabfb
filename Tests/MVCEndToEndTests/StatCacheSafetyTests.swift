// The stat cache (.mvc/index) lets status and commit skip re-reading files whose stat fields prove
// them unchanged. It must never hide a change: a wrongly trusted entry would make `commit` report
// "(unchanged)" and drop the user's new bytes.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A file's modification time.
private func mtime(_ path: String) throws -> timespec {
    var st = stat()
    guard stat(path, &st) == 0 else { throw E2EError("cannot stat '\(path)'") }
    return st.st_mtim
}

/// Sets a file's access and modification times (its ctime moves to now: no user can stop that).
private func setTimes(_ path: String, _ t: timespec) throws {
    let times = [t, t]
    guard utimensat(AT_FDCWD, path, times, 0) == 0 else { throw E2EError("utimensat failed: errno \(errno)") }
}

/// Rewrites `rel` with different bytes of the same size and puts its old mtime back.
private func sneakyRewrite(_ sb: Sandbox, _ rel: String) throws -> Data {
    let path = sb.path(rel)
    let t = try mtime(path)
    var bytes = try sb.read(rel)
    for i in stride(from: 0, to: bytes.count, by: 97) { bytes[i] = bytes[i] == UInt8(ascii: "x") ? UInt8(ascii: "y") : UInt8(ascii: "x") }
    try sb.write(rel, bytes)
    try setTimes(path, t)
    #expect(try mtime(path).tv_sec == t.tv_sec && mtime(path).tv_nsec == t.tv_nsec)
    return bytes
}

@Suite("Stat cache never hides changes")
struct StatCacheSafetyTests {
    /// After the rewrite: status sees it, and commit stores the new bytes as a new version.
    private func expectRewriteSeen(_ p: IrisProject, _ newBytes: Data, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let sb = p.sandbox
        let status = try sb.json(StatusJSON.self, ["status"], sourceLocation: sourceLocation)
        #expect(status.changes == [.init(artifact: "iris", path: "data/iris.csv", change: "modified")],
                "\(status.changes)", sourceLocation: sourceLocation)
        let c = try sb.commit("data", "--name", "iris", sourceLocation: sourceLocation)
        #expect(!c.unchanged && c.version == 2, "a rewrite must not be taken for unchanged", sourceLocation: sourceLocation)
        let blob = try sb.json([LsEntryJSON].self, ["ls", "iris@v2"], sourceLocation: sourceLocation).first { $0.path == "data/iris.csv" }
        #expect(blob?.id == (try sb.sha256(of: newBytes)), sourceLocation: sourceLocation)
        let out = sb.scratch + "/v2"
        try sb.mvcOK(["checkout", "iris@v2", "-o", out], sourceLocation: sourceLocation)
        #expect(try sb.readAbsolute(out + "/data/iris.csv") == newBytes, sourceLocation: sourceLocation)
    }

    @Test("a same-size rewrite right after a commit, with the old mtime put back, is seen")
    func racyRewrite() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        let bytes = try sneakyRewrite(sb, "data/iris.csv")
        try expectRewriteSeen(p, bytes)
    }

    @Test("a same-size rewrite with the old mtime put back is seen after the cache entry has aged")
    func agedRewrite() async throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        // Files older than the cache's 2-second racy window when they are read get trusted entries.
        try await Task.sleep(for: .milliseconds(2200))
        try sb.mvcOK("checkout", "iris@v1", "--force")   // re-reads the files: their stat is now old enough
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        #expect(try sb.commit("data", "--name", "iris").unchanged)
        let bytes = try sneakyRewrite(sb, "data/iris.csv")
        try expectRewriteSeen(p, bytes)
    }

    @Test("a same-size rewrite after checkout wrote the file, with the old mtime put back, is seen")
    func rewriteAfterCheckout() async throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.remove("data/iris.csv")
        try sb.mvcOK("checkout", "iris@v1")   // writes it, and records it as written
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        try await Task.sleep(for: .milliseconds(30))   // a later timestamp tick than checkout's write
        let bytes = try sneakyRewrite(sb, "data/iris.csv")
        try expectRewriteSeen(p, bytes)
    }

    @Test("a file replaced by another of the same size and mtime is seen")
    func replacedFile() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let t = try mtime(sb.path("data/iris.csv"))
        var bytes = try sb.read("data/iris.csv")
        bytes[0] ^= 0x01
        try sb.writeAbsolute(sb.scratch + "/replacement", bytes)
        try setTimes(sb.scratch + "/replacement", t)
        try sb.remove("data/iris.csv")
        try #require(rename(sb.scratch + "/replacement", sb.path("data/iris.csv")) == 0)
        try expectRewriteSeen(p, bytes)
    }

    @Test("a missing or garbled index is only a hint")
    func garbledIndex() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.mvcOK("status")
        for garbage in ["", "mvc-index 1\nnot an entry\n", "mvc-index 999\n", String(repeating: "\u{0}", count: 100)] {
            try sb.write(".mvc/index", garbage)
            #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
            #expect(try sb.commit("data", "--name", "iris").unchanged)
        }
        // An entry that lies about the blob id, for a file whose stat does not match, is ignored.
        try sb.write(".mvc/index", "mvc-index 1\n3858 1 1 1 9999999999999999999 \(String(repeating: "0", count: 64)) data/iris.csv\n")
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        if sb.exists(".mvc/index") { try sb.remove(".mvc/index") }
        let bytes = try sneakyRewrite(sb, "data/iris.csv")
        try expectRewriteSeen(p, bytes)
        try p.expectIntact()
    }
}
