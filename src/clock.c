#define _POSIX_C_SOURCE 200809L

#include "clock.h"
#include "interrupt.h"

#include <errno.h>
#include <time.h>

double es_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void es_sleep(double seconds)
{
    struct timespec left;
    if (!(seconds > 0))
        return;
    if (seconds > 86400)
        seconds = 86400;
    left.tv_sec = (time_t)seconds;
    left.tv_nsec = (long)((seconds - (double)left.tv_sec) * 1e9);
    /* a signal resumes the sleep, but the command-line tool's Ctrl-C
     * (interrupt.h) ends it: what waits is not to be sent any more */
    while (nanosleep(&left, &left) != 0 && errno == EINTR && !es_interrupt_seen())
        ;
}
