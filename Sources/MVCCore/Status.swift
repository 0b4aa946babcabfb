public struct StatusEntry: Sendable, Codable, Equatable {
    public enum Change: String, Sendable, Codable {
        /// Content differs from the latest version.
        case modified
        /// In the latest version, missing from the work tree.
        case deleted
        /// In a committed directory, not in the latest version.
        case added
    }
    public var artifact: String
    public var path: String
    public var change: Change
}

public struct StatusReport: Sendable, Codable, Equatable {
    public var changes: [StatusEntry]
    /// Artifacts whose tracked paths match their latest version.
    public var clean: [String]
    /// A file left partly rewritten by a checkout that did not finish (`.mvc/rewriting`): it
    /// holds a mix of two stored versions, and the next checkout that includes it writes it whole.
    public var interrupted: String? = nil
}

extension Repository {
    /// Tracked paths whose work-tree content differs from their artifact's latest version.
    public func status() throws(MVCError) -> StatusReport {
        var changes: [StatusEntry] = [], clean: [String] = []
        let cache = statCache()
        defer { cache.save() }
        for name in try artifactNames() {
            guard let head = try head(of: name) else { continue }
            let commit = try objects.readCommit(head)
            let committed = try files(ofTree: commit.tree)
            // Committed paths by their bytes (see `PathKey`) to positions in `committed`;
            // made at the first file found out of order.
            var byPath: [PathKey: Int]? = nil
            var seen = [Bool](repeating: false, count: committed.count)
            var mine: [StatusEntry] = []
            for root in commit.paths {
                let onDisk: [FoundFile]
                do throws(MVCError) { onDisk = try walk(root, skippingUnsupported: true) } catch {
                    if error.code == .pathNotFound { onDisk = [] } else { throw error }
                }
                // The walk lists files in tree order, as `files(ofTree:)` does: the next committed
                // file is usually the one found, and the dictionary is asked only when it is not.
                var next = 0
                for found in onDisk {
                    let index: Int
                    if next < committed.count, committed[next].path.utf8.elementsEqual(found.relativePath.utf8) {
                        index = next
                    } else if let i = positions(&byPath, committed)[found.relativePath.byteKey] {
                        index = i
                    } else {
                        mine.append(StatusEntry(artifact: name, path: found.relativePath, change: .added)); continue
                    }
                    next = index + 1
                    seen[index] = true
                    let f = committed[index]
                    let differs: Bool
                    if found.stat.size != f.size { differs = true } else { differs = try fileID(found.relativePath, found.stat, cache: cache) != f.id }
                    if differs {
                        mine.append(StatusEntry(artifact: name, path: found.relativePath, change: .modified))
                    }
                }
            }
            for (i, f) in committed.enumerated() where !seen[i] {
                mine.append(StatusEntry(artifact: name, path: f.path, change: .deleted))
            }
            if mine.isEmpty { clean.append(name) }
            changes.append(contentsOf: mine.sorted { utf8Less($0.path, $1.path) })
        }
        return StatusReport(changes: changes, clean: clean, interrupted: try interruptedRewrite()?.path)
    }

    private func positions(_ cached: inout [PathKey: Int]?, _ files: [FileEntry]) -> [PathKey: Int] {
        if let cached { return cached }
        var byPath: [PathKey: Int] = [:]
        byPath.reserveCapacity(files.count)
        for (i, f) in files.enumerated() { byPath[f.path.byteKey] = i }
        cached = byPath
        return byPath
    }
}
