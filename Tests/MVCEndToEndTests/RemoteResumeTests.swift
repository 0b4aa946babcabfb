// An interrupted push resumes: a push killed (SIGKILL) after it published its first pack sends, the
// next time, only what the remote still lacks.

import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite("Remotes: an interrupted push resumes")
struct RemoteResumeTests {
    static let fileMiB = 300

    @Test("push killed after its first pack: the next push sends only the rest, and a pull is byte-identical")
    func killedPushResumes() throws {
        let a = try Sandbox()
        let fileBytes = UInt64(Self.fileMiB) << 20
        try RemoteFiles.writeNoise(a.path("big/weights.bin"), mib: Self.fileMiB, seed: 0xB16_0001)
        try a.mvcOK("init")
        try a.commit("big/", "--name", "big", "--kind", "model")
        let local = try RemoteStoreFiles.objectIDs(store: a.store)

        // The push is killed as soon as the remote has a published pack (an index). A push that
        // finished before the kill landed proves nothing: start again with a fresh remote.
        var killed: (name: String, dir: String)?
        var attempts: [String] = []
        for attempt in 1...4 where killed == nil {
            let name = "r\(attempt)", dir = a.root + "/remote-\(attempt)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try a.mvcOK("remote", "add", name, dir)
            let push = try a.mvcStart(["push", name])
            var sawTemp = false
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                let packs = RemoteFiles.names(in: dir + "/packs")
                if packs.contains(where: { $0.hasPrefix(".tmp-") }) { sawTemp = true }
                if packs.contains(where: { $0.hasSuffix(".idx") }) || RemoteProcess.hasExited(push.pid) { break }
                usleep(500)
            }
            kill(push.pid, SIGKILL)
            let r = try push.wait()
            attempts.append("attempt \(attempt): exit \(r.status), saw a temp file: \(sawTemp)")
            if r.status == 128 + SIGKILL {
                // Killed before it moved any ref (had it been descheduled past the last pack, the
                // kill could land among the ref swaps: that proves nothing either).
                if RemoteFiles.names(in: dir + "/refs").isEmpty { killed = (name, dir) }
            } else {
                try #require(r.status == 0, "the push failed on its own: \(r)")
            }
        }
        let (name, dir) = try #require(killed, "every push finished before it could be killed: \(attempts)")

        // What the remote holds: published packs (no refs yet).
        let published = try RemoteStoreFiles.indexes(in: dir + "/packs").flatMap { try RemoteStoreFiles.packEntries($0) }
        try #require(!published.isEmpty)
        #expect(Set(published.map(\.id)).count == published.count, "no object is in two published packs")

        // A killed push leaves its lock (documented): it blocks a remote gc, not the next push.
        let staleLocks = RemoteFiles.names(in: dir + "/locks").filter { $0.hasPrefix("push-") }
        #expect(staleLocks.count == 1, "the killed push's lock: \(RemoteFiles.names(in: dir + "/locks"))")

        let resumed = try a.remoteJSON(RemotePushJSON.self, ["push", name])
        #expect(resumed.refsUpdated == ["refs/artifacts/big"])
        #expect(resumed.rejected.isEmpty)
        #expect(resumed.objectsSent < local.count, "the resumed push re-sent everything: \(resumed.objectsSent) of \(local.count) objects")
        #expect(published.count + resumed.objectsSent == local.count,
                "\(published.count) objects were published before the kill, \(resumed.objectsSent) sent after, the store has \(local.count)")
        #expect(resumed.bytesSent + (256 << 20) <= fileBytes + (1 << 20),
                "the resumed push sent \(resumed.bytesSent) bytes; the first pack (at least 256 MiB) was already there")
        #expect(FileManager.default.fileExists(atPath: dir + "/refs/artifacts/big"))
        let check = try a.remoteJSON(FsckJSON.self, ["fsck", "--remote", name])
        #expect(check.problems.isEmpty && check.objectsChecked == local.count)
        let nothing = try a.remoteJSON(RemotePushJSON.self, ["push", name])
        #expect(nothing.objectsSent == 0 && nothing.refsUpdated.isEmpty)

        #expect(RemoteFiles.names(in: dir + "/locks").filter { $0.hasPrefix("push-") } == staleLocks, "the resumed push removed its own lock")
        let busy = try a.mvcFails(["gc", "--remote", name], mentioning: "busy")
        #expect(staleLocks.allSatisfy { busy.stderr.contains($0) }, "the error names the stale lock: \(busy)")
        for lock in staleLocks { try FileManager.default.removeItem(atPath: dir + "/locks/" + lock) }
        let gc = try a.remoteJSON(RemoteGCJSON.self, ["gc", "--remote", name])
        #expect(gc.deleted.isEmpty && gc.packsDeleted == 0 && gc.packsRewritten == 0, "everything on the remote is live")

        // Store B pulls all of it, byte-identical.
        let b = try Sandbox()
        try b.mvcOK("init")
        try b.mvcOK("remote", "add", "origin", dir)
        try b.mvcOK("pull", "big@v1")
        #expect(try b.sha256(ofFile: b.path("big/weights.bin")) == a.sha256(ofFile: a.path("big/weights.bin")))
        #expect(try b.mvc("fsck").status == 0)
    }
}
