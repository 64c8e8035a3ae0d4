// Thin shims over Linux calls that Glibc's Swift module does not export
// (it is built without _GNU_SOURCE and does not include <sys/epoll.h>), and the plain-socket data
// path's read, send, epoll_wait and splice made with syscall(2) (see below).
#ifndef CSLUICESYS_H
#define CSLUICESYS_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/syscall.h>

// The plain-socket data path's calls made with syscall(2) rather than glibc's wrappers: those are
// POSIX cancellation points, and (glibc 2.36) each call turns asynchronous cancellation on and off
// around the system call, two atomic operations on the thread's state. Sluice never cancels a
// thread, so the plain call does the same. Measured at 128 B keep-alive: libc's share of Sluice's
// CPU 2.3-2.8% before, 1.7-1.8% after (perf). Other calls (accept4, close, OpenSSL's socket reads
// and writes for TLS, the eventfd) still use glibc's wrappers.

/// read(2) without the cancellation-point wrapper. Bytes, 0 at EOF, or -1 with errno.
static inline ssize_t csluice_read(int fd, void *buf, size_t len) {
    return syscall(SYS_read, fd, buf, len);
}
/// send(2) (sendto without an address) without the cancellation-point wrapper.
static inline ssize_t csluice_send(int fd, const void *buf, size_t len, int flags) {
    return syscall(SYS_sendto, fd, buf, len, flags, NULL, 0);
}
/// epoll_wait(2) without the cancellation-point wrapper (epoll_pwait with no mask where the
/// architecture has no epoll_wait, as on arm64).
static inline int csluice_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout_ms) {
#ifdef SYS_epoll_wait
    return (int)syscall(SYS_epoll_wait, epfd, events, max, timeout_ms);
#else
    return (int)syscall(SYS_epoll_pwait, epfd, events, max, timeout_ms, NULL, (size_t)(_NSIG / 8));
#endif
}

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC.
int csluice_accept_nonblock(int fd, struct sockaddr *addr, socklen_t *len);
/// splice(2) with SPLICE_F_MOVE | SPLICE_F_NONBLOCK, no offsets (sockets and pipes). Returns bytes, 0 at
/// EOF of `in`, or -1 with errno.
ssize_t csluice_splice(int in, int out, size_t len);
/// pipe2(O_NONBLOCK | O_CLOEXEC), then F_SETPIPE_SZ to `size` (best effort: the default stays on
/// failure). Returns 0 and the pipe's capacity in `*capacity`, or an errno value.
int csluice_pipe(int fds[2], int size, int *capacity);
/// sched_getcpu().
int csluice_current_cpu(void);
/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int csluice_pin_to_cpu(int cpu);
/// Blocks SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 in the calling thread (inherited by threads it creates),
/// and ignores SIGPIPE process-wide. Returns 0 or an errno value.
int csluice_block_signals(void);
/// Waits for one of the signals blocked by csluice_block_signals; returns its number, or -1 on a timeout of timeout_ms.
int csluice_wait_signal(int timeout_ms);

static const int CSLUICE_EPOLLIN = EPOLLIN;
static const int CSLUICE_EPOLLOUT = EPOLLOUT;
static const int CSLUICE_EPOLLERR = EPOLLERR;
static const int CSLUICE_EPOLLHUP = EPOLLHUP;
static const int CSLUICE_EPOLLRDHUP = EPOLLRDHUP;
static const unsigned int CSLUICE_EPOLLET = EPOLLET;
static const int CSLUICE_SO_REUSEPORT = SO_REUSEPORT;
static const int CSLUICE_TCP_DEFER_ACCEPT = TCP_DEFER_ACCEPT;
static const int CSLUICE_SOCK_NONBLOCK = SOCK_NONBLOCK;
static const int CSLUICE_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CSLUICE_EFD_NONBLOCK = EFD_NONBLOCK;
static const int CSLUICE_EFD_CLOEXEC = EFD_CLOEXEC;
static const int CSLUICE_MSG_NOSIGNAL = MSG_NOSIGNAL;

#endif
