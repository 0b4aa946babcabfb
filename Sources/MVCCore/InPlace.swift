#if canImport(Glibc)
internal import Glibc
#endif
internal import CMVCKernels
internal import CMVCCrypto
internal import Synchronization

/// `.mvc/rewriting`: the work-tree file a checkout is rewriting in place, from before its first
/// byte changes until its last one is on disk (FORMAT.md 8.1). While it exists, that file may hold a
/// mix of two stored versions' bytes: `mvc commit` refuses it, `mvc status` names it, and the next
/// checkout that includes it writes it whole (without `--force`: its bytes are in the store).
///
/// Layout: `mvc-rewriting 1\n`, the 64 hex digits of the blob being written, a space, the file's
/// inode number in decimal, a space, and the file's path relative to the work tree (UTF-8, to the
/// end of the file, no newline).
struct RewriteJournal {
    var id: ObjectID
    /// The inode of the file being rewritten: a file at `path` with another inode (one restored by
    /// hand, say) is not the one left half written.
    var inode: UInt64
    var path: String
    /// The inode of the journal file itself, once read or created: it is removed only if it is
    /// still that file, never a newer journal with the same content.
    private(set) var journalInode: UInt64 = 0

    init(id: ObjectID, inode: UInt64, path: String) {
        self.id = id
        self.inode = inode
        self.path = path
    }

    private static let magic = Array("mvc-rewriting 1\n".utf8)
    static func location(_ storeDirectory: String) -> String { joinPath(storeDirectory, "rewriting") }

    var encoded: [UInt8] { RewriteJournal.magic + Array("\(id.hex) \(inode) \(path)".utf8) }

    static func read(storeDirectory: String) throws(MVCError) -> RewriteJournal? {
        let file = location(storeDirectory)
        let fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io("open", path: file, errno: errno)
        }
        defer { close(fd) }
        let st = try FileIO.stat(fd: fd, path: file)   // its inode, of the very file read
        guard var journal = parse(try FileIO.readAll(fd, path: file, limit: 1 << 16)) else {
            throw MVCError(.badConfig, "'\(file)' is damaged: it should name the file a checkout was rewriting in place",
                           hint: "remove it; if a checkout was interrupted, check out the version again with --force")
        }
        journal.journalInode = st.inode
        return journal
    }

    private static func parse(_ bytes: [UInt8]) -> RewriteJournal? {
        let m = magic.count
        guard bytes.count > m + 67, bytes.starts(with: magic), bytes[m + 64] == UInt8(ascii: " "),
              let id = ObjectID(hex: String(decoding: bytes[m..<(m + 64)], as: UTF8.self)),
              let space = bytes[(m + 65)...].firstIndex(of: UInt8(ascii: " ")), space > m + 65,
              bytes[(m + 65)..<space].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let inode = UInt64(String(decoding: bytes[(m + 65)..<space], as: UTF8.self)),
              let path = String(validating: bytes[(space + 1)...], as: UTF8.self),
              (try? validateRelativePath(path)) != nil else { return nil }
        return RewriteJournal(id: id, inode: inode, path: path)
    }

    /// Publishes the journal, durably, unless one exists (another checkout's, running or
    /// interrupted): then returns false. Written to a temp file, synced, and linked to its name
    /// (`link` fails when the name exists), then the directory is synced: after a crash or a power
    /// loss during the rewrite, the journal is there, whole.
    mutating func create(storeDirectory: String) throws(MVCError) -> Bool {
        let file = RewriteJournal.location(storeDirectory)
        let tmp = file + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = try FileIO.createExclusive(tmp)
        defer { FileIO.unlink(tmp) }
        do throws(MVCError) {
            try FileIO.writeAll(fd, encoded, path: tmp)
            try FileIO.fsync(fd, path: tmp)
            journalInode = try FileIO.stat(fd: fd, path: tmp).inode
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        if link(tmp, file) != 0 {
            if errno == EEXIST { return false }
            throw .io("create", path: file, errno: errno)
        }
        do throws(MVCError) { try FileIO.fsyncDirectory(storeDirectory) } catch {
            FileIO.unlink(file)
            throw error
        }
        return true
    }

    /// Removes the journal if it is still the file this value was read from or created as (not
    /// synced: the file it names is on disk by then, or untouched).
    func remove(storeDirectory: String) {
        let file = RewriteJournal.location(storeDirectory)
        if journalInode != 0, let st = try? FileIO.lstat(file), st.inode == journalInode { FileIO.unlink(file) }
    }

    static func interrupted(_ path: String) -> MVCError {
        MVCError(.interruptedCheckout, "'\(path)' is being rewritten in place by a checkout, or was left partly rewritten by one that did not finish",
                 hint: "if no checkout is running, check out a version of its artifact to finish it (its bytes are in the store; no --force needed)")
    }
}

