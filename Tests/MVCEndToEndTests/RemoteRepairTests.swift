// Damage and collection, end to end: a flipped byte in a local chunk is found by `mvc fsck` and
// mended by `mvc fsck --repair` from a remote; `mvc gc` keeps every version a stage ever held and
// deletes only unreachable objects older than the grace period.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Remotes: fsck --repair mends a damaged chunk from a remote")
struct RemoteRepairTests {
    /// A store with `w@v1` (a noise file of `bytes` bytes plus a small file), pushed to a directory
    /// remote `origin`.
    private static func pushedStore(bytes: Int) throws -> Sandbox {
        let sb = try Sandbox()
        try sb.write("w/noise.bin", RemoteFiles.noise(bytes, seed: UInt64(bytes)))
        try sb.write("w/notes.txt", "weights\n")
        try sb.mvcOK("init")
        try sb.commit("w/", "--name", "w")
        let remote = sb.root + "/remote"
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)
        try sb.mvcOK("remote", "add", "origin", remote)
        try sb.mvcOK("push")
        return sb
    }

    /// fsck fails naming `damaged`; checkout refuses to write damaged bytes; --repair mends it from
    /// the remote; then fsck passes and the checkout is byte-identical.
    private static func expectCaughtAndRepaired(_ sb: Sandbox, damaged: String,
                                                sourceLocation: SourceLocation = #_sourceLocation) throws {
        let fsck = try sb.mvc("fsck")
        expectCleanError(fsck, mentioning: "problem", sourceLocation: sourceLocation)
        #expect(fsck.stdout.contains(damaged), "fsck should name the damaged object \(damaged): \(fsck)", sourceLocation: sourceLocation)
        let report = try sb.mvc(["fsck", "--json"])
        #expect(report.status != 0, sourceLocation: sourceLocation)
        let problems = try JSONDecoder().decode(FsckJSON.self, from: report.stdoutData).problems
        #expect(problems.contains { $0.subject == damaged }, "\(problems.map(\.subject))", sourceLocation: sourceLocation)

        let bad = sb.scratch + "/before-repair"
        let refused = try sb.mvc(["checkout", "w@v1", "-o", bad])
        expectCleanError(refused, mentioning: "corrupt", sourceLocation: sourceLocation)
        #expect(!sb.existsAbsolute(bad + "/w/noise.bin"), "no damaged file may be written", sourceLocation: sourceLocation)

        let repair = try sb.mvc(["fsck", "--repair"])
        #expect(repair.status == 0, "fsck --repair should mend the store: \(repair)", sourceLocation: sourceLocation)
        let repairedLines = repair.stdoutLines.filter { $0.hasPrefix("repaired ") }
        #expect(repairedLines.contains("repaired \(damaged)"), "\(repair)", sourceLocation: sourceLocation)
        #expect(Set(repairedLines).count == repairedLines.count, "each object should be reported repaired once: \(repair)",
                sourceLocation: sourceLocation)
        #expect(repair.stdoutLines.last?.hasSuffix("no problems") == true, "\(repair)", sourceLocation: sourceLocation)

        let after = try sb.mvc("fsck")
        #expect(after.status == 0, "fsck should pass after the repair: \(after)", sourceLocation: sourceLocation)
        let out = sb.scratch + "/after-repair"
        try sb.mvcOK(["checkout", "w@v1", "-o", out], sourceLocation: sourceLocation)
        #expect(try sb.sha256(ofFile: out + "/w/noise.bin") == sb.sha256(ofFile: sb.path("w/noise.bin")), sourceLocation: sourceLocation)
        #expect(try sb.readAbsolute(out + "/w/notes.txt") == Data("weights\n".utf8), sourceLocation: sourceLocation)
    }

    @Test("a flipped byte in a packed chunk")
    func packedChunk() throws {
        let sb = try Self.pushedStore(bytes: 3 << 20)   // over 1 MiB: the commit is a pack
        let packDir = sb.store + "/objects/pack"
        let idx = try #require(RemoteStoreFiles.indexes(in: packDir).first)
        let entries = try RemoteStoreFiles.packEntries(idx)
        // A chunk: a raw record of at least the chunker's 64 KiB minimum; one whose id sorts after
        // its file's chunk list, so fsck reports the list first.
        let list = try #require(entries.first { $0.kind == 2 }, "no chunk list in \(entries)")
        let chunks = entries.filter { $0.kind == 1 && $0.length >= 64 << 10 }
        let chunk = try #require(chunks.first { $0.id > list.id } ?? chunks.first, "no chunk in \(entries)")
        try RemoteFiles.flipBit(String(idx.dropLast(4)) + ".pack", at: chunk.offset + chunk.length / 2)
        try Self.expectCaughtAndRepaired(sb, damaged: chunk.id)
    }

    @Test("a flipped byte in a loose chunk")
    func looseChunk() throws {
        let sb = try Self.pushedStore(bytes: 600 << 10)   // under 1 MiB: loose objects
        #expect(RemoteStoreFiles.indexes(in: sb.store + "/objects/pack").isEmpty)
        // The chunks of the noise file are the loose objects of 64 KiB or more (its chunk list is
        // `<id>.chunks`); one whose id sorts after the list's, so fsck reports the list first.
        var chunks: [(id: String, path: String, size: Int)] = []
        var listID: String?
        for id in try RemoteStoreFiles.objectIDs(store: sb.store).sorted() {
            let p = sb.store + "/objects/" + id.prefix(2) + "/" + id.dropFirst(2)
            if sb.existsAbsolute(p + ".chunks") { listID = id; continue }
            var st = stat()
            if stat(p, &st) == 0, st.st_size >= 64 << 10 { chunks.append((id, p, Int(st.st_size))) }
        }
        let list = try #require(listID, "no loose chunk list")
        let chunk = try #require(chunks.first { $0.id > list } ?? chunks.first, "no loose chunk")
        try RemoteFiles.flipBit(chunk.path, at: UInt64(chunk.size / 2))
        try Self.expectCaughtAndRepaired(sb, damaged: chunk.id)
    }
}

