#if canImport(Glibc)
internal import Glibc
#endif

public struct CheckoutResult: Sendable, Codable, Equatable {
    public var revision: String
    public var id: ObjectID
    public var directory: String
    /// Files written (new or changed), relative to `directory`.
    public var written: [String]
    /// Files already byte-identical, left alone.
    public var unchanged: Int
    /// Files of another version removed from a committed directory (their bytes are in the store).
    public var removed: [String]
    /// Files in a committed directory that are not in the store, left in place.
    public var kept: [String]
    public var bytesWritten: UInt64
    /// Problems after the files were written (e.g. `mvc.lock` not writable).
    public var warnings: [String] = []
}

extension Repository {
    /// Restores a version's files, byte-exact, into the work tree (or `directory`).
    ///
    /// Refuses, before writing anything, to replace a file whose current bytes are not in the
    /// store (local changes) unless `force`. Never writes outside the target: paths come from
    /// validated tree entries, every parent directory is checked not to be a symlink, and files
    /// are written to a temp file and renamed into place (a rename replaces a link, never its target).
    public func checkout(_ revision: String, into directory: String? = nil, paths filter: [String] = [],
                         force: Bool = false, progress: any ProgressSink = SilentProgress()) throws(MVCError) -> CheckoutResult {
        let (id, commit) = try resolveCommit(revision)
        var files = try self.files(ofTree: commit.tree)
        if !filter.isEmpty {
            var selected: [FileEntry] = []
            for raw in filter {
                var f = raw
                while f.hasSuffix("/") { f.removeLast() }
                let matches = files.filter { $0.path == f || $0.path.hasPrefix(f + "/") }
                if matches.isEmpty {
                    throw MVCError(.pathNotFound, "'\(raw)' is not in \(commit.artifact)@v\(commit.version)", hint: "see 'mvc ls \(revision)'")
                }
                selected.append(contentsOf: matches)
            }
            var seen = Set<[UInt8]>()
            files = selected.filter { seen.insert($0.path.byteKey).inserted }
        }
        let target: String
        if let directory {
            let abs = directory.hasPrefix("/") ? directory : joinPath(FileIO.currentDirectory(), directory)
            let insideStore = { (p: String) in p.split(separator: "/").contains { Names.reservedNames.contains($0.lowercased()) } }
            if insideStore(abs) {
                throw MVCError(.unsafePath, "refusing to check out into '\(directory)': it is inside an mvc store or a git directory",
                               hint: "choose a directory outside .mvc and .git")
            }
            try FileIO.mkdirs(abs)
            target = FileIO.realpath(abs) ?? abs
            if insideStore(target) {
                throw MVCError(.unsafePath, "refusing to check out into '\(directory)': it is inside an mvc store or a git directory",
                               hint: "choose a directory outside .mvc and .git")
            }
        } else {
            target = workTree
        }

        // The stat cache covers the work tree only.
        let cache = target == workTree ? statCache() : StatCache(path: "")
        defer { if target == workTree { cache.save() } }
        func currentID(_ rel: String, _ st: FileIO.Stat) throws(MVCError) -> ObjectID {
            target == workTree ? try fileID(rel, st, cache: cache) : try hashFile(joinPath(target, rel))
        }

        // Plan: decide for every file before touching anything.
        var toWrite: [FileEntry] = [], unchanged = 0, conflicts: [String] = []
        for f in files {
            try checkParents(f.path, under: target)
            let abs = joinPath(target, f.path)
            guard let st = try FileIO.lstat(abs) else { toWrite.append(f); continue }
            if st.isDirectory { conflicts.append(f.path + " (a directory is in the way)"); continue }
            if st.isSymlink { if force { toWrite.append(f) } else { conflicts.append(f.path + " (a symbolic link)") }; continue }
            guard st.isRegular else { conflicts.append(f.path + " (not a regular file)"); continue }
            var current: ObjectID? = nil
            if st.size == f.size || !force { current = try currentID(f.path, st) }
            if current == f.id {
                if (st.isExecutable) != (f.kind == .exec) { chmod(abs, f.kind == .exec ? 0o755 : 0o644) }
                unchanged += 1
            } else if force {
                toWrite.append(f)
            } else if let current, try objects.contains(current) {
                toWrite.append(f)   // its bytes are in the store: replacing it loses nothing
            } else {
                conflicts.append(f.path)
            }
        }
        var missing: [FileEntry] = []
        for f in toWrite where try !objects.contains(f.id) { missing.append(f) }
        if !missing.isEmpty {
            let list = missing.prefix(5).map { "'\($0.path)' (\($0.id.short))" }.joined(separator: ", ") + (missing.count > 5 ? " and \(missing.count - 5) more" : "")
            throw MVCError(.missingObject, "\(missing.count) file\(missing.count == 1 ? "" : "s") of \(commit.artifact)@v\(commit.version) \(missing.count == 1 ? "is" : "are") not in this store: \(list)",
                           hint: "the store knows this version but not these bytes (e.g. after 'mvc mirror import'); copy them from a store that has them")
        }
        if !conflicts.isEmpty {
            let list = conflicts.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + (conflicts.count > 5 ? " and \(conflicts.count - 5) more" : "")
            throw MVCError(.wouldOverwrite, "checkout would overwrite local changes: \(list)",
                           hint: "commit them first ('mvc commit'), or use --force to discard them")
        }

        // Files of other versions under the committed directories (full checkouts into the work tree only).
        var removable: [String] = [], kept: [String] = []
        if directory == nil && filter.isEmpty {
            let wanted = Set(files.map(\.path.byteKey))
            for root in commit.paths {
                guard let st = try FileIO.lstat(joinPath(target, root)), st.isDirectory else { continue }
                for found in try walk(root, skippingUnsupported: true) where !wanted.contains(found.relativePath.byteKey) {
                    let h = try currentID(found.relativePath, found.stat)
                    if try objects.contains(h) { removable.append(found.relativePath) } else { kept.append(found.relativePath) }
                }
            }
        }

        let total = toWrite.reduce(UInt64(0)) { $0 + $1.size }
        progress.begin("checking out \(commit.artifact)@v\(commit.version)", totalBytes: total, totalFiles: toWrite.count)
        var bytes: UInt64 = 0
        for f in toWrite {
            let readAt = StatCache.now()
            try writeFile(f, under: target) { progress.advance(bytes: $0, path: f.path) }
            if target == workTree, let st = try FileIO.lstat(joinPath(target, f.path)) { cache.record(f.path, st, readAt: readAt, f.id) }
            bytes += f.size
        }
        progress.end()
        for r in removable { FileIO.unlink(joinPath(target, r)); cache.forget(r) }
        var result = CheckoutResult(revision: "\(commit.artifact)@v\(commit.version)", id: id, directory: target,
                                    written: toWrite.map(\.path), unchanged: unchanged, removed: removable, kept: kept, bytesWritten: bytes)
        if directory == nil && filter.isEmpty {
            do throws(MVCError) { try recordInWorkTree(id, commit) } catch { result.warnings.append("\(LockFile.fileName) not updated: \(error.message)") }
        }
        return result
    }

