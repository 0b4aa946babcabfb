/// Receives progress of long operations (bytes done out of a total). The CLI draws it on a
/// terminal; the library's default does nothing.
public protocol ProgressSink: AnyObject {
    func begin(_ phase: String, totalBytes: UInt64, totalFiles: Int)
    func advance(bytes: UInt64, path: String)
    func end()
}

public final class SilentProgress: ProgressSink {
    public init() {}
    public func begin(_ phase: String, totalBytes: UInt64, totalFiles: Int) {}
    public func advance(bytes: UInt64, path: String) {}
    public func end() {}
}
