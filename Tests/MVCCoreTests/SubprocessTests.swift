import Dispatch
import Foundation
import Testing
@testable import MVCCore

@Suite("Running git and other helpers")
struct SubprocessTests {
    @Test("output, exit status and extra environment come back")
    func basics() throws {
        let r = try #require(Subprocess.run(["sh", "-c", "printf '%s' \"$MVC_TEST_VALUE\"; exit 3"], environment: ["MVC_TEST_VALUE": "héllo"]))
        #expect(r.status == 3)
        #expect(r.text == "héllo")
        #expect(Subprocess.run(["mvc-no-such-program-\(UInt32.random(in: 0...UInt32.max))"]) == nil)
    }

    @Test("a child started from a libdispatch thread has no signal blocked")
    func signalMask() throws {
        // libdispatch's worker threads block nearly all signals; commit asks git from one.
        let out = DispatchQueue.global().sync { Subprocess.run(["sh", "-c", "grep '^SigBlk' /proc/self/status"]) }
        let line = try #require(out).text.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(line.hasPrefix("SigBlk:"))
        #expect(line.drop(while: { $0 != "\t" }).allSatisfy { $0 == "0" || $0 == "\t" }, "\(line)")
    }

    @Test("children started at the same time from two threads each get their own output")
    func concurrent() throws {
        final class Results: @unchecked Sendable { var lines = [String?](repeating: nil, count: 16) }
        let results = Results()
        results.lines.withUnsafeMutableBufferPointer { slots in
            nonisolated(unsafe) let slots = slots
            DispatchQueue.concurrentPerform(iterations: 16) { i in
                slots[i] = Subprocess.run(["sh", "-c", "sleep 0.05; echo \(i)"])?.text
            }
        }
        #expect(results.lines == (0..<16).map { "\($0)\n" })
    }
}
