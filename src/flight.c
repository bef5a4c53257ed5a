#define _POSIX_C_SOURCE 200809L

#include "flight.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "interrupt.h"

/* What a finished slot keeps of a large answer: the transfer's buffer is
 * given back past this, so that idle slots do not pin one page each. */
#define ES_SLOT_KEEP (1024 * 1024)

/* The driving thread's stack: libcurl's transfers, TLS included, need far
 * less; the default (8 MiB of address space) would be reserved per client. */
#define ES_DRIVER_STACK (512 * 1024)

static void *drive(void *arg);

/* The parent's flights a child forgot: never used or freed there, only
 * kept reachable (a leak checker would otherwise count their handles and
 * slots as lost). The lock is taken only in a child, and only here. */
#define ES_FORSAKEN_MAX 16
static pthread_mutex_t forsaken_lock = PTHREAD_MUTEX_INITIALIZER;
static int forsaken_count;
/* not static: a static array written and never read, the compiler may
 * leave out (it is not exported: the module's symbols are hidden) */
es_flight *es_flight_forsaken[ES_FORSAKEN_MAX];

/* In a child forked while the thread ran: no thread, a lock that may be
 * held forever, connections shared with the parent. Forgotten, not freed
 * or closed (closing a TLS connection would write to the parent's); the
 * limit is kept. */
static void forget_if_forked(es_flight *f)
{
    es_flight *copy;
    int limit;
    if (!f->driving || f->owner == getpid())
        return;
    copy = malloc(sizeof *copy);
    if (copy != NULL) {
        memcpy(copy, f, sizeof *copy);
        pthread_mutex_lock(&forsaken_lock);
        if (forsaken_count < ES_FORSAKEN_MAX)
            es_flight_forsaken[forsaken_count++] = copy;
        else
            free(copy);     /* past that many, they are let go */
        pthread_mutex_unlock(&forsaken_lock);
    }
    limit = f->limit;
    memset(f, 0, sizeof *f);
    f->limit = limit;
}

/* The lock and the conditions, the done condition on the monotonic clock
 * (timed waits must not move with the wall clock). 0 when they could not
 * be made. */
static int synchronise(es_flight *f)
{
    pthread_condattr_t attr;
    int ok = 0;
    if (pthread_mutex_init(&f->lock, NULL) != 0)
        return 0;
    if (pthread_condattr_init(&attr) == 0) {
        if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&f->done, &attr) == 0) {
            if (pthread_cond_init(&f->work, NULL) == 0)
                ok = 1;
            else
                pthread_cond_destroy(&f->done);
        }
        pthread_condattr_destroy(&attr);
    }
    if (!ok)
        pthread_mutex_destroy(&f->lock);
    f->synchronised = ok;
    return ok;
}

/* The multi handle, the lock and the thread, at the first start. */
static const char *open_multi(es_flight *f)
{
    pthread_attr_t attr;
    sigset_t all, before;
    int made;

    if (!f->synchronised && !synchronise(f))
        return "could not make a lock for requests in flight";
    es_http_global_lock();
    f->multi = curl_multi_init();
    es_http_global_unlock();
    if (f->multi == NULL)
        return "libcurl could not create a multi handle";
    /* HTTP/2 streams on one connection where the server offers it */
    curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* keep a connection per slot between bursts */
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)ES_FLIGHT_MAX);

    /* the thread takes no signal: the host's (and the tool's Ctrl-C) stay
     * with the threads the host made */
    if (pthread_attr_init(&attr) != 0) {
        curl_multi_cleanup(f->multi);
        f->multi = NULL;
        return "could not start the thread for requests in flight";
    }
    pthread_attr_setstacksize(&attr, ES_DRIVER_STACK);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &before);
    f->stop = 0;
    made = pthread_create(&f->driver, &attr, drive, f) == 0;
    pthread_sigmask(SIG_SETMASK, &before, NULL);
    pthread_attr_destroy(&attr);
    if (!made) {
        curl_multi_cleanup(f->multi);
        f->multi = NULL;
        return "could not start the thread for requests in flight";
    }
    f->driving = 1;
    f->owner = getpid();
    return NULL;
}

