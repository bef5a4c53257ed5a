/*
 * Requests in flight at once on one session: libcurl's multi handle, and a
 * slot per request, each with an easy handle and a transfer of its own.
 * Over HTTPS the requests share one HTTP/2 connection where the server
 * offers it; otherwise each has an HTTP/1.1 connection, kept for the next.
 * The session's single request (es_session_perform) has its own handle and
 * is not affected. Knows nothing of Lua.
 */
#ifndef ES_FLIGHT_H
#define ES_FLIGHT_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"
#include "session.h"
#include "transfer.h"

/* The most requests one session holds at once, in flight or finished with
 * their answers not yet taken: three times the client's largest
 * concurrency (64). The scheduler keeps up to that many answers of pages
 * ahead unread, as many more in flight, and as many again between a wait
 * and the reading of what it gathered. Slots are made on first use. */
#define ES_FLIGHT_MAX 192

typedef struct es_slot {
    CURL *easy;                 /* made on first use, kept for the next */
    es_transfer transfer;
    es_buffer body;             /* the request's body, copied: the caller's
                                 * string need not outlive the call */
    int busy;                   /* in the multi handle, not yet finished */
    int finished;               /* finished, its answer not yet taken */
    int unreported;             /* ended by a failure of the multi handle,
                                 * not yet given by es_flight_wait */
    CURLcode rc;
    long status;
} es_slot;

typedef struct es_flight {
    CURLM *multi;               /* made on first use */
    es_slot *slots[ES_FLIGHT_MAX];  /* each made on first use: libcurl
                                     * holds its address (CURLOPT_PRIVATE) */
    int in_flight;              /* slots busy */
} es_flight;

/* Adds a request to those in flight; once and compressed as for
 * es_session_perform. The slot's index (0 to ES_FLIGHT_MAX - 1), or -1
 * with *failure saying why (out of memory, all slots busy, libcurl refused
 * the URL); nothing is sent then. */
int es_flight_start(es_flight *f, const es_session *s, const char *method, const char *url,
                    const char *body, size_t body_len, int once, int compressed, const char **failure);

/* What es_flight_wait found. */
enum { ES_FLIGHT_NONE = -1, ES_FLIGHT_TIMEOUT = -2, ES_FLIGHT_FAILED = -3 };

/* Drives the transfers until one finishes, and gives its slot (its rc,
 * status and transfer say how it went; es_flight_taken frees it for
 * reuse). ES_FLIGHT_NONE: none is in flight; ES_FLIGHT_TIMEOUT: none
 * finished within timeout_ms (negative: no limit); ES_FLIGHT_FAILED: the
 * multi handle itself failed (*failure says how), and every transfer in
 * flight was ended with that failure: the next calls give them. */
int es_flight_wait(es_flight *f, long timeout_ms, const char **failure);

/* The answer of a finished slot has been read: the slot may be used again. */
void es_flight_taken(es_flight *f, int slot);

/* Ends every transfer (those in flight are abandoned where they are) and
 * frees everything; idempotent. Never called from a libcurl callback. */
void es_flight_close(es_flight *f);

#endif
