#if canImport(Glibc)
internal import Glibc
#endif
internal import Dispatch
internal import CMVCCrypto
internal import CMVCKernels
internal import Synchronization

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
    /// Files among `written` that were rewritten in place: only their chunks that differ from the
    /// version they held were written (FORMAT.md 8.1).
    public var rewrittenInPlace: [String] = []
    /// Files in a committed directory that are not in the store, left in place.
    public var kept: [String]
    /// Bytes written to disk: whole files, and only the changed chunks of files rewritten in place.
    public var bytesWritten: UInt64
    /// Problems after the files were written (e.g. `mvc.lock` not writable).
    public var warnings: [String] = []
}

extension Repository {
    /// Restores a version's files, byte-exact, into the work tree (or `directory`).
    ///
    /// Refuses, before writing anything, to replace a file whose current bytes are not in the
    /// store (local changes) unless `force`. Never writes outside the target: paths come from
    /// validated tree entries, each file's directory is reached from the target one component at
    /// a time without following symlinks (`DirectoryHandles`), and files are written to a temp
    /// file and renamed into place relative to it (a rename replaces a link, never its target).
    ///
    /// `inPlace`: a large work-tree file holding another stored version may be rewritten in place,
    /// only its changed chunks, when no other process can see it happen (`rewriteInPlace`,
    /// FORMAT.md 8.1); false replaces every file whole.
    public func checkout(_ revision: String, into directory: String? = nil, paths filter: [String] = [],
                         force: Bool = false, inPlace: Bool = true, progress: any ProgressSink = SilentProgress()) throws(MVCError) -> CheckoutResult {
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
            var seen = Set<PathKey>()
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

        // A file left partly rewritten by a checkout that did not finish is written whole again
        // (its bytes are two stored versions'); no file is rewritten in place until it is.
        let interrupted = target == workTree ? try interruptedRewrite() : nil

        // Plan: decide for every file before touching anything.
        var toWrite: [FileEntry] = [], unchanged = 0, conflicts: [String] = []
        var present = Set<PathKey>()   // files to write that replace something (keys: bytes, not NFC)
        // Work-tree files that hold a stored blob and may be rewritten in place (`rewriteInPlace`).
        var rewritable: [PathKey: (stat: FileIO.Stat, current: ObjectID)] = [:]
        let planStart = StatCache.now()
        func noteRewritable(_ f: FileEntry, _ st: FileIO.Stat, _ current: ObjectID) {
            guard inPlace, target == workTree, interrupted == nil, f.size >= CheckoutWriter.rewriteMinimum, st.size >= CheckoutWriter.rewriteMinimum,
                  Repository.settledForRewrite(st, planStart: planStart) else { return }
            rewritable[f.path.byteKey] = (st, current)
        }
        let planned = ParentDirectories()
        for f in files {
            let abs = joinPath(target, f.path)
            // Under a directory that does not exist yet, nothing is in the way: no lstat per file.
            guard try planned.exist(f.path, under: target, checkParents), let st = try FileIO.lstat(abs) else { toWrite.append(f); continue }
            present.insert(f.path.byteKey)
            if st.isDirectory { conflicts.append(f.path + " (a directory is in the way)"); continue }
            if st.isSymlink { if force { toWrite.append(f) } else { conflicts.append(f.path + " (a symbolic link)") }; continue }
            guard st.isRegular else { conflicts.append(f.path + " (not a regular file)"); continue }
            if let interrupted, interrupted.path.byteKey == f.path.byteKey {
                toWrite.append(f)   // its bytes are two stored versions' (or a changed file's: see FORMAT.md 8.1)
                continue
            }
            var current: ObjectID? = nil
            if st.size == f.size || !force { current = try currentID(f.path, st) }
            if current == f.id {
                if (st.isExecutable) != (f.kind == .exec) { chmod(abs, f.kind == .exec ? 0o755 : 0o644) }
                unchanged += 1
            } else if force {
                toWrite.append(f)
                if let current, try objects.contains(current) { noteRewritable(f, st, current) }
            } else if let current, try objects.contains(current) {
                toWrite.append(f)   // its bytes are in the store: replacing it loses nothing
                noteRewritable(f, st, current)
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

        let finishesInterrupted = interrupted.map { j in toWrite.contains { $0.path.byteKey == j.path.byteKey } } ?? false
        let total = toWrite.reduce(UInt64(0)) { $0 + $1.size }
        progress.begin("checking out \(commit.artifact)@v\(commit.version)", totalBytes: total, totalFiles: toWrite.count)
        var bytes: UInt64 = 0, inPlace: [String] = [], warnings: [String] = []
        let writer = CheckoutWriter(store: objects)
        // The files written into the work tree, recorded in the stat cache together once the last
        // is written (also when a later one fails): `StatCache.recordWritten` waits up to 20 ms.
        var written: [StatCache.WrittenFile] = []
        let prefetch = SmallObjectPrefetch(store: objects, files: toWrite)
        let umask = FileIO.umask()
        let directories = DirectoryHandles(target: target)
        defer { directories.close() }
        do throws(MVCError) {
            try prefetch.forEach { (i, prefetched) throws(MVCError) in
                let f = toWrite[i]
                let key = f.path.byteKey
                let done = try writeFile(f, under: target, writer: writer, directories: directories, mayExist: present.contains(key),
                                         statAfter: target == workTree, prefetched: prefetched, rewrite: rewritable[key],
                                         cache: cache, umask: umask) { progress.advance(bytes: $0, path: f.path) }
                if target == workTree {
                    if let st = done.stat, st.isRegular { written.append(.init(path: f.path, stat: st, id: f.id)) } else { cache.forget(f.path) }
                }
                if done.inPlace { inPlace.append(f.path) }
                if let w = done.warning { warnings.append(w) }
                bytes += done.bytes
            }
        } catch {
            writer.finish()
            cache.recordWritten(written, under: target)
            throw error
        }
        writer.finish()
        cache.recordWritten(written, under: target)
        if finishesInterrupted, let interrupted {
            // The journal goes once the file written whole in its place is on disk.
            let fd = Glibc.open(joinPath(workTree, interrupted.path), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                if fdatasync(fd) == 0 { interrupted.remove(storeDirectory: storeDirectory) }
                close(fd)
            }
        }
        progress.end()
        for r in removable { FileIO.unlink(joinPath(target, r)); cache.forget(r) }
        var result = CheckoutResult(revision: "\(commit.artifact)@v\(commit.version)", id: id, directory: target,
                                    written: toWrite.map(\.path), unchanged: unchanged, removed: removable, rewrittenInPlace: inPlace,
                                    kept: kept, bytesWritten: bytes, warnings: warnings)
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
    /// Returns true when all of them exist.
    private func checkParents(_ rel: String, under target: String) throws(MVCError) -> Bool {
        try validateRelativePath(rel)
        var dir = target
        for part in rel.split(separator: "/").dropLast() {
            dir = joinPath(dir, String(part))
            guard let st = try FileIO.lstat(dir) else { return false }
            if st.isSymlink {
                throw MVCError(.unsafePath, "refusing to write '\(rel)': '\(dir)' is a symbolic link", hint: "remove the link or check out with -o into another directory")
            }
            if !st.isDirectory {
                throw MVCError(.unsafePath, "cannot write '\(rel)': '\(dir)' is a file", hint: "move the file aside")
            }
        }
        return true
    }

    /// Writes `f` to a temp file and renames it into place, or rewrites the file there in place
    /// (`rewrite`: the plan found it holding a stored blob; see `rewriteInPlace`). Returns its stat
    /// right after (nil if it is already gone, not `statAfter`, or not to be recorded), the bytes
    /// written, whether it was rewritten in place, and a warning. `mayExist`: the plan found
    /// something at the path (else there is nothing to replace, and no `lstat` to make).
    ///
    /// Everything happens relative to the file's directory, open as `directories.open(for:)`
    /// (reached from the target one component at a time with `O_NOFOLLOW`): a parent directory
    /// that is, or becomes, a symlink is never written through, without an `lstat` per file.
    private func writeFile(_ f: FileEntry, under target: String, writer: CheckoutWriter, directories: DirectoryHandles, mayExist: Bool,
                           statAfter: Bool, prefetched: UnsafeRawBufferPointer? = nil, rewrite: (stat: FileIO.Stat, current: ObjectID)? = nil,
                           cache: StatCache, umask: mode_t?, progress: (UInt64) -> Void) throws(MVCError) -> (stat: FileIO.Stat?, bytes: UInt64, inPlace: Bool, warning: String?) {
        try validateRelativePath(f.path)
        let abs = joinPath(target, f.path)
        let dir = parentPath(abs)
        let dirfd = try directories.open(for: f.path)
        let name = String(f.path.split(separator: "/").last!)
        if let rewrite, let done = try rewriteInPlace(f, from: rewrite.current, planned: rewrite.stat, name: name, in: dirfd, path: abs,
                                                         writer: writer, cache: cache, progress: progress) {
            return (statAfter ? done.stat : nil, done.bytes, true, done.warning)
        }
        let tmpName = writer.nextTempName()
        let tmp = joinPath(dir, tmpName)
        var replacing = false
        if mayExist, let old = try FileIO.lstat(in: dirfd, name, path: abs), old.isRegular {
            replacing = true
            writer.dropCache(of: name, in: dirfd, size: old.size)
        }
        let mode: mode_t = f.kind == .exec ? 0o755 : 0o644
        // A file with nothing at its path is written unnamed (`O_TMPFILE`) and linked under its
        // name once complete: one change to the directory instead of three (create a temp name,
        // rename: add the name, drop the temp one), 0.655 s instead of 0.73 s for 20,000 files on
        // a fresh ext4; and a process killed meanwhile leaves nothing behind.
        var fd: Int32 = -1, unnamed = false
        if !mayExist && writer.unnamedFiles {
            let r = mvc_open_unnamed(dirfd, UInt32(mode))   // the descriptor, or -errno
            if r >= 0 {
                fd = r
                unnamed = true
            } else {
                writer.unnamedFiles = false   // temp names from now on; they report any real error
            }
        }
        let writing = unnamed ? abs : tmp   // the name errors give
        var tempExists = false
        if !unnamed {
            fd = try FileIO.createExclusive(in: dirfd, tmpName, mode: mode, path: tmp)
            tempExists = true
        }
        var isOpen = true
        do throws(MVCError) {
            if let prefetched {
                // Read and verified ahead (`SmallObjectPrefetch`).
                try CheckoutWriter.pwriteAll(fd, prefetched, at: 0, path: writing)
                progress(UInt64(prefetched.count))
            } else {
                // Returns only when every byte written was verified (FORMAT.md V2, V3).
                try writer.write(f.id, to: fd, path: writing, progress: progress)
            }
            // The mode is exactly 0644 or 0755; `openat` gave it already unless the umask took bits away.
            if umask.map({ $0 & mode != 0 }) ?? true { fchmod(fd, mode) }
            if unnamed {
                var r = mvc_link_unnamed(fd, dirfd, name)   // 0, or -errno
                if r == -EEXIST {
                    // The link never replaces anything; something appeared at the name since the
                    // plan: replace it as a rename of a temp file would (a link, not its target).
                    r = mvc_link_unnamed(fd, dirfd, tmpName)
                    if r == 0 { tempExists = true }
                }
                if r != 0 && r != -ENOSPC && r != -EDQUOT && r != -EIO {
                    // A link refused (a security module's `link` permission, a file system that
                    // reports another owner under `protected_hardlinks`): this file again, and all
                    // after it, under temp names. The bytes were already reported as progress.
                    close(fd)
                    isOpen = false
                    writer.unnamedFiles = false
                    return try writeFile(f, under: target, writer: writer, directories: directories, mayExist: mayExist, statAfter: statAfter,
                                         prefetched: prefetched, rewrite: nil, cache: cache, umask: umask) { _ in }
                }
                if r != 0 { throw .io("create", path: abs, errno: -r) }
                close(fd)
                isOpen = false
                if tempExists { try FileIO.rename(tmpName, name, in: dirfd, path: abs) }
            } else {
                close(fd)
                isOpen = false
                // A file replacing another is swapped with it, and the old one removed off this thread.
                // Why not rename: ext4 makes a rename over a file first write back the new file's
                // delayed allocations (`auto_da_alloc`), 0.12 s per GiB inside the call; an exchange
                // leaves the writeback to the kernel, as for a new file.
                if replacing, try FileIO.exchange(tmpName, name, in: dirfd, path: abs) {
                    if let swapped = try FileIO.lstat(in: dirfd, tmpName, path: tmp), swapped.isDirectory {
                        // A directory took the file's place since it was checked: put it back.
                        if (try? FileIO.exchange(tmpName, name, in: dirfd, path: abs)) != true {
                            throw MVCError(.io, "cannot write '\(f.path)': a directory appeared there meanwhile, and is now at '\(tmp)'",
                                           hint: "move it back: mv '\(tmp)' '\(abs)'")
                        }
                        throw MVCError(.io, "cannot write '\(f.path)': a directory is in the way", hint: "move the directory aside")
                    }
                    writer.discard(tmpName, in: dirfd)
                } else {
                    try FileIO.rename(tmpName, name, in: dirfd, path: abs)   // over a symlink, replaces the link itself
                }
            }
        } catch {
            if isOpen { close(fd) }   // never twice: the number may belong to another file by now
            if tempExists { _ = unlinkat(dirfd, tmpName, 0) }
            throw error
        }
        // The file is in place; a stat that fails now only means it is not recorded.
        guard statAfter else { return (nil, f.size, false, nil) }
        do throws(MVCError) { return (try FileIO.lstat(in: dirfd, name, path: abs), f.size, false, nil) } catch { return (nil, f.size, false, nil) }
    }
}

/// The directory a checkout is writing into, kept open while consecutive files go into it (files
/// come in tree order, so a directory is opened again only after its subdirectories' files). It
/// is reached from the target one component at a time with `openat(O_DIRECTORY | O_NOFOLLOW)`,
/// creating what is missing with `mkdirat`: a component that is a symlink or a file is refused,
/// and no later swap of a parent for a symlink can redirect a write, since names are resolved
/// relative to the open directory. The target itself is the user's choice and may be reached
/// through links.
final class DirectoryHandles {
    private let target: String
    private var current: (key: PathKey, fd: Int32)?

    init(target: String) { self.target = target }
    deinit { close() }

    func close() {
        if let c = current { _ = Glibc.close(c.fd) }
        current = nil
    }

    /// The open directory that `rel`'s file goes into.
    func open(for rel: String) throws(MVCError) -> Int32 {
        let parent = parentPath(rel)
        let key = parent.byteKey
        if let c = current, c.key == key { return c.fd }
        close()
        // The target exists: checkout made it (`-o`) or found it (the work tree).
        var fd = Glibc.open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw .io("open directory", path: target, errno: errno) }
        var path = target
        if parent != "." {
            for part in parent.split(separator: "/").map(String.init) {
                path = joinPath(path, part)
                var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if next < 0 && errno == ENOENT {
                    if mkdirat(fd, part, 0o755) != 0 && errno != EEXIST {
                        let e = errno
                        _ = Glibc.close(fd)
                        throw .io("create directory", path: path, errno: e)
                    }
                    next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                }
                if next < 0 {
                    let e = errno
                    // Linux reports a symlink opened with O_NOFOLLOW | O_DIRECTORY as ENOTDIR, like
                    // a file: look at what is there to say which.
                    var st = Glibc.stat()
                    let isLink = (e == ENOTDIR || e == ELOOP) && fstatat(fd, part, &st, AT_SYMLINK_NOFOLLOW) == 0
                        && st.st_mode & S_IFMT == S_IFLNK
                    _ = Glibc.close(fd)
                    if isLink || e == ELOOP {
                        throw MVCError(.unsafePath, "refusing to write '\(rel)': '\(path)' is a symbolic link", hint: "remove the link or check out with -o into another directory")
                    }
                    if e == ENOTDIR {
                        throw MVCError(.unsafePath, "cannot write '\(rel)': '\(path)' is a file", hint: "move the file aside")
                    }
                    throw .io("open directory", path: path, errno: e)
                }
                _ = Glibc.close(fd)
                fd = next
            }
        }
        current = (key, fd)
        return fd
    }
}

/// What a checkout's plan learnt about the directories above its files: whether every directory
/// between the target and a file's name exists as a real directory (`checkParents`), per parent
/// directory, so that 200 files in one directory cost one check, not 200 (a file under a
/// directory that does not exist is not looked for). Each file's path is still validated. A
/// symlink or a file in the way is an error, never remembered. Keyed by bytes (`PathKey`): two
/// spellings of a name that Unicode calls equal are two directories on Linux. The write step does
/// not use it: it reaches every file's directory through `DirectoryHandles`.
final class ParentDirectories {
    private var known: [PathKey: Bool] = [:]

    /// True when all the parents of `rel` exist; false when one is absent.
    func exist(_ rel: String, under target: String, _ check: (String, String) throws(MVCError) -> Bool) throws(MVCError) -> Bool {
        let parent = parentPath(rel).byteKey
        if let k = known[parent] {
            try validateRelativePath(rel)
            return k
        }
        let k = try check(rel, target)
        known[parent] = k
        return k
    }
}

/// Writes objects' content into new files for checkout, verified chunk by chunk (FORMAT.md V3).
///
/// A raw object of at most 1 MiB is read whole, verified and written on the calling thread.
/// Anything larger goes through a two-stage pipeline over `slotCount` fixed slots of
/// `segmentBytes` (8 MiB):
/// 1. this thread fills a free slot with the next whole pieces that fit (chunks, or the raw object
///    alone), one `pread` each from the pack or loose file holding it, hands the slot to the
///    verifying queue, and writes it to the file (`pwrite`s of at most `writeBytes`);
/// 2. a serial verifying queue hashes the slot's pieces side by side (`ObjectID.hashMany`: four
///    SHA-256 streams interleaved in one instruction stream), compares each with its id, and frees
///    the slot.
/// Both stages read the same bytes, so what is verified is what is written, and the reading and
/// writing overlap the hashing on a second core. A piece larger than a slot is read, written and
/// hashed (one stream) a slot at a time. `write` returns only after every piece verified; on a
/// mismatch it throws `corruptObject` naming the piece, and the caller removes the temp file.
/// Memory: the slots, whatever the file size.
///
/// A chunked object is verified by its list's checksum and each chunk's size and id, not as a whole
/// (FORMAT.md V3 says why that suffices against damage, and what it leaves to fsck).
///
/// Why not `copy_file_range(2)`: a record in a pack starts just after its 41-byte entry header, at
/// an offset unrelated to where it goes in the file, and the kernel's copy of such misaligned
/// ranges cost 1.6 times a `pread` + `pwrite` of the same bytes here (ext4, Linux 6.18: 0.42 s
/// against 0.26 s per GiB), before the separate read of the bytes that hashing them still needs.
final class CheckoutWriter {
    let store: ObjectStore
    let segmentBytes: Int
    static let slotCount = 3
    /// Objects up to this size are read whole, verified and written on the calling thread.
    static let smallObject: UInt64 = 1 << 20
    /// Allocated for the first object that needs them (`allocatedSlots`).
    private var slots: [UnsafeMutableRawBufferPointer] = []

    func allocatedSlots() -> [UnsafeMutableRawBufferPointer] {
        if slots.isEmpty { slots = (0..<CheckoutWriter.slotCount).map { _ in .allocate(byteCount: segmentBytes, alignment: 64) } }
        return slots
    }

    /// The error for the first of `pieces` whose bytes (`slices`, in the same order) do not hash to
    /// its id, four SHA-256 streams side by side; nil when all match.
    static func mismatch(_ pieces: some Collection<Piece>, _ slices: [UnsafeRawBufferPointer]) -> MVCError? {
        for (p, h) in zip(pieces, ObjectID.hashMany(slices)) where h != p.id { return .corrupt(p.id, "content does not match its id") }
        return nil
    }

    /// Temp names: `.mvc-tmp-<pid>-<n>`, `n` counting up from a random start (`O_EXCL` still
    /// refuses any name that exists), without a `getpid` and a `getrandom` per file.
    private let tempPrefix = ".mvc-tmp-\(getpid())-"
    private var tempCounter = UInt32.random(in: 0...UInt32.max)
    func nextTempName() -> String {
        tempCounter &+= 1
        return tempPrefix + String(tempCounter)
    }
    /// Whether new files are written unnamed (`O_TMPFILE`) and linked into place: needs
    /// `/proc/self/fd` (for `linkat`) and a file system that has it; turned off at the first refusal.
    var unnamedFiles = access("/proc/self/fd", X_OK) == 0
    private let free: [DispatchSemaphore]
    private let verifier = Verifier()
    private let queue = DispatchQueue(label: "mvc.checkout.verify")

    init(store: ObjectStore, segmentBytes: Int = 8 << 20) {
        self.store = store
        self.segmentBytes = segmentBytes
        free = (0..<CheckoutWriter.slotCount).map { _ in DispatchSemaphore.token() }
    }

    deinit {
        queue.sync {}
        oldFiles.sync {}
        for s in slots { s.deallocate() }
    }

    /// One stored raw record of the content: a chunk, or a raw object on its own.
    struct Piece: Sendable {
        var id: ObjectID
        var size: UInt64
    }

    /// What the verifying queue checks in one slot: whole pieces back to back from `base`, or
    /// `count` bytes of one piece larger than a slot (`last`: its final window).
    ///
    /// `@unchecked Sendable`: `base` points into a slot that nothing writes until the verifying
    /// queue has checked the job and signalled the slot free.
    private struct Job: @unchecked Sendable {
        enum Kind {
            case pieces([Piece])
            case window(Piece, count: Int, last: Bool)
        }
        var base: UnsafeRawPointer
        var kind: Kind
    }

    /// Writes the content of `id` to `fd` (a new, empty file at `path`) from offset 0 and
    /// verifies it; `progress` gets the bytes as they are written.
    func write(_ id: ObjectID, to fd: Int32, path: String, progress: (UInt64) -> Void) throws(MVCError) {
        guard let loc = try store.locate(id) else { throw .missing(id) }
        if loc.kind == .raw && loc.storedSize <= CheckoutWriter.smallObject {
            var offset: UInt64 = 0
            try store.stream(id, location: loc) { (piece) throws(MVCError) in
                try CheckoutWriter.pwriteAll(fd, piece, at: offset, path: path)
                offset += UInt64(piece.count)
                progress(UInt64(piece.count))
            }
            return
        }
        let pieces: [Piece]
        switch loc.kind {
        case .zstd: throw .corrupt(id, "a compressed record (remote packs only) is in the local store")
        case .raw: pieces = [Piece(id: id, size: loc.storedSize)]
        case .chunks: pieces = try store.chunkList(id, at: loc).chunks.map { Piece(id: $0.id, size: UInt64($0.size)) }
        }
        let slots = allocatedSlots()
        // Never return while the verifying queue still reads a slot.
        defer { queue.sync {} }
        verifier.reset()   // the queue is idle between objects
        var offset: UInt64 = 0   // in the file
        var slot = 0
        var next = 0
        // The location of a piece: the object itself when it is raw, else the chunk's.
        func location(_ p: Piece) throws(MVCError) -> ObjectStore.Location {
            if loc.kind == .raw { return loc }
            return try store.chunkLocation(p.id, size: p.size)
        }
        while next < pieces.count && !verifier.failed.load(ordering: .relaxed) {
            if pieces[next].size > UInt64(segmentBytes) {
                // A piece larger than a slot: a window at a time, hashed as one stream.
                let p = pieces[next], pl = try location(p)
                var from: UInt64 = 0
                while from < p.size && !verifier.failed.load(ordering: .relaxed) {
                    let count = Int(min(UInt64(segmentBytes), p.size - from))
                    free[slot].wait()
                    let area = UnsafeMutableRawBufferPointer(rebasing: slots[slot][0..<count])
                    do throws(MVCError) { try CheckoutWriter.read(p.id, at: pl, from: from, into: area) } catch {
                        free[slot].signal()
                        throw error
                    }
                    submit(Job(base: UnsafeRawPointer(area.baseAddress!), kind: .window(p, count: count, last: from + UInt64(count) == p.size)), slot: slot)
                    try CheckoutWriter.pwriteAll(fd, UnsafeRawBufferPointer(area), at: offset, path: path)
                    from += UInt64(count); offset += UInt64(count)
                    progress(UInt64(count))
                    slot = (slot + 1) % CheckoutWriter.slotCount
                }
                next += 1
                continue
            }
            // As many whole pieces as fit in a slot.
            free[slot].wait()
            let buffer = slots[slot]
            var filled = 0
            var batch: [Piece] = []
            do throws(MVCError) {
                while next < pieces.count, filled + Int(pieces[next].size) <= buffer.count {
                    let p = pieces[next]
                    try CheckoutWriter.read(p.id, at: try location(p), from: 0, into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<(filled + Int(p.size))]))
                    batch.append(p)
                    filled += Int(p.size)
                    next += 1
                }
            } catch {
                free[slot].signal()
                throw error
            }
            submit(Job(base: UnsafeRawPointer(buffer.baseAddress!), kind: .pieces(batch)), slot: slot)
            try CheckoutWriter.pwriteAll(fd, UnsafeRawBufferPointer(rebasing: buffer[0..<filled]), at: offset, path: path)
            offset += UInt64(filled)
            progress(UInt64(filled))
            slot = (slot + 1) % CheckoutWriter.slotCount
        }
        queue.sync {}
        if let failure = verifier.failure { throw failure }
        // Nothing but these pieces went into the file.
        let st = try FileIO.stat(fd: fd, path: path)
        guard st.size == offset else {
            throw MVCError(.io, "'\(path)' is \(st.size) bytes after writing \(offset)", hint: "is another process writing into this directory?")
        }
    }

