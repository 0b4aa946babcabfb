#if canImport(Glibc)
internal import Glibc
#endif

/// Stores files as blobs: reads each file once, cuts it into content-defined chunks, hashes each
/// chunk and the whole file, and appends new chunks to the batch. Memory is one fixed buffer.
final class BlobWriter {
    let chunker: Chunker
    let batch: ObjectBatch
    private let buffer: UnsafeMutableRawBufferPointer

    init(chunker: Chunker, batch: ObjectBatch) {
        self.chunker = chunker
        self.batch = batch
        buffer = .allocate(byteCount: max(8 << 20, chunker.parameters.max * 2), alignment: 64)
    }

    deinit { buffer.deallocate() }

    struct Stored {
        var id: ObjectID
        var size: UInt64
        /// The file's stat, the same before and after the read.
        var stat: FileIO.Stat
        /// Clock time just before the read began (for the stat cache).
        var readAt: Int64
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
        let maxChunk = chunker.parameters.max
        var start = 0, end = 0, eof = false, total: UInt64 = 0
        var chunks: [ChunkList.Chunk] = []
        var single: ObjectID?
        let whole = SHA256()
        while true {
            if !eof && end - start < maxChunk {
                if start > 0 {
                    if end > start { (buffer.baseAddress! ).copyMemory(from: buffer.baseAddress! + start, byteCount: end - start) }
                    end -= start; start = 0
                }
                let n = try FileIO.readFully(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]), path: path)
                if n < buffer.count - end { eof = true }
                end += n
                progress(UInt64(n))
            }
            if start == end && eof { break }
            let avail = UnsafeRawBufferPointer(rebasing: buffer[start..<end])
            guard let cut = chunker.nextCut(avail, atEnd: eof) else { continue }
            let piece = UnsafeRawBufferPointer(rebasing: avail[0..<cut])
            let id = ObjectID.hash(piece)
            if chunks.isEmpty && eof && cut == avail.count {
                single = id
            } else {
                whole.update(piece)
            }
            try batch.putRaw(id, piece)
            chunks.append(.init(id: id, size: UInt32(cut)))
            total += UInt64(cut)
            start += cut
        }
        let after = try FileIO.stat(fd: fd, path: path)
        guard after.size == total, after == before else {
            throw MVCError(.io, "'\(path)' changed while it was being read", hint: "stop whatever writes it and commit again")
        }
        if let single { return Stored(id: single, size: total, stat: before, readAt: readAt) }
        if chunks.isEmpty {
            return Stored(id: try batch.putRaw([]), size: 0, stat: before, readAt: readAt)
        }
        let id = whole.finalize()
        try batch.putChunkList(id, ChunkList(chunks: chunks))
        return Stored(id: id, size: total, stat: before, readAt: readAt)
    }
}
