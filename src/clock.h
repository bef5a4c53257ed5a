/*
 * Time for the retry and rate-limit policy: a monotonic clock (wall-clock
 * jumps must not shorten or stretch a wait) and a sleep that needs no
 * signals.
 */
#ifndef ES_CLOCK_H
#define ES_CLOCK_H

/* Seconds since an arbitrary point, never going backwards. */
double es_monotonic(void);

/* Sleeps for that many seconds (at most a day); resumes after a signal,
 * but for the command-line tool's Ctrl-C (interrupt.h). */
void es_sleep(double seconds);

#endif
