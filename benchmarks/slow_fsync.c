/* LD_PRELOAD shim for bench_journal_lag: a slow disk.
 *
 * fsync() and fdatasync() sleep VIAFORM_FSYNC_DELAY_MS milliseconds (default 20), then
 * call the real function. Every call is counted; slow_fsync_calls() and
 * slow_fsync_slept_ns() give the counts to the process (through ctypes), so the
 * benchmark can check that the shim really sat under SQLite's commits;
 * slow_fsync_loop_calls() counts those made on the thread that called
 * slow_fsync_mark_loop_thread() (the event loop's).
 * Built at run time with the machine's cc; no binary is committed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static atomic_long calls;
static atomic_long slept_ns;
static atomic_long loop_calls;
static pthread_t loop_thread;
static atomic_int loop_marked;

static long delay_ns(void) {
    const char *v = getenv("VIAFORM_FSYNC_DELAY_MS");
    double ms = v ? atof(v) : 20.0;
    return ms > 0 ? (long)(ms * 1e6) : 0;
}

static void slow_down(void) {
    long ns = delay_ns();
    atomic_fetch_add(&calls, 1);
    if (atomic_load(&loop_marked) && pthread_equal(pthread_self(), loop_thread))
        atomic_fetch_add(&loop_calls, 1);
    if (ns > 0) {
        struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        atomic_fetch_add(&slept_ns, ns);
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}

/* The calling thread is the event loop's: its fsyncs are counted apart too. */
void slow_fsync_mark_loop_thread(void) {
    loop_thread = pthread_self();
    atomic_store(&loop_marked, 1);
}

long slow_fsync_loop_calls(void) { return atomic_load(&loop_calls); }
long slow_fsync_calls(void) { return atomic_load(&calls); }
long slow_fsync_slept_ns(void) { return atomic_load(&slept_ns); }