static const char *new_handle(const es_session *s, es_slot *slot)
{
    const char *failure;
    slot->easy = es_session_new_handle();
    if (slot->easy == NULL)
        return "libcurl could not create a handle";
    failure = es_session_configure(s, slot->easy);
    if (failure == NULL && (es_transfer_attach(&slot->transfer, slot->easy) != CURLE_OK ||
                            curl_easy_setopt(slot->easy, CURLOPT_PRIVATE, (void *)slot) != CURLE_OK))
        failure = "libcurl refused a handle's callbacks";
    if (failure != NULL) {
        curl_easy_cleanup(slot->easy);
        slot->easy = NULL;
    }
    return failure;
}

/* The method, body, headers and URL of one request, all stated: the
 * handle keeps whatever its last request set. */
static CURLcode prepare(const es_session *s, es_slot *slot, const char *method, const char *url,
                        size_t body_len, int with_body, int once, int compressed)
{
    CURL *easy = slot->easy;
    const char *custom;
    CURLcode rc;

    if (with_body) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        /* once: read through the transfer's read callback, which cannot
         * rewind; else from the slot's copy, which libcurl may send again */
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS,
                         once ? NULL : (slot->body.data != NULL ? slot->body.data : ""));
    } else {
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }
    custom = strcmp(method, with_body ? "POST" : "GET") == 0 ? NULL : method;
    rc = curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, custom);
    if (rc != CURLE_OK)
        return rc;
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, s->headers[with_body][compressed != 0]);
    /* wait for a connection being made, to learn whether it takes more
     * streams, rather than open one more: only HTTPS can be HTTP/2 here */
    curl_easy_setopt(easy, CURLOPT_PIPEWAIT, strncmp(url, "https:", 6) == 0 ? 1L : 0L);
    return curl_easy_setopt(easy, CURLOPT_URL, url);
}

int es_flight_start(es_flight *f, const es_session *s, const char *method, const char *url,
                    const char *body, size_t body_len, int once, int compressed, const char **failure)
{
    es_slot *slot = NULL;
    int i, with_body = body != NULL;

    forget_if_forked(f);
    if (f->multi == NULL && (*failure = open_multi(f)) != NULL)
        return -1;
    /* a slot neither busy nor finished is the caller's alone: the thread
     * does not touch it; the flags are read under the lock, the thread's
     * finishing them included */
    pthread_mutex_lock(&f->lock);
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        if (f->slots[i] == NULL) {
            f->slots[i] = calloc(1, sizeof *f->slots[i]);
            if (f->slots[i] == NULL) {
                pthread_mutex_unlock(&f->lock);
                *failure = "out of memory";
                return -1;
            }
        }
        if (!f->slots[i]->busy && !f->slots[i]->finished) {
            slot = f->slots[i];
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (slot == NULL) {
        *failure = "too many requests in flight on one client";
        return -1;
    }
    if (slot->easy == NULL && (*failure = new_handle(s, slot)) != NULL)
        return -1;
    slot->body.len = 0;
    if (with_body && !es_buffer_append(&slot->body, body, body_len)) {
        *failure = "out of memory";
        return -1;
    }
    es_transfer_begin(&slot->transfer, s->max_body,
                      with_body && once ? (slot->body.data != NULL ? slot->body.data : "") : NULL, body_len);
    if (prepare(s, slot, method, url, body_len, with_body, once, compressed) != CURLE_OK) {
        es_transfer_end(&slot->transfer);
        *failure = "libcurl refused the request (its URL or method)";
        return -1;
    }
    slot->rc = CURLE_OK;
    slot->status = 0;
    slot->sent_at = 0;
    /* the thread's from here: it goes out at once, on the thread, or when
     * there is room on the wire */
    pthread_mutex_lock(&f->lock);
    slot->busy = 1;
    slot->queued = 1;
    slot->round++;
    slot->order = ++f->started;
    f->in_flight++;
    pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->lock);
    curl_multi_wakeup(f->multi);
    return i;
}

