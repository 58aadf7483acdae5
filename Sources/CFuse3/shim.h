// libfuse3's low-level API for the FUSE module, the only module that imports it.
// FUSE_USE_VERSION must precede the headers; 35 is the 3.5 API. The loop is our own
// (FUSELoop), on fuse_session_receive_buf and fuse_session_process_buf.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <sys/mount.h>

// FUSELoop's waits. glibc declares these two only under _GNU_SOURCE, which Swift's Glibc
// module is not built with; they are plain Linux calls, declared here as glibc has them.
#include <poll.h>
#include <signal.h>
int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask);
int pipe2(int pipefd[2], int flags);
