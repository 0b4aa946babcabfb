// Bad input from a user: each gets one clear `error: ...` line (plus hints) on stderr, a non-zero
// exit, changes nothing in the store, and loses nothing already stored.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A commit that must be refused: its arguments (after `mvc commit`) and a word the error names.
struct BadCommit: Sendable, CustomTestStringConvertible {
    var label: String
    var arguments: [String]
    var word: String
    var testDescription: String { label }
}

/// The store's refs, logs and objects, by path, to prove a failed command changed nothing.
private func storeListing(_ sb: Sandbox) -> [String] { sb.files(under: sb.path(".mvc")) }

@Suite("Bad input")
struct BadInputTests {
    static let badCommits: [BadCommit] = [
        BadCommit(label: "metric that is not a number", arguments: ["data/", "--name", "iris", "--metric", "acc=high"], word: "metric"),
        BadCommit(label: "metric without a value", arguments: ["data/", "--name", "iris", "--metric", "accuracy"], word: "metric"),
        BadCommit(label: "metric that is not finite", arguments: ["data/", "--name", "iris", "--metric", "acc=nan"], word: "metric"),
        BadCommit(label: "parameter without '='", arguments: ["data/", "--name", "iris", "--param", "novalue"], word: "parameter"),
        BadCommit(label: "parameter with a bad key", arguments: ["data/", "--name", "iris", "--param", "learning rate=1"], word: "parameter"),
        BadCommit(label: "parameter value with a newline", arguments: ["data/", "--name", "iris", "--param", "lr=0.1\n0.2"], word: "parameter"),
        BadCommit(label: "semantic version 1.2", arguments: ["data/", "--name", "iris", "--version", "1.2"], word: "semantic version"),
        BadCommit(label: "semantic version with a leading zero", arguments: ["data/", "--name", "iris", "--version", "1.02.0"], word: "semantic version"),
        BadCommit(label: "duplicate semantic version tag", arguments: ["data/", "--name", "iris", "--version", "1.0.0", "-m", "again"], word: "1.0.0"),
        BadCommit(label: "unknown --kind", arguments: ["data/", "--name", "iris2", "--kind", "banana"], word: "kind"),
        BadCommit(label: "kind that differs from the artifact's", arguments: ["config/train.yaml", "--name", "iris", "--kind", "model"], word: "dataset"),
        BadCommit(label: "artifact name ../x", arguments: ["data/", "--name", "../x"], word: "artifact name"),
        BadCommit(label: "artifact name with a space", arguments: ["data/", "--name", "a b"], word: "artifact name"),
        BadCommit(label: "artifact name ending in .lock", arguments: ["data/", "--name", "iris.lock"], word: "artifact name"),
        BadCommit(label: "empty artifact name", arguments: ["data/", "--name", ""], word: "artifact name"),
        BadCommit(label: "artifact name under an existing one", arguments: ["data/", "--name", "iris/v2"], word: "conflicts"),
        BadCommit(label: "missing path", arguments: ["data/nope.csv", "--name", "iris"], word: "does not exist"),
        BadCommit(label: "missing directory", arguments: ["nodir/x.csv", "--name", "x"], word: "does not exist"),
        BadCommit(label: "relative path outside the work tree", arguments: ["../outside", "--name", "x"], word: "outside the work tree"),
        BadCommit(label: "absolute path outside the work tree", arguments: ["/etc/hostname", "--name", "x"], word: "outside the work tree"),
        BadCommit(label: "path inside the store", arguments: [".mvc/config", "--name", "x"], word: ".mvc"),
        BadCommit(label: "the whole work tree", arguments: [".", "--name", "x"], word: "whole work tree"),
        BadCommit(label: "unknown input artifact", arguments: ["model/model.safetensors", "--name", "iris-mlp", "--input", "nope@v1"], word: "unknown revision"),
        BadCommit(label: "unknown input version", arguments: ["model/model.safetensors", "--name", "iris-mlp", "--input", "iris@v7"], word: "unknown revision"),
        BadCommit(label: "input with a bad role", arguments: ["model/model.safetensors", "--name", "iris-mlp", "--input", "iris@v1:bad role"], word: "role"),
    ]

