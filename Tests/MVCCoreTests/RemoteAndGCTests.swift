import Foundation
import Testing
@testable import MVCCore

/// A fresh store (fsync off) in its own temp directory.
struct Store {
    let dir = TempDir()
    let repo: Repository

    init(chunking: ChunkerParameters = smallChunks) throws {
        try Repository.initialize(at: dir.path, chunking: chunking)
        dir.write(".mvc/config", String(decoding: dir.read(".mvc/config")!, as: UTF8.self) + "[core]\n\tfsync = false\n")
        repo = try Repository.open(at: dir.path)
    }

    @discardableResult
    func commit(_ name: String, _ files: [String: [UInt8]], kind: ArtifactKind = .dataset) throws -> CommitResult {
        for (p, b) in files { dir.write(p, b) }
        let roots = Set(files.keys.map { String($0.split(separator: "/").first!) })
        return try repo.commit(CommitRequest(paths: roots.sorted(), name: name, kind: kind, baseDirectory: dir.path))
    }
}

@Suite("Remotes: directory remote between two stores")
struct RemoteTests {
    @Test("push, fetch and pull move only what is missing, with refs and stage history")
    func exchange() throws {
        let a = try Store(), b = try Store(), remote = TempDir()
        try a.commit("ds", ["data/x.bin": noise(300_000, seed: 1), "data/y.csv": Array("a,b\n1,2\n".utf8)])
        _ = try a.repo.promote(PromoteRequest(revision: "ds@v1", stage: "staging", reason: "first"))
        try a.repo.addRemote("origin", url: remote.path)
        let p1 = try a.repo.remote("origin").push()
        #expect(p1.objectsSent > 5 && p1.rejected.isEmpty)
        #expect(try a.repo.remote("origin").push().objectsSent == 0, "nothing new to send")

        try b.repo.addRemote("origin", url: "file://" + remote.path)
        let f = try b.repo.remote(nil).fetch()
        #expect(f.objectsReceived == p1.objectsSent)
        #expect(try b.repo.resolve("ds@staging") == (try a.repo.resolve("ds@v1")))
        #expect(try b.repo.history("ds").map(\.reason) == ["first\n"])
        _ = try b.repo.checkout("ds@v1")
        #expect(b.dir.read("data/x.bin") == noise(300_000, seed: 1))
        #expect(try b.repo.fsck().ok)

        // A second version shares most chunks: only the new ones travel.
        var x2 = noise(300_000, seed: 1); x2.replaceSubrange(1000..<1000, with: noise(100, seed: 2))
        try a.commit("ds", ["data/x.bin": x2, "data/y.csv": Array("a,b\n1,2\n".utf8)])
        let p2 = try a.repo.remote(nil).push()
        #expect(p2.bytesSent < 150_000, "sent \(p2.bytesSent) bytes for a 100-byte insertion")
        let f2 = try b.repo.remote(nil).fetch(revisions: ["ds"])
        #expect(f2.refsUpdated == ["refs/artifacts/ds"])
    }

    @Test("text compresses on the remote, random bytes are sent as they are; both come back exact")
    func compression() throws {
        let a = try Store(chunking: .standard), b = try Store(chunking: .standard), remote = TempDir()
        var csv = "id,species,sepal_length,note\n"
        for i in 0..<40_000 { csv += "\(i),\(["setosa", "versicolor", "virginica"][i % 3]),\(Double(i % 80) / 10),row \(i) of the table\n" }
        let text = Array(csv.utf8), weights = noise(1 << 20, seed: 5)
        try a.commit("ds", ["d/table.csv": text, "d/weights.bin": weights])
        try a.repo.addRemote("origin", url: remote.path)
        let r = try a.repo.remote(nil).push()
        #expect(r.bytesSent < UInt64(text.count / 2 + weights.count + 100_000), "sent \(r.bytesSent) for \(text.count) bytes of text and \(weights.count) of noise")
        #expect(r.bytesSent > UInt64(weights.count), "random bytes do not shrink")
        try b.repo.addRemote("origin", url: remote.path)
        _ = try b.repo.remote(nil).fetch()
        _ = try b.repo.checkout("ds@v1")
        #expect(b.dir.read("d/table.csv") == text && b.dir.read("d/weights.bin") == weights)
        #expect(try b.repo.remote(nil).fsck().ok && (try b.repo.fsck().ok))
        #expect(try a.repo.remote(nil).gc().deleted.isEmpty)
    }

