/// Naming rules for everything a user names: artifacts, tree entries, keys, versions.
public enum Names {
    /// Artifact names: letters, digits, `-`, `_`, `.`; `/` separates namespaces. Components may not
    /// be empty, `.` or `..`, start with `.` or `-`, or end in `.lock`; at most 200 bytes.
    public static func validateArtifact(_ name: String) throws(MVCError) {
        let bad = { (why: String) -> MVCError in
            MVCError(.invalidName, "invalid artifact name '\(name)': \(why)",
                     hint: "use letters, digits, '-', '_', '.', and '/' between namespace parts, e.g. 'vision/resnet50'")
        }
        if name.isEmpty { throw bad("it is empty") }
        if name.utf8.count > 200 { throw bad("longer than 200 bytes") }
        for c in name.unicodeScalars {
            let ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || "-_./".unicodeScalars.contains(c)
            if !ok { throw bad("character '\(c.escaped(asASCII: true))' is not allowed") }
        }
        for part in name.split(separator: "/", omittingEmptySubsequences: false) {
            if part.isEmpty { throw bad("empty path component") }
            if part == "." || part == ".." { throw bad("'\(part)' is not allowed as a component") }
            if part.hasPrefix(".") || part.hasPrefix("-") { throw bad("a component may not start with '.' or '-'") }
            if part.hasSuffix(".lock") { throw bad("a component may not end in '.lock'") }
        }
    }

    /// Tree entry names: non-empty, not `.` or `..`, no `/`, NUL or newline, at most 255 bytes, and
    /// not `.git` or `.mvc` in any letter case (so a checkout can never write git hooks or the store).
    /// Checked when trees are built and again whenever one is read.
    public static func isValidEntryName(_ name: some StringProtocol) -> Bool {
        if name.isEmpty || name == "." || name == ".." || name.utf8.count > 255 { return false }
        if name.utf8.count == 4, reservedNames.contains(name.lowercased()) { return false }
        return !name.utf8.contains { $0 == UInt8(ascii: "/") || $0 == 0 || $0 == UInt8(ascii: "\n") }
    }

    /// Directory names that belong to git and to mvc itself.
    static let reservedNames: Set<String> = [".git", ".mvc"]

    /// Parameter, metric and environment keys: letters, digits, `_`, `-`, `.`, `/`; 1-128 bytes.
    public static func validateKey(_ key: String, what: String) throws(MVCError) {
        let ok = !key.isEmpty && key.utf8.count <= 128 && key.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || "_-./".unicodeScalars.contains($0)
        }
        if !ok {
            throw MVCError(.invalidArgument, "invalid \(what) key '\(key)'", hint: "use letters, digits, '_', '-', '.', '/' (at most 128)")
        }
    }

    /// Values and one-line fields: no control characters, at most 4096 bytes.
    public static func validateValue(_ value: String, what: String) throws(MVCError) {
        if value.utf8.count > 4096 || value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            throw MVCError(.invalidArgument, "invalid \(what) '\(value.prefix(40))': control characters or longer than 4096 bytes",
                           hint: "values are one line of text")
        }
    }

    /// Semantic versions: `MAJOR.MINOR.PATCH` with optional `-prerelease` and `+build` (semver.org).
    public static func validateSemver(_ v: String) throws(MVCError) {
        var core = Substring(v)
        if let plus = core.firstIndex(of: "+") {
            let build = core[core.index(after: plus)...]
            guard isDotIdentifiers(build) else { throw semverError(v) }
            core = core[..<plus]
        }
        if let dash = core.firstIndex(of: "-") {
            let pre = core[core.index(after: dash)...]
            guard isDotIdentifiers(pre) else { throw semverError(v) }
            core = core[..<dash]
        }
        let nums = core.split(separator: ".", omittingEmptySubsequences: false)
        guard nums.count == 3, nums.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigitChar) && ($0 == "0" || !$0.hasPrefix("0")) }) else {
            throw semverError(v)
        }
    }

    static func isSemverLike(_ v: some StringProtocol) -> Bool {
        guard let first = v.first, first.isASCIIDigitChar else { return false }
        return v.contains(".")
    }

    private static func isDotIdentifiers(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return !parts.isEmpty && parts.allSatisfy { p in
            !p.isEmpty && p.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" }
        }
    }

    private static func semverError(_ v: String) -> MVCError {
        MVCError(.invalidArgument, "invalid semantic version '\(v)'", hint: "use MAJOR.MINOR.PATCH, e.g. 1.4.0 or 2.0.0-rc.1")
    }
}

/// A path as bytes, for dictionaries and sets of paths: Swift's `String` equality is Unicode
/// canonical equivalence, which would merge NFC and NFD spellings ('é') that Linux keeps apart.
/// Hashed in one call, not byte by byte.
struct PathKey: Hashable {
    var bytes: [UInt8]
    func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

extension String {
    var byteKey: PathKey { PathKey(bytes: Array(utf8)) }
}

extension Character {
    var isASCIIDigitChar: Bool { self >= "0" && self <= "9" }
}
