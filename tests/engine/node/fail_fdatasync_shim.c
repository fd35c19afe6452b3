// tests/engine/node/fail_fdatasync_shim.c: an LD_PRELOAD library for the disk-failure
// test. It replaces libc's fdatasync: the first KEEL_FAIL_FDATASYNC_AFTER calls run the
// real system call, every later one fails with EIO without touching the file (so the
// data stays in the page cache: what a failed flush leaves behind). It appends one line
// to KEEL_FAIL_FDATASYNC_REPORT (if set) the first time it fails a call.
//
// Only callers that go through libc see it: the psync persist backend does; the io_uring
// backend's IORING_OP_FSYNC is run by the kernel and cannot be intercepted this way.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_long calls;

int fdatasync(int fd) {
  const char* after_text = getenv("KEEL_FAIL_FDATASYNC_AFTER");
  long after = after_text != NULL ? atol(after_text) : -1;
  long call = atomic_fetch_add(&calls, 1);
  if (after < 0 || call < after) return (int)syscall(SYS_fdatasync, fd);
  if (call == after) {
    const char* report = getenv("KEEL_FAIL_FDATASYNC_REPORT");
    if (report != NULL) {
      char line[128];
      int length = snprintf(line, sizeof line, "failed fdatasync call %ld (fd %d) with EIO\n", call + 1, fd);
      int out = open(report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (out >= 0) {
        if (write(out, line, (size_t)length) < 0) {
          // Nothing to do: the report is a courtesy; the test checks the engine's own message.
        }
        close(out);
      }
    }
  }
  errno = EIO;
  return -1;
}