@Suite("Remotes: a damaged remote is caught, not copied")
struct RemoteDamagedTests {
    @Test("a flipped byte in a remote pack: fsck --remote names the object, a pull refuses it and moves nothing")
    func damagedRemotePack() throws {
        let a = try Sandbox()
        try a.write("w/noise.bin", RemoteFiles.noise(2 << 20, seed: 0xDA_0001))
        try a.mvcOK("init")
        try a.commit("w/", "--name", "w")
        let remote = a.root + "/remote"
        try FileManager.default.createDirectory(atPath: remote, withIntermediateDirectories: true)
        try a.mvcOK("remote", "add", "origin", remote)
        try a.mvcOK("push")
        try a.mvcOK("fsck", "--remote", "origin")

        let idx = try #require(RemoteStoreFiles.indexes(in: remote + "/packs").first)
        let entries = try RemoteStoreFiles.packEntries(idx)
        let chunk = try #require(entries.filter { $0.kind == 1 && $0.length >= 64 << 10 }.first, "no chunk in \(entries)")
        try RemoteFiles.flipBit(String(idx.dropLast(4)) + ".pack", at: chunk.offset + chunk.length / 2)

        let check = try a.mvc(["fsck", "--remote", "origin"])
        expectCleanError(check, mentioning: "problem")
        #expect(check.stdout.contains(chunk.id), "fsck --remote should name \(chunk.id): \(check)")
        #expect(try a.mvc("fsck").status == 0, "the local store is intact")

        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK("remote", "add", "origin", remote)
        try b.mvcFails(["pull", "w@v1"], mentioning: "corrupt")
        #expect(!b.exists("w/noise.bin"), "nothing damaged is checked out")
        #expect(b.files(under: b.store + "/refs").isEmpty, "no ref moved")
        #expect(try b.mvc("fsck").status == 0)

        // The store that has a sound copy is not "repaired" from the damaged remote.
        let repair = try a.mvc(["fsck", "--repair"])
        #expect(repair.status == 0 && !repair.stdout.contains("repaired"), "\(repair)")
    }
}

