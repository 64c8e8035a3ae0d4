#include "CSluiceSys.h"
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sched.h>
#include <time.h>

int csluice_accept_nonblock(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

ssize_t csluice_splice(int in, int out, size_t len) {
    // syscall(2), not glibc's splice(): no cancellation-point wrapper (see CSluiceSys.h).
    return syscall(SYS_splice, in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

int csluice_pipe(int fds[2], int size, int *capacity) {
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return errno;
    if (size > 0) (void)fcntl(fds[0], F_SETPIPE_SZ, size);
    int c = fcntl(fds[0], F_GETPIPE_SZ);
    *capacity = c > 0 ? c : 65536;
    return 0;
}

int csluice_current_cpu(void) { return sched_getcpu(); }

int csluice_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void csluice_fill_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
}

int csluice_block_signals(void) {
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    csluice_fill_set(&set);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int csluice_wait_signal(int timeout_ms) {
    sigset_t set;
    csluice_fill_set(&set);
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig >= 0) return sig;
        if (errno == EINTR) continue;
        return -1;
    }
}
