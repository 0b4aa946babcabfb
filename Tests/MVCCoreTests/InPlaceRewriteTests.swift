import Foundation
import Testing
@testable import MVCCore
import CMVCKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Whether a write lease can be taken on a file in the temporary directory.
let leasesWorkInTemporaryDirectory: Bool = {
    let dir = TempDir()
    dir.write("probe", "x")
    let fd = open(dir.path + "/probe", O_RDWR)
    defer { close(fd) }
    guard fd >= 0, mvc_is_local_lease_fs(fd) == 1, mvc_take_write_lease(fd) == 0 else { return false }
    _ = mvc_release_lease(fd)
    return true
}()

/// Checkout rewrites a large work-tree file in place, only where its chunks differ, when no one
/// else can see it happen (`Repository.rewriteInPlace`); otherwise it writes a new file and swaps
/// it in, as for any file. The tests run where the temporary directory is on a file system whose
/// leases mvc trusts (ext4, XFS, Btrfs, tmpfs, F2FS); elsewhere mvc never rewrites in place.
@Suite("Checkout: in-place rewrite of changed chunks", .enabled(if: leasesWorkInTemporaryDirectory))
struct InPlaceRewriteTests {
    static let size = 12 << 20

    /// A work tree with `model.bin` committed twice: v1, then v2 with `changed` bytes rewritten
    /// from offset 5 MiB (a fine-tune). The work tree holds v2.
    static func fineTune(_ dir: TempDir, changed: Int = 1 << 20) throws -> (Repository, v1: [UInt8], v2: [UInt8]) {
        let v1 = noise(size, seed: 41)
        var v2 = v1
        v2.replaceSubrange((5 << 20)..<((5 << 20) + changed), with: noise(changed, seed: 42))
        dir.write("repo/model.bin", v1)
        let repo = try Repository.initialize(at: dir.path + "/repo")
        try Self.commitModel(repo, dir)
        dir.write("repo/model.bin", v2)
        try Self.commitModel(repo, dir)
        settle()
        return (repo, v1, v2)
    }

    /// Commits `repo/model.bin` as the next version of `m`.
    static func commitModel(_ repo: Repository, _ dir: TempDir) throws {
        _ = try repo.commit(CommitRequest(paths: ["model.bin"], name: "m", kind: .model, baseDirectory: dir.path + "/repo"))
    }

    /// Waits until files written so far are older than `Repository.settledForRewrite` asks.
    static func settle() { usleep(40_000) }

