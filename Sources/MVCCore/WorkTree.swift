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

    /// Names skipped when walking a directory: the store, and git's own directories.
    static let ignoredNames: Set<String> = [".mvc", ".git"]

    /// Every regular file at or below `rel`, sorted; symlinks and special files are refused, or
    /// with `skippingUnsupported` passed over (status and checkout only look at what mvc could store).
    func walk(_ rel: String, skippingUnsupported: Bool = false) throws(MVCError) -> [FoundFile] {
        let abs = joinPath(workTree, rel)
        guard let st = try FileIO.lstat(abs) else { throw MVCError(.pathNotFound, "path '\(rel)' does not exist") }
        if st.isRegular { return [FoundFile(relativePath: rel, stat: st)] }
        if skippingUnsupported && !st.isDirectory { return [] }
        if st.isSymlink {
            throw MVCError(.unsupportedFileType, "'\(rel)' is a symbolic link", hint: "mvc stores regular files and directories; commit the link's target instead")
        }
        guard st.isDirectory else {
            throw MVCError(.unsupportedFileType, "'\(rel)' is not a regular file or directory", hint: "remove it or commit its parts one by one")
        }
        var out: [FoundFile] = []
        for name in (try FileIO.listDirectory(abs) ?? []).sorted(by: utf8Less) where !Repository.ignoredNames.contains(name) {
            guard Names.isValidEntryName(name) else {
                if skippingUnsupported { continue }
                throw MVCError(.invalidName, "cannot store file name '\(joinPath(rel, name))'", hint: "rename it: names may not contain a newline")
            }
            out.append(contentsOf: try walk(joinPath(rel, name), skippingUnsupported: skippingUnsupported))
        }
        return out
    }
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
            var dirs: [[UInt8]: (name: String, node: Node)] = [:]
        }
        let root = Node()
        for f in files {
            var node = root
            let parts = f.path.split(separator: "/").map(String.init)
            for dir in parts.dropLast() {
                let key = Array(dir.utf8)
                if let next = node.dirs[key] { node = next.node } else { let n = Node(); node.dirs[key] = (dir, n); node = n }
            }
            node.files.append(TreeEntry(name: parts.last!, kind: f.kind, size: f.size, id: f.id))
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
