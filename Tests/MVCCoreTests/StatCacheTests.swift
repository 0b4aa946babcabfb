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
