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
            var byPath: [[UInt8]: FileEntry] = [:]
            for f in committed { byPath[f.path.byteKey] = f }
            var seen = Set<[UInt8]>()
            var mine: [StatusEntry] = []
            for root in commit.paths {
                let onDisk: [FoundFile]
                do throws(MVCError) { onDisk = try walk(root, skippingUnsupported: true) } catch {
                    if error.code == .pathNotFound { onDisk = [] } else { throw error }
                }
                for found in onDisk {
                    seen.insert(found.relativePath.byteKey)
                    guard let f = byPath[found.relativePath.byteKey] else {
                        mine.append(StatusEntry(artifact: name, path: found.relativePath, change: .added)); continue
                    }
                    let differs: Bool
                    if found.stat.size != f.size { differs = true } else { differs = try fileID(found.relativePath, found.stat, cache: cache) != f.id }
                    if differs {
                        mine.append(StatusEntry(artifact: name, path: found.relativePath, change: .modified))
                    }
                }
            }
            for f in committed where !seen.contains(f.path.byteKey) {
                mine.append(StatusEntry(artifact: name, path: f.path, change: .deleted))
            }
            if mine.isEmpty { clean.append(name) }
            changes.append(contentsOf: mine.sorted { utf8Less($0.path, $1.path) })
        }
        return StatusReport(changes: changes, clean: clean)
    }
}
