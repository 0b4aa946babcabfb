// Damage and contention: corrupt and truncated packs, a lost index, a broken ref, a held lock, a
// store from a newer mvc, left-overs of an interrupted commit. mvc must notice, say so in one
// clear line, never hand out wrong bytes, and keep everything that is not damaged usable.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The pack file holding `needle` (raw objects are stored as they are), and where.
private func packHolding(_ needle: Data, in sb: Sandbox) throws -> (path: String, range: Range<Int>) {
    let dir = sb.path(".mvc/objects/pack")
    for name in try FileManager.default.contentsOfDirectory(atPath: dir).sorted() where name.hasSuffix(".pack") {
        let data = try sb.readAbsolute(dir + "/" + name)
        if let r = data.range(of: needle) { return (dir + "/" + name, r) }
    }
    throw E2EError("no pack in '\(dir)' holds the \(needle.count) bytes")
}

/// The store file (a loose object or a pack) holding `needle`, and where: small commits are
/// stored loose, large ones in a pack.
private func storeFileHolding(_ needle: Data, in sb: Sandbox) throws -> (path: String, range: Range<Int>) {
    let objects = sb.path(".mvc/objects")
    for shard in try FileManager.default.contentsOfDirectory(atPath: objects).sorted() where shard.count == 2 {
        for name in try FileManager.default.contentsOfDirectory(atPath: objects + "/" + shard).sorted() {
            let data = try sb.readAbsolute(objects + "/" + shard + "/" + name)
            if let r = data.range(of: needle) { return (objects + "/" + shard + "/" + name, r) }
        }
    }
    return try packHolding(needle, in: sb)
}

/// Commits 100 small files as artifact `bulk` (more than a small batch, so they go into a pack)
/// and returns one file's bytes.
private func commitBulk(_ sb: Sandbox) throws -> Data {
    for i in 0..<100 { try sb.write("bulk/f\(i).txt", "bulk file \(i) " + String(repeating: "x", count: i * 7) + "\n") }
    try sb.mvcOK("commit", "bulk", "--name", "bulk", "--kind", "dataset")
    return try sb.read("bulk/f50.txt")
}

/// Rewrites a (read-only) store file in place.
private func overwrite(_ path: String, with data: Data) throws {
    var st = stat()
    _ = stat(path, &st)
    chmod(path, 0o644)
    defer { chmod(path, st.st_mode & 0o7777) }
    try data.write(to: URL(fileURLWithPath: path))
}

/// Checks that the undamaged artifacts still check out byte-exact.
private func expectCheckouts(_ sb: Sandbox, _ revisions: [(String, String)], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let out = sb.scratch + "/ok-\(UInt64.random(in: 0...UInt64.max))"
    for (rev, file) in revisions {
        try sb.mvcOK(["checkout", rev, "-o", out], sourceLocation: sourceLocation)
        #expect(try sb.readAbsolute(out + "/" + file) == Fixtures.data(file), "\(rev)", sourceLocation: sourceLocation)
    }
}

@Suite("Integrity: corruption, locks and format versions")
struct IntegrityTests {
    @Test("a flipped byte in a pack is caught by checkout, cat-object and fsck; nothing wrong is written")
    func corruptPackByte() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let csv = try Fixtures.data("data/iris.csv")
        let blob = try sb.sha256(ofFile: Fixtures.path("data/iris.csv"))
        let (file, range) = try storeFileHolding(csv, in: sb)
        var bytes = try sb.readAbsolute(file)
        bytes[range.lowerBound + csv.count / 2] ^= 0x20
        try overwrite(file, with: bytes)

        let out = sb.scratch + "/out"
        let r = try sb.mvcFails(["checkout", "iris@v1", "-o", out], mentioning: "corrupt")
        #expect(r.stderrLines.first?.contains(blob) == true, "the error names the object: \(r)")
        #expect(!sb.existsAbsolute(out + "/data/iris.csv"), "corrupt bytes are never published")
        #expect(sb.files(under: out).allSatisfy { $0 == "data/README.md" }, "no temp files left: \(sb.files(under: out))")

        // In the work tree, with the file deleted, the same.
        try sb.remove("data/iris.csv")
        try sb.mvcFails(["checkout", "iris@v1"], mentioning: "corrupt")
        #expect(!sb.exists("data/iris.csv"))
        #expect(sb.files(under: sb.path("data")) == ["README.md"])

