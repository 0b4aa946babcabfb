#ifndef MVC_FILES_H
#define MVC_FILES_H
// File-system calls Swift's Glibc module cannot make: their names and constants are GNU-only
// (F_SETLEASE, F_SETSIG), and <fcntl.h> cannot be included in a header Swift imports next to Glibc
// (its S_IF* macros clash). Used by checkout: the in-place rewrite (Sources/MVCCore/InPlace.swift)
// and unnamed new files (Checkout.swift).

// Takes a write lease on `fd` (fcntl F_SETLEASE, F_WRLCK): granted only while no other open file
// description refers to the file (another process's descriptor or memory mapping, or another of
// ours); while it is held, an open(2) of the file by anyone waits until it is released (or for
// /proc/sys/fs/lease-break-time). A lease break is signalled to the holder, SIGIO by default,
// which would end the process: the signal is made SIGURG (ignored by default) first, and the
// owner is cleared after, so that none is sent. Returns 0, or -1 with errno set.
int mvc_take_write_lease(int fd);
// Releases it (F_UNLCK).
int mvc_release_lease(int fd);
// 1 while the write lease on `fd` is held with no break pending (F_GETLEASE is F_WRLCK); 0 once
// another open(2) asked for it to be broken, or it was removed after lease-break-time.
int mvc_lease_unbroken(int fd);
// 1 when `fd` is on a local file system whose leases see every opener (ext4, XFS, Btrfs, tmpfs,
// F2FS); 0 on others (NFS, SMB, FUSE, overlayfs...), where other hosts' or layers' users are unseen.
int mvc_is_local_lease_fs(int fd);
// The bytes an unprivileged user may still allocate on `fd`'s file system (f_bavail × f_frsize),
// or 0 when fstatfs fails.
unsigned long long mvc_available_bytes(int fd);
// Creates an unnamed regular file in the directory open as `dirfd` (open(2) with O_TMPFILE,
// write-only, close-on-exec, `mode` less the umask): it gets a name only when linked, so a
// process killed before leaves nothing behind. Returns the descriptor, or -1 with errno set
// (EOPNOTSUPP, EISDIR or EINVAL where the file system or kernel cannot).
int mvc_open_unnamed(int dirfd, unsigned int mode);
// Links the unnamed file open as `fd` under `name` in the directory open as `dirfd`, through
// /proc/self/fd (linkat with AT_SYMLINK_FOLLOW; AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
// Fails with EEXIST when the name exists: it never replaces anything. 0, or -1 with errno set.
int mvc_link_unnamed(int fd, int dirfd, const char *name);
#endif
