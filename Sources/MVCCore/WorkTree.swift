/// Mapping user paths into the work tree, and walking it.
extension Repository {
    /// Turns a user's path (absolute, or relative to `base`) into a path relative to the work tree,
    /// refusing anything outside it or inside `.mvc`.
    public func relativePath(_ userPath: String, base: String? = nil) throws(MVCError) -> String {
        let baseDir = base ?? FileIO.currentDirectory()
        let absolute = userPath.hasPrefix("/") ? userPath : joinPath(baseDir, userPath)
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        let lexical = "/" + parts.joined(separator: "/")
        // Resolve symlinks in the parent directories, never in the last component.
        let parent = parentPath(lexical)
        guard let realParent = FileIO.realpath(parent) else {
            throw MVCError(.pathNotFound, "path '\(userPath)' does not exist")
        }
        let full = parts.isEmpty ? realParent : joinPath(realParent, String(parts.last!))
        let rootPrefix = workTree == "/" ? "/" : workTree + "/"
        guard full.hasPrefix(rootPrefix), full != workTree else {
            if full == workTree {
                throw MVCError(.invalidArgument, "cannot commit the whole work tree '\(workTree)'", hint: "name the files or directories of the artifact")
            }
            throw MVCError(.pathOutsideWorkTree, "path '\(userPath)' is outside the work tree '\(workTree)'",
                           hint: "move it inside, or run 'mvc init' where it lives")
        }
        let rel = String(full.dropFirst(rootPrefix.count))
        if rel == Repository.directoryName || rel.hasPrefix(Repository.directoryName + "/") {
            throw MVCError(.invalidArgument, "path '\(userPath)' is inside the store '.mvc'")
        }
        try validateRelativePath(rel)
        return rel
    }

    /// A file found under a committed path.
    struct FoundFile {
        var relativePath: String
        var stat: FileIO.Stat
    }

    /// Every regular file at or below `rel`, sorted; symlinks and special files are refused, or
    /// with `skippingUnsupported` passed over (status and checkout only look at what mvc could store).
    /// "Sorted" is tree order: names in byte order within a directory, depth first, as
    /// `files(ofTree:)` lists a tree.
    func walk(_ rel: String, skippingUnsupported: Bool = false) throws(MVCError) -> [FoundFile] {
        let abs = joinPath(workTree, rel)
        guard let st = try FileIO.lstat(abs) else { throw MVCError(.pathNotFound, "path '\(rel)' does not exist") }
        if st.isRegular { return [FoundFile(relativePath: rel, stat: st)] }
        if skippingUnsupported && !st.isDirectory { return [] }
        try Repository.refuseUnsupported(rel, st)
        var out: [FoundFile] = []
        try walkDirectory(rel, abs: abs, skippingUnsupported: skippingUnsupported, into: &out)
        return out
    }

    /// The error for anything but a regular file or a directory.
    private static func refuseUnsupported(_ rel: String, _ st: FileIO.Stat) throws(MVCError) {
        if st.isSymlink {
            throw MVCError(.unsupportedFileType, "'\(rel)' is a symbolic link", hint: "mvc stores regular files and directories; commit the link's target instead")
        }
        guard st.isDirectory else {
            throw MVCError(.unsupportedFileType, "'\(rel)' is not a regular file or directory", hint: "remove it or commit its parts one by one")
        }
    }

    /// One directory: listed once, every entry stat'ed relative to the open directory
    /// (`FileIO.listDirectoryWithStats`), then closed before recursing, so deep trees do not hold
    /// one descriptor per level.
    private func walkDirectory(_ rel: String, abs: String, skippingUnsupported: Bool, into out: inout [FoundFile]) throws(MVCError) {
        guard var entries = try FileIO.listDirectoryWithStats(abs) else {
            throw MVCError(.pathNotFound, "path '\(rel)' does not exist")
        }
        entries.sort { $0.name.lexicographicallyPrecedes($1.name) }
        for entry in entries {
            if Repository.isIgnored(entry.name) { continue }
            // Not UTF-8: no valid name (the same refusal as a newline in a name).
            let name = String(validating: entry.name, as: UTF8.self) ?? ""
            guard Names.isValidEntryName(name) else {
                if skippingUnsupported { continue }
                throw MVCError(.invalidName, "cannot store file name '\(joinPath(rel, String(decoding: entry.name, as: UTF8.self)))'",
                               hint: "rename it: names may not contain a newline")
            }
            let childRel = rel + "/" + name
            guard let st = entry.stat else { throw MVCError(.pathNotFound, "path '\(childRel)' does not exist") }
            if st.isRegular {
                out.append(FoundFile(relativePath: childRel, stat: st))
            } else if st.isDirectory {
                try walkDirectory(childRel, abs: abs + "/" + name, skippingUnsupported: skippingUnsupported, into: &out)
            } else if !skippingUnsupported {
                try Repository.refuseUnsupported(childRel, st)
            }
        }
    }