    @Test("commit refuses bad arguments and changes nothing", arguments: badCommits)
    func badCommit(_ c: BadCommit) throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.write("data/iris.csv", try Fixtures.data("data/iris.csv") + Data("4.9,3.0,1.4,0.2,setosa\n".utf8))
        let before = storeListing(sb)
        let artifacts = try sb.json([ArtifactJSON].self, ["artifacts"])
        try sb.mvcFails(["commit"] + c.arguments, mentioning: c.word)
        #expect(storeListing(sb) == before, "a refused commit writes nothing into the store")
        #expect(try sb.json([ArtifactJSON].self, ["artifacts"]) == artifacts)
        try p.expectIntact()
    }

    @Test("unknown revisions are reported by every command that takes one")
    func unknownRevision() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let before = storeListing(sb)
        for args in [["show", "nope"], ["show", "iris@v9"], ["show", "iris@v0"], ["show", "iris@9.9.9"], ["show", "iris@vx"],
                     ["show", "nope@v1"], ["ls", "nope"], ["lineage", "nope"], ["lineage", "nope", "--down"],
                     ["checkout", "nope", "-o", sb.scratch + "/x"], ["checkout", "iris@v2"], ["cat-object", "nope"],
                     ["show", "0000"], ["show", String(repeating: "0", count: 64)], ["show", "abc"], ["show", "bad name!"]] {
            try sb.mvcFails(args, mentioning: "unknown revision")
        }
        try sb.mvcFails(["log", "nope"], mentioning: "nope")
        try sb.mvcFails(["log", "../x"], mentioning: "artifact name")
        #expect(!sb.existsAbsolute(sb.scratch + "/x"), "a failed checkout creates no directory")
        #expect(storeListing(sb) == before)
        try p.expectIntact()
    }

    @Test("an id that names a blob or tree is not a revision")
    func notACommit() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let blob = try sb.sha256(ofFile: Fixtures.path("data/iris.csv"))
        let tree = try sb.json(ShowJSON.self, ["show", "iris"]).tree
        for id in [blob, String(blob.prefix(10)), tree] {
            try sb.mvcFails(["show", id], mentioning: "not a commit")
            try sb.mvcFails(["checkout", id, "-o", sb.scratch + "/x"], mentioning: "not a commit")
            try sb.mvcFails(["commit", "model/model.safetensors", "--name", "iris-mlp", "--input", id], mentioning: "not a commit")
        }
        // cat-object takes any object.
        #expect(try sb.mvcOK("cat-object", blob).stdoutData == Fixtures.data("data/iris.csv"))
        try p.expectIntact()
    }

    @Test("an id prefix that matches two objects is ambiguous")
    func ambiguousPrefix() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        // 65536 four-digit prefixes: with ~600 objects two share one with probability ~94%, and
        // the file contents are fixed, so the outcome is the same on every run. Add more until so.
        var known: [String: String] = [:]   // id -> what it is
        var collision: (String, String)?
        var count = 0
        while collision == nil {
            try #require(count < 6000, "no two of \(known.count) ids share a 4-digit prefix")
            for i in count..<(count + 600) {
                try sb.write(String(format: "many/f%05d.txt", i), "sample \(i)\n")
            }
            count += 600
            let c = try sb.commit("many", "--name", "many", "--kind", "dataset")
            known[c.id] = "commit"
            known[try sb.json(ShowJSON.self, ["show", c.id]).tree] = "tree"
            for f in try sb.json([LsEntryJSON].self, ["ls", c.id]) { known[f.id] = f.path }
            var byPrefix: [Substring: String] = [:]
            for id in known.keys.sorted() {
                if let other = byPrefix[id.prefix(4)] { collision = (other, id); break }
                byPrefix[id.prefix(4)] = id
            }
        }
        let (a, b) = try #require(collision)
        let prefix = String(a.prefix(4))
        let before = storeListing(sb)
        for args in [["show", prefix], ["cat-object", prefix], ["ls", prefix], ["lineage", prefix],
                     ["checkout", prefix, "-o", sb.scratch + "/x"], ["show", prefix.uppercased()]] {
            let r = try sb.mvcFails(args, mentioning: "ambiguous")
            #expect(r.stderrLines.first?.contains(String(a.prefix(12))) == true, "the error lists the candidates: \(r)")
            #expect(r.stderrLines.first?.contains(String(b.prefix(12))) == true, "the error lists the candidates: \(r)")
        }
        // NAME@prefix is ambiguous too when the prefix is.
        try sb.mvcFails(["show", "many@\(prefix)"], mentioning: "ambiguous")
        // Fewer than 4 digits is never taken as an id.
        try sb.mvcFails(["show", String(a.prefix(3))], mentioning: "unknown revision")
        // More digits resolve each one.
        for id in [a, b] {
            let r = try sb.mvcOK("cat-object", String(id.prefix(16)))
            #expect(try sb.sha256(of: r.stdoutData) == id, "\(known[id] ?? "?")")
        }
        #expect(storeListing(sb) == before)
        #expect(try sb.mvc("fsck").status == 0)
    }

    @Test("a symbolic link given as a path, or inside a committed directory, is refused")
    func symlinks() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let before = storeListing(sb)
        try FileManager.default.createSymbolicLink(atPath: sb.path("link.csv"), withDestinationPath: "data/iris.csv")
        try sb.mvcFails(["commit", "link.csv", "--name", "linked"], mentioning: "symbolic link")

        try FileManager.default.createSymbolicLink(atPath: sb.path("data/alias.csv"), withDestinationPath: "iris.csv")
        try sb.mvcFails(["commit", "data", "--name", "iris"], mentioning: "symbolic link")
        try sb.remove("data/alias.csv")

        // A link to a directory, given as the path.
        try FileManager.default.createSymbolicLink(atPath: sb.path("datalink"), withDestinationPath: sb.path("data"))
        try sb.mvcFails(["commit", "datalink", "--name", "linked"], mentioning: "symbolic link")
        #expect(storeListing(sb) == before)
        try p.expectIntact()
    }

    @Test("a fifo in a committed directory is refused")
    func specialFile() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let before = storeListing(sb)
        try #require(mkfifo(sb.path("data/pipe"), 0o644) == 0)
        try sb.mvcFails(["commit", "data", "--name", "iris"], mentioning: "not a regular file")
        try sb.mvcFails(["commit", "data/pipe", "--name", "pipe"], mentioning: "not a regular file")
        #expect(storeListing(sb) == before)
        try p.expectIntact()
    }

    @Test("a file name with a newline is refused with a one-line error")
    func newlineInFileName() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let before = storeListing(sb)
        try sb.write("data/bad\nname.csv", "x\n")
        try sb.mvcFails(["commit", "data", "--name", "iris"], mentioning: "file name")
        #expect(storeListing(sb) == before)
        try p.expectIntact()
    }

    @Test("an unreadable file makes commit fail cleanly",
          .enabled(if: Sandbox.canDropPrivileges, "needs a non-root user, or setpriv to run mvc as one"))
    func unreadableFile() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.write("data/iris.csv", try Fixtures.data("data/iris.csv") + Data("5.0,3.3,1.4,0.2,setosa\n".utf8))
        try sb.handToUnprivilegedUser()
        let before = storeListing(sb)
        chmod(sb.path("data/iris.csv"), 0)
        defer { chmod(sb.path("data/iris.csv"), 0o644) }
        let version = try sb.mvcUnprivileged(["version"])
        try #require(version.status == 0, "mvc must run as the unprivileged user: \(version)")

        let r = try sb.mvcUnprivileged(["commit", "data", "--name", "iris"])
        expectCleanError(r, mentioning: "permission denied")
        #expect(r.stderrLines.first?.contains("data/iris.csv") == true, "the error names the file: \(r)")
        #expect(storeListing(sb) == before, "no half-written pack is left behind")
        #expect(try sb.json([LogEntryJSON].self, ["log", "iris"]).count == 1)
        chmod(sb.path("data/iris.csv"), 0o644)
        try p.expectIntact()
        #expect(try sb.mvcUnprivileged(["commit", "data", "--name", "iris"]).status == 0, "readable again, it commits")
    }

    @Test("commands outside a repository say so")
    func outsideRepository() throws {
        let sb = try Sandbox()
        // The test is only meaningful if no parent of the sandbox holds a store.
        var dir = sb.outside
        while dir != "/" {
            try #require(!sb.existsAbsolute(dir + "/.mvc/config"), "a store exists in '\(dir)'; cannot test running outside one")
            dir = (dir as NSString).deletingLastPathComponent
        }
        try sb.writeAbsolute(sb.outside + "/file.txt", Data("x\n".utf8))
        for args in [["status"], ["log", "iris"], ["show", "iris"], ["ls", "iris"], ["lineage", "iris"], ["artifacts"],
                     ["checkout", "iris", "-o", "out"], ["commit", "file.txt", "--name", "x"], ["fsck"], ["cat-object", "abcd"]] {
            try sb.mvcFails(args, mentioning: "not an mvc repository", cwd: sb.outside)
        }
        try sb.mvcFails(["status", "-C", sb.root + "/does-not-exist"], mentioning: "does not exist")
        #expect(sb.files(under: sb.outside) == ["file.txt"], "nothing was created")
        #expect(!sb.existsAbsolute(sb.outside + "/.mvc"))
    }

    @Test("init twice is refused and leaves the store alone")
    func initTwice() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let config = try sb.read(".mvc/config")
        let before = storeListing(sb)
        try sb.mvcFails(["init"], mentioning: "already exists")
        try sb.mvcFails(["init", sb.work], mentioning: "already exists")
        try sb.mvcFails(["init", "no/such/dir"], mentioning: "does not exist")
        #expect(try sb.read(".mvc/config") == config)
        #expect(storeListing(sb) == before)
        try p.expectIntact()
    }

    @Test("init --chunking records the sizes; bad sizes are refused before anything is created")
    func initChunking() throws {
        let sb = try Sandbox()
        for bad in ["32K/128K", "32K/100K/512K", "128K/32K/512K", "1K/4K/128M", "x/y/z", "0/128K/512K"] {
            try sb.mvcFails(["init", "--chunking", bad], mentioning: "chunking")
            #expect(!sb.existsAbsolute(sb.path(".mvc")), "nothing was created for '\(bad)'")
        }
        try sb.mvcOK("init", "--chunking", "16K/64K/256k")
        let config = String(decoding: try sb.read(".mvc/config"), as: UTF8.self)
        #expect(config.contains("min = 16384") && config.contains("avg = 65536") && config.contains("max = 262144"))
        // A file larger than max is cut with the store's sizes: at least 4 chunks of at most 256 KiB.
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        var x: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in bytes.indices { x ^= x << 13; x ^= x >> 7; x ^= x << 17; bytes[i] = UInt8(truncatingIfNeeded: x) }
        try sb.write("big.bin", Data(bytes))
        try sb.mvcOK("commit", "big.bin", "--name", "big")
        let fsck = try sb.mvcOK("fsck").stdout
        #expect(fsck.contains("no problems"))
        // "checked N objects": the chunks, their list, a tree and a commit. With 512 KiB chunks at
        // most (the default) there would be 2 to 4 chunks.
        let checked = fsck.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        #expect(checked >= 4 + 3, "\(fsck)")
    }
}
