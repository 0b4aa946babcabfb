import Foundation
import Testing
@testable import MVCCore

@Suite("mvc.lock and the managed .gitignore block")
struct LockFileTests {
    @Test("commit and checkout record the version each path uses; the file round-trips")
    func recordsVersions() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("data/a.csv", "x\n1\n")
        dir.write("model weights.bin", "w1")
        let d1 = try repo.commit(CommitRequest(paths: ["data"], name: "ds", kind: .dataset, baseDirectory: dir.path))
        let m1 = try repo.commit(CommitRequest(paths: ["model weights.bin"], name: "m", kind: .model, baseDirectory: dir.path))
        dir.write("model weights.bin", "w2")
        _ = try repo.commit(CommitRequest(paths: ["model weights.bin"], name: "m", baseDirectory: dir.path))
        var lock = try repo.lockFile()
        #expect(lock.entries.map(\.path) == ["data", "model weights.bin"])
        let dataEntry = try repo.entry(at: "data", inTree: d1.tree)
        #expect(lock.entries[0].commit == d1.id && lock.entries[0].kind == .tree && lock.entries[0].id == dataEntry?.1)
        #expect(lock.entries[1].version == 2)
        _ = try repo.checkout("m@v1")
        lock = try repo.lockFile()
        #expect(lock.entries[1].commit == m1.id && lock.entries[1].version == 1)
        #expect(try LockFile.parse(String(decoding: LockFile(entries: lock.entries).encoded(), as: UTF8.self), path: "mvc.lock") == lock)

        let ignore = String(decoding: dir.read(".gitignore")!, as: UTF8.self)
        #expect(ignore.contains("/data\n") && ignore.contains("/model\\ weights.bin\n"), "\(ignore)")
    }

    @Test("the managed block is rewritten in place; the user's own lines stay")
    func gitignoreBlock() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write(".gitignore", "*.pyc\n__pycache__/\n")
        try repo.updateGitignore(["a", "b/c"])
        try repo.updateGitignore(["a"])
        let text = String(decoding: dir.read(".gitignore")!, as: UTF8.self)
        #expect(text == "*.pyc\n__pycache__/\n\(Repository.gitignoreBegin)\n/a\n\(Repository.gitignoreEnd)\n")
    }

    @Test("a malformed lock file is a clear error naming the file")
    func malformed() throws {
        let dir = TempDir()
        let repo = try Repository.initialize(at: dir.path)
        dir.write("mvc.lock", "version: 1\npaths:\n  data:\n    artifact: ds\n")
        let e = #expect(throws: MVCError.self) { try repo.lockFile() }
        #expect(e?.code == .badConfig && e?.message.contains("mvc.lock") == true)
        dir.write("mvc.lock", "version: 1\npaths:\n  ../etc:\n    artifact: ds\n    version: 1\n    commit: \(String(repeating: "a", count: 64))\n    kind: file\n    id: \(String(repeating: "b", count: 64))\n")
        #expect(throws: MVCError.self) { try repo.lockFile() }
    }
}