extension RewriteJournal: Equatable {
    /// The same content (the journal file's own inode aside).
    static func == (a: RewriteJournal, b: RewriteJournal) -> Bool { a.id == b.id && a.inode == b.inode && a.path == b.path }
}

extension Repository {
    /// The file a checkout left partly rewritten (`.mvc/rewriting`), if it is still there: a
    /// journal naming a path where that file is not any more (removed, replaced by another file or
    /// a directory) is out of date, and is removed.
    func interruptedRewrite() throws(MVCError) -> RewriteJournal? {
        guard let journal = try RewriteJournal.read(storeDirectory: storeDirectory) else { return nil }
        if let st = try FileIO.lstat(joinPath(workTree, journal.path)), st.isRegular, st.inode == journal.inode { return journal }
        journal.remove(storeDirectory: storeDirectory)
        return nil
    }
}

/// What a file holding one stored blob needs to become another, at the same offsets: the new
/// blob's chunks that the old one does not have at the same place.
struct Rewrite {
    var pieces: [CheckoutWriter.Piece]
    /// Where each piece goes in the file.
    var offsets: [UInt64]
    /// The new file's size.
    var size: UInt64
    /// The bytes to write, the sum of the pieces' sizes.
    var bytes: UInt64
}

extension CheckoutWriter {
    /// Files smaller than this are always written whole, to a new file.
    static let rewriteMinimum: UInt64 = 8 << 20

    /// The most a rewrite in place may write: while it runs, anyone opening the file waits, for at
    /// most `/proc/sys/fs/lease-break-time` (45 s by default), after which the kernel lets them in.
    /// 16 MiB per second of it (720 MiB for 45 s) leaves room for a slow disk once the page
    /// cache's dirty limit makes writes wait for it.
    static func rewriteLimit(leaseBreakSeconds: Int) -> UInt64 { UInt64(max(0, leaseBreakSeconds)) * (16 << 20) }

    /// The pieces of `new` to write over a file holding `old`, or nil when rewriting in place is
    /// not worth it or not possible: one of them is not chunked, or more than half of `new`
    /// (or more than `limit` bytes) would be written.
    func planRewrite(to new: ObjectID, from old: ObjectID, limit: UInt64) throws(MVCError) -> Rewrite? {
        guard let nl = try store.locate(new), nl.kind == .chunks, let ol = try store.locate(old), ol.kind == .chunks else { return nil }
        let newChunks = try store.chunkList(new, at: nl).chunks, oldChunks = try store.chunkList(old, at: ol).chunks
        var pieces: [Piece] = [], offsets: [UInt64] = []
        var at: UInt64 = 0, oldAt: UInt64 = 0, j = 0, bytes: UInt64 = 0
        for c in newChunks {
            // Both lists in offset order: move along the old one to the first chunk not before `at`.
            while j < oldChunks.count && oldAt < at { oldAt += UInt64(oldChunks[j].size); j += 1 }
            if !(j < oldChunks.count && oldAt == at && oldChunks[j].id == c.id && oldChunks[j].size == c.size) {
                if Int(c.size) > segmentBytes { return nil }   // only with chunk sizes far from the defaults
                pieces.append(Piece(id: c.id, size: UInt64(c.size)))
                offsets.append(at)
                bytes += UInt64(c.size)
            }
            at += UInt64(c.size)
        }
        guard bytes * 2 <= at, bytes <= limit else { return nil }
        return Rewrite(pieces: pieces, offsets: offsets, size: at, bytes: bytes)
    }

