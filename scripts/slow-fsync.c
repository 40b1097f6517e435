/* A slower disk on any machine: an LD_PRELOAD shim that makes every fsync and fdatasync of the
 * process take at least SLOW_FSYNC_US microseconds more (default 5000), as a network or
 * throttled cloud disk does. The benchmarks use it to show where the write path waits on the
 * disk; it changes nothing else.
 *
 *   cc -O2 -shared -fPIC -o target/slow-fsync.so scripts/slow-fsync.c -ldl
 *   LD_PRELOAD=target/slow-fsync.so SLOW_FSYNC_US=5000 target/release/echarging ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long delay_us(void) {
  static long us = -1;
  if (us < 0) {
    const char *v = getenv("SLOW_FSYNC_US");
    us = v ? atol(v) : 5000;
  }
  return us;
}

static void wait_a_while(void) {
  long us = delay_us();
  struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  int r = real(fd);
  wait_a_while();
  return r;
}

int fdatasync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  int r = real(fd);
  wait_a_while();
  return r;
}
