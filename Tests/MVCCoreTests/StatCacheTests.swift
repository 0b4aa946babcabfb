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
}
