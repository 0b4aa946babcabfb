#if canImport(Glibc)
internal import Glibc
#endif
internal import Dispatch

/// Stores files as blobs: reads each file once, cuts it into content-defined chunks, hashes each
/// chunk and the whole file, and appends new chunks to the batch.
///
/// Memory is two fixed slots of `blockSize + max chunk` bytes, whatever the file size. A file
/// larger than one block goes through a two-thread pipeline over the slots: this thread reads block
/// k, finds its cut points and hands it to a hashing thread, which feeds each chunk's bytes to two
/// SHA-256 streams at once, the whole file's and the chunk's (`SHAStream.update(_:_:_:)`: one pass
/// over the bytes, little more than the cost of one stream on x86); meanwhile this thread stores
/// the chunks of block k-1, whose ids are ready, and frees its slot. Per GiB the reading thread
/// spends ~0.75 s (read, cut search, pack writes) and the hashing thread ~0.65 s. A third thread
/// for the writes was measured too: it spent ~8% more CPU in all (the bytes cross cores once more)
/// and was no faster on two cores.
final class BlobWriter {
    let chunker: Chunker
    let batch: ObjectBatch
    static let blockSize = 8 << 20
    /// Two are enough: block k hashes in one while block k-1 is stored from the other, which is
    /// then free for block k+1.
    static let slotCount = 2
    private let slots: [UnsafeMutableRawBufferPointer]
    private let carry: Int
    private let hashQueue = DispatchQueue(label: "mvc.hash")

    init(chunker: Chunker, batch: ObjectBatch) {
        self.chunker = chunker
        self.batch = batch
        carry = chunker.parameters.max
        slots = (0..<BlobWriter.slotCount).map { _ in .allocate(byteCount: chunker.parameters.max + BlobWriter.blockSize, alignment: 64) }
    }

    deinit {
        hashQueue.sync {}
        for s in slots { s.deallocate() }
    }

    struct Stored {
        var id: ObjectID
        var size: UInt64
        /// The file's stat, the same before and after the read.
        var stat: FileIO.Stat
        /// Clock time just before the read began (for the stat cache).
        var readAt: Int64
    }

    /// The chunks cut from one block, and their ids once hashed.
    ///
    /// `@unchecked Sendable`: the hashing queue fills `ids`, then signals `hashed`; the reading
    /// thread reads `ids` only after waiting for it. The slot it points into is not written again
    /// until its chunks are stored and the slot is signalled free.
    private final class BlockJob: @unchecked Sendable {
        let base: UnsafeRawPointer
        let pieces: [(offset: Int, length: Int)]
        var ids: [ObjectID] = []
        let slot: Int
        let hashed = DispatchSemaphore(value: 0)

        init(base: UnsafeRawPointer, pieces: [(offset: Int, length: Int)], slot: Int) {
            self.base = base; self.pieces = pieces; self.slot = slot
        }

        func hash(whole: SHAStream, chunk: SHAStream) {
            ids.reserveCapacity(pieces.count)
            for p in pieces {
                SHAStream.update(whole, chunk, UnsafeRawBufferPointer(start: base + p.offset, count: p.length))
                ids.append(chunk.finalize())
            }
        }
    }

    /// What the stages of one file share.
    ///
    /// `@unchecked Sendable`: `whole` and `chunk` are used only on the hashing queue until `store`
    /// has drained it; `chunks`, `failure` and the batch only on the reading thread.
    private final class Pipeline: @unchecked Sendable {
        let whole = SHAStream()
        let chunk = SHAStream()
        let batch: ObjectBatch
        var chunks: [ChunkList.Chunk] = []
        var failure: MVCError?
        let free: [DispatchSemaphore]

        init(batch: ObjectBatch, slots: Int) {
            self.batch = batch
            free = (0..<slots).map { _ in DispatchSemaphore.token() }
        }