    /// The stat cache of this work tree.
    func statCache() -> StatCache { StatCache(path: joinPath(storeDirectory, "index")) }

    /// The blob id of a work-tree file: from the stat cache when its stat proves it unchanged,
    /// else by hashing it (and then recording it when it did not change during the read).
    func fileID(_ rel: String, _ st: FileIO.Stat, cache: StatCache) throws(MVCError) -> ObjectID {
        if let id = cache.lookup(rel, st) { return id }
        let readAt = StatCache.now()
        let abs = joinPath(workTree, rel)
        let id = try hashFile(abs)
        if let after = try FileIO.lstat(abs), after == st { cache.record(rel, st, readAt: readAt, id) }
        return id
    }

    /// SHA-256 of a file on disk, streamed.
    func hashFile(_ path: String) throws(MVCError) -> ObjectID {
        let fd = try FileIO.openRead(path)
        defer { close(fd) }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buf.deallocate() }
        let h = SHA256()
        while true {
            let n = try FileIO.read(fd, into: buf, path: path)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
        }
        return h.finalize()
    }

    /// Every directory between `target` and the file must be a real directory (or absent).
    private func checkParents(_ rel: String, under target: String) throws(MVCError) {
        try validateRelativePath(rel)
        var dir = target
        for part in rel.split(separator: "/").dropLast() {
            dir = joinPath(dir, String(part))
            guard let st = try FileIO.lstat(dir) else { return }
            if st.isSymlink {
                throw MVCError(.unsafePath, "refusing to write '\(rel)': '\(dir)' is a symbolic link", hint: "remove the link or check out with -o into another directory")
            }
            if !st.isDirectory {
                throw MVCError(.unsafePath, "cannot write '\(rel)': '\(dir)' is a file", hint: "move the file aside")
            }
        }
    }

    private func writeFile(_ f: FileEntry, under target: String, progress: (UInt64) -> Void) throws(MVCError) {
        try checkParents(f.path, under: target)
        let abs = joinPath(target, f.path)
        let dir = parentPath(abs)
        try FileIO.mkdirs(dir)
        try checkParents(f.path, under: target)   // again, now that the directories exist
        let tmp = joinPath(dir, ".mvc-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = try FileIO.createExclusive(tmp, mode: f.kind == .exec ? 0o755 : 0o644)
        do throws(MVCError) {
            // verifyWhole: a chunk list must add up to the blob id, not merely list intact chunks.
            try objects.stream(f.id, verifyWhole: true) { (piece) throws(MVCError) in
                try FileIO.writeAll(fd, piece, path: tmp)
                progress(UInt64(piece.count))
            }
            fchmod(fd, f.kind == .exec ? 0o755 : 0o644)
            close(fd)
            if let st = try FileIO.lstat(abs), st.isSymlink { FileIO.unlink(abs) }
            try FileIO.rename(tmp, abs)
        } catch {
            close(fd)
            FileIO.unlink(tmp)
            throw error
        }
    }
}
