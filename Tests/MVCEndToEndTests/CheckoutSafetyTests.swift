// Checkout never loses work and never writes where it should not: local changes are kept unless
// --force, symlinked directories are refused, partial checkouts touch only what was asked for.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Checkout safety")
struct CheckoutSafetyTests {
    @Test("refuses to overwrite a modified file whose bytes are not stored; --force overwrites")
    func refusesLocalChanges() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let edited = Data("my unsaved edits\n".utf8)
        try sb.write("data/iris.csv", edited)
        try sb.remove("data/README.md")   // a missing file alone would be fine to restore

        let r = try sb.mvcFails(["checkout", "iris@v1"], mentioning: "overwrite")
        #expect(r.stderrLines.first?.contains("data/iris.csv") == true, "the error names the file: \(r)")
        #expect(try sb.read("data/iris.csv") == edited, "the edited file is untouched")
        #expect(!sb.exists("data/README.md"), "nothing is written when checkout refuses")
        #expect(sb.files(under: sb.path("data")) == ["iris.csv"], "no temp files left behind")

        let forced = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1", "--force"])
        #expect(forced.written.sorted() == ["data/README.md", "data/iris.csv"])
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))
        #expect(try sb.read("data/README.md") == Fixtures.data("data/README.md"))
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
    }

    @Test("refuses to replace a directory or a symlink standing where a file goes")
    func refusesOtherThingsInTheWay() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.remove("model/model.safetensors")
        try FileManager.default.createDirectory(atPath: sb.path("model/model.safetensors"), withIntermediateDirectories: true)
        try sb.write("model/model.safetensors/keep.txt", "precious\n")
        try sb.mvcFails(["checkout", "iris-mlp@v1"], mentioning: "overwrite")
        try sb.mvcFails(["checkout", "iris-mlp@v1", "--force"], mentioning: "directory")
        #expect(try sb.read("model/model.safetensors/keep.txt") == Data("precious\n".utf8))

        // A symlink in place of the file: refused without --force, and never written through.
        let target = sb.outside + "/target.bin"
        try sb.writeAbsolute(target, Data("outside bytes\n".utf8))
        try sb.remove("config/train.yaml")
        try FileManager.default.createSymbolicLink(atPath: sb.path("config/train.yaml"), withDestinationPath: target)
        try sb.mvcFails(["checkout", "train-config@v1"], mentioning: "overwrite")
        #expect(try sb.readAbsolute(target) == Data("outside bytes\n".utf8))
        // --force replaces the link itself, not what it points at.
        try sb.mvcOK("checkout", "train-config@v1", "--force")
        #expect(try sb.readAbsolute(target) == Data("outside bytes\n".utf8), "the link's target is untouched")
        var st = stat()
        #expect(lstat(sb.path("config/train.yaml"), &st) == 0 && st.st_mode & S_IFMT == S_IFREG)
        #expect(try sb.read("config/train.yaml") == Fixtures.data("config/train.yaml"))
    }

    @Test("replaces a file whose bytes are in the store (another version) without --force")
    func replacesStoredBytes() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let v2bytes = try Fixtures.data("data/iris.csv") + Data("7.0,3.2,4.7,1.4,versicolor\n".utf8)
        try sb.write("data/iris.csv", v2bytes)
        let v2 = try sb.commit("data/", "--name", "iris")
        #expect(v2.version == 2)

        let back = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1"])
        #expect(back.written == ["data/iris.csv"] && back.unchanged == 1)
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))

        let forward = try sb.json(CheckoutJSON.self, ["checkout", "iris"])
        #expect(forward.revision == "iris@v2" && forward.written == ["data/iris.csv"])
        #expect(try sb.read("data/iris.csv") == v2bytes)

        // Bytes stored under another artifact count too: nothing would be lost.
        try sb.write("data/iris.csv", try Fixtures.data("config/train.yaml"))
        try sb.mvcOK("checkout", "iris@v1")
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))
    }

    /// A store whose artifact `model` is `model/weights.bin` twice: v1, 12 MiB (large enough for
    /// the copy pipeline, for dropping the old file's cached pages and for a rewrite in place), then
    /// v2 with `changed` bytes from offset 5,000,000 replaced (a fine-tune). The work tree holds v2.
    static func fineTunedModel(seed: UInt64, changed: Int) throws -> (Sandbox, v1: Data, v2: Data) {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        let v1 = CheckoutVerifyTests.randomData(mib: 12, seed: 0x6D76_632D_7377_0000 + seed)
        var v2 = v1
        v2.replaceSubrange(5_000_000..<(5_000_000 + changed), with: CheckoutVerifyTests.randomData(mib: 1, seed: 6 + seed).prefix(changed))
        try sb.write("model/weights.bin", v1)
        try sb.mvcOK("commit", "model", "--name", "model")
        try sb.write("model/weights.bin", v2)
        try sb.mvcOK("commit", "model", "--name", "model")
        return (sb, v1, v2)
    }

    @Test("a replaced file is swapped whole: an open reader and a hard link keep the old bytes")
    func replacesBySwap() throws {
        let (sb, v1, v2) = try Self.fineTunedModel(seed: 1, changed: 100_000)

        // A reader (say, a server that mapped the weights) has v2 open; a hard link names it too.
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: sb.path("model/weights.bin")))
        defer { try? reader.close() }
        #expect(link(sb.path("model/weights.bin"), sb.outside + "/v2-link.bin") == 0)
        var before = stat(), after = stat()
        #expect(lstat(sb.path("model/weights.bin"), &before) == 0)

        let r = try sb.json(CheckoutJSON.self, ["checkout", "model@v1"])
        #expect(r.written == ["model/weights.bin"])
        #expect(try sb.read("model/weights.bin") == v1)
        #expect(lstat(sb.path("model/weights.bin"), &after) == 0 && after.st_ino != before.st_ino, "a new file, not rewritten in place")
        #expect(try reader.readToEnd() == v2, "the open file still reads the old bytes")
        #expect(try sb.readAbsolute(sb.outside + "/v2-link.bin") == v2, "the hard link still holds the old bytes")
        #expect(sb.files(under: sb.path("model")) == ["weights.bin"], "the old file is gone, no temp file is left")
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.map(\.path) == ["model/weights.bin"])
        try sb.mvcOK("checkout", "model@v2")
        #expect(try sb.read("model/weights.bin") == v2)
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
    }

    /// Whether a write lease can be taken in the temporary directory (a local file system: mvc
    /// never rewrites in place elsewhere). F_SETLEASE is 1024 (Linux), not in Swift's Glibc.
    static let leasesWork: Bool = {
        let path = FileManager.default.temporaryDirectory.path + "/mvc-lease-probe-\(getpid())"
        guard FileManager.default.createFile(atPath: path, contents: Data("x".utf8)) else { return false }
        defer { unlink(path) }
        let fd = open(path, O_RDWR)
        defer { close(fd) }
        // A file system mvc trusts leases on (ext4, XFS, Btrfs, tmpfs, F2FS: `stat -f` prints its
        // type in hex), and a lease granted.
        let stat = Process()
        stat.executableURL = URL(fileURLWithPath: "/usr/bin/stat")
        stat.arguments = ["-f", "-c", "%t", path]
        let pipe = Pipe()
        stat.standardOutput = pipe
        guard (try? stat.run()) != nil else { return false }
        stat.waitUntilExit()
        let type = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard ["ef53", "58465342", "9123683e", "1021994", "f2f52010"].contains(type),
              fd >= 0, fcntl(fd, 1024, Int32(F_WRLCK)) == 0 else { return false }
        _ = fcntl(fd, 1024, Int32(F_UNLCK))
        return true
    }()

    @Test("with no other user of the file, only a fine-tune's changed chunks are rewritten, in the same file",
          .enabled(if: CheckoutSafetyTests.leasesWork))
    func rewritesInPlace() throws {
        let (sb, v1, v2) = try Self.fineTunedModel(seed: 2, changed: 1_000_000)
        var before = stat(), after = stat()
        #expect(lstat(sb.path("model/weights.bin"), &before) == 0)
        usleep(40_000)   // a file changed in the last 20 ms is replaced whole

        let r = try sb.json(CheckoutJSON.self, ["checkout", "model@v1"])
        #expect(r.written == ["model/weights.bin"] && r.rewrittenInPlace == ["model/weights.bin"])
        #expect(r.bytesWritten >= 1_000_000 && r.bytesWritten < 3_000_000, "about the changed megabyte: \(r.bytesWritten)")
        #expect(try sb.read("model/weights.bin") == v1)
        #expect(lstat(sb.path("model/weights.bin"), &after) == 0 && after.st_ino == before.st_ino, "the same file")
        usleep(40_000)
        let text = try sb.mvcOK("checkout", "model@v2")
        #expect(text.stdout.contains("1 written (") && text.stdout.contains(", 1 in place)"), "\(text)")
        #expect(try sb.read("model/weights.bin") == v2)
        usleep(40_000)
        let whole = try sb.json(CheckoutJSON.self, ["checkout", "model@v1", "--no-in-place"])
        #expect(whole.rewrittenInPlace.isEmpty && whole.bytesWritten == UInt64(v1.count))
        #expect(lstat(sb.path("model/weights.bin"), &after) == 0 && after.st_ino != before.st_ino, "--no-in-place: a new file")
        #expect(try sb.read("model/weights.bin") == v1)
        try sb.mvcOK("checkout", "model@v2")
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
        #expect(!sb.exists(".mvc/rewriting"))
    }

    @Test("a rewrite that was killed: status warns, commit refuses, the next checkout finishes it without --force")
    func interruptedRewrite() throws {
        let (sb, v1, v2) = try Self.fineTunedModel(seed: 3, changed: 1_000_000)
        // What `mvc checkout model@v1` killed midway leaves: the journal, and v1's bytes over part of v2.
        var torn = v2
        torn.replaceSubrange(5_000_000..<5_400_000, with: v1[5_000_000..<5_400_000])
        let tornFile = open(sb.path("model/weights.bin"), O_WRONLY)
        _ = torn.withUnsafeBytes { pwrite(tornFile, $0.baseAddress, $0.count, 0) }
        close(tornFile)
        struct Listed: Decodable { var id: String }
        let blob = try #require(try sb.json([Listed].self, ["ls", "model@v1"]).first).id
        var journaled = stat()
        #expect(lstat(sb.path("model/weights.bin"), &journaled) == 0)
        try sb.write(".mvc/rewriting", "mvc-rewriting 1\n\(blob) \(journaled.st_ino) model/weights.bin")

        let status = try sb.mvcOK("status")
        #expect(status.stderr.contains("'model/weights.bin' is being rewritten in place by a checkout, or was left partly rewritten by one that did not finish"), "\(status)")
        #expect(try sb.json(StatusJSON.self, ["status"]).interrupted == "model/weights.bin")
        try sb.mvcFails(["commit", "model", "--name", "model"], mentioning: "partly rewritten")
        let r = try sb.json(CheckoutJSON.self, ["checkout", "model@v2"])
        #expect(r.written == ["model/weights.bin"] && r.rewrittenInPlace.isEmpty, "written whole")
        #expect(try sb.read("model/weights.bin") == v2)
        #expect(!sb.exists(".mvc/rewriting"))
        #expect(try sb.json(StatusJSON.self, ["status"]).changes.isEmpty)
    }

    @Test("two spellings of one name (NFC, NFD) are two directories: a local change under one is still refused")
    func unicodeSpellingsOfADirectory() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        let nfc = "data/caf\u{00E9}", nfd = "data/cafe\u{0301}"
        try #require(Array(nfc.utf8) != Array(nfd.utf8))
        try sb.write(nfd + "/b.txt", "b\n")
        try sb.write(nfc + "/a.txt", "a\n")
        try sb.mvcOK("commit", "data", "--name", "u")
        #expect(sb.files(under: sb.path("data")).count == 2, "two directories on disk")

        // An edit under the NFC directory; the NFD one is gone. What the plan learns about one
        // must not stand for the other.
        try sb.write(nfc + "/a.txt", "my unsaved edit\n")
        try FileManager.default.removeItem(atPath: sb.path(nfd))
        try sb.mvcFails(["checkout", "u@v1"], mentioning: "overwrite")
        #expect(try sb.read(nfc + "/a.txt") == Data("my unsaved edit\n".utf8))
        try sb.mvcOK("checkout", "u@v1", "--force")
        #expect(try sb.read(nfc + "/a.txt") == Data("a\n".utf8) && (try sb.read(nfd + "/b.txt")) == Data("b\n".utf8))
    }

    @Test("refuses to write through a symlinked parent directory that points outside (-o)")
    func symlinkedParentInOutputDirectory() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let out = sb.scratch + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: out + "/data", withDestinationPath: sb.outside)

        let r = try sb.mvcFails(["checkout", "iris@v1", "-o", out], mentioning: "symbolic link")
        #expect(r.stderrLines.first?.contains("data") == true, "\(r)")
        #expect(sb.files(under: sb.outside).isEmpty, "nothing written outside: \(sb.files(under: sb.outside))")
        #expect(try sb.mvcFails(["checkout", "iris@v1", "-o", out, "--force"], mentioning: "symbolic link").status != 0)
        #expect(sb.files(under: sb.outside).isEmpty)

        // A deeper link: model/ is a link to a directory outside.
        try FileManager.default.createSymbolicLink(atPath: out + "/model", withDestinationPath: sb.outside)
        try sb.mvcFails(["checkout", "iris-mlp@v1", "-o", out], mentioning: "symbolic link")
        #expect(sb.files(under: sb.outside).isEmpty)
    }

    @Test("refuses to write through a symlinked parent directory in the work tree")
    func symlinkedParentInWorkTree() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.remove("data")
        try FileManager.default.createSymbolicLink(atPath: sb.path("data"), withDestinationPath: sb.outside)
        try sb.mvcFails(["checkout", "iris@v1"], mentioning: "symbolic link")
        try sb.mvcFails(["checkout", "iris@v1", "--force"], mentioning: "symbolic link")
        try sb.mvcFails(["checkout", "iris@v1", "--", "data/iris.csv"], mentioning: "symbolic link")
        #expect(sb.files(under: sb.outside).isEmpty, "nothing written outside: \(sb.files(under: sb.outside))")
        var st = stat()
        #expect(lstat(sb.path("data"), &st) == 0 && st.st_mode & S_IFMT == S_IFLNK, "the link itself is left alone")

        // Once the link is gone the same checkout works.
        try sb.remove("data")
        try sb.mvcOK("checkout", "iris@v1")
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))
        try p.expectIntact()
    }

    @Test("refuses to check out into the store itself")
    func refusesToWriteIntoTheStore() throws {
        let p = try IrisProject.make(git: false)
        let sb = p.sandbox
        // A file at the work tree's root: checked out into .mvc/refs/artifacts it would become a
        // (corrupt) ref named 'notes' and break every command that lists artifacts.
        try sb.write("notes", "some notes\n")
        try sb.commit("notes", "--name", "meeting-notes")
        let before = sb.files(under: sb.path(".mvc"))
        try sb.mvcFails(["checkout", "meeting-notes", "-o", ".mvc/refs/artifacts"], mentioning: "store")
        try sb.mvcFails(["checkout", "iris@v1", "-o", ".mvc"], mentioning: "store")
        try sb.mvcFails(["checkout", "iris@v1", "-o", sb.path(".mvc/objects")], mentioning: "store")
        try sb.mvcFails(["checkout", "iris@v1", "-o", "data/../.mvc/logs"], mentioning: "store")
        #expect(sb.files(under: sb.path(".mvc")) == before, "nothing was written into the store")
        #expect(try sb.mvc("artifacts").status == 0)
        try p.expectIntact()
    }

    @Test("checks out only the paths given after --")
    func partialCheckout() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        let out = sb.scratch + "/partial"
        let j = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1", "-o", out, "--", "data/iris.csv"])
        #expect(j.written == ["data/iris.csv"])
        #expect(sb.files(under: out) == ["data/iris.csv"])
        #expect(try sb.readAbsolute(out + "/data/iris.csv") == Fixtures.data("data/iris.csv"))

        // A directory prefix selects everything below it.
        let dir = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1", "-o", sb.scratch + "/dir", "--", "data/"])
        #expect(dir.written.sorted() == ["data/README.md", "data/iris.csv"])

        // In the work tree: local changes to other files of the artifact are not in the way.
        let myNotes = Data("my own notes\n".utf8)
        try sb.write("data/README.md", myNotes)
        try sb.remove("data/iris.csv")
        try sb.mvcOK("checkout", "iris@v1", "--", "data/iris.csv")
        #expect(try sb.read("data/iris.csv") == Fixtures.data("data/iris.csv"))
        #expect(try sb.read("data/README.md") == myNotes)

        // A path that is not in the version is an error, and writes nothing.
        let none = sb.scratch + "/none"
        try sb.mvcFails(["checkout", "iris@v1", "-o", none, "--", "data/iris.csv", "data/nope.csv"], mentioning: "nope.csv")
        #expect(sb.files(under: none).isEmpty)
    }

    @Test("an executable file keeps its mode through commit and checkout")
    func executableMode() throws {
        let sb = try Sandbox()
        try sb.mvcOK("init")
        try sb.write("tools/run.sh", "#!/bin/sh\necho hi\n", mode: 0o755)
        try sb.write("tools/lib.txt", "data\n", mode: 0o644)
        try sb.commit("tools", "--name", "tools")
        let ls = try sb.json([LsEntryJSON].self, ["ls", "tools"])
        #expect(ls.map(\.kind) == ["file", "exec"])
        #expect(try sb.mvcOK("ls", "tools").stdout.contains("tools/run.sh*\n"))

        let out = sb.scratch + "/out"
        try sb.mvcOK("checkout", "tools", "-o", out)
        #expect(sb.mode(ofAbsolute: out + "/tools/run.sh") & 0o111 == 0o111)
        #expect(sb.mode(ofAbsolute: out + "/tools/lib.txt") & 0o111 == 0)
        let run = try sb.run("sh", ["-c", "\(out)/tools/run.sh"])
        #expect(run.status == 0 && run.stdout == "hi\n")
        // Exactly 0755 and 0644, whatever the umask (a umask that takes bits away is undone).
        #expect(sb.mode(ofAbsolute: out + "/tools/run.sh") & 0o777 == 0o755)
        #expect(sb.mode(ofAbsolute: out + "/tools/lib.txt") & 0o777 == 0o644)
        let strict = sb.scratch + "/strict"
        let masked = try sb.run("sh", ["-c", "umask 077 && exec \"$0\" checkout tools -o \"$1\"", try MVCBinary.path(), strict])
        #expect(masked.status == 0, "\(masked)")
        #expect(sb.mode(ofAbsolute: strict + "/tools/run.sh") & 0o777 == 0o755)
        #expect(sb.mode(ofAbsolute: strict + "/tools/lib.txt") & 0o777 == 0o644)

        // In the work tree, a lost executable bit is restored (the bytes are the same).
        chmod(sb.path("tools/run.sh"), 0o644)
        try sb.mvcOK("checkout", "tools")
        #expect(sb.mode(ofAbsolute: sb.path("tools/run.sh")) & 0o100 != 0)
        // And a new executable bit alone makes a new version.
        chmod(sb.path("tools/lib.txt"), 0o755)
        let v2 = try sb.commit("tools", "--name", "tools")
        #expect(!v2.unchanged && v2.version == 2)
        #expect(try sb.json([LsEntryJSON].self, ["ls", "tools"]).map(\.kind) == ["exec", "exec"])
    }

    @Test("a full checkout removes files of other versions and keeps files not in the store")
    func fullCheckoutRemovesOtherVersionsFiles() throws {
        let p = try IrisProject.make()
        let sb = p.sandbox
        try sb.write("data/extra.csv", "x,y\n1,2\n")
        let v2 = try sb.commit("data", "--name", "iris")
        #expect(v2.version == 2)
        try sb.write("data/scratch-notes.txt", "not committed anywhere\n")

        let r = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1"])
        #expect(r.removed == ["data/extra.csv"])
        #expect(r.kept == ["data/scratch-notes.txt"])
        #expect(!sb.exists("data/extra.csv"))
        #expect(try sb.read("data/scratch-notes.txt") == Data("not committed anywhere\n".utf8))
        #expect(sb.files(under: sb.path("data")) == ["README.md", "iris.csv", "scratch-notes.txt"])
        let text = try sb.mvcOK("checkout", "iris@v1").stdout
        #expect(text.contains("kept untracked 'data/scratch-notes.txt'"), "\(text)")

        // Back to v2 brings the file back; -o and partial checkouts never remove anything.
        try sb.mvcOK("checkout", "iris@v2")
        #expect(try sb.read("data/extra.csv") == Data("x,y\n1,2\n".utf8))
        let partial = try sb.json(CheckoutJSON.self, ["checkout", "iris@v1", "--", "data/iris.csv"])
        #expect(partial.removed.isEmpty && sb.exists("data/extra.csv"))
    }
}