/* The slot of an easy handle, or -1. */
static int slot_of(es_flight *f, CURL *easy)
{
    es_slot *slot = NULL;
    int i;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        if (slot != NULL && f->slots[i] == slot)
            return i;
    }
    return -1;
}

/* Whether a report still stands: its slot has finished that request, and
 * its answer has not been taken (under the lock). */
static int standing(const es_flight *f, int k)
{
    const es_slot *slot = f->slots[f->report[k].slot];
    return slot != NULL && slot->finished && slot->round == f->report[k].round;
}

/* A busy slot's request has ended (under the lock): its answer is the
 * caller's, reported in the order requests end. */
static void report(es_flight *f, int i)
{
    es_slot *slot = f->slots[i];
    int at;
    if (f->report_count == ES_FLIGHT_MAX) {
        /* full of reports of answers taken without a wait: only those that
         * still stand are kept (at most one a slot, and this slot has none,
         * so there is room after) */
        int k, kept = 0;
        for (k = 0; k < ES_FLIGHT_MAX; k++) {
            int from = (f->report_first + k) % ES_FLIGHT_MAX;
            if (standing(f, from))
                f->report[(f->report_first + kept++) % ES_FLIGHT_MAX] = f->report[from];
        }
        f->report_count = kept;
    }
    at = (f->report_first + f->report_count) % ES_FLIGHT_MAX;
    slot->busy = 0;
    slot->finished = 1;
    f->in_flight--;
    f->report[at].slot = i;
    f->report[at].round = slot->round;
    f->report_count++;
    pthread_cond_signal(&f->done);
}

/* A transfer libcurl says is done (the thread, under the lock): out of the
 * multi handle, its answer kept in the slot for the caller. */
static void finish(es_flight *f, CURL *easy, CURLcode rc)
{
    long request_size = 0;
    int i = slot_of(f, easy);
    es_slot *slot;
    if (i < 0 || !f->slots[i]->busy || f->slots[i]->queued)
        return;
    slot = f->slots[i];
    slot->rc = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &slot->status);
    /* as es_session_perform: did any request go out? */
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    slot->transfer.request_sent = request_size > 0;
    /* the API's budget is spent: what is held back waits for the caller */
    if (slot->status == 429)
        f->held = 1;
    curl_multi_remove_handle(f->multi, easy);
    es_transfer_end(&slot->transfer);
    f->on_wire--;
    report(f, i);
}

/* The multi handle failed as a whole (the thread, under the lock): every
 * transfer in flight ends with that failure, so that each request is
 * answered. */
static void fail_all(es_flight *f, const char *why)
{
    int i;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        es_slot *slot = f->slots[i];
        if (slot != NULL && slot->busy) {
            if (!slot->queued) {
                curl_multi_remove_handle(f->multi, slot->easy);
                f->on_wire--;
            }
            es_transfer_end(&slot->transfer);
            slot->rc = CURLE_RECV_ERROR;
            snprintf(slot->transfer.errbuf, sizeof slot->transfer.errbuf,
                     "libcurl's multi handle failed: %s", why);
            /* what went out is unknown: say it may have */
            slot->transfer.request_sent = !slot->queued;
            slot->queued = 0;
            report(f, i);
        }
    }
    f->failed = why;
}

static int room_on_wire(const es_flight *f)
{
    return !f->held && (f->limit == 0 || f->on_wire < f->limit);
}

/* The waiting request started first (under the lock), or -1. */
static int first_waiting(const es_flight *f)
{
    int i, first = -1;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        const es_slot *slot = f->slots[i];
        if (slot != NULL && slot->queued && (first < 0 || slot->order < f->slots[first]->order))
            first = i;
    }
    return first;
}

/* The requests waiting go into the multi handle, in the order started, as
 * far as the limit allows (the thread, under the lock); one libcurl
 * refuses ends unsent. */
