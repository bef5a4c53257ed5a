/* Preloaded (LD_PRELOAD) into a child process by
 * spec/client/in_flight_review_spec.lua: it stands in for poll(), and the
 * one call with a positive timeout whose number FAIL_POLL_AT names (1: the
 * first) fails with ENOMEM, as a kernel out of memory makes it fail.
 * libcurl's curl_multi_poll then gives CURLM_UNRECOVERABLE_POLL, and the
 * spec sees what the core does with the requests that were in flight on
 * the multi handle. Every other call is the C library's poll().
 *
 *   cc -shared -fPIC -o failpoll.so spec/support/failpoll.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
static int calls;
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    static int (*real)(struct pollfd *, nfds_t, int);
    const char *at = getenv("FAIL_POLL_AT");
    if (!real) real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    if (at && timeout > 0 && ++calls == atoi(at)) { errno = ENOMEM; return -1; }
    return real(fds, n, timeout);
}