        func write(_ job: BlockJob) {
            defer { free[job.slot].signal() }
            guard failure == nil else { return }
            do throws(MVCError) {
                for (p, id) in zip(job.pieces, job.ids) {
                    try batch.putRaw(id, UnsafeRawBufferPointer(start: job.base + p.offset, count: p.length))
                    chunks.append(.init(id: id, size: UInt32(p.length)))
                }
            } catch {
                failure = error
            }
        }
    }

    /// Stores the file at `path`; returns its blob id (SHA-256 of its bytes) and size.
    func store(path: String, progress: (UInt64) -> Void) throws(MVCError) -> Stored {
        let fd = try FileIO.openRead(path)
        defer { close(fd) }
        let before = try FileIO.stat(fd: fd, path: path)
        let readAt = StatCache.now()
        guard before.isRegular else {
            throw MVCError(.unsupportedFileType, "'\(path)' is not a regular file", hint: "mvc stores regular files and directories")
        }
        if before.size > UInt64(BlobWriter.blockSize) { batch.expect(before.size) }
        let pipeline = Pipeline(batch: batch, slots: slots.count)
        // Never return while the hashing thread still reads a slot.
        defer { hashQueue.sync {} }
        var single: ObjectID?
        var total: UInt64 = 0
        var tail: UnsafeRawPointer?, tailLength = 0
        var eof = false
        var block = 0
        var previous: BlockJob?   // hashed on the queue, stored here while the next block hashes

        while !eof && pipeline.failure == nil {
            let slotIndex = block % slots.count
            let slot = slots[slotIndex]
            pipeline.free[slotIndex].wait()
            let base = slot.baseAddress!
            let dataStart = carry - tailLength
            if let tail, tailLength > 0 { (base + dataStart).copyMemory(from: tail, byteCount: tailLength) }
            let readArea = UnsafeMutableRawBufferPointer(rebasing: slot[carry...])
            let n: Int
            do throws(MVCError) { n = try FileIO.readFully(fd, into: readArea, path: path) } catch {
                pipeline.free[slotIndex].signal()
                throw error
            }
            eof = n < readArea.count
            progress(UInt64(n))
            var pieces: [(offset: Int, length: Int)] = []
            var p = dataStart
            let end = carry + n
            while p < end {
                guard let cut = chunker.nextCut(UnsafeRawBufferPointer(start: base + p, count: end - p), atEnd: eof) else { break }
                pieces.append((p, cut))
                total += UInt64(cut)
                p += cut
            }
            tail = UnsafeRawPointer(base + p)
            tailLength = end - p

            let job = BlockJob(base: UnsafeRawPointer(base), pieces: pieces, slot: slotIndex)
            if block == 0 && eof {
                // The whole file is in this block: hash and store it on this thread.
                if pieces.count == 1 {
                    pipeline.chunk.update(UnsafeRawBufferPointer(start: base + pieces[0].offset, count: pieces[0].length))
                    single = pipeline.chunk.finalize()
                    job.ids = [single!]
                } else {
                    job.hash(whole: pipeline.whole, chunk: pipeline.chunk)
                }
                pipeline.write(job)
            } else {
                hashQueue.async {
                    job.hash(whole: pipeline.whole, chunk: pipeline.chunk)
                    job.hashed.signal()
                }
                if let previous { previous.hashed.wait(); pipeline.write(previous) }
                previous = job
            }
            block += 1
        }
        if let previous { previous.hashed.wait(); pipeline.write(previous) }
        hashQueue.sync {}
        if let failure = pipeline.failure { throw failure }
        let chunks = pipeline.chunks
        let after = try FileIO.stat(fd: fd, path: path)
        guard after.size == total, after == before else {
            throw MVCError(.io, "'\(path)' changed while it was being read", hint: "stop whatever writes it and commit again")
        }
        if let single, chunks.count == 1 { return Stored(id: single, size: total, stat: before, readAt: readAt) }
        if chunks.isEmpty {
            return Stored(id: try batch.putRaw([]), size: 0, stat: before, readAt: readAt)
        }
        let id = pipeline.whole.finalize()
        try batch.putChunkList(id, ChunkList(chunks: chunks))
        return Stored(id: id, size: total, stat: before, readAt: readAt)
    }

