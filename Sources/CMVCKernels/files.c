#define _GNU_SOURCE
#include "mvc_files.h"

#ifdef __linux__
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/vfs.h>
#include <stdio.h>
#include <unistd.h>

int mvc_take_write_lease(int fd) {
    if (fcntl(fd, F_SETSIG, SIGURG) != 0) return -1;
    if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0) return -1;
    (void)fcntl(fd, F_SETOWN, 0);
    return 0;
}

int mvc_release_lease(int fd) {
    return fcntl(fd, F_SETLEASE, F_UNLCK);
}

int mvc_lease_unbroken(int fd) {
    return fcntl(fd, F_GETLEASE) == F_WRLCK;
}

int mvc_is_local_lease_fs(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return 0;
    switch ((unsigned long)fs.f_type) {
    case 0xEF53UL:      // ext2, ext3, ext4
    case 0x58465342UL:  // XFS
    case 0x9123683EUL:  // Btrfs
    case 0x01021994UL:  // tmpfs
    case 0xF2F52010UL:  // F2FS
        return 1;
    default:
        return 0;
    }
}
unsigned long long mvc_available_bytes(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return 0;
    return (unsigned long long)fs.f_bavail * (unsigned long long)fs.f_frsize;
}
int mvc_open_unnamed(int dirfd, unsigned int mode) {
    int fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, (mode_t)mode);
    return fd >= 0 ? fd : -errno;
}

int mvc_link_unnamed(int fd, int dirfd, const char *name) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, path, dirfd, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}
#else
#include <errno.h>
int mvc_take_write_lease(int fd) { (void)fd; errno = ENOSYS; return -1; }
int mvc_release_lease(int fd) { (void)fd; errno = ENOSYS; return -1; }
int mvc_lease_unbroken(int fd) { (void)fd; return 0; }
int mvc_is_local_lease_fs(int fd) { (void)fd; return 0; }
unsigned long long mvc_available_bytes(int fd) { (void)fd; return 0; }
int mvc_open_unnamed(int dirfd, unsigned int mode) { (void)dirfd; (void)mode; return -EOPNOTSUPP; }
int mvc_link_unnamed(int fd, int dirfd, const char *name) { (void)fd; (void)dirfd; (void)name; return -EOPNOTSUPP; }
#endif
