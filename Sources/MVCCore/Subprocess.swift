#if canImport(Glibc)
internal import Glibc
#endif
internal import Synchronization

/// Runs a helper program (git) and collects its standard output.
///
/// posix_spawn and waitpid, not Foundation's `Process`: on Linux `Process.waitUntilExit` polls a
/// run loop every 50 ms, which made every commit at least 150 ms slower than its work (three git
/// calls for the code provenance and the author).
package enum Subprocess {
    private static let spawnLock = Mutex(())

    package struct Result: Sendable {
        package var status: Int32
        package var output: [UInt8]
        package var text: String { String(decoding: output, as: UTF8.self) }
    }

    /// Runs `arguments[0]`, found on `PATH`, with standard input from /dev/null and standard error
    /// inherited or discarded. Returns nil when it cannot be started. `environment` entries are
    /// added to (or replace) this process's environment.
    package static func run(_ arguments: [String], environment: [String: String] = [:],
                            inheritStandardError: Bool = false) -> Result? {
        var env: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        for (k, v) in environment { env[k] = v }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for a in argv { free(a) }
            for e in envp { free(e) }
        }
        // The child starts with no signal blocked and the usual ones at their defaults: a thread
        // of libdispatch (commit asks git from one) blocks nearly all signals, and a child would
        // inherit that mask, so Ctrl-C or a scheduler's SIGTERM would not stop git.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        // pipe2(O_CLOEXEC) is not exported by Swift's Glibc module, so the pipe is made
        // close-on-exec in two steps; under a lock, so that a child spawned by another thread
        // meanwhile cannot inherit this pipe's write end (and hold our read open).
        var fds: [Int32] = [-1, -1]
        let spawned: Int32? = Subprocess.spawnLock.withLock { _ in
            guard pipe(&fds) == 0 else { return nil }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
            if !inheritStandardError { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
            close(fds[1])
            if rc != 0 { close(fds[0]); return nil }
            return pid
        }
        guard let pid = spawned else { return nil }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n > 0 { output.append(contentsOf: buffer[0..<n]); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return nil }
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import.
        let exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, output: output)
    }
}