    /// Drops the pages of files being replaced, and removes them once replaced, off the writing
    /// thread. Serial: the old files go in order.
    private let oldFiles = DispatchQueue(label: "mvc.checkout.old-files")

    /// Removes `name`, a file this checkout replaced (now under a temp name), on `oldFiles`:
    /// freeing its blocks takes 0.12 s per GiB here (ext4), which then overlaps the next file.
    ///
    /// `name` is in the directory open as `dir`, which the queue uses through a duplicate of its
    /// own (the caller may close `dir` before the queue gets to it).
    func discard(_ name: String, in dir: Int32) {
        let own = fcntl(dir, F_DUPFD_CLOEXEC, 0)
        guard own >= 0 else { _ = unlinkat(dir, name, 0); return }
        oldFiles.async {
            _ = unlinkat(own, name, 0)
            close(own)
        }
    }

    /// Returns once every queued drop and removal of an old file is done.
    func finish() {
        oldFiles.sync {}
    }

    /// Drops the cached pages of `path`, the file a checkout is about to replace, on `oldFiles`
    /// while the new file is written, so that removing it later only frees its blocks (1 GiB
    /// here: 0.12 s to remove after the drop, 0.21 s with its pages cached; the drop takes 0.06 s
    /// in parallel). Only when its cached pages are clean (`cachestat`, Linux 6.5): a drop writes
    /// dirty pages back first, a waste for a file about to go, while its removal discards them
    /// unwritten (0.07 s per GiB). Harmless if the checkout then fails: the file stays, uncached.
    func dropCache(of name: String, in dir: Int32, size: UInt64) {
        #if os(Linux)
        guard size >= UInt64(segmentBytes) else { return }
        let fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return }
        var cs = mvc_cachestat()
        if mvc_cachestat(fd, &cs) == 0, cs.nr_cache == 0 || (cs.nr_dirty + cs.nr_writeback) * 8 > cs.nr_cache {
            close(fd)   // nothing cached, or much of it dirty
            return
        }
        oldFiles.async {
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            close(fd)
        }
        #endif
    }

    /// Hands a filled slot to the verifying queue, which frees it when done.
    private func submit(_ job: Job, slot: Int) {
        let verifier = self.verifier, done = free[slot]
        queue.async {
            verifier.check(job)
            done.signal()
        }
    }

    /// Reads `area.count` bytes of a stored record, from `from` on.
    static func read(_ id: ObjectID, at loc: ObjectStore.Location, from: UInt64, into area: UnsafeMutableRawBufferPointer) throws(MVCError) {
        switch loc {
        case .packed(let pack, let e):
            _ = try pack.read(e, from: from, into: area)   // throws when the pack is cut short
        case .loose(let loosePath, _, _):
            let fd = try FileIO.openRead(loosePath)
            defer { close(fd) }
            guard try FileIO.pread(fd, into: area, at: from, path: loosePath) == area.count else { throw .corrupt(id, "object is truncated") }
        }
    }

    /// The most one `pwrite` writes. Measured here (a VM, ext4, Linux 6.18): with writes of 1 to
    /// 8 MiB, one file in three took two to six times as long, the extra time spent in the kernel
    /// copying into new page-cache pages; with 256 KiB writes that did not happen, and the 4,096
    /// calls per GiB cost nothing measurable.
    static let writeBytes = 256 << 10

    /// Writes `bytes` at `offset`, in writes of at most `writeBytes` that end at multiples of it.
    static func pwriteAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, path: String) throws(MVCError) {
        var done = 0
        while done < bytes.count {
            let at = offset + UInt64(done)
            let limit = writeBytes - Int(at % UInt64(writeBytes))
            let n = pwrite(fd, bytes.baseAddress! + done, min(bytes.count - done, limit), off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("write", path: path, errno: errno)
            }
            done += n
        }
    }

    /// The verifying side.
    ///
    /// `@unchecked Sendable`: `stream` and `failure` are used only on the verifying queue, except
    /// that the writer resets them and reads `failure` while the queue is idle (after
    /// `queue.sync`); `failed` is atomic, for the writer to stop early.
    private final class Verifier: @unchecked Sendable {
        let stream = SHAStream()
        var failure: MVCError?
        let failed = Atomic<Bool>(false)

        func reset() {
            stream.reset()
            failure = nil
            failed.store(false, ordering: .relaxed)
        }

        func check(_ job: Job) {
            guard failure == nil else { return }
            switch job.kind {
            case .pieces(let pieces):
                var slices: [UnsafeRawBufferPointer] = []
                slices.reserveCapacity(pieces.count)
                var at = 0
                for p in pieces {
                    slices.append(UnsafeRawBufferPointer(start: job.base + at, count: Int(p.size)))
                    at += Int(p.size)
                }
                if let damaged = CheckoutWriter.mismatch(pieces, slices) { fail(damaged) }
            case .window(let p, let count, let last):
                stream.update(UnsafeRawBufferPointer(start: job.base, count: count))
                if last && stream.finalize() != p.id { fail(.corrupt(p.id, "content does not match its id")) }
            }
        }

        private func fail(_ error: MVCError) {
            failure = error
            failed.store(true, ordering: .relaxed)
        }
    }
}

