/*
 * Requests in flight at once on one session: libcurl's multi handle, and a
 * slot per request, each with an easy handle and a transfer of its own.
 * Over HTTPS the requests share one HTTP/2 connection where the server
 * offers it; otherwise each has an HTTP/1.1 connection, kept for the next.
 * The session's single request (es_session_perform) has its own handle and
 * is not affected. Knows nothing of Lua.
 *
 * The multi handle is driven by a thread of its own (made at the first
 * start, ended by es_flight_close), so that answers are taken in and
 * requests go out while the caller is busy reading another answer. With a
 * limit (es_flight_limit), at most that many are on the wire: a request
 * started past it waits in the flight and goes out, in the order started,
 * the moment one on the wire ends, rather than when the caller next looks
 * (a listing reading a page of 1,000 entries looks every few milliseconds,
 * and a whole round of pages finished meanwhile waited for it).
 *
 * The thread touches a slot only while it is busy; the caller only while
 * it is not. Every flag below is read and written under the lock.
 */
#ifndef ES_FLIGHT_H
#define ES_FLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <curl/curl.h>

#include "buffer.h"
#include "session.h"
#include "transfer.h"

/* The most requests one session holds at once, in flight, held back for
 * room on the wire, or finished with their answers not yet taken: five
 * times the client's largest concurrency (64). The scheduler has up to
 * twice that many started (a listing's pages ahead held back past the
 * limit), keeps up to that many answers unread, and between a wait and the
 * reading of what it gathered holds as many as were started again while
 * those it gathered are still unread. Slots are made on first use. */
#define ES_FLIGHT_MAX 320

typedef struct es_slot {
    CURL *easy;                 /* made on first use, kept for the next */
    es_transfer transfer;
    es_buffer body;             /* the request's body, copied: the caller's
                                 * string need not outlive the call */
    int busy;                   /* the thread's: started, not yet finished */
    int queued;                 /* busy, waiting for room on the wire */
    int finished;               /* finished, its answer not yet taken */
    unsigned long order;        /* when it was started, among all starts:
                                 * the waiting go out in this order */
    unsigned round;             /* counts the slot's requests: tells a
                                 * finished request's report from a later
                                 * request's in the same slot */
    double sent_at;             /* es_monotonic() when it went on the
                                 * wire; 0: it did not */
    CURLcode rc;
    long status;
} es_slot;

typedef struct es_flight {
    CURLM *multi;               /* made on first use */
    es_slot *slots[ES_FLIGHT_MAX];  /* each made on first use: libcurl
                                     * holds its address (CURLOPT_PRIVATE) */
    int in_flight;              /* slots busy */
    int on_wire;                /* slots busy and not queued */
    int limit;                  /* the most on the wire; 0: no limit */
    unsigned long started;      /* starts so far (the slots' order) */
    /* the thread, the lock and what they share (made with the multi) */
    pthread_t driver;
    pthread_mutex_t lock;
    pthread_cond_t work;        /* the thread waits for a request here */
    pthread_cond_t done;        /* the caller waits for an answer here */
    int synchronised;           /* lock and conditions made */
    int driving;                /* the thread runs */
    pid_t owner;                /* the process that made the thread: in a
                                 * child forked since, there is none */
    int stop;                   /* the thread is to end */
    int held;                   /* an answer was 429: nothing held back
                                 * goes out until es_flight_release */
    const char *failed;         /* the multi handle failed: how, until a
                                 * wait has said so */
    /* finished requests in the order they finished, not yet given by a
     * wait: a slot and its round (at most one report per slot) */
    struct { int slot; unsigned round; } report[ES_FLIGHT_MAX];
    int report_first, report_count;
} es_flight;

/* Adds a request to those in flight; once and compressed as for
 * es_session_perform. The slot's index (0 to ES_FLIGHT_MAX - 1), or -1
 * with *failure saying why (out of memory, all slots busy, libcurl refused
 * the URL); nothing is sent then. */
int es_flight_start(es_flight *f, const es_session *s, const char *method, const char *url,
                    const char *body, size_t body_len, int once, int compressed, const char **failure);

/* What es_flight_wait found. */
enum { ES_FLIGHT_NONE = -1, ES_FLIGHT_TIMEOUT = -2, ES_FLIGHT_FAILED = -3 };

/* Waits until a transfer finishes (the thread drives them), and gives its
 * slot, in the order they finished (its rc, status and transfer say how
 * it went; es_flight_taken frees it for reuse). ES_FLIGHT_NONE: none is
 * in flight; ES_FLIGHT_TIMEOUT: none finished within timeout_ms
 * (negative: no limit); ES_FLIGHT_FAILED: the multi handle itself failed
 * (*failure says how), and every transfer in flight was ended with that
 * failure: the next calls give them. */
int es_flight_wait(es_flight *f, long timeout_ms, const char **failure);

/* At most n requests on the wire at once (1 to ES_FLIGHT_MAX; 0: no
 * limit): those started past it wait, in the order started, for one to end.
 * Applies to the next that would go out. */
void es_flight_limit(es_flight *f, int n);

/* Whether a slot's request has finished with its answer not yet taken. */
int es_flight_finished(es_flight *f, int slot);

/* When a finished slot's request went on the wire (es_monotonic()), or 0
 * when it never did; and its HTTP status (0: none came). */
double es_flight_sent_at(es_flight *f, int slot, long *status);

/* Takes back a request held back for room on the wire, which then never
 * goes out: 1 when it was still held back (its slot is free again, and no
 * wait gives it), 0 when it is on the wire or finished. */
int es_flight_recall(es_flight *f, int slot);

/* After an answer with status 429 the thread puts nothing held back on the
 * wire (the API says its budget is spent; the caller decides what to
 * send, and when): until this. */
void es_flight_release(es_flight *f);

/* How many slots hold a request: in flight, or finished with its answer
 * not yet taken. */
int es_flight_held(es_flight *f);

/* The answer of a finished slot has been read: the slot may be used again. */
void es_flight_taken(es_flight *f, int slot);

/* In a child process forked while the thread ran, the flight (thread,
 * lock, handles and their connections) is the parent's: every call below
 * first forgets it, without touching it, and starts afresh. What the
 * parent's copy held is not freed in the child. */

/* The parent's flights forgotten in a child (see above), kept reachable. */
extern es_flight *es_flight_forsaken[];

/* Ends the thread and every transfer (those in flight are abandoned where
 * they are) and frees everything; idempotent. Never called from a libcurl
 * callback. */
void es_flight_close(es_flight *f);

#endif