    // MARK: many small files

    /// Files at most this large go through `storeMany`'s batches; larger ones through `store`.
    static let smallFileLimit = 1 << 20

    /// A group of small files read into one buffer by the reading queue.
    ///
    /// `@unchecked Sendable`: filled on the reading queue, then read on the calling thread only
    /// after `ready` is signalled; the calling thread hands the group back (`free`) before it is
    /// refilled.
    private final class SmallGroup: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
        var items: [(index: Int, offset: Int, length: Int, stat: FileIO.Stat, readAt: Int64)] = []
        /// Files that must go through `store` instead (grew past what was expected, changed while read).
        var fallback: [Int] = []
        /// What to hash (each file with one chunk; else the whole file and each chunk), which
        /// messages belong to which item, and their ids.
        var messages: [UnsafeRawBufferPointer] = []
        var plan: [(item: Int, pieces: Range<Int>, whole: Int?)] = []
        var ids: [ObjectID] = []
        var failure: MVCError?
        let ready = DispatchSemaphore(value: 0)
        let free = DispatchSemaphore.token()

        init(capacity: Int) { buffer = .allocate(byteCount: capacity, alignment: 64) }
        deinit { buffer.deallocate() }

        /// Cuts each file read and hashes the pieces, up to four side by side.
        func hash(_ chunker: Chunker) {
            messages.removeAll(keepingCapacity: true)
            plan.removeAll(keepingCapacity: true)
            let base = UnsafeRawPointer(buffer.baseAddress!)
            for (k, item) in items.enumerated() {
                let bytes = UnsafeRawBufferPointer(start: base + item.offset, count: item.length)
                var cuts: [UnsafeRawBufferPointer] = []
                var p = 0
                while p < bytes.count {
                    let cut = chunker.nextCut(UnsafeRawBufferPointer(rebasing: bytes[p...]), atEnd: true)!
                    cuts.append(UnsafeRawBufferPointer(rebasing: bytes[p..<(p + cut)]))
                    p += cut
                }
                var whole: Int?
                if cuts.count != 1 { whole = messages.count; messages.append(bytes) }
                let first = messages.count
                messages.append(contentsOf: cuts)
                plan.append((k, first..<messages.count, whole))
            }
            ids = ObjectID.hashMany(messages)
        }