static void add_waiting(es_flight *f)
{
    int i;
    while (room_on_wire(f) && (i = first_waiting(f)) >= 0) {
        es_slot *slot = f->slots[i];
        slot->queued = 0;
        if (curl_multi_add_handle(f->multi, slot->easy) != CURLM_OK) {
            es_transfer_end(&slot->transfer);
            slot->rc = CURLE_FAILED_INIT;
            snprintf(slot->transfer.errbuf, sizeof slot->transfer.errbuf, "libcurl refused one more transfer");
            slot->transfer.request_sent = 0;
            report(f, i);
        } else {
            slot->sent_at = es_monotonic();
            f->on_wire++;
        }
    }
}

/* The thread: takes in what the requests in flight receive and sends what
 * they send, as soon as it can, whatever the caller is doing; sleeps when
 * none is in flight. Holds the lock except inside libcurl's perform and
 * poll, which touch only transfers in flight (no callback of theirs needs
 * the lock: each writes into its own slot's transfer). */
static void *drive(void *arg)
{
    es_flight *f = arg;
    CURLMcode mc;
    CURLMsg *m;
    int running, left;

    pthread_mutex_lock(&f->lock);
    while (!f->stop) {
        if (f->in_flight == 0) {
            pthread_cond_wait(&f->work, &f->lock);
            continue;
        }
        add_waiting(f);
        pthread_mutex_unlock(&f->lock);
        mc = curl_multi_perform(f->multi, &running);
        pthread_mutex_lock(&f->lock);
        while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE)
                finish(f, m->easy_handle, m->data.result);
        }
        /* no poll when a request waits and there is room for it now */
        if (mc == CURLM_OK && f->in_flight > 0 && !f->stop) {
            if (!room_on_wire(f) || first_waiting(f) < 0) {
                pthread_mutex_unlock(&f->lock);
                /* until a transfer can move on, or es_flight_start or
                 * es_flight_close wakes it */
                mc = curl_multi_poll(f->multi, NULL, 0, 1000, NULL);
                pthread_mutex_lock(&f->lock);
            }
        }
        if (mc != CURLM_OK)
            fail_all(f, curl_multi_strerror(mc));
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* The first report still standing (under the lock), or ES_FLIGHT_NONE: a
 * slot whose answer was taken without a wait has no report any more. */
static int next_report(es_flight *f)
{
    while (f->report_count > 0) {
        int k = f->report_first;
        f->report_first = (f->report_first + 1) % ES_FLIGHT_MAX;
        f->report_count--;
        if (standing(f, k))
            return f->report[k].slot;
    }
    return ES_FLIGHT_NONE;
}

int es_flight_wait(es_flight *f, long timeout_ms, const char **failure)
{
    double deadline = timeout_ms >= 0 ? es_monotonic() + (double)timeout_ms / 1000.0 : 0;
    int i;

    forget_if_forked(f);
    if (f->multi == NULL)
        return ES_FLIGHT_NONE;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        struct timespec until;
        double left = 1.0, at;
        if (f->failed != NULL) {
            *failure = f->failed;
            f->failed = NULL;
            pthread_mutex_unlock(&f->lock);
            return ES_FLIGHT_FAILED;
        }
        i = next_report(f);
        if (i >= 0 || f->in_flight == 0) {
            pthread_mutex_unlock(&f->lock);
            return i >= 0 ? i : ES_FLIGHT_NONE;
        }
        if (timeout_ms >= 0) {
            left = deadline - es_monotonic();
            /* the caller waits for a time to start more: after the tool's
             * Ctrl-C nothing more starts (interrupt.h) */
            if (left <= 0 || es_interrupt_seen()) {
                pthread_mutex_unlock(&f->lock);
                return ES_FLIGHT_TIMEOUT;
            }
            if (left > 1.0)
                left = 1.0;
        }
        {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            at = (double)now.tv_nsec / 1e9 + left;
            until.tv_sec = now.tv_sec + (time_t)at;
            until.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
        }
        (void)pthread_cond_timedwait(&f->done, &f->lock, &until);
    }
}

void es_flight_limit(es_flight *f, int n)
{

    forget_if_forked(f);
    if (n < 0 || n > ES_FLIGHT_MAX)
        n = 0;
    if (!f->synchronised) {
        f->limit = n;
        return;
    }
    pthread_mutex_lock(&f->lock);
    f->limit = n;
    /* more room: the thread looks again */
    pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->lock);
    if (f->multi != NULL)
        curl_multi_wakeup(f->multi);
}