        try sb.mvcFails(["cat-object", blob], mentioning: "corrupt")

        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0, "\(fsck)")
        #expect(fsck.stdout.contains(blob), "fsck names the corrupt object: \(fsck)")
        #expect(fsck.stderrLines.first?.hasPrefix("error: ") == true, "\(fsck)")
        let report = try #require(try? JSONDecoder().decode(FsckJSON.self, from: try sb.mvc("fsck", "--json").stdoutData))
        #expect(report.problems.map(\.subject) == [blob], "exactly the damaged object: \(report.problems)")

        // What is not damaged stays usable.
        try expectCheckouts(sb, [("train-config@v1", "config/train.yaml"), ("iris-mlp@v1", "model/model.safetensors")])
        #expect(try sb.json(ShowJSON.self, ["show", "iris"]).id == p.iris.id)
        try sb.mvcOK("checkout", "iris@v1", "-o", sb.scratch + "/readme", "--", "data/README.md")
    }

    @Test("a truncated pack makes fsck fail and reads fail cleanly")
    func truncatedPack() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let needle = try commitBulk(sb)
        let (pack, range) = try packHolding(needle, in: sb)
        let bytes = try sb.readAbsolute(pack)
        try overwrite(pack, with: bytes.prefix(range.lowerBound + 5))

        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0, "\(fsck)")
        #expect(fsck.stdout.contains(try sb.sha256(ofFile: sb.path("bulk/f50.txt"))), "\(fsck)")
        #expect(fsck.stdout.contains("refs/artifacts/bulk"), "the commit after the cut is reported too: \(fsck)")
        expectCleanError(fsck, mentioning: "problem")

        try sb.mvcFails(["show", "bulk"], mentioning: "truncated")
        try sb.mvcFails(["checkout", "bulk@v1", "-o", sb.scratch + "/out"], mentioning: "truncated")
        #expect(!sb.existsAbsolute(sb.scratch + "/out/bulk/f99.txt"))
        try expectCheckouts(sb, [("train-config@v1", "config/train.yaml"), ("iris-mlp@v1", "model/model.safetensors")])
    }

    @Test("a lost pack index shows up as missing objects")
    func missingPackIndex() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let (pack, _) = try packHolding(try commitBulk(sb), in: sb)
        try FileManager.default.removeItem(atPath: String(pack.dropLast(5)) + ".idx")
        try sb.mvcFails(["show", "bulk"], mentioning: "missing")
        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0 && fsck.stdout.contains("refs/artifacts/bulk"), "\(fsck)")
        try expectCheckouts(sb, [("train-config@v1", "config/train.yaml")])
    }

    @Test("a damaged pack index: fsck reports its checksum; a cut one fails every read cleanly")
    func damagedPackIndex() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let (pack, _) = try packHolding(try commitBulk(sb), in: sb)
        let idx = String(pack.dropLast(5)) + ".idx"
        let original = try sb.readAbsolute(idx)

        // A flipped bit in an entry's length: opening the pack does not hash the index, a read of
        // that entry fails its verification, and fsck finds the checksum wrong.
        var flipped = original
        flipped[1040 + 49 + 48] ^= 0x01
        try overwrite(idx, with: flipped)
        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0 && fsck.stdout.contains("checksum mismatch"), "\(fsck)")
        expectCleanError(fsck, mentioning: "problem")
        try expectCheckouts(sb, [("train-config@v1", "config/train.yaml")])
        // gc decides what is dead from the ids in the indexes: it checks them all first.
        try sb.mvcFails(["gc"], mentioning: "corrupt")
        #expect(try sb.readAbsolute(pack).count > 0 && sb.existsAbsolute(idx), "gc deleted nothing")

        // The top bit of an entry's offset: a read of it fails cleanly (no arithmetic trap), and so
        // does fsck, which reads nothing through a damaged index.
        var far = original
        far[1040 + 49 + 33] ^= 0x80
        try overwrite(idx, with: far)
        let out = sb.scratch + "/far"
        try sb.mvcFails(["checkout", "bulk@v1", "-o", out], mentioning: "corrupt")
        let fsck2 = try sb.mvc("fsck")
        #expect(fsck2.status == 1 && fsck2.stdout.contains("checksum mismatch"), "\(fsck2)")

        // Cut short: every command that opens the packs says which file and what to do.
        try overwrite(idx, with: original.prefix(original.count - 10))
        let r = try sb.mvcFails(["show", "bulk"], mentioning: "corrupt")
        #expect(r.stderr.contains(idx) || r.stderr.contains(String(idx.split(separator: "/").last!)), "\(r)")
        try overwrite(idx, with: original)
        #expect(try sb.mvc("fsck").status == 0)
    }

    @Test("a checkout's temp files (.mvc-tmp-*) are not seen by status or commit")
    func checkoutTempFilesIgnored() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        // What an interrupted checkout can leave: a file being written, or the one it replaced.
        try sb.write("data/.mvc-tmp-4242-17", "half a file\n")
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        try sb.write("data/extra.csv", "x,y\n1,2\n")
        let v2 = try sb.json(CommitJSON.self, ["commit", "data", "--name", "iris", "--json"])
        let ls = try sb.mvcOK("ls", "iris@v\(v2.version)").stdout
        #expect(ls.contains("data/extra.csv") && !ls.contains("mvc-tmp"), "\(ls)")
        try sb.mvcOK("checkout", "iris@v1")
        #expect(sb.exists("data/.mvc-tmp-4242-17"), "checkout neither removes nor reports it")
    }

    @Test("a corrupt ref is reported, and other artifacts still work")
    func corruptRef() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        try sb.write(".mvc/refs/artifacts/iris", "not a hash\n")
        try sb.mvcFails(["show", "iris"], mentioning: "corrupt")
        try sb.mvcFails(["commit", "data", "--name", "iris"], mentioning: "corrupt")
        let fsck = try sb.mvc("fsck")
        #expect(fsck.status != 0 && fsck.stdout.contains("refs/artifacts/iris"), "\(fsck)")
        try expectCheckouts(sb, [("train-config@v1", "config/train.yaml")])
        // The ref's log says where it pointed: restoring it by hand makes the store whole again.
        try sb.write(".mvc/refs/artifacts/iris", p.iris.id + "\n")
        try p.expectIntact()
    }

    @Test("a held ref lock makes commit fail with 'locked'; after removing it the commit works")
    func heldLock() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let lock = sb.path(".mvc/refs/artifacts/iris.lock")
        try sb.writeAbsolute(lock, Data())
        let v2bytes = try Fixtures.data("data/iris.csv") + Data("6.1,2.8,4.0,1.3,versicolor\n".utf8)
        try sb.write("data/iris.csv", v2bytes)

        let r = try sb.mvcFails(["commit", "data", "--name", "iris"], mentioning: "locked")
        #expect(r.stderr.contains("iris.lock"), "the error names the lock file: \(r)")
        #expect(sb.existsAbsolute(lock), "someone else's lock is not removed")
        #expect(try sb.json([LogEntryJSON].self, ["log", "iris"]).map(\.version) == [1])
        #expect(try sb.json([ArtifactJSON].self, ["artifacts"]).map(\.name) == ["iris", "iris-mlp", "train-config"],
                "a lock file is not an artifact")
        #expect(try sb.read("data/iris.csv") == v2bytes, "the work tree is untouched")
        // Other artifacts can still be committed meanwhile.
        try sb.write("config/train.yaml", try Fixtures.data("config/train.yaml") + Data("seed: 7\n".utf8))
        #expect(try sb.commit("config/train.yaml", "--name", "train-config").version == 2)

        try FileManager.default.removeItem(atPath: lock)
        let v2 = try sb.commit("data", "--name", "iris")
        #expect(v2.version == 2 && !v2.unchanged)
        let out = sb.scratch + "/v2"
        try sb.mvcOK("checkout", "iris@v2", "-o", out)
        #expect(try sb.readAbsolute(out + "/data/iris.csv") == v2bytes)
        try sb.mvcOK("checkout", "iris@v1", "--force")
        try p.expectIntact()
    }

    @Test("a store with an unknown format version is refused by every command, untouched")
    func unknownFormatVersion() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        let original = try sb.read(".mvc/config")
        let text = String(decoding: original, as: UTF8.self)
        try #require(text.contains("formatVersion = 1\n"), "unexpected config:\n\(text)")
        let newer = Data(text.replacingOccurrences(of: "formatVersion = 1\n", with: "formatVersion = 99\n").utf8)
        try sb.write(".mvc/config", newer)
        let before = storeListing(sb)
        try sb.write("data/iris.csv", "changed\n")

        for args in [["status"], ["log", "iris"], ["show", "iris"], ["ls", "iris"], ["lineage", "iris"],
                     ["lineage", "iris", "--down"], ["artifacts"], ["fsck"], ["cat-object", p.iris.id],
                     ["checkout", "iris@v1", "-o", sb.scratch + "/out"], ["checkout", "iris@v1", "--force"],
                     ["commit", "data", "--name", "iris"], ["commit", "config/train.yaml", "--name", "new-config"]] {
            let r = try sb.mvcFails(args, mentioning: "format version")
            #expect(r.stderrLines.first?.contains("99") == true, "\(r)")
        }
        #expect(try sb.read(".mvc/config") == newer, "the config is left as it is")
        #expect(storeListing(sb) == before, "nothing in the store changed")
        #expect(try sb.read("data/iris.csv") == Data("changed\n".utf8), "nothing in the work tree changed")
        #expect(!sb.existsAbsolute(sb.scratch + "/out"))

        try sb.write(".mvc/config", original)
        try sb.mvcOK("checkout", "iris@v1", "--force")
        try p.expectIntact()
    }

    @Test("left-overs of an interrupted commit are ignored")
    func interruptedCommitLeftovers() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        // A half-written pack (never renamed into place) and a half-written index.
        try sb.write(".mvc/objects/pack/tmp-4242-1234.pack", Data("MVCPACK1".utf8) + Data(repeating: 0xAB, count: 1000))
        try sb.write(".mvc/objects/pack/pack-\(String(repeating: "ab", count: 32)).idx.tmp-4242-99", Data("MVCIDX01".utf8))
        try p.expectIntact()
        #expect(try sb.json([ArtifactJSON].self, ["artifacts"]).map(\.name) == ["iris", "iris-mlp", "train-config"])
        try sb.write("data/iris.csv", "sepal\n1\n")
        #expect(try sb.commit("data", "--name", "iris").version == 2)
        #expect(try sb.mvc("fsck").status == 0)
    }
}

private func storeListing(_ sb: Sandbox) -> [String] { sb.files(under: sb.path(".mvc")) }