    @Test("a stale push is refused like a non-fast-forward; fetch keeps a diverged local ref")
    func stalePush() throws {
        let a = try Store(), b = try Store(), remote = TempDir()
        try a.commit("ds", ["data/x.csv": Array("1\n".utf8)])
        try a.repo.addRemote("origin", url: remote.path)
        _ = try a.repo.remote(nil).push()
        try b.repo.addRemote("origin", url: remote.path)
        _ = try b.repo.remote(nil).fetch()
        try a.commit("ds", ["data/x.csv": Array("2\n".utf8)])
        _ = try a.repo.remote(nil).push()
        try b.commit("ds", ["data/x.csv": Array("3\n".utf8)])
        let r = try b.repo.remote(nil).push()
        #expect(r.rejected == ["refs/artifacts/ds"])
        let f = try b.repo.remote(nil).fetch()
        #expect(f.diverged == ["refs/artifacts/ds"])
        #expect(try b.repo.refs.read("refs/remotes/origin/artifacts/ds") == (try a.repo.head(of: "ds")))
    }

    @Test("an interrupted push resumes without re-sending the packs that arrived")
    func resume() throws {
        let a = try Store(), remote = TempDir()
        try a.commit("ds", ["data/x.bin": noise(200_000, seed: 3)])
        try a.repo.addRemote("origin", url: remote.path)
        // Simulate a push killed after its pack was published but before the refs moved.
        let client = try a.repo.remote(nil)
        let first = try client.push()
        try FileManager.default.removeItem(atPath: remote.path + "/refs")
        let again = try a.repo.remote(nil).push()
        #expect(first.objectsSent > 0 && again.objectsSent == 0 && again.refsUpdated == ["refs/artifacts/ds"])
    }

    @Test("a flipped byte in a local chunk is caught by fsck and repaired from the remote")
    func repair() throws {
        let a = try Store(), remote = TempDir()
        let r = try a.commit("ds", ["data/x.bin": noise(200_000, seed: 4)])
        try a.repo.addRemote("origin", url: remote.path)
        _ = try a.repo.remote(nil).push()
        let file = try a.repo.files(ofTree: r.tree)[0]
        let list = try ChunkList.decode(try a.repo.objects.readRecord(try #require(try a.repo.objects.locate(file.id)), id: file.id, limit: 1 << 20), id: file.id)
        let victim = list.chunks[1].id
        // Flip one byte of the chunk wherever it is stored (a loose file or a pack).
        let (path, offset): (String, Int)
        switch try #require(try a.repo.objects.locate(victim)) {
        case .packed(let pack, let e): (path, offset) = (pack.packPath, Int(e.offset) + 10)
        case .loose(let p, _, _): (path, offset) = (p, 10)
        }
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        bytes[offset] ^= 0x40
        chmod(path, 0o644)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        let fresh = try Repository.open(at: a.dir.path)
        let broken = try fresh.fsck()
        #expect(broken.problems.contains { $0.subject == victim.hex })
        let repaired = try fresh.remote(nil).repair(broken.problems.compactMap { ObjectID(hex: $0.subject) })
        #expect(repaired.contains(victim))
        #expect(try fresh.fsck().ok)
    }
}

@Suite("Remote garbage collection")
struct RemoteGCTests {
    @Test("gc on a remote rewrites a pack without what no remote ref reaches; a dry run deletes nothing")
    func rewrite() throws {
        let a = try Store(), b = try Store(), remote = TempDir()
        try a.commit("gone", ["g/x.bin": noise(40_000, seed: 1)])
        try a.commit("keep", ["k/y.bin": noise(40_000, seed: 2)])
        try a.repo.addRemote("origin", url: remote.path)
        _ = try a.repo.remote(nil).push()
        try FileManager.default.removeItem(atPath: remote.path + "/refs/artifacts/gone")
        let dry = try a.repo.remote(nil).gc(dryRun: true)
        #expect(!dry.deleted.isEmpty && dry.packsRewritten == 0)
        let packsBefore = try FileManager.default.contentsOfDirectory(atPath: remote.path + "/packs").sorted()
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.path + "/packs").sorted() == packsBefore)
        let r = try a.repo.remote(nil).gc()
        #expect(r.deleted == dry.deleted && r.packsRewritten + r.packsDeleted >= 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote.path + "/locks").isEmpty, "the gc lock is released")
        try b.repo.addRemote("origin", url: remote.path)
        _ = try b.repo.remote(nil).fetch()
        _ = try b.repo.checkout("keep@v1")
        #expect(b.dir.read("k/y.bin") == noise(40_000, seed: 2))
        #expect(try b.repo.remote(nil).fsck().ok)
    }

    @Test("a push and a gc exclude each other through remote locks")
    func locks() throws {
        let a = try Store(), remote = TempDir()
        try a.commit("ds", ["d/x.bin": noise(1000, seed: 3)])
        try a.repo.addRemote("origin", url: remote.path)
        _ = try a.repo.remote(nil).push()
        remote.write("locks/push-123", "someone pushing\n")
        let e = #expect(throws: MVCError.self) { try a.repo.remote(nil).gc() }
        #expect(e?.code == .lockHeld && e?.message.contains("locks/push-123") == true)
        try FileManager.default.removeItem(atPath: remote.path + "/locks/push-123")
        remote.write("locks/gc", "a gc\n")
        try a.commit("ds", ["d/x.bin": noise(1000, seed: 4)])
        let p = #expect(throws: MVCError.self) { try a.repo.remote(nil).push() }
        #expect(p?.code == .lockHeld)
    }
}