/// The small files of a checkout (raw objects of 1 byte to 1 MiB: a dataset's files), read and
/// verified ahead of the writing thread on a queue of their own, in groups of up to 8 MiB and
/// 1,024 objects, four SHA-256 streams side by side (`ObjectID.hashMany`). The writing thread
/// then only creates, writes and renames files: hashing 20,000 files of 1-64 KiB one by one was
/// 0.3 s of a 1.1 s checkout on that thread. Two groups: one is filled while the other is written.
/// Other files (larger, chunked, empty) go through `CheckoutWriter.write` as before.
///
/// `@unchecked Sendable`: a group is touched by the reading queue between its `free` and `ready`
/// signals and by the writing thread between `ready` and `free`; `stop` is atomic.
final class SmallObjectPrefetch: @unchecked Sendable {
    private final class Group: @unchecked Sendable {
        let buffer: UnsafeMutableRawBufferPointer
        /// The files (indices into `files`) this group covers, in order, and where the bytes of
        /// those it read are.
        var range: Range<Int> = 0..<0
        var bytes: [Int: (offset: Int, count: Int)] = [:]
        /// The first file that could not be read or verified, and why; the group ends there.
        var failure: (index: Int, error: MVCError)?
        let free = DispatchSemaphore.token()
        let ready = DispatchSemaphore(value: 0)

