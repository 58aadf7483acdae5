// libfuse3's low-level API for the FUSE module, the only module that imports it.
// FUSE_USE_VERSION must precede the headers; 35 is the 3.5 API, and with it the loop
// entry point is the real symbol fuse_session_loop_mt_32.
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <sys/mount.h>
