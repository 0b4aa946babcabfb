#if canImport(Glibc)
internal import Glibc
#endif
internal import Dispatch
internal import Synchronization

/// Stores files as blobs: reads each file once, cuts it into content-defined chunks, hashes each
/// chunk and the whole file, and appends new chunks to the batch.
///
/// Memory is four fixed slots of `blockSize + max chunk` bytes, whatever the file size. A file
/// larger than one block goes through a three-stage pipeline over the slots:
/// 1. this thread reads block k and finds its cut points;
/// 2. a hashing thread feeds each chunk's bytes to two SHA-256 streams at once, the whole file's
///    and the chunk's (`SHAStream.update(_:_:_:)`: one pass over the bytes, little more than the
///    cost of one stream on x86);
/// 3. a writing thread stores the chunks whose ids are ready and frees the slot.
/// The stages cost about the same per byte, and three threads on two cores leave the scheduler
/// no idle gaps to fill: a commit costs the CPU time of its work divided by the cores.
final class BlobWriter {
    let chunker: Chunker
    let batch: ObjectBatch
    static let blockSize = 8 << 20
    static let slotCount = 4
    private let slots: [UnsafeMutableRawBufferPointer]
    private let carry: Int
    private let hashQueue = DispatchQueue(label: "mvc.hash")
    private let writeQueue = DispatchQueue(label: "mvc.write")

    init(chunker: Chunker, batch: ObjectBatch) {
        self.chunker = chunker
        self.batch = batch
        carry = chunker.parameters.max
        slots = (0..<BlobWriter.slotCount).map { _ in .allocate(byteCount: chunker.parameters.max + BlobWriter.blockSize, alignment: 64) }
    }

    deinit {
        hashQueue.sync {}
        writeQueue.sync {}
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
    /// `@unchecked Sendable`: the hashing queue fills `ids` before it enqueues the job on the writing
    /// queue, which alone reads them. The slot it points into is not written again until the
    /// writing queue has stored the chunks and signalled the slot free.
    private final class BlockJob: @unchecked Sendable {
        let base: UnsafeRawPointer
        let pieces: [(offset: Int, length: Int)]
        var ids: [ObjectID] = []
        let slot: Int

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
    /// `@unchecked Sendable`: `whole` and `chunk` are used only on the hashing queue, `chunks`,
    /// `failure` and the batch only on the writing queue, until `store` has drained both queues.
    private final class Pipeline: @unchecked Sendable {
        let whole = SHAStream()
        let chunk = SHAStream()
        let batch: ObjectBatch
        var chunks: [ChunkList.Chunk] = []
        var failure: MVCError?
        let free: [DispatchSemaphore]
        /// Set by the writing queue on failure, read by the reading thread to stop early.
        let failed = Atomic<Bool>(false)

        init(batch: ObjectBatch, slots: Int) {
            self.batch = batch
            free = (0..<slots).map { _ in DispatchSemaphore(value: 1) }
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
                failed.store(true, ordering: .relaxed)
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
        let pipeline = Pipeline(batch: batch, slots: slots.count)
        // Never return while another thread still reads a slot or uses the batch.
        defer { hashQueue.sync {}; writeQueue.sync {} }
        var single: ObjectID?
        var total: UInt64 = 0
        var tail: UnsafeRawPointer?, tailLength = 0
        var eof = false
        var block = 0

        while !eof && !pipeline.failed.load(ordering: .relaxed) {
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
                let writeQueue = self.writeQueue
                hashQueue.async {
                    job.hash(whole: pipeline.whole, chunk: pipeline.chunk)
                    writeQueue.async { pipeline.write(job) }
                }
            }
            block += 1
        }
        hashQueue.sync {}
        writeQueue.sync {}
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
}