        init(capacity: Int) { buffer = .allocate(byteCount: capacity, alignment: 64) }
        deinit { buffer.deallocate() }
    }

    static let groupBytes = 8 << 20
    static let groupFiles = 1024

    private let store: ObjectStore
    private let files: [FileEntry]
    private let groups: [Group]
    private let queue = DispatchQueue(label: "mvc.checkout.prefetch")
    private let stop = Atomic<Bool>(false)

    init(store: ObjectStore, files: [FileEntry]) {
        self.store = store
        self.files = files
        let small = files.contains { $0.size > 0 && $0.size <= CheckoutWriter.smallObject }
        // A group holds at least one file: every small file fits in `groupBytes`.
        groups = small ? (0..<2).map { _ in Group(capacity: SmallObjectPrefetch.groupBytes) } : []
    }

    /// Calls `body` for every file in order, with its bytes when they were read ahead (verified),
    /// nil when `body` must read the file itself. Stops at the first error, `body`'s or a read's.
    func forEach(_ body: (Int, UnsafeRawBufferPointer?) throws(MVCError) -> Void) throws(MVCError) {
        guard !groups.isEmpty else {
            for i in files.indices { try body(i, nil) }
            return
        }
        queue.async { [self] in produce() }
        defer {
            // Let the reading queue finish (or see `stop`) before the groups can go.
            stop.store(true, ordering: .relaxed)
            for g in groups { g.free.signal() }
            queue.sync {}
        }
        var next = 0, k = 0
        while next < files.count {
            let g = groups[k % 2]
            g.ready.wait()
            for i in g.range {
                if let failure = g.failure, failure.index == i { throw failure.error }
                if let at = g.bytes[i] {
                    try body(i, UnsafeRawBufferPointer(rebasing: g.buffer[at.offset..<(at.offset + at.count)]))
                } else {
                    try body(i, nil)
                }
            }
            next = g.range.upperBound
            g.free.signal()
            k += 1
        }
    }

