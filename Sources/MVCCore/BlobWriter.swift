#if canImport(Glibc)
internal import Glibc
#endif
internal import Dispatch

/// Stores files as blobs: reads each file once, cuts it into content-defined chunks, hashes each
/// chunk and the whole file, and appends new chunks to the batch.
///
/// Memory is three fixed slots of `blockSize + max chunk` bytes, whatever the file size. For files
/// larger than one block, the whole-file SHA-256 runs on a second thread over each block as it is
/// read, while this thread cuts, hashes and writes the chunks of the same block: the two hashes,
/// which dominate a commit, overlap on two cores.
final class BlobWriter {
    let chunker: Chunker
    let batch: ObjectBatch
    static let blockSize = 8 << 20
    static let slotCount = 3
    private let slots: [UnsafeMutableRawBufferPointer]
    private let carry: Int
    private let queue = DispatchQueue(label: "mvc.whole-file-hash")

    init(chunker: Chunker, batch: ObjectBatch) {
        self.chunker = chunker
        self.batch = batch
        carry = chunker.parameters.max
        slots = (0..<BlobWriter.slotCount).map { _ in .allocate(byteCount: chunker.parameters.max + BlobWriter.blockSize, alignment: 64) }
    }

    deinit {
        queue.sync {}
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

    /// One block handed to the whole-file hasher.
    ///
    /// `@unchecked Sendable`: the region is not written again until `done` is signalled, and the
    /// hasher is only touched on the serial `queue` until `store` has drained it with `queue.sync`.
    private struct HashJob: @unchecked Sendable {
        let hasher: SHA256
        let region: UnsafeRawBufferPointer
        let done: DispatchSemaphore
        func run() { hasher.update(region); done.signal() }
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
        let free = (0..<slots.count).map { _ in DispatchSemaphore(value: 1) }
        defer { queue.sync {} }   // never return while the hasher still reads a slot
        let whole = SHA256()
        var concurrent = false    // whole-file hash on the queue (more than one block)
        var chunks: [ChunkList.Chunk] = []
        var single: ObjectID?
        var total: UInt64 = 0
        var tail: UnsafeRawPointer?, tailLength = 0
        var eof = false
        var block = 0
        while !eof {
            let slot = slots[block % slots.count]
            let gate = free[block % slots.count]
            gate.wait()
            let base = slot.baseAddress!
            let dataStart = carry - tailLength
            if let tail, tailLength > 0 { (base + dataStart).copyMemory(from: tail, byteCount: tailLength) }
            let readArea = UnsafeMutableRawBufferPointer(rebasing: slot[carry...])
            let n: Int
            do throws(MVCError) { n = try FileIO.readFully(fd, into: readArea, path: path) } catch { gate.signal(); throw error }
            eof = n < readArea.count
            progress(UInt64(n))
            if block > 0 || !eof { concurrent = true }
            if concurrent && n > 0 {
                let job = HashJob(hasher: whole, region: UnsafeRawBufferPointer(rebasing: slot[carry..<(carry + n)]), done: gate)
                queue.async { job.run() }
            } else {
                gate.signal()
            }
            var p = dataStart
            let end = carry + n
            while p < end {
                let avail = UnsafeRawBufferPointer(start: base + p, count: end - p)
                guard let cut = chunker.nextCut(avail, atEnd: eof) else { break }
                let piece = UnsafeRawBufferPointer(rebasing: avail[0..<cut])
                let id = ObjectID.hash(piece)
                if !concurrent {
                    if chunks.isEmpty && cut == avail.count { single = id } else { whole.update(piece) }
                }
                try batch.putRaw(id, piece)
                chunks.append(.init(id: id, size: UInt32(cut)))
                total += UInt64(cut)
                p += cut
            }
            tail = UnsafeRawPointer(base + p)
            tailLength = end - p
            block += 1
        }
        let after = try FileIO.stat(fd: fd, path: path)
        guard after.size == total, after == before else {
            throw MVCError(.io, "'\(path)' changed while it was being read", hint: "stop whatever writes it and commit again")
        }
        if let single, chunks.count == 1 { return Stored(id: single, size: total, stat: before, readAt: readAt) }
        if chunks.isEmpty {
            return Stored(id: try batch.putRaw([]), size: 0, stat: before, readAt: readAt)
        }
        queue.sync {}
        let id = whole.finalize()
        try batch.putChunkList(id, ChunkList(chunks: chunks))
        return Stored(id: id, size: total, stat: before, readAt: readAt)
    }
}
