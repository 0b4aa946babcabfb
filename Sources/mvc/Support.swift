import ArgumentParser
import Foundation
import MVC

/// Flags every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON on stdout (stable keys; no progress).")
    var json = false

    @Option(name: .customShort("C"), help: ArgumentHelp("Run as if mvc was started in <dir>.", valueName: "dir"))
    var directory: String?

    func repository() throws(MVCError) -> Repository {
        try Repository.discover(from: directory)
    }

    /// The directory that relative paths are taken from.
    var baseDirectory: String {
        guard let directory else { return FileManager.default.currentDirectoryPath }
        return directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
    }

    func progress() -> any ProgressSink {
        json || isatty(2) != 1 ? SilentProgress() : TerminalProgress()
    }
}

/// Runs a command body, turning an `MVCError` into `error:`/`hint:` lines on stderr and exit 1.
func runReporting(_ body: () throws(MVCError) -> Void) throws {
    do throws(MVCError) {
        try body()
    } catch {
        FileHandle.standardError.write(Data((error.description + "\n").utf8))
        throw ExitCode(1)
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    let data = (try? encoder.encode(value)) ?? Data("null".utf8)
    FileHandle.standardOutput.write(data)
    FileHandle.standardOutput.write(Data("\n".utf8))
}

/// Formats rows as left-aligned columns separated by two spaces (the last column is not padded).
func columns(_ rows: [[String]], rightAlign: Set<Int> = []) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return rows.map { row in
        row.enumerated().map { i, cell in
            if i == row.count - 1 && !rightAlign.contains(i) { return cell }
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return rightAlign.contains(i) ? pad + cell : cell + pad
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

func humanBytes(_ n: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n), u = 0
    while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

func formatDate(_ s: Signature) -> String {
    let date = Date(timeIntervalSince1970: TimeInterval(s.time))
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(secondsFromGMT: s.tzOffsetMinutes * 60)
    f.dateFormat = "yyyy-MM-dd HH:mm:ss xx"
    return f.string(from: date)
}

/// Progress on stderr for a terminal: one line, redrawn at most ten times a second.
final class TerminalProgress: ProgressSink {
    private var phase = "", total: UInt64 = 0, done: UInt64 = 0, files = 0, last = Date.distantPast, start = Date()

    func begin(_ phase: String, totalBytes: UInt64, totalFiles: Int) {
        self.phase = phase; total = totalBytes; done = 0; files = totalFiles; start = Date(); last = .distantPast
    }

    func advance(bytes: UInt64, path: String) {
        done += bytes
        let now = Date()
        guard now.timeIntervalSince(last) > 0.1 else { return }
        last = now
        let pct = total == 0 ? 100 : Int(Double(done) / Double(total) * 100)
        let rate = Double(done) / max(now.timeIntervalSince(start), 0.001)
        draw("\(phase): \(pct)% (\(humanBytes(done)) / \(humanBytes(total)), \(humanBytes(UInt64(rate)))/s)")
    }

    func end() {
        if last != .distantPast { draw(""); FileHandle.standardError.write(Data("\r".utf8)) }
    }

    private func draw(_ line: String) {
        FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
    }
}