        /// Reads as many of `paths[from...]` as fit; returns the index of the first not taken.
        func fill(_ paths: [(path: String, size: UInt64)], from: Int, limit: Int) -> Int {
            items.removeAll(keepingCapacity: true)
            fallback.removeAll(keepingCapacity: true)
            failure = nil
            var used = 0, i = from
            while i < paths.count && items.count + fallback.count < limit {
                let expected = Int(paths[i].size)
                // One byte more than expected, to see growth; stop when the next file does not fit.
                if used + expected + 1 > buffer.count && i > from { break }
                do throws(MVCError) {
                    let fd = try FileIO.openRead(paths[i].path)
                    defer { close(fd) }
                    let before = try FileIO.stat(fd: fd, path: paths[i].path)
                    let readAt = StatCache.now()
                    guard before.isRegular else {
                        throw MVCError(.unsupportedFileType, "'\(paths[i].path)' is not a regular file", hint: "mvc stores regular files and directories")
                    }
                    let room = min(expected + 1, buffer.count - used)
                    let n = try FileIO.readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + room)]), path: paths[i].path)
                    let after = try FileIO.stat(fd: fd, path: paths[i].path)
                    if n == room || after != before || UInt64(n) != after.size {
                        fallback.append(i)      // grew, or changed while read: `store` decides
                    } else {
                        items.append((i, used, n, before, readAt))
                        used += n
                    }
                } catch {
                    failure = error
                    return i + 1
                }
                i += 1
            }
            return i
        }
    }

    /// Stores every file of `files` (paths with the sizes a walk saw) and returns their results in
    /// the same order. Small files are read in groups of up to 8 MiB by a reading queue, which also
    /// cuts and hashes them, up to four messages side by side (`ObjectID.hashMany`: many small
    /// files cost less than one stream of their total size), while this thread stores the previous
    /// group's objects. Larger files go through `store`. `progress` gets each file's index and size once it is stored.
    func storeMany(_ files: [(path: String, size: UInt64)], progress: (Int, UInt64) -> Void) throws(MVCError) -> [Stored] {
        var results = [Stored?](repeating: nil, count: files.count)
        var small: [(path: String, size: UInt64)] = [], smallIndex: [Int] = []
        for (i, f) in files.enumerated() {
            if f.size <= UInt64(BlobWriter.smallFileLimit) { small.append(f); smallIndex.append(i); continue }
            let stored = try store(path: f.path) { _ in }
            results[i] = stored
            progress(i, stored.size)
        }

        batch.expect(small.reduce(0) { $0 + $1.size })
        let groups = [SmallGroup(capacity: BlobWriter.blockSize + BlobWriter.smallFileLimit + 1),
                      SmallGroup(capacity: BlobWriter.blockSize + BlobWriter.smallFileLimit + 1)]
        let readQueue = DispatchQueue(label: "mvc.read")
        defer { readQueue.sync {} }
        let perGroup = 1024
        // Hands out group k's range of files; the reading queue runs ahead by one group.
        final class Cursor: @unchecked Sendable { var next = 0 }   // touched on the reading queue only
        let cursor = Cursor()
        let smallFiles = small
        let chunker = self.chunker
        func schedule(_ g: SmallGroup) {
            readQueue.async {
                g.free.wait()
                cursor.next = g.fill(smallFiles, from: cursor.next, limit: perGroup)
                g.hash(chunker)
                g.ready.signal()
            }
        }
        var scheduled = 0, consumed = 0
        // Groups needed: unknown until read; keep one read ahead while files remain.
        func moreToRead() -> Bool { readQueue.sync { cursor.next < smallFiles.count } }
        if !small.isEmpty { schedule(groups[0]); scheduled = 1 }
        while consumed < scheduled {
            let g = groups[consumed % 2]
            g.ready.wait()
            defer { g.free.signal() }
            if let failure = g.failure { throw failure }
            if moreToRead() { schedule(groups[scheduled % 2]); scheduled += 1 }
            let messages = g.messages, plan = g.plan, ids = g.ids
            for entry in plan {
                let item = g.items[entry.item]
                let id: ObjectID
                if let w = entry.whole {
                    var list: [ChunkList.Chunk] = []
                    for m in entry.pieces {
                        try batch.putRaw(ids[m], messages[m])
                        list.append(.init(id: ids[m], size: UInt32(messages[m].count)))
                    }
                    id = ids[w]
                    if list.isEmpty { try batch.putRaw(id, messages[w]) } else { try batch.putChunkList(id, ChunkList(chunks: list)) }
                } else {
                    id = ids[entry.pieces.lowerBound]
                    try batch.putRaw(id, messages[entry.pieces.lowerBound])
                }
                let index = smallIndex[item.index]
                results[index] = Stored(id: id, size: UInt64(item.length), stat: item.stat, readAt: item.readAt)
                progress(index, UInt64(item.length))
            }
            for f in g.fallback {
                let index = smallIndex[f]
                let stored = try store(path: small[f].path) { _ in }
                results[index] = stored
                progress(index, stored.size)
            }
            consumed += 1
        }
        return results.map { $0! }
    }
}

extension DispatchSemaphore {
    /// A semaphore holding one token, created at value 0 and signalled once. libdispatch aborts
    /// the process when a semaphore is freed with a value below the one it was created with, which
    /// an error path that leaves a slot's token taken would otherwise do.
    static func token() -> DispatchSemaphore {
        let s = DispatchSemaphore(value: 0)
        s.signal()
        return s
    }
}
