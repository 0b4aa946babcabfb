internal import CZstd

/// Compression of objects sent to remotes. Text datasets shrink 2-3x; random model weights do
/// not shrink at all, so each object is tried on a cheap sample first.
enum Compression {
    /// Objects smaller than this are sent as they are (a frame header would eat the gain).
    static let minimumSize = 512
    /// Sample size and the ratio it must reach before the whole object is compressed.
    static let sampleSize = 64 << 10
    static let worthwhileRatio = 0.9

    /// The payload to send for a raw object: zstd when it pays, else the bytes themselves.
    static func forRemote(_ bytes: [UInt8]) -> (kind: StorageKind, payload: [UInt8]) {
        guard bytes.count >= minimumSize else { return (.raw, bytes) }
        let sample = Array(bytes.prefix(sampleSize))
        guard let small = compress(sample, level: 1), Double(small.count) < Double(sample.count) * worthwhileRatio else {
            return (.raw, bytes)
        }
        guard let packed = compress(bytes, level: 3), packed.count < bytes.count - bytes.count / 20 else { return (.raw, bytes) }
        return (.zstd, packed)
    }

    static func compress(_ bytes: [UInt8], level: Int32) -> [UInt8]? {
        let bound = ZSTD_compressBound(bytes.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            bytes.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, bound, i.baseAddress, i.count, level) }
        }
        guard ZSTD_isError(n) == 0 else { return nil }
        out.removeSubrange(n...)
        return out
    }

    /// Decompresses one frame whose content must be at most `limit` bytes (a chunk, a small file).
    static func decompress(_ frame: [UInt8], id: ObjectID, limit: Int = 64 << 20) throws(MVCError) -> [UInt8] {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN / _ERROR are the two largest UInt64 values.
        guard size < UInt64.max - 1, size <= UInt64(limit) else { throw .corrupt(id, "compressed copy has no valid size") }
        var out = [UInt8](repeating: 0, count: Int(size))
        let n = out.withUnsafeMutableBytes { o in
            frame.withUnsafeBytes { i in ZSTD_decompress(o.baseAddress, Int(size), i.baseAddress, i.count) }
        }
        guard ZSTD_isError(n) == 0, n == Int(size) else { throw .corrupt(id, "compressed copy does not decompress") }
        return out
    }
}