    static func inode(_ path: String) throws -> UInt64 { try #require(try FileIO.lstat(path)).inode }

    @Test("a fine-tune's changed chunks are written into the same file, back and forth, and recorded in the stat cache")
    func rewritesChangedChunks() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        let path = dir.path + "/repo/model.bin"
        let before = try Self.inode(path)

        let r = try repo.checkout("m@v1")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace == ["model.bin"])
        #expect(r.bytesWritten >= 1 << 20 && r.bytesWritten < 3 << 20, "about the changed MiB, not 12: \(r.bytesWritten)")
        #expect(dir.read("repo/model.bin") == v1)
        #expect(try Self.inode(path) == before, "the same file")
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == nil, "no journal left")
        #expect(try repo.status().changes.map(\.path) == ["model.bin"], "v1 differs from the latest version")
        let st = try #require(try FileIO.lstat(path))
        #expect(repo.statCache().entry("model.bin")?.trusted(for: st) == true, "recorded as written")

        Self.settle()
        let back = try repo.checkout("m@v2")
        #expect(back.rewrittenInPlace == ["model.bin"])
        #expect(dir.read("repo/model.bin") == v2)
        #expect(try Self.inode(path) == before)
        #expect(try repo.status().changes.isEmpty)
        #expect(try repo.fsck().ok)
    }

    @Test("a reader opening the file over and over while versions are switched reads one version whole, never a mix")
    func concurrentReadersSeeWholeVersions() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        let path = dir.path + "/repo/model.bin"
        final class Reader: @unchecked Sendable {
            let stop = Atomic<Bool>(false)
            var reads = 0, mixed = 0, failed = 0
        }
        let reader = Reader()
        let done = DispatchSemaphore(value: 0)
        let expected = (v1, v2)
        Thread.detachNewThread {
            var buf = [UInt8](repeating: 0, count: Self.size + 1)
            while !reader.stop.load(ordering: .relaxed) {
                // A fresh open each time: an open during a rewrite waits for it (the lease).
                let fd = open(path, O_RDONLY)
                if fd < 0 { reader.failed += 1; continue }
                var got = 0
                while got < buf.count {
                    let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + got, $0.count - got, off_t(got)) }
                    if n <= 0 { break }
                    got += n
                }
                close(fd)
                reader.reads += 1
                if !(got == Self.size && (buf[0..<got].elementsEqual(expected.0) || buf[0..<got].elementsEqual(expected.1))) { reader.mixed += 1 }
                usleep(10_000)   // open about a quarter of the time: most checkouts can take the lease
            }
            done.signal()
        }
        var inPlace = 0
        for i in 0..<8 {
            Self.settle()
            inPlace += try repo.checkout(i % 2 == 0 ? "m@v1" : "m@v2").rewrittenInPlace.count
        }
        reader.stop.store(true, ordering: .relaxed)
        done.wait()
        #expect(reader.reads > 0 && reader.failed == 0)
        #expect(reader.mixed == 0, "\(reader.mixed) of \(reader.reads) reads saw neither version whole")
        #expect(dir.read("repo/model.bin") == v2)
        // Each checkout finds the file open (then replaces it) about a quarter of the time.
        #expect(inPlace > 0, "some rewrites in place happened while the reader was at work")
    }

    @Test("an open during a rewrite in place waits for it, then reads the new version whole")
    func openWaitsForRewrite() throws {
        // 24 MiB with 10 MiB changed: two batches, with a pause after each.
        let dir = TempDir()
        let v1 = noise(24 << 20, seed: 44)
        var v2 = v1
        v2.replaceSubrange((6 << 20)..<(16 << 20), with: noise(10 << 20, seed: 45))
        dir.write("repo/model.bin", v1)
        let repo = try Repository.initialize(at: dir.path + "/repo")
        try Self.commitModel(repo, dir)
        dir.write("repo/model.bin", v2)
        try Self.commitModel(repo, dir)
        Self.settle()
        let path = dir.path + "/repo/model.bin"
        CheckoutWriter.pauseAfterRewriteBatch.withLock { $0 = (path, 400_000) }
        defer { CheckoutWriter.pauseAfterRewriteBatch.withLock { $0 = nil } }

        final class Outcome: @unchecked Sendable { var result: Result<CheckoutResult, MVCError>? }
        let outcome = Outcome()
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            do throws(MVCError) { outcome.result = .success(try repo.checkout("m@v1")) } catch { outcome.result = .failure(error) }
            finished.signal()
        }
        // The journal appears under the lease, just before the first batch is written; the first
        // batch is then written and the writer pauses.
        let journal = RewriteJournal.location(repo.storeDirectory)
        var waited = 0
        while !FileManager.default.fileExists(atPath: journal) && waited < 20_000 { usleep(1_000); waited += 1 }
        #expect(FileManager.default.fileExists(atPath: journal), "the rewrite started")
        usleep(100_000)
        let start = StatCache.now()
        let fd = open(path, O_RDONLY)
        let openedAfter = StatCache.now() - start
        try #require(fd >= 0)
        var buf = [UInt8](repeating: 0, count: v1.count)
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
        close(fd)
        finished.wait()
        let r = try #require(try outcome.result?.get())
        #expect(r.rewrittenInPlace == ["model.bin"])
        #expect(openedAfter > 150_000_000, "the open waited for the rewrite: \(openedAfter / 1_000_000) ms")
        #expect(n == v1.count && buf == v1, "and then read v1 whole")
    }

    @Test("a file growing or shrinking at the end is rewritten in place too")
    func growsAndShrinks() throws {
        let dir = TempDir()
        let (repo, v1, _) = try Self.fineTune(dir)
        let longer = v1 + noise(1 << 20, seed: 43)
        dir.write("repo/model.bin", longer)
        try Self.commitModel(repo, dir)   // v3
        Self.settle()
        let path = dir.path + "/repo/model.bin"
        let before = try Self.inode(path)
        let shrink = try repo.checkout("m@v1")
        #expect(shrink.rewrittenInPlace == ["model.bin"])
        #expect(shrink.bytesWritten < 1 << 20, "only the last chunk, cut shorter: \(shrink.bytesWritten)")
        #expect(dir.read("repo/model.bin") == v1)
        Self.settle()
        let grow = try repo.checkout("m@v3")
        #expect(grow.rewrittenInPlace == ["model.bin"])
        #expect(grow.bytesWritten >= 1 << 20 && grow.bytesWritten < 2 << 20, "the new MiB and the chunk before it: \(grow.bytesWritten)")
        #expect(dir.read("repo/model.bin") == longer)
        #expect(try Self.inode(path) == before)
    }

    @Test("a file another descriptor has open keeps its bytes for that reader: replaced, not rewritten")
    func openFileIsReplaced() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        let path = dir.path + "/repo/model.bin"
        let before = try Self.inode(path)
        let reader = open(path, O_RDONLY)
        try #require(reader >= 0)
        let r = try repo.checkout("m@v1")
        #expect(r.rewrittenInPlace.isEmpty)
        #expect(dir.read("repo/model.bin") == v1)
        #expect(try Self.inode(path) != before, "a new file took its place")
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        #expect(pread(reader, &buf, buf.count, 5 << 20) == buf.count)
        #expect(buf[...] == v2[(5 << 20)..<(6 << 20)], "the open reader still sees v2")
        close(reader)
        // Once nothing holds it, the same file is rewritten in place.
        Self.settle()
        #expect(try repo.checkout("m@v2").rewrittenInPlace == ["model.bin"])
    }

    @Test("a mapped file (a model server's mmap, its descriptor closed) keeps its bytes")
    func mappedFileIsReplaced() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        let path = dir.path + "/repo/model.bin"
        let fd = open(path, O_RDONLY)
        let map = mmap(nil, Self.size, PROT_READ, MAP_SHARED, fd, 0)
        close(fd)
        try #require(map != MAP_FAILED)
        let r = try repo.checkout("m@v1")
        #expect(r.rewrittenInPlace.isEmpty)
        #expect(dir.read("repo/model.bin") == v1)
        let seen = UnsafeRawBufferPointer(start: map, count: Self.size)
        #expect(seen[(5 << 20)..<((5 << 20) + 4096)].elementsEqual(v2[(5 << 20)..<((5 << 20) + 4096)]), "the mapping still shows v2")
        munmap(map, Self.size)
        Self.settle()
        #expect(try repo.checkout("m@v2").rewrittenInPlace == ["model.bin"], "rewritten in place once unmapped")
    }

    @Test("a hard-linked file is replaced, and the other link keeps its bytes")
    func hardLinkIsReplaced() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        #expect(link(dir.path + "/repo/model.bin", dir.path + "/elsewhere.bin") == 0)
        let r = try repo.checkout("m@v1")
        #expect(r.rewrittenInPlace.isEmpty)
        #expect(dir.read("repo/model.bin") == v1)
        #expect(dir.read("elsewhere.bin") == v2)
        unlink(dir.path + "/elsewhere.bin")
        Self.settle()
        #expect(try repo.checkout("m@v2").rewrittenInPlace == ["model.bin"], "rewritten in place with one link")
    }

    @Test("more than half of the file changed: written whole")
    func mostlyChangedIsWrittenWhole() throws {
        let dir = TempDir()
        let (repo, _, _) = try Self.fineTune(dir, changed: 7 << 20)
        let r = try repo.checkout("m@v1")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace.isEmpty)
        #expect(r.bytesWritten == UInt64(Self.size))
    }

    @Test("content shifted by one byte (same chunks at other offsets): written whole")
    func shiftedIsWrittenWhole() throws {
        let dir = TempDir()
        let (repo, v1, _) = try Self.fineTune(dir)
        dir.write("repo/model.bin", [7] + v1)
        try Self.commitModel(repo, dir)
        Self.settle()
        let r = try repo.checkout("m@v1")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace.isEmpty)
        #expect(dir.read("repo/model.bin") == v1)
    }

    @Test("the executable bit follows the version, in place")
    func executableBit() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        let path = dir.path + "/repo/model.bin"
        chmod(path, 0o755)
        try Self.commitModel(repo, dir)   // v3: v2, executable
        Self.settle()
        #expect(try repo.checkout("m@v1").rewrittenInPlace == ["model.bin"])
        #expect(dir.read("repo/model.bin") == v1)
        #expect(try #require(try FileIO.lstat(path)).isExecutable == false)
        Self.settle()
        #expect(try repo.checkout("m@v3").rewrittenInPlace == ["model.bin"])
        #expect(dir.read("repo/model.bin") == v2)
        #expect(try #require(try FileIO.lstat(path)).isExecutable)
    }

    @Test("a file changed just before the checkout is replaced whole: its bytes may not be what the plan saw")
    func recentlyChangedIsWrittenWhole() throws {
        let now = StatCache.now()
        func st(_ t: Int64) -> FileIO.Stat { FileIO.Stat(mode: 0o100644, size: 1, inode: 1, mtimeNanos: t, ctimeNanos: t) }
        #expect(!Repository.settledForRewrite(st(now - 5_000_000), planStart: now), "5 ms old")
        #expect(Repository.settledForRewrite(st(now - 500_000_000 + 1), planStart: now), "0.5 s old")
        let second = (now / 1_000_000_000 - 1) * 1_000_000_000
        #expect(!Repository.settledForRewrite(st(second), planStart: now), "a whole-second timestamp less than 2 s old")
        #expect(Repository.settledForRewrite(st(second - 2_000_000_000), planStart: now))

        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        dir.write("repo/model.bin", v2)   // the same bytes, written again just now
        let r = try repo.checkout("m@v1")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace.isEmpty)
        #expect(dir.read("repo/model.bin") == v1)
    }

    @Test("a damaged new chunk stops the checkout before the file changes")
    func damagedChunkLeavesFileUntouched() throws {
        let dir = TempDir()
        let (repo, _, v2) = try Self.fineTune(dir)
        let files = try repo.files(ofTree: try repo.resolveCommit("m@v1").1.tree)
        let rewrite = try #require(try CheckoutWriter(store: repo.objects).planRewrite(to: files[0].id, from: ObjectID.hash(v2), limit: 1 << 30))
        #expect(rewrite.pieces.count >= 2)
        try CheckoutWriterTests.damage(repo, chunk: rewrite.pieces[rewrite.pieces.count - 1].id)
        let error = #expect(throws: MVCError.self) { _ = try repo.checkout("m@v1") }
        #expect(error?.code == .corruptObject)
        #expect(dir.read("repo/model.bin") == v2, "untouched")
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == nil)
    }

    @Test("a rewrite that did not finish: status names the file, commit refuses it, checkout finishes it without --force")
    func interruptedRewrite() throws {
        let dir = TempDir()
        let (repo, v1, v2) = try Self.fineTune(dir)
        // What a killed checkout of v1 leaves: the journal, and part of v1's bytes over v2.
        var journal = RewriteJournal(id: ObjectID.hash(v1), inode: try Self.inode(dir.path + "/repo/model.bin"), path: "model.bin")
        #expect(try journal.create(storeDirectory: repo.storeDirectory))
        let fd = open(dir.path + "/repo/model.bin", O_WRONLY)
        _ = v1[(5 << 20)..<((5 << 20) + 300_000)].withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 5 << 20) }
        close(fd)

        let status = try repo.status()
        #expect(status.interrupted == "model.bin")
        #expect(status.changes.map(\.path) == ["model.bin"])
        let refused = #expect(throws: MVCError.self) {
            try Self.commitModel(repo, dir)
        }
        #expect(refused?.code == .interruptedCheckout)
        #expect(refused?.message.contains("model.bin") == true)

        let r = try repo.checkout("m@v2")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace.isEmpty, "written whole")
        #expect(dir.read("repo/model.bin") == v2)
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == nil)
        #expect(try repo.status().interrupted == nil)
        // And rewriting in place works again.
        Self.settle()
        #expect(try repo.checkout("m@v1").rewrittenInPlace == ["model.bin"])
    }

    @Test("while a journal names another file, nothing is rewritten in place; a journal whose file is gone is dropped")
    func journalOfAnotherFile() throws {
        let dir = TempDir()
        let (repo, v1, _) = try Self.fineTune(dir)
        dir.write("repo/other.bin", "x")
        var journal = RewriteJournal(id: ObjectID.hash(v1), inode: try Self.inode(dir.path + "/repo/other.bin"), path: "other.bin")
        #expect(try journal.create(storeDirectory: repo.storeDirectory))
        var second = journal
        #expect(try !second.create(storeDirectory: repo.storeDirectory), "one at a time")
        let r = try repo.checkout("m@v1")
        #expect(r.written == ["model.bin"] && r.rewrittenInPlace.isEmpty)
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == journal, "still there")

        // Another file put in its place (restored by hand, say) is not the half-written one.
        dir.write("repo/other.bin", "mine")
        #expect(try repo.status().interrupted == nil)
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == nil, "dropped: nothing is half written any more")

        var gone = RewriteJournal(id: ObjectID.hash(v1), inode: try Self.inode(dir.path + "/repo/other.bin"), path: "other.bin")
        #expect(try gone.create(storeDirectory: repo.storeDirectory))
        #expect(try repo.status().interrupted == "other.bin")
        unlink(dir.path + "/repo/other.bin")
        #expect(try repo.status().interrupted == nil, "a journal whose file is gone is dropped too")
        #expect(try RewriteJournal.read(storeDirectory: repo.storeDirectory) == nil)
        Self.settle()
        #expect(try repo.checkout("m@v2").rewrittenInPlace == ["model.bin"])
    }

    @Test("a damaged journal is reported, not ignored")
    func damagedJournal() throws {
        let dir = TempDir()
        let (repo, _, _) = try Self.fineTune(dir)
        dir.write("repo/.mvc/rewriting", "mvc-rewriting 1\nnot an id model.bin")
        let error = #expect(throws: MVCError.self) { _ = try repo.status() }
        #expect(error?.code == .badConfig)
        #expect(error?.message.contains("rewriting") == true)
        #expect(error?.hint?.contains("remove it") == true)
    }
}
