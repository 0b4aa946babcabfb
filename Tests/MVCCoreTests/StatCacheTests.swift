import Foundation
import Testing
@testable import MVCCore

@Suite("Stat cache: unchanged files are not re-read, changed files are always seen")
struct StatCacheTests {
    @Test("a same-size rewrite within the same second is detected by status and commit")
    func sameSizeRewriteSameSecond() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("data/a.csv", "x,y\n1,2\n")
        let v1 = try repo.commit(CommitRequest(paths: ["data"], name: "d", kind: .dataset, baseDirectory: dir.path))
        #expect(try repo.status().changes.isEmpty)
        dir.write("data/a.csv", "x,y\n3,4\n")    // same size, same second
        #expect(try repo.status().changes.map(\.change) == [.modified])
        let v2 = try repo.commit(CommitRequest(paths: ["data"], name: "d", baseDirectory: dir.path))
        #expect(!v2.unchanged && v2.version == 2 && v2.id != v1.id)
    }

    @Test("a rewrite that restores the old mtime is still detected (ctime, racy entries)")
    func restoredMtime() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("m.bin", noise(5000, seed: 1))
        let path = dir.path + "/m.bin"
        let old = try FileIO.lstat(path)!
        _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", baseDirectory: dir.path))
        dir.write("m.bin", noise(5000, seed: 2))
        var times = [timespec(tv_sec: Int(old.mtimeNanos / 1_000_000_000), tv_nsec: Int(old.mtimeNanos % 1_000_000_000)),
                     timespec(tv_sec: Int(old.mtimeNanos / 1_000_000_000), tv_nsec: Int(old.mtimeNanos % 1_000_000_000))]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        #expect(try FileIO.lstat(path)!.mtimeNanos == old.mtimeNanos)
        #expect(try repo.status().changes.map(\.change) == [.modified])
    }

    @Test("entries are trusted only when the file was older than the read by the racy window")
    func racyRule() throws {
        let dir = TempDir()
        let cache = StatCache(path: dir.path + "/index")
        let st = FileIO.Stat(mode: 0o100644, size: 10, inode: 7, mtimeNanos: 10_000_000_000, ctimeNanos: 10_000_000_000)
        let id = ObjectID.hash([1])
        cache.record("f", st, readAt: 11_000_000_000, id)         // read 1 s after the write: racy
        #expect(cache.lookup("f", st) == nil)
        cache.record("f", st, readAt: 13_000_000_000, id)         // read 3 s after: trusted
        #expect(cache.lookup("f", st) == id)
        var changed = st
        changed.inode = 8
        #expect(cache.lookup("f", changed) == nil)
        cache.save()
        let reloaded = StatCache(path: dir.path + "/index")
        #expect(reloaded.lookup("f", st) == id)
        #expect(reloaded.lookup("g", st) == nil)
    }

    @Test("a garbled cache is ignored, never trusted")
    func garbledCache() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("f.txt", "hello")
        _ = try repo.commit(CommitRequest(paths: ["f.txt"], name: "f", baseDirectory: dir.path))
        dir.write(".mvc/index", "mvc-index 1\nthis is not an entry\n")
        dir.write("f.txt", "world")
        #expect(try repo.status().changes.map(\.change) == [.modified])
    }

    // MARK: - The binary index (`mvc-index 2`)

    private static func stat(_ n: Int) -> FileIO.Stat {
        FileIO.Stat(mode: 0o100644, size: UInt64(100 + n), inode: UInt64(1000 + n), mtimeNanos: 10_000_000_000 + Int64(n), ctimeNanos: 10_000_000_000 + Int64(n))
    }

    @Test("entries survive a save and a reload, in any order of recording, with forgotten ones gone")
    func binaryRoundTrip() throws {
        let dir = TempDir()
        let path = dir.path + "/index"
        // Paths whose byte order differs from walk order ("a.b" < "a/b" as bytes), and non-ASCII ones
        // that Swift's String equality would merge (NFC and NFD 'é').
        let paths = ["data/a/b", "data/a.b", "data/a-c", "z", "caf\u{E9}", "cafe\u{301}", "d/" + String(repeating: "x", count: 300)]
        let cache = StatCache(path: path)
        for (n, p) in paths.enumerated().reversed() { cache.record(p, Self.stat(n), readAt: 20_000_000_000, ObjectID.hash([UInt8(n)])) }
        cache.save()
        let bytes = try #require(try FileIO.readSmallFile(path))
        #expect(bytes.starts(with: Array("mvc-index 2\n".utf8)))
        let reloaded = StatCache(path: path)
        for (n, p) in paths.enumerated() {
            #expect(reloaded.lookup(p, Self.stat(n)) == ObjectID.hash([UInt8(n)]), "\(p)")
            #expect(reloaded.lookup(p, Self.stat(n + 1)) == nil)
        }
        #expect(reloaded.lookup("data/a", Self.stat(0)) == nil)
        // Update one, forget one, add one; then again after another reload.
        reloaded.record("z", Self.stat(9), readAt: 30_000_000_000, ObjectID.hash([9]))
        reloaded.forget("data/a.b")
        reloaded.record("data/new", Self.stat(8), readAt: 30_000_000_000, ObjectID.hash([8]))
        reloaded.save()
        let third = StatCache(path: path)
        #expect(third.lookup("z", Self.stat(9)) == ObjectID.hash([9]))
        #expect(third.lookup("z", Self.stat(3)) == nil)
        #expect(third.lookup("data/a.b", Self.stat(1)) == nil)
        #expect(third.lookup("data/new", Self.stat(8)) == ObjectID.hash([8]))
        #expect(third.lookup("data/a/b", Self.stat(0)) == ObjectID.hash([0]))
        // A forgotten entry recorded again is back.
        third.forget("z")
        #expect(third.lookup("z", Self.stat(9)) == nil)
        third.record("z", Self.stat(9), readAt: 30_000_000_000, ObjectID.hash([9]))
        #expect(third.lookup("z", Self.stat(9)) == ObjectID.hash([9]))
    }

    @Test("nothing is written when nothing changed")
    func noSaveWhenClean() throws {
        let dir = TempDir()
        let path = dir.path + "/index"
        let cache = StatCache(path: path)
        cache.record("f", Self.stat(1), readAt: 20_000_000_000, ObjectID.hash([1]))
        cache.save()
        let before = try #require(try FileIO.lstat(path))
        let again = StatCache(path: path)
        again.record("f", Self.stat(1), readAt: 20_000_000_000, ObjectID.hash([1]))   // the same entry
        #expect(again.lookup("f", Self.stat(1)) != nil)
        again.save()
        #expect(try FileIO.lstat(path)?.inode == before.inode)   // not replaced by a rename
    }

    @Test("an index of the text format mvc-index 1 is read, and rewritten in the binary format")
    func textFormatIsRead() throws {
        let dir = TempDir()
        let path = dir.path + "/index"
        let id = ObjectID.hash([7])
        dir.write("index", "mvc-index 1\n107 10000000007 10000000007 1007 20000000000 \(id.hex) a file with spaces\n")
        let cache = StatCache(path: path)
        #expect(cache.lookup("a file with spaces", Self.stat(7)) == id)
        cache.save()
        #expect(try #require(try FileIO.readSmallFile(path)).starts(with: Array("mvc-index 2\n".utf8)))
        #expect(StatCache(path: path).lookup("a file with spaces", Self.stat(7)) == id)
    }

    @Test("a damaged binary index is ignored as a whole")
    func damagedBinaryIndex() throws {
        let dir = TempDir()
        let path = dir.path + "/index"
        let cache = StatCache(path: path)
        cache.record("f", Self.stat(1), readAt: 20_000_000_000, ObjectID.hash([1]))
        cache.record("g", Self.stat(2), readAt: 20_000_000_000, ObjectID.hash([2]))
        cache.save()
        let good = try #require(try FileIO.readSmallFile(path))
        #expect(StatCache(path: path).lookup("g", Self.stat(2)) == ObjectID.hash([2]))
        // Every single-byte change and every truncation is caught (the checksum, the lengths).
        for i in stride(from: 12, to: good.count, by: 7) {
            var bad = good
            bad[i] ^= 0x40
            try FileIO.writeFileAtomically(path, bad, sync: false)
            #expect(StatCache(path: path).lookup("f", Self.stat(1)) == nil, "byte \(i)")
            #expect(StatCache(path: path).lookup("g", Self.stat(2)) == nil, "byte \(i)")
        }
        for n in [0, 12, 20, good.count - 33, good.count - 1] {
            try FileIO.writeFileAtomically(path, Array(good.prefix(n)), sync: false)
            #expect(StatCache(path: path).lookup("f", Self.stat(1)) == nil, "length \(n)")
        }
    }

    // MARK: - Files checkout wrote

    /// A store with `m.bin` committed twice (v1, v2: different bytes, same size); the work tree
    /// holds v2, read by the second commit.
    private static func twoVersions() throws -> (TempDir, Repository, v1: ObjectID, v2: ObjectID) {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("m.bin", noise(5000, seed: 1))
        _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", kind: .model, baseDirectory: dir.path))
        dir.write("m.bin", noise(5000, seed: 3))
        _ = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", baseDirectory: dir.path))
        return (dir, repo, ObjectID.hash(noise(5000, seed: 1)), ObjectID.hash(noise(5000, seed: 3)))
    }

    /// Overwrites a file in place (same inode) with `bytes` and puts its old mtime back.
    private static func rewriteInPlace(_ path: String, _ bytes: [UInt8]) throws {
        let old = try #require(try FileIO.lstat(path))
        let fd = open(path, O_WRONLY)
        try #require(fd >= 0)
        #expect(bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) } == bytes.count)
        close(fd)
        let t = timespec(tv_sec: Int(old.mtimeNanos / 1_000_000_000), tv_nsec: Int(old.mtimeNanos % 1_000_000_000))
        var times = [t, t]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
        let now = try #require(try FileIO.lstat(path))
        #expect(now.size == old.size && now.inode == old.inode && now.mtimeNanos == old.mtimeNanos)
    }

    @Test("a file checkout wrote is trusted by the next lookup, which does not read it")
    func writtenFileTrusted() throws {
        let (dir, repo, v1, v2) = try Self.twoVersions()
        let path = dir.path + "/m.bin", index = dir.path + "/.mvc/index"
        #expect(try repo.checkout("m@v1").written == ["m.bin"])
        #expect(dir.read("m.bin") == noise(5000, seed: 1))
        let st = try #require(try FileIO.lstat(path))
        let cache = StatCache(path: index)
        let e = try #require(cache.entry("m.bin"))
        #expect(e.written && e.id == v1)
        #expect(e.readAt - StatCache.writtenWindow > max(st.mtimeNanos, st.ctimeNanos))
        try #require(st.mtimeNanos % 1_000_000_000 != 0, "this test needs a file system with sub-second timestamps")
        #expect(cache.lookup("m.bin", st) == v1)

        // Proof that status and checkout's plan take the id from the entry without reading the
        // file: make the entry lie (same stat, another id) and watch them believe it.
        cache.record("m.bin", st, readAt: e.readAt, v2, written: true)
        cache.save()
        #expect(try repo.status().changes.isEmpty, "status believed the entry: v2, the head")
        #expect(StatCache(path: index).entry("m.bin") == StatCache.Entry(size: st.size, mtimeNanos: st.mtimeNanos, ctimeNanos: st.ctimeNanos,
                                                                         inode: st.inode, readAt: e.readAt, id: v2, written: true),
                "status neither re-hashed nor re-recorded it")
        let unstored = ObjectID.hash([1, 2, 3])
        let lying = StatCache(path: index)
        lying.record("m.bin", st, readAt: e.readAt, unstored, written: true)
        lying.save()
        let refused = #expect(throws: MVCError.self) { try repo.checkout("m@v2") }   // "not stored": it was not read
        #expect(refused?.code == .wouldOverwrite)
        #expect(dir.read("m.bin") == noise(5000, seed: 1))

        // Back and forth: each checkout records what it wrote.
        try FileManager.default.removeItem(atPath: index)
        #expect(try repo.checkout("m@v2").written == ["m.bin"])
        #expect(StatCache(path: index).entry("m.bin")?.written == true)
        #expect(StatCache(path: index).lookup("m.bin", try #require(try FileIO.lstat(path))) == v2)
        #expect(try repo.checkout("m@v1").written == ["m.bin"])
        #expect(StatCache(path: index).lookup("m.bin", try #require(try FileIO.lstat(path))) == v1)
        #expect(try repo.checkout("m@v1").written.isEmpty)
    }

    @Test("a same-size rewrite after checkout wrote the file, with the old mtime put back, is seen")
    func rewriteAfterCheckout() async throws {
        let (dir, repo, _, v2) = try Self.twoVersions()
        let path = dir.path + "/m.bin"
        _ = try repo.checkout("m@v1")
        try await Task.sleep(for: .milliseconds(30))   // past the tick of checkout's write
        var bytes = noise(5000, seed: 1)
        bytes[2500] ^= 0xFF
        try Self.rewriteInPlace(path, bytes)
        #expect(try repo.status().changes.map(\.change) == [.modified])
        // Not in the store: checkout refuses to replace it.
        let refused = #expect(throws: MVCError.self) { try repo.checkout("m@v2") }
        #expect(refused?.code == .wouldOverwrite)
        let c = try repo.commit(CommitRequest(paths: ["m.bin"], name: "m", baseDirectory: dir.path))
        #expect(!c.unchanged && c.version == 3)
        #expect(try repo.files(ofTree: c.tree).map(\.id) == [ObjectID.hash(bytes)])
        // Commit re-hashed it: a read entry now, with the flag cleared.
        #expect(StatCache(path: dir.path + "/.mvc/index").entry("m.bin")?.written == false)
        _ = try repo.checkout("m@v2")
        #expect(dir.read("m.bin") == noise(5000, seed: 3) && ObjectID.hash(dir.read("m.bin") ?? []) == v2)
    }

    @Test("written entries: sub-second stamps older than read-at by more than 20 ms; read entries keep 2 s")
    func writtenRule() throws {
        let t: Int64 = 1_767_225_600_123_456_789
        let st = FileIO.Stat(mode: 0o100644, size: 10, inode: 7, mtimeNanos: t, ctimeNanos: t + 1_000)
        let id = ObjectID.hash([1])
        func entry(_ s: FileIO.Stat, readAt: Int64, written: Bool) -> StatCache.Entry {
            StatCache.Entry(size: s.size, mtimeNanos: s.mtimeNanos, ctimeNanos: s.ctimeNanos, inode: s.inode, readAt: readAt, id: id, written: written)
        }
        let newest = t + 1_000   // the ctime
        #expect(entry(st, readAt: newest + 20_000_001, written: true).trusted(for: st))
        #expect(!entry(st, readAt: newest + 20_000_000, written: true).trusted(for: st))   // not strictly older
        #expect(!entry(st, readAt: newest + 19_000_000, written: true).trusted(for: st))
        #expect(!entry(st, readAt: newest - 5_000_000_000, written: true).trusted(for: st))   // stamps ahead of the clock
        // Read entries: the 2-second rule, unchanged.
        #expect(!entry(st, readAt: newest + 20_000_001, written: false).trusted(for: st))
        #expect(!entry(st, readAt: newest + 2_000_000_000, written: false).trusted(for: st))
        #expect(entry(st, readAt: newest + 2_000_000_001, written: false).trusted(for: st))
        // Whole-second stamps (1-second file systems): a written entry is never trusted, a read
        // entry after 2 s as before.
        var coarse = st
        coarse.mtimeNanos = 1_767_225_600_000_000_000
        coarse.ctimeNanos = coarse.mtimeNanos
        #expect(!entry(coarse, readAt: coarse.mtimeNanos + 20_000_001, written: true).trusted(for: coarse))
        #expect(!entry(coarse, readAt: coarse.mtimeNanos + 60_000_000_000, written: true).trusted(for: coarse))
        #expect(entry(coarse, readAt: coarse.mtimeNanos + 3_000_000_000, written: false).trusted(for: coarse))
        // Any stat field that differs: never.
        let good = entry(st, readAt: newest + 30_000_000, written: true)
        for change in [{ (s: inout FileIO.Stat) in s.size += 1 }, { $0.inode += 1 }, { $0.mtimeNanos += 1 }, { $0.ctimeNanos += 1 }] {
            var other = st
            change(&other)
            #expect(!good.trusted(for: other))
        }
        // Through the cache, and a later read entry clears the flag.
        let dir = TempDir()
        let cache = StatCache(path: dir.path + "/index")
        cache.record("f", st, readAt: newest + 30_000_000, id, written: true)
        #expect(cache.lookup("f", st) == id)
        cache.record("f", st, readAt: newest + 30_000_000, id)
        #expect(cache.lookup("f", st) == nil && cache.entry("f")?.written == false)
    }

    @Test("checkout records only the files whose stat did not move after their rename")
    func recordWrittenChecksStat() throws {
        let dir = TempDir()
        dir.write("a", "aaaa")
        dir.write("b", "bbbb")
        let a = try #require(try FileIO.lstat(dir.path + "/a")), b = try #require(try FileIO.lstat(dir.path + "/b"))
        let cache = StatCache(path: dir.path + "/index")
        cache.record("b", b, readAt: 0, ObjectID.hash([0]))   // an older entry, to be dropped
        var moved = b
        moved.ctimeNanos -= 1   // as if the file changed after the stat taken at its rename
        let before = StatCache.now()
        cache.recordWritten([.init(path: "a", stat: a, id: ObjectID.hash([1])), .init(path: "b", stat: moved, id: ObjectID.hash([2])),
                             .init(path: "gone", stat: a, id: ObjectID.hash([3]))], under: dir.path)
        let e = try #require(cache.entry("a"))
        #expect(e.written && e.id == ObjectID.hash([1]) && e.readAt >= before)
        #expect(e.readAt - StatCache.writtenWindow > max(a.mtimeNanos, a.ctimeNanos))
        #expect(cache.entry("b") == nil && cache.entry("gone") == nil)
        cache.recordWritten([], under: dir.path)   // nothing written: nothing to wait for
    }

    @Test("the binary layout: 80-byte records with a flags word, unknown flags refused")
    func binaryLayout() throws {
        let dir = TempDir()
        let path = dir.path + "/index"
        let st = FileIO.Stat(mode: 0o100644, size: 8, inode: 7, mtimeNanos: 10_000_000_001, ctimeNanos: 10_000_000_001)
        let cache = StatCache(path: path)
        cache.record("a.csv", st, readAt: 10_030_000_000, ObjectID.hash([1]), written: true)
        cache.save()
        let bytes = try #require(try FileIO.readSmallFile(path))
        #expect(bytes.count == 12 + 8 + 80 + 5 + 32)   // FORMAT.md section 8's example: 137 bytes
        #expect(Array(bytes[20..<28]) == [0, 0, 0, 0, 0, 0, 0, 8])                 // size
        #expect(Array(bytes[92..<96]) == [0, 0, 0, 1])                             // flags: written
        #expect(Array(bytes[96..<100]) == [0, 0, 0, 5])                            // path length
        #expect(Array(bytes[100..<105]) == Array("a.csv".utf8))
        #expect(Array(bytes.suffix(32)) == ObjectID.hash(Array(bytes.dropLast(32))).bytes)
        let reloaded = StatCache(path: path)
        #expect(reloaded.entry("a.csv")?.written == true && reloaded.lookup("a.csv", st) == ObjectID.hash([1]))
        // A flag bit this version does not know, with a valid checksum: the whole index is ignored.
        for bit in [UInt8(2), 0x80] {
            var bad = Array(bytes.dropLast(32))
            bad[95] |= bit
            bad += ObjectID.hash(bad).bytes
            try FileIO.writeFileAtomically(path, bad, sync: false)
            #expect(StatCache(path: path).entry("a.csv") == nil, "flag \(bit)")
        }
        var high = Array(bytes.dropLast(32))
        high[92] = 0x80
        high += ObjectID.hash(high).bytes
        try FileIO.writeFileAtomically(path, high, sync: false)
        #expect(StatCache(path: path).entry("a.csv") == nil)
        // A read entry has flags 0.
        let plain = StatCache(path: path)
        plain.record("a.csv", st, readAt: 20_000_000_000, ObjectID.hash([1]))
        plain.save()
        let again = try #require(try FileIO.readSmallFile(path))
        #expect(Array(again[92..<96]) == [0, 0, 0, 0] && StatCache(path: path).entry("a.csv")?.written == false)
    }

    // MARK: - Status and commit over names whose byte order differs from walk order

    @Test("status and commit agree with the tree when walk order and path byte order differ")
    func walkOrderVersusByteOrder() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        for rel in ["data/a/b", "data/a.b", "data/a-c", "data/a/c/d", "data/ab", "data/.git/ignored", "data/b/.mvc"] { dir.write(rel, rel) }
        let v1 = try repo.commit(CommitRequest(paths: ["data"], name: "d", kind: .dataset, baseDirectory: dir.path))
        #expect(try repo.files(ofTree: v1.tree).map(\.path) == ["data/a/b", "data/a/c/d", "data/a-c", "data/a.b", "data/ab"])
        #expect(try repo.walk("data").map(\.relativePath) == ["data/a/b", "data/a/c/d", "data/a-c", "data/a.b", "data/ab"])
        #expect(try repo.status().changes.isEmpty)
        #expect(try repo.commit(CommitRequest(paths: ["data"], name: "d", baseDirectory: dir.path)).unchanged)
        // A file deleted early in the order, one added, one changed: each reported once.
        try FileManager.default.removeItem(atPath: dir.path + "/data/a/b")
        dir.write("data/a.a", "new")
        dir.write("data/ab", "changed")
        let changes = try repo.status().changes.map { "\($0.change.rawValue) \($0.path)" }
        #expect(changes == ["added data/a.a", "deleted data/a/b", "modified data/ab"])
        let v2 = try repo.commit(CommitRequest(paths: ["data"], name: "d", baseDirectory: dir.path))
        #expect(!v2.unchanged && v2.files == 5)
        #expect(try repo.status().changes.isEmpty)
    }

    @Test("the walk refuses a symlink and a name that is not UTF-8 inside a directory, or skips them")
    func walkRefusals() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("data/f", "f")
        #expect(symlink("f", dir.path + "/data/link") == 0)
        #expect(throws: MVCError.self) { try repo.walk("data") }
        #expect(try repo.walk("data", skippingUnsupported: true).map(\.relativePath) == ["data/f"])
        #expect(unlink(dir.path + "/data/link") == 0)
        let bad = Array((dir.path + "/data/bad-").utf8) + [0xFF, 0]   // "bad-" then a lone 0xFF byte: not UTF-8
        let fd = bad.map { CChar(bitPattern: $0) }.withUnsafeBufferPointer { open($0.baseAddress!, O_CREAT | O_WRONLY, 0o644) }
        #expect(fd >= 0)
        close(fd)
        #expect(throws: MVCError.self) { try repo.walk("data") }
        #expect(try repo.walk("data", skippingUnsupported: true).map(\.relativePath) == ["data/f"])
    }

    @Test("a presence check finds packed objects, and a read still prefers the loose copy")
    func presenceLooksInPacksFirst() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        // More than the loose limit of a batch: the commit writes a pack.
        for i in 0..<80 { dir.write("data/f\(i)", noise(3000, seed: UInt64(2 * i + 1))) }   // odd seeds: noise uses seed | 1
        let v1 = try repo.commit(CommitRequest(paths: ["data"], name: "d", kind: .dataset, baseDirectory: dir.path))
        let files = try repo.files(ofTree: v1.tree)
        func isPacked(_ id: ObjectID) -> Bool {
            if case .packed = try? repo.objects.locate(id, packsFirst: true) { return true }
            return false
        }
        let packed = try #require(files.map(\.id).first(where: isPacked), "the commit wrote a pack")
        #expect(try repo.objects.contains(packed))
        // The same object loose as well: reads use the loose copy, presence either.
        let bytes = try repo.objects.read(packed)
        #expect(try repo.objects.writeLoose(packed, bytes) == nil)   // already stored: nothing written
        let loosePath = repo.objects.loosePath(packed, kind: .raw)
        try FileIO.mkdirs(parentPath(loosePath))
        try FileIO.writeFileAtomically(loosePath, bytes, sync: false)
        if case .loose = try #require(try repo.objects.locate(packed)) {} else { Issue.record("a read must prefer the loose copy") }
        #expect(try repo.objects.contains(packed))
        #expect(try !repo.objects.contains(ObjectID.hash([1, 2, 3])))
        #expect(try repo.commit(CommitRequest(paths: ["data"], name: "d", baseDirectory: dir.path)).unchanged)
    }
}