    /// The reading queue: fills the groups in turn until every file is covered or a read fails.
    private func produce() {
        var next = 0, k = 0
        while next < files.count {
            let g = groups[k % 2]
            g.free.wait()
            if stop.load(ordering: .relaxed) { return }
            fill(g, from: next)
            next = g.range.upperBound
            g.ready.signal()
            if g.failure != nil { return }
            k += 1
        }
    }

    private func fill(_ g: Group, from start: Int) {
        g.bytes.removeAll(keepingCapacity: true)
        g.failure = nil
        var used = 0, i = start, read = 0
        var slices: [UnsafeRawBufferPointer] = [], ids: [(Int, ObjectID)] = []
        while i < files.count && read < SmallObjectPrefetch.groupFiles && !stop.load(ordering: .relaxed) {
            let f = files[i]
            if f.size > 0 && f.size <= CheckoutWriter.smallObject {
                if used + Int(f.size) > SmallObjectPrefetch.groupBytes { break }
                do throws(MVCError) {
                    guard let loc = try store.locate(f.id) else { throw .missing(f.id) }
                    if loc.kind == .raw && loc.storedSize == f.size {
                        let area = UnsafeMutableRawBufferPointer(rebasing: g.buffer[used..<(used + Int(f.size))])
                        try CheckoutWriter.read(f.id, at: loc, from: 0, into: area)
                        g.bytes[i] = (used, Int(f.size))
                        slices.append(UnsafeRawBufferPointer(area))
                        ids.append((i, f.id))
                        used += Int(f.size)
                        read += 1
                    }
                } catch {
                    g.failure = (i, error)
                    i += 1
                    break
                }
            }
            i += 1
        }
        g.range = start..<i
        // Verified before the writing thread sees them (FORMAT.md V2): the first mismatch ends
        // the group there.
        for ((index, id), h) in zip(ids, ObjectID.hashMany(slices)) where h != id {
            if g.failure == nil || index < g.failure!.index {
                g.failure = (index, .corrupt(id, "content does not match its id"))
            }
        }
    }
}