double es_flight_sent_at(es_flight *f, int i, long *status)
{
    double at;

    forget_if_forked(f);
    *status = 0;
    if (f->slots[i] == NULL || !f->synchronised)
        return 0;
    pthread_mutex_lock(&f->lock);
    at = f->slots[i]->sent_at;
    if (f->slots[i]->finished)
        *status = f->slots[i]->status;
    pthread_mutex_unlock(&f->lock);
    return at;
}

int es_flight_recall(es_flight *f, int i)
{
    es_slot *slot;
    int recalled = 0;

    forget_if_forked(f);
    slot = f->slots[i];
    if (slot == NULL || !f->synchronised)
        return 0;
    pthread_mutex_lock(&f->lock);
    if (slot->busy && slot->queued) {
        slot->busy = slot->queued = 0;
        f->in_flight--;
        recalled = 1;
    }
    pthread_mutex_unlock(&f->lock);
    /* the caller's again: its transfer ends unsent */
    if (recalled)
        es_transfer_end(&slot->transfer);
    return recalled;
}

void es_flight_release(es_flight *f)
{
    forget_if_forked(f);
    if (!f->synchronised)
        return;
    pthread_mutex_lock(&f->lock);
    f->held = 0;
    pthread_cond_signal(&f->work);
    pthread_mutex_unlock(&f->lock);
    if (f->multi != NULL)
        curl_multi_wakeup(f->multi);
}

int es_flight_finished(es_flight *f, int i)
{
    int finished;

    forget_if_forked(f);
    if (f->slots[i] == NULL || !f->synchronised)
        return 0;
    pthread_mutex_lock(&f->lock);
    finished = f->slots[i]->finished;
    pthread_mutex_unlock(&f->lock);
    return finished;
}

int es_flight_held(es_flight *f)
{
    int n = 0, i;

    forget_if_forked(f);
    if (!f->synchronised)
        return 0;
    pthread_mutex_lock(&f->lock);
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        if (f->slots[i] != NULL)
            n += f->slots[i]->busy || f->slots[i]->finished;
    }
    pthread_mutex_unlock(&f->lock);
    return n;
}

void es_flight_taken(es_flight *f, int i)
{
    es_slot *slot = f->slots[i];
    pthread_mutex_lock(&f->lock);
    slot->finished = 0;
    pthread_mutex_unlock(&f->lock);
    es_buffer_rewind(&slot->body, ES_SLOT_KEEP);
    es_buffer_rewind(&slot->transfer.body, ES_SLOT_KEEP);
}

void es_flight_close(es_flight *f)
{
    int i;

    forget_if_forked(f);
    if (f->driving) {
        pthread_mutex_lock(&f->lock);
        f->stop = 1;
        pthread_cond_signal(&f->work);
        pthread_mutex_unlock(&f->lock);
        curl_multi_wakeup(f->multi);
        pthread_join(f->driver, NULL);
        f->driving = 0;
    }
    /* the thread is gone: everything is the caller's */
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        es_slot *slot = f->slots[i];
        if (slot == NULL)
            continue;
        if (slot->busy && !slot->queued)
            curl_multi_remove_handle(f->multi, slot->easy);
        if (slot->easy != NULL)
            curl_easy_cleanup(slot->easy);
        es_transfer_free(&slot->transfer);
        es_buffer_free(&slot->body);
        free(slot);
        f->slots[i] = NULL;
    }
    if (f->multi != NULL) {
        curl_multi_cleanup(f->multi);
        f->multi = NULL;
    }
    f->in_flight = f->on_wire = f->held = 0;
    f->report_first = f->report_count = 0;
    f->failed = NULL;
    if (f->synchronised) {
        pthread_cond_destroy(&f->work);
        pthread_cond_destroy(&f->done);
        pthread_mutex_destroy(&f->lock);
        f->synchronised = 0;
    }
}