    /// Reads `rewrite`'s pieces a slot at a time, verifies each batch (four SHA-256 streams side
    /// by side) and hands it to `body`: its first index, its count and the bytes, back to back.
    private func verifiedBatches(_ rewrite: Rewrite, _ body: (Int, Int, UnsafeMutableRawBufferPointer) throws(MVCError) -> Void) throws(MVCError) {
        let buffer = allocatedSlots()[0]
        var next = 0
        while next < rewrite.pieces.count {
            let first = next
            var filled = 0
            var slices: [UnsafeRawBufferPointer] = []
            while next < rewrite.pieces.count, filled + Int(rewrite.pieces[next].size) <= buffer.count {
                let p = rewrite.pieces[next]
                let area = UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + Int(p.size))])
                try CheckoutWriter.read(p.id, at: try store.chunkLocation(p.id, size: p.size), from: 0, into: area)
                slices.append(UnsafeRawBufferPointer(area))
                filled += Int(p.size)
                next += 1
            }
            if let damaged = CheckoutWriter.mismatch(rewrite.pieces[first..<next], slices) { throw damaged }
            try body(first, next - first, UnsafeMutableRawBufferPointer(rebasing: buffer[0..<filled]))
        }
    }

    /// Verifies every piece of `rewrite` before anything is written: a damaged chunk then stops
    /// the checkout with the file untouched.
    func verify(_ rewrite: Rewrite) throws(MVCError) {
        try verifiedBatches(rewrite) { (_, _, _) throws(MVCError) in }
    }

    /// Writes `rewrite`'s pieces into `fd` at their offsets, each batch verified again just before
    /// it is written (what is written is what was verified, FORMAT.md V2), and starts their
    /// writeback at once, so that the `fdatasync` at the end has little left to wait for.
    func apply(_ rewrite: Rewrite, to fd: Int32, path: String, progress: (UInt64) -> Void) throws(MVCError) {
        try verifiedBatches(rewrite) { (first, count, bytes) throws(MVCError) in
            // Pieces next to each other in the file go in one write.
            var i = first, at = 0
            while i < first + count {
                var end = i + 1, run = Int(rewrite.pieces[i].size)
                while end < first + count, rewrite.offsets[end] == rewrite.offsets[end - 1] + rewrite.pieces[end - 1].size {
                    run += Int(rewrite.pieces[end].size)
                    end += 1
                }
                try CheckoutWriter.pwriteAll(fd, UnsafeRawBufferPointer(rebasing: bytes[at..<(at + run)]), at: rewrite.offsets[i], path: path)
                #if os(Linux)
                _ = mvc_sync_file_range(fd, Int64(rewrite.offsets[i]), Int64(run), UInt32(MVC_SYNC_FILE_RANGE_WRITE))
                #endif
                progress(UInt64(run))
                at += run
                i = end
            }
            if let pause = CheckoutWriter.pauseAfterRewriteBatch.withLock({ $0 }), pause.path == path { usleep(pause.microseconds) }
        }
    }

    /// For tests: a pause after each batch rewritten into the file at `path`, to widen the window
    /// in which another process could see the file half rewritten if the lease did not stop it.
    static let pauseAfterRewriteBatch = Mutex<(path: String, microseconds: UInt32)?>(nil)
}

/// What `rewriteInPlace` did.
struct InPlaceRewrite {
    /// The file's stat once rewritten; nil when it must not be recorded in the stat cache (another
    /// process asked to open the file meanwhile, and may write to it as soon as it can).
    var stat: FileIO.Stat?
    var bytes: UInt64
    var warning: String?
}

extension Repository {
    /// Whether a work-tree file seen with `st` by a plan that started at `planStart` (clock time,
    /// before its `lstat`) can be rewritten in place: any change to it after that `lstat` would
    /// show in its stat. Its timestamps must be older than the plan by more than the timestamp
    /// clock's lag (20 ms, as for the stat cache's written entries), or by 2 s when they are whole
    /// seconds (a file system with one-second timestamps). A file changed just before could have
    /// been hashed, or cached, mid-change: it is replaced whole instead.
    static func settledForRewrite(_ st: FileIO.Stat, planStart: Int64) -> Bool {
        let window = st.mtimeNanos % 1_000_000_000 == 0 ? StatCache.racyWindow : StatCache.writtenWindow
        return max(st.mtimeNanos, st.ctimeNanos) < planStart - window
    }