@Suite("Garbage collection")
struct GCTests {
    @Test("gc after a rollback keeps the rolled-back version; unreachable old objects go")
    func keepsRolledBack() throws {
        let s = try Store()
        try s.commit("m", ["m/w.bin": noise(50_000, seed: 1)], kind: .model)
        try s.commit("m", ["m/w.bin": noise(50_000, seed: 2)], kind: .model)
        _ = try s.repo.promote(PromoteRequest(revision: "m@v1", stage: "production"))
        _ = try s.repo.promote(PromoteRequest(revision: "m@v2", stage: "production"))
        _ = try s.repo.rollback("m", stage: "production")
        // An orphan: written, never referenced.
        let batch = s.repo.newBatch()
        let orphan = try batch.putRaw(noise(1000, seed: 9))
        try batch.commit()
        let young = try s.repo.gc(grace: Repository.defaultGrace)
        #expect(young.deleted.isEmpty && young.keptYoung >= 1, "the grace period protects a fresh orphan")
        let r = try s.repo.gc(grace: -10)
        #expect(r.deleted == [orphan])
        #expect(try s.repo.explainGC(try s.repo.resolve("m@v2"), grace: -10).hasPrefix("kept"))
        for v in ["m@v1", "m@v2"] { _ = try s.repo.checkout(v, into: s.dir.path + "/out-\(v)") }
        #expect(try s.repo.fsck().ok)
    }

    @Test("random commit, promote, rollback, retire and gc never make a reachable revision unrestorable")
    func property() throws {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<3 {
            let s = try Store()
            var versions: [String: Int] = [:]
            var expected: [String: [UInt8]] = [:]   // revision -> the bytes of its one file
            let seed = UInt64.random(in: 1...1_000_000, using: &rng)
            var x = seed
            func next(_ n: Int) -> Int { x = x &* 6364136223846793005 &+ 1442695040888963407; return Int((x >> 33) % UInt64(n)) }
            for _ in 0..<30 {
                let name = ["a", "b"][next(2)]
                switch next(6) {
                case 0, 1:
                    let bytes = noise(5_000 + next(40_000), seed: UInt64(next(1_000_000) + 1))
                    let r = try s.commit(name, ["\(name)/f.bin": bytes], kind: .model)
                    if !r.unchanged { versions[name] = r.version; expected["\(name)@v\(r.version)"] = bytes }
                case 2:
                    if let v = versions[name] { _ = try? s.repo.promote(PromoteRequest(revision: "\(name)@v\(1 + next(v))", stage: ["staging", "production"][next(2)], force: true)) }
                case 3:
                    _ = try? s.repo.rollback(name, stage: ["staging", "production"][next(2)], force: true)
                case 4:
                    if let v = versions[name] { _ = try? s.repo.retire("\(name)@v\(1 + next(v))", force: true) }
                default:
                    _ = try s.repo.gc(grace: -10)
                }
            }
            _ = try s.repo.gc(grace: -10)
            #expect(try s.repo.fsck().ok, "round \(round), seed \(seed)")
            for (rev, bytes) in expected {
                let out = s.dir.path + "/restore-\(rev)"
                _ = try s.repo.checkout(rev, into: out)
                let name = String(rev.split(separator: "@")[0])
                #expect(FileManager.default.contents(atPath: out + "/\(name)/f.bin").map { [UInt8]($0) } == bytes, "\(rev), seed \(seed)")
            }
        }
    }
}
