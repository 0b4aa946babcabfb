#if canImport(Glibc)
internal import Glibc
#endif

/// An error a user can cause or meet, worded as git words its errors: what went wrong first, the
/// subject in quotes, lowercase, no full stop; then an optional hint that says what to do.
///
/// `Code` is a struct over a private enum so codes can be added without breaking callers that switch
/// on them (swift-nio's `FileSystemError` pattern).
public struct MVCError: Error, Sendable, CustomStringConvertible, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case notARepository, alreadyARepository, unsupportedFormat, badConfig
            case invalidName, invalidArgument, unknownRevision, ambiguousRevision
            case pathNotFound, pathOutsideWorkTree, unsupportedFileType, io
            case corruptObject, missingObject, lockHeld, refMoved, wouldOverwrite, unsafePath
            case nameConflict, gitMirror, interruptedCheckout
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }
        public var description: String { value.rawValue }

        /// No `.mvc` store in the directory or any parent.
        public static let notARepository = Code(.notARepository)
        /// `mvc init` where a store already exists.
        public static let alreadyARepository = Code(.alreadyARepository)
        /// The store's format version is newer than this build understands.
        public static let unsupportedFormat = Code(.unsupportedFormat)
        /// `.mvc/config` (or another of the store's own files, such as `.mvc/rewriting`) cannot be parsed or holds an invalid value.
        public static let badConfig = Code(.badConfig)
        /// An artifact name, key, stage or tree entry name breaks the naming rules.
        public static let invalidName = Code(.invalidName)
        /// A malformed argument (parameter, metric, input, version...).
        public static let invalidArgument = Code(.invalidArgument)
        /// A revision that names nothing in the store.
        public static let unknownRevision = Code(.unknownRevision)
        /// An id prefix that matches more than one object.
        public static let ambiguousRevision = Code(.ambiguousRevision)
        /// A path given by the user does not exist.
        public static let pathNotFound = Code(.pathNotFound)
        /// A path given by the user lies outside the work tree.
        public static let pathOutsideWorkTree = Code(.pathOutsideWorkTree)
        /// A symlink, socket, device or fifo where a file or directory was expected.
        public static let unsupportedFileType = Code(.unsupportedFileType)
        /// A system call failed (permission, disk full, ...).
        public static let io = Code(.io)
        /// An object's bytes do not hash to its id, or do not parse.
        public static let corruptObject = Code(.corruptObject)
        /// An object that should be in the store is not.
        public static let missingObject = Code(.missingObject)
        /// Another process holds a lock file.
        public static let lockHeld = Code(.lockHeld)
        /// A compare-and-swap ref update found a different value than expected.
        public static let refMoved = Code(.refMoved)
        /// Checkout would overwrite local changes that are not in the store.
        public static let wouldOverwrite = Code(.wouldOverwrite)
        /// A path from an object would escape the target directory or pass through a symlink.
        public static let unsafePath = Code(.unsafePath)
        /// An artifact name collides with another one's namespace.
        public static let nameConflict = Code(.nameConflict)
        /// The git mirror (libgit2) failed; the mvc store itself is unaffected.
        public static let gitMirror = Code(.gitMirror)
        /// A work-tree file is partly rewritten by a checkout that did not finish (`.mvc/rewriting`).
        public static let interruptedCheckout = Code(.interruptedCheckout)
    }

    public var code: Code
    public var message: String
    public var hint: String?

    public init(_ code: Code, _ message: String, hint: String? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
    }

    /// `error: ...` and, with a hint, `hint: ...`: one line each, whatever the message quotes.
    public var description: String {
        if let hint { return "error: \(message.escapingControlCharacters)\nhint: \(hint.escapingControlCharacters)" }
        return "error: \(message.escapingControlCharacters)"
    }
}

extension MVCError {
    static func io(_ what: String, path: String, errno code: Int32) -> MVCError {
        let reason = strerror(code).flatMap { String(validatingCString: $0) } ?? "error \(code)"
        var hint: String? = nil
        if code == ENOSPC || code == EDQUOT {
            hint = "free some disk space and run the command again; nothing was changed"
        } else if code == EACCES || code == EPERM {
            hint = "check the permissions of '\(path)'"
        } else if code == EROFS {
            hint = "the file system is read-only"
        }
        return MVCError(.io, "cannot \(what) '\(path)': \(reason)", hint: hint)
    }

    static func corrupt(_ id: ObjectID, _ why: String) -> MVCError {
        MVCError(.corruptObject, "object \(id.hex) is corrupt: \(why)",
                 hint: "run 'mvc fsck' to see what it affects")
    }

    static func missing(_ id: ObjectID, _ role: String = "object") -> MVCError {
        MVCError(.missingObject, "\(role) \(id.hex) is missing from the store",
                 hint: "run 'mvc fsck' to see what it affects")
    }
}

extension String {
    /// Control characters written as escapes (`\n`, `\t`, `\u{1b}`), so that a value quoted in a
    /// message (a file name, a corrupt ref's content) can never break it over lines or drive a terminal.
    public var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return self }
        var out = ""
        for s in unicodeScalars {
            switch s {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if s.value < 0x20 || s.value == 0x7f { out += "\\u{\(String(s.value, radix: 16))}" } else { out.unicodeScalars.append(s) }
            }
        }
        return out
    }
}