    /// Rewrites the work-tree file `name` (in the directory open as `dirfd`), which holds the stored
    /// blob `current` with the stat `planned`, into `f` in place: only the chunks that differ at the
    /// same offsets are written (a fine-tune that changed a tenth of the tensors: a tenth of the file).
    /// Returns nil, with nothing changed, when the file does not qualify; the caller then writes a
    /// new file and swaps it in as usual.
    ///
    /// The file qualifies only when no one else can see the rewrite happen:
    /// - it is unchanged since the plan (same inode, size, times, mode), with no other hard link;
    /// - it is on a local file system (ext4, XFS, Btrfs, tmpfs, F2FS), whose leases see every user;
    /// - a write lease is granted: no other process has it open or mapped (a model server that
    ///   mapped the file keeps its bytes: the file is then replaced as usual). While the lease is
    ///   held, anyone opening the file waits until the rewrite is done.
    ///
    /// Every new chunk is verified before the lease is taken, and again as it is written.
    /// `.mvc/rewriting` names the file, durably, before its first byte changes, and is removed once
    /// the file's data is synced: a process killed, or a machine that lost power, meanwhile leaves
    /// it there for the next command.
    func rewriteInPlace(_ f: FileEntry, from current: ObjectID, planned: FileIO.Stat, name: String, in dirfd: Int32, path abs: String,
                        writer: CheckoutWriter, cache: StatCache, progress: (UInt64) -> Void) throws(MVCError) -> InPlaceRewrite? {
        #if os(Linux)
        let leaseBreak = Repository.leaseBreakSeconds
        // A damaged chunk list is not this path's business: the new file's writer reports it.
        guard let plan = (try? writer.planRewrite(to: f.id, from: current, limit: CheckoutWriter.rewriteLimit(leaseBreakSeconds: leaseBreak))) ?? nil else {
            return nil
        }
        try writer.verify(plan)
        // O_NONBLOCK: a lease someone else holds fails the open instead of making it wait; a FIFO
        // put there since the plan does not block it either (and fails the checks below).
        let fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { return nil }   // e.g. a read-only file: replaced as usual
        var leased = false
        defer {
            if leased { _ = mvc_release_lease(fd) }
            close(fd)
        }
        func unchanged() -> Bool {
            var st = Glibc.stat()
            return fstat(fd, &st) == 0 && st.st_nlink == 1 && FileIO.Stat(st) == planned
        }
        // Room for every byte to be written: a copy-on-write file system (Btrfs) writes them to new
        // blocks, and running out midway would leave the file half rewritten.
        guard unchanged(), mvc_is_local_lease_fs(fd) == 1, mvc_available_bytes(fd) > plan.bytes + (8 << 20) else { return nil }
        // The journal first, durably, before the lease: its fsyncs may wait for the writeback of
        // files this checkout wrote before, time no one should spend waiting to open this file. A
        // store that cannot hold it (read-only, full): the file is replaced whole, as before.
        var journal = RewriteJournal(id: f.id, inode: planned.inode, path: f.path)
        guard (try? journal.create(storeDirectory: storeDirectory)) == true else { return nil }
        guard mvc_take_write_lease(fd) == 0 else {
            journal.remove(storeDirectory: storeDirectory)
            return nil
        }
        leased = true
        let leasedAt = StatCache.now()
        guard unchanged() else {   // written to before the lease
            journal.remove(storeDirectory: storeDirectory)
            return nil
        }
        cache.forget(f.path)
        do throws(MVCError) {
            try writer.apply(plan, to: fd, path: abs, progress: progress)
            if planned.size > plan.size, ftruncate(fd, off_t(plan.size)) != 0 { throw .io("truncate", path: abs, errno: errno) }
            // Only the executable bits change (added where the file is readable, as git does).
            let modeChanged = planned.isExecutable != (f.kind == .exec)
            if modeChanged {
                let old = planned.mode & 0o7777
                let new = f.kind == .exec ? old | ((old & 0o444) >> 2) : old & ~0o111
                if fchmod(fd, mode_t(new)) != 0 { throw .io("change the mode of", path: abs, errno: errno) }
            }
            if (modeChanged ? fsync(fd) : fdatasync(fd)) != 0 { throw .io("sync", path: abs, errno: errno) }
            let st = try FileIO.stat(fd: fd, path: abs)
            guard st.size == plan.size else {
                throw MVCError(.io, "'\(abs)' is \(st.size) bytes after rewriting it to \(plan.size)", hint: "is another process writing to it?")
            }
            // Someone asked to open the file meanwhile (a break is pending, or the kernel gave up
            // waiting): do not record it, it may be written to as soon as the lease is released.
            let unbroken = mvc_lease_unbroken(fd) == 1
            let overran = !unbroken && StatCache.now() - leasedAt >= Int64(leaseBreak) * 1_000_000_000
            journal.remove(storeDirectory: storeDirectory)
            progress(f.size - plan.bytes)
            return InPlaceRewrite(stat: unbroken ? st : nil, bytes: plan.bytes,
                                  warning: overran ? "rewriting '\(f.path)' in place took longer than /proc/sys/fs/lease-break-time: a process that opened it meanwhile may have read it half rewritten" : nil)
        } catch {
            throw MVCError(error.code, "\(error.message); '\(f.path)' is left partly rewritten",
                           hint: "when that is fixed, run the checkout again to finish it (its bytes are in the store)")
        }
        #else
        return nil
        #endif
    }

    /// `/proc/sys/fs/lease-break-time`: how long an open waits for a lease holder (45 s unless set).
    static let leaseBreakSeconds: Int = {
        guard let bytes = try? FileIO.readSmallFile("/proc/sys/fs/lease-break-time", limit: 64),
              let n = Int(String(decoding: bytes.filter { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }, as: UTF8.self)) else { return 45 }
        return n
    }()
}
