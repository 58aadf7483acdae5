/* aio-read DEVICE BYTES COUNT DEPTH: COUNT direct reads of BYTES from DEVICE, DEPTH of
 * them submitted by one io_submit() and reaped together, as fio's libaio engine does at
 * iodepth=DEPTH with its batch. More than two iocbs are submitted under a plug
 * (AIO_PLUG_THRESHOLD in fs/aio.c), so the batch's requests are all queued before the
 * doorbell: the pools' peak does not depend on the device's timing. Reads are 1 MiB apart,
 * so no two bios of a batch merge. Built static for the oracle's busybox guest; raw
 * syscalls, no libaio. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STRIDE (1 << 20)

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: aio-read DEVICE BYTES COUNT DEPTH\n");
		return 2;
	}
	long bytes = atol(argv[2]), count = atol(argv[3]), depth = atol(argv[4]);
	if (bytes <= 0 || bytes > STRIDE || bytes % 4096 || count <= 0 || depth <= 0 || depth > 64 || count % depth) {
		fprintf(stderr, "aio-read: BYTES a multiple of 4096 up to 1 MiB, DEPTH 1-64 dividing COUNT\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	aio_context_t ctx = 0;
	if (syscall(SYS_io_setup, depth, &ctx) < 0) {
		perror("io_setup");
		return 1;
	}
	struct iocb cbs[64], *list[64];
	struct io_event events[64];
	char *buffers;
	if (posix_memalign((void **)&buffers, 4096, depth * bytes)) {
		fprintf(stderr, "aio-read: no memory\n");
		return 1;
	}
	for (long done = 0; done < count; done += depth) {
		for (long i = 0; i < depth; i++) {
			memset(&cbs[i], 0, sizeof(cbs[i]));
			cbs[i].aio_fildes = fd;
			cbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
			cbs[i].aio_buf = (unsigned long)(buffers + i * bytes);
			cbs[i].aio_nbytes = bytes;
			cbs[i].aio_offset = (done + i) * (long)STRIDE;
			list[i] = &cbs[i];
		}
		if (syscall(SYS_io_submit, ctx, depth, list) != depth) {
			perror("io_submit");
			return 1;
		}
		long reaped = 0;
		while (reaped < depth) {
			long got = syscall(SYS_io_getevents, ctx, depth - reaped, depth - reaped, events, NULL);
			if (got < 0) {
				perror("io_getevents");
				return 1;
			}
			for (long i = 0; i < got; i++) {
				if ((long)events[i].res != bytes) {
					fprintf(stderr, "aio-read: a read returned %lld\n", (long long)events[i].res);
					return 1;
				}
			}
			reaped += got;
		}
	}
	return 0;
}