    /// Names skipped when walking a directory: the store (`.mvc`), git's own (`.git`), and a
    /// checkout's temp files (`.mvc-tmp-<pid>-<random>`: a file being written, or the one it
    /// replaced on its way out), which FORMAT.md section 2 tells readers to ignore.
    private static func isIgnored(_ name: [UInt8]) -> Bool {
        if name.count > 9 && name.starts(with: Repository.checkoutTempPrefix) { return true }
        return name.count == 4 && name[0] == UInt8(ascii: ".")
            && ((name[1] == UInt8(ascii: "m") && name[2] == UInt8(ascii: "v") && name[3] == UInt8(ascii: "c"))
                || (name[1] == UInt8(ascii: "g") && name[2] == UInt8(ascii: "i") && name[3] == UInt8(ascii: "t")))
    }
    private static let checkoutTempPrefix = Array(".mvc-tmp-".utf8)
}

/// A flattened tree: every file with its path relative to the tree's root.
public struct FileEntry: Sendable, Equatable, Codable {
    public var path: String
    public var kind: TreeEntry.Kind
    public var size: UInt64
    public var id: ObjectID
}

extension Repository {
    /// Deepest directory nesting accepted in a tree (a crafted tree must not exhaust the stack).
    static let maxTreeDepth = 256

    /// Every file of a tree, sorted by path.
    public func files(ofTree id: ObjectID, prefix: String = "") throws(MVCError) -> [FileEntry] {
        var out: [FileEntry] = []
        try collectFiles(id, prefix: prefix, depth: 0, into: &out)
        return out
    }

    private func collectFiles(_ id: ObjectID, prefix: String, depth: Int, into out: inout [FileEntry]) throws(MVCError) {
        guard depth < Repository.maxTreeDepth else { throw .corrupt(id, "trees nest deeper than \(Repository.maxTreeDepth) levels") }
        for e in try objects.readTree(id).entries {
            let p = joinPath(prefix, e.name)
            if e.kind == .tree { try collectFiles(e.id, prefix: p, depth: depth + 1, into: &out) }
            else { out.append(FileEntry(path: p, kind: e.kind, size: e.size, id: e.id)) }
        }
    }

    /// Builds the root tree holding `files` at their paths (bottom-up), writing every tree to the batch.
    func buildTree(_ files: [FileEntry], batch: ObjectBatch) throws(MVCError) -> ObjectID {
        // Keyed by bytes: Swift's String equality would merge canonically equivalent names
        // (NFC and NFD 'é'), which Linux keeps apart.
        final class Node {
            var files: [TreeEntry] = []
            var dirs: [PathKey: (name: String, node: Node)] = [:]
        }
        let root = Node()
        // Files come grouped by directory (walk order): the directory of the previous file is
        // looked up again only when it changes.
        var lastDirectory: Substring? = nil
        var lastNode = root
        for f in files {
            let path = f.path
            var directory = path[path.startIndex..<path.startIndex], nameStart = path.startIndex
            if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
                directory = path[..<slash]
                nameStart = path.utf8.index(after: slash)
            }
            var node = root
            if let lastDirectory, lastDirectory.utf8.elementsEqual(directory.utf8) {
                node = lastNode
            } else {
                for part in directory.utf8.split(separator: UInt8(ascii: "/")) {
                    let key = PathKey(bytes: Array(part))
                    if let next = node.dirs[key] { node = next.node } else {
                        let n = Node()
                        node.dirs[key] = (String(Substring(part)), n)
                        node = n
                    }
                }
                lastDirectory = directory
                lastNode = node
            }
            node.files.append(TreeEntry(name: String(path[nameStart...]), kind: f.kind, size: f.size, id: f.id))
        }
        func write(_ node: Node) throws(MVCError) -> (ObjectID, UInt64) {
            var entries = node.files
            for (_, child) in node.dirs {
                let (id, size) = try write(child.node)
                entries.append(TreeEntry(name: child.name, kind: .tree, size: size, id: id))
            }
            let tree = try Tree(entries: entries)
            return (try batch.put(tree), tree.totalSize)
        }
        return try write(root).0
    }
}
