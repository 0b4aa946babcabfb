// Remotes given bad input: a missing directory, an unknown remote, a stale push, a remote added
// twice, a URL mvc cannot use. Each fails with one clear error and changes nothing.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Remotes: bad input")
struct RemoteBadInputTests {
    /// A store with `iris@v1` and `iris-mlp@v1` (in production), and an empty directory for a remote.
    private static func store() throws -> (sb: Sandbox, remote: String) {
        let sb = try Sandbox()
        try sb.copyFixture("data/iris.csv")
        try sb.copyFixture("model/model.safetensors")
        try sb.mvcOK("init")
        try sb.commit("data/iris.csv", "--name", "iris", "--kind", "dataset")
        try sb.commit("model/model.safetensors", "--name", "iris-mlp", "--kind", "model", "--input", "iris@v1")
        try sb.mvcOK("promote", "iris-mlp@v1", "--to", "production")
        let remote = sb.root + "/remote"
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)
        return (sb, remote)
    }

    @Test("a directory that does not exist: refused when added, and when it disappears before a push")
    func missingDirectory() throws {
        let (sb, remote) = try Self.store()
        let nowhere = sb.root + "/nowhere"
        try sb.mvcFails(["remote", "add", "origin", nowhere], mentioning: "does not exist")
        try sb.mvcFails(["remote", "add", "origin", "file://" + nowhere], mentioning: "does not exist")
        #expect(try sb.mvcOK("remote", "list").stdout == "no remotes\n")
        #expect(!sb.existsAbsolute(nowhere))

        try sb.mvcOK("remote", "add", "origin", remote)
        try FileManager.default.removeItem(atPath: remote)
        let r = try sb.mvcFails(["push"], mentioning: "does not exist")
        #expect(r.stderr.contains(remote), "\(r)")
        #expect(!sb.existsAbsolute(remote), "a push must not create the remote directory")
        try sb.mvcFails(["fetch"], mentioning: "does not exist")
        try sb.mvcFails(["pull", "iris@v1"], mentioning: "does not exist")
        try sb.mvcFails(["fsck", "--remote", "origin"], mentioning: "does not exist")
        #expect(!sb.existsAbsolute(remote))
        #expect(try sb.mvcOK("remote", "list").stdout.contains("origin"))
    }

    @Test("a remote never pushed to: fetch, pull and fsck --remote say it holds no mvc data")
    func emptyRemote() throws {
        let (sb, remote) = try Self.store()
        try sb.mvcOK("remote", "add", "origin", remote)
        try sb.mvcFails(["fetch"], mentioning: "holds no mvc data")
        try sb.mvcFails(["pull", "origin", "iris@v1"], mentioning: "holds no mvc data")
        try sb.mvcFails(["fsck", "--remote", "origin"], mentioning: "holds no mvc data")
        #expect(try RemoteFiles.snapshot(remote).isEmpty, "reading a remote writes nothing to it")
    }

    @Test("an unknown remote name")
    func unknownRemote() throws {
        let (sb, remote) = try Self.store()
        // No remote at all.
        try sb.mvcFails(["push"], mentioning: "no default remote")
        try sb.mvcFails(["fetch"], mentioning: "no default remote")
        try sb.mvcFails(["fsck", "--remote", "origin"], mentioning: "no remote named 'origin'")

        try sb.mvcOK("remote", "add", "origin", remote)
        try sb.mvcOK("push")
        let pushed = try RemoteFiles.snapshot(remote)
        try sb.mvcFails(["fsck", "--remote", "nosuch"], mentioning: "no remote named 'nosuch'")
        try sb.mvcFails(["remote", "remove", "nosuch"], mentioning: "no remote named 'nosuch'")
        try sb.mvcFails(["pull", "nosuch", "iris@v1"], mentioning: "nosuch")
        // `nosuch` is neither a remote nor an artifact: refused, not read as "push nothing to origin".
        try sb.mvcFails(["push", "nosuch"], mentioning: "nosuch")
        try sb.mvcFails(["push", "nosuch", "iris"], mentioning: "nosuch")
        try sb.mvcFails(["fetch", "nosuch"], mentioning: "nosuch")
        #expect(try RemoteFiles.snapshot(remote) == pushed)

        // Two remotes, neither named origin: no default.
        try sb.mvcOK("remote", "remove", "origin")
        let other = sb.root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try sb.mvcOK("remote", "add", "first", remote)
        try sb.mvcOK("remote", "add", "second", other)
        let r = try sb.mvcFails(["push"], mentioning: "no default remote")
        #expect(r.stderr.contains("first, second"), "\(r)")
        #expect(RemoteFiles.names(in: other).isEmpty)
    }

    @Test("pushing a revision that does not exist is refused")
    func unknownRevision() throws {
        let (sb, remote) = try Self.store()
        try sb.mvcOK("remote", "add", "origin", remote)
        try sb.mvcFails(["push", "origin", "iris@v9"], mentioning: "iris@v9")
        try sb.mvcFails(["push", "origin", "nosuch@v1"], mentioning: "nosuch")
        #expect(RemoteFiles.names(in: remote + "/refs").isEmpty, "nothing was pushed")

        // Fetching an artifact the remote does not have is refused too, in a store that pushed
        // something else.
        try sb.mvcOK("push", "origin", "iris")
        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK("remote", "add", "origin", remote)
        try b.mvcFails(["fetch", "origin", "nosuch"], mentioning: "nosuch")
        try b.mvcFails(["pull", "origin", "nosuch@v1"], mentioning: "nosuch")
        #expect(b.files(under: b.store + "/refs").isEmpty, "nothing was fetched")
    }

    @Test("a stale push (the remote moved on) is rejected with a 'fetch' hint and changes nothing on the remote")
    func stalePush() throws {
        let (a, remote) = try Self.store()
        try a.mvcOK("remote", "add", "origin", remote)
        try a.mvcOK("push")

        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK("remote", "add", "origin", remote)
        try b.mvcOK("pull", "iris-mlp@production")
        #expect(try b.read("model/model.safetensors") == Fixtures.data("model/model.safetensors"))

        // A publishes v2; B, not knowing, makes its own v2 on top of v1.
        try a.copyFixture("model/model-v2.safetensors", to: "model/model.safetensors")
        try a.commit("model/model.safetensors", "--name", "iris-mlp", "-m", "A's v2")
        try a.mvcOK("push")
        let remoteAfterA = try RemoteFiles.snapshot(remote)
        try b.write("model/model.safetensors", "B's own weights\n")
        let bV2 = try b.commit("model/model.safetensors", "--name", "iris-mlp", "-m", "B's v2")
        #expect(bV2.version == 2)

        let r = try b.mvcFails(["push"], mentioning: "rejected")
        #expect(r.stderr.contains("refs/artifacts/iris-mlp"), "\(r)")
        #expect(r.stderr.lowercased().contains("fetch"), "the message should say to fetch first: \(r)")
        let json = try b.mvc(["push", "--json"])
        #expect(json.status != 0)
        let report = try JSONDecoder().decode(RemotePushJSON.self, from: json.stdoutData)
        #expect(report.rejected == ["refs/artifacts/iris-mlp"])
        #expect(report.refsUpdated.isEmpty && report.objectsSent == 0)
        #expect(try RemoteFiles.snapshot(remote) == remoteAfterA, "a rejected push changes nothing on the remote")
        #expect(try a.mvc(["fsck", "--remote", "origin"]).status == 0)

        // Fetching shows the divergence and keeps B's version.
        let fetched = try b.remoteJSON(RemoteFetchJSON.self, ["fetch"])
        #expect(fetched.diverged == ["refs/artifacts/iris-mlp"])
        #expect(try b.mvcOK("log", "iris-mlp").stdoutLines.first?.contains(String(bV2.id.prefix(12))) == true)
        #expect(try RemoteFiles.snapshot(remote) == remoteAfterA)
    }

    @Test("adding a remote twice, a bad URL, a bad name")
    func badRemoteAdd() throws {
        let (sb, remote) = try Self.store()
        try sb.mvcOK("remote", "add", "origin", remote)
        let remotesFile = try sb.read(".mvc/remotes")
        let other = sb.root + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        try sb.mvcFails(["remote", "add", "origin", remote], mentioning: "already exists")
        try sb.mvcFails(["remote", "add", "origin", other], mentioning: "already exists")
        for url in ["ftp://x", "http://example.com/store", "relative/dir", ""] {
            try sb.mvcFails(["remote", "add", "backup", url], mentioning: "unsupported remote URL")
        }
        // A URL is one line of .mvc/remotes: a line break in it would corrupt the file, or add a
        // second remote nobody asked for.
        let broken = other + "\nb", sneaky = other + "\nevil /"
        for dir in [broken, sneaky] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        for (name, url) in [("backup", broken), ("backup2", sneaky)] {
            try sb.mvcFails(["remote", "add", name, url], mentioning: "URL")
            let now = try sb.read(".mvc/remotes")
            #expect(now == remotesFile, "a line break in the URL changed .mvc/remotes to:\n\(String(decoding: now, as: UTF8.self))")
            try sb.write(".mvc/remotes", remotesFile)   // so that what follows is checked on its own
        }
        try sb.mvcFails(["remote", "add", "Backup", other], mentioning: "invalid remote name")
        try sb.mvcFails(["remote", "add", "back up", other], mentioning: "invalid remote name")
        #expect(try sb.read(".mvc/remotes") == remotesFile, "failed adds change nothing")
        let list = try sb.mvcOK("remote", "list").stdoutLines
        #expect(list.count == 1 && list.first?.hasPrefix("origin") == true && list.first?.hasSuffix(remote) == true, "\(list)")
        // Nothing was written to the remotes either.
        #expect(RemoteFiles.names(in: other).isEmpty)
        #expect(RemoteFiles.names(in: broken).isEmpty && RemoteFiles.names(in: sneaky).isEmpty)
        #expect(RemoteFiles.names(in: remote).isEmpty)
    }
}