@Suite("Remotes: gc keeps what a stage held and deletes only old, unreachable objects")
struct RemoteGCTests {
    @Test("gc after a rollback keeps both versions; an orphan of a failed commit goes only after the grace period")
    func gcAfterRollback() throws {
        let sb = try Sandbox()
        try RemoteFiles.writeNoise(sb.path("m/weights.bin"), mib: 2, seed: 0x6C_0001)
        try sb.write("m/card.txt", "v1\n")
        try sb.mvcOK("init")
        try sb.commit("m/", "--name", "m", "--kind", "model")
        let v1 = (weights: try sb.sha256(ofFile: sb.path("m/weights.bin")), card: "v1\n")
        try RemoteFiles.writeNoise(sb.path("m/weights.bin"), blocks: [1], seed: 0x6C_0002, create: false)
        try sb.write("m/card.txt", "v2\n")
        try sb.commit("m/", "--name", "m")
        let v2 = (weights: try sb.sha256(ofFile: sb.path("m/weights.bin")), card: "v2\n")
        try sb.mvcOK("promote", "m@v1", "--to", "production")
        try sb.mvcOK("promote", "m@v2", "--to", "production")
        #expect(try sb.mvcOK("rollback", "m", "--stage", "production").stdout == "m@production: v2 -> v1 (rollback)\n")

        // A commit that fails at its ref (the ref's lock is held) after writing its objects.
        let before = try RemoteStoreFiles.objectIDs(store: sb.store)
        try RemoteFiles.writeNoise(sb.path("m/weights.bin"), mib: 2, seed: 0x6C_0003)
        try sb.write("m/card.txt", "v3\n")
        let lock = sb.store + "/refs/artifacts/m.lock"
        try sb.writeAbsolute(lock, Data())
        try sb.mvcFails(["commit", "m/", "--name", "m"], mentioning: "locked")
        try FileManager.default.removeItem(atPath: lock)
        let withOrphans = try RemoteStoreFiles.objectIDs(store: sb.store)
        let orphans = withOrphans.subtracting(before)
        try #require(!orphans.isEmpty, "the failed commit should have left its objects behind")
        #expect(before.isSubset(of: withOrphans))
        #expect(try sb.mvcOK("log", "m").stdoutLines.count == 2, "the failed commit made no version")

        // Everything was written "an hour ago", so only the grace period decides.
        try RemoteFiles.backdate(sb.store + "/objects", by: 3600)

        let kept = try sb.remoteJSON(RemoteGCJSON.self, ["gc"])   // 14 days of grace
        #expect(kept.deleted.isEmpty && !kept.dryRun)
        #expect(kept.keptYoung >= orphans.count)
        #expect(try RemoteStoreFiles.objectIDs(store: sb.store) == withOrphans)
        for orphan in orphans {
            let verdict = try sb.remoteJSON(RemoteExplainJSON.self, ["gc", "--explain", orphan])
            #expect(verdict.verdict.hasPrefix("kept for now"), "\(orphan): \(verdict.verdict)")
        }

        let dry = try sb.remoteJSON(RemoteGCJSON.self, ["gc", "--dry-run", "--grace-days", "0"])
        #expect(dry.dryRun)
        #expect(Set(dry.deleted) == orphans)
        #expect(try RemoteStoreFiles.objectIDs(store: sb.store) == withOrphans, "--dry-run deletes nothing")
        let dryText = try sb.mvcOK("gc", "--dry-run", "--grace-days", "0")
        #expect(dryText.stdout.hasPrefix("would delete \(orphans.count) objects"), "\(dryText)")
        for orphan in orphans {
            let verdict = try sb.remoteJSON(RemoteExplainJSON.self, ["gc", "--explain", orphan, "--grace-days", "0"])
            #expect(verdict.verdict.hasPrefix("would be deleted"), "\(orphan): \(verdict.verdict)")
        }

        let collected = try sb.remoteJSON(RemoteGCJSON.self, ["gc", "--grace-days", "0"])
        #expect(Set(collected.deleted) == orphans)
        #expect(collected.bytesFreed >= 2 << 20)
        #expect(try RemoteStoreFiles.objectIDs(store: sb.store) == before, "exactly the orphans are gone")
        let second = try sb.remoteJSON(RemoteGCJSON.self, ["gc", "--grace-days", "0"])
        #expect(second.deleted.isEmpty)

        // Both versions, the one rolled back from included, are intact.
        #expect(try sb.mvc("fsck").status == 0)
        for (rev, want) in [("m@v1", v1), ("m@v2", v2), ("m@production", v1)] {
            let out = sb.scratch + "/" + rev
            try sb.mvcOK("checkout", rev, "-o", out)
            #expect(try sb.sha256(ofFile: out + "/m/weights.bin") == want.weights, "\(rev)")
            #expect(try sb.readAbsolute(out + "/m/card.txt") == Data(want.card.utf8), "\(rev)")
        }
        let explained = try sb.mvcOK("gc", "--explain", "m@v2", "--grace-days", "0")
        let v2id = try sb.remoteJSON(RemoteExplainJSON.self, ["gc", "--explain", "m@v2", "--grace-days", "0"]).id
        #expect(explained.stdout.hasPrefix("\(v2id): kept: reachable from refs/"), "\(explained)")
        let v1Explained = try sb.remoteJSON(RemoteExplainJSON.self, ["gc", "--explain", "m@v1", "--grace-days", "0"])
        #expect(v1Explained.verdict.hasPrefix("kept: reachable from refs/"), "\(v1Explained.verdict)")
    }
}
