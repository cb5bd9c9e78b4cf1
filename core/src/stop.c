/* stop.c - the process's stop request (ituna/host.h): a flag any thread or a signal
 * sets, the consumers' loops ended with it, a sleep it cuts short, and SIGINT/SIGTERM
 * turned into it by a thread that waits for them (so no async-signal rules apply). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "ituna/host.h"

static volatile sig_atomic_t stop_flag;

void ituna_stop_request(void) {
    stop_flag = 1;
    ituna_consumer_stop_all();
}

int ituna_stop_requested(void) {
    return stop_flag != 0;
}

int ituna_sleep(uint64_t ms) {
    uint64_t end = ituna_now_ns() + ms * 1000000u;
    for (;;) {
        if (stop_flag) return 0;
        uint64_t now = ituna_now_ns();
        if (now >= end) return 1;
        uint64_t left = end - now, slice = left < 50000000u ? left : 50000000u; /* 50 ms slices */
        struct timespec ts = { (time_t)(slice / 1000000000u), (long)(slice % 1000000000u) };
        nanosleep(&ts, NULL); /* EINTR: the loop re-checks the flag */
    }
}

static sigset_t stop_signals;
static const char *stop_progname = "ituna";

static void *signal_thread(void *arg) {
    (void)arg;
    int count = 0;
    for (;;) {
        int sig = 0;
        if (sigwait(&stop_signals, &sig) != 0) continue;
        if (++count == 1) {
            fprintf(stderr, "%s: %s received, stopping (again to exit at once)\n", stop_progname,
                    strsignal(sig));
            ituna_stop_request();
        } else {
            fprintf(stderr, "%s: second %s, exiting without flushing\n", stop_progname, strsignal(sig));
            _exit(128 + sig);
        }
    }
    return NULL;
}

ituna_err ituna_stop_on_signals(const char *progname) {
    if (progname) stop_progname = progname;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_t th;
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, NULL) != 0 ||
        pthread_create(&th, NULL, signal_thread, NULL) != 0)
        return ITUNA_ERR_IO;
    pthread_detach(th);
    return ITUNA_OK;
}
