#include "flight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "interrupt.h"

/* What a finished slot keeps of a large answer: the transfer's buffer is
 * given back past this, so that idle slots do not pin one page each. */
#define ES_SLOT_KEEP (1024 * 1024)

static const char *open_multi(es_flight *f)
{
    es_http_global_lock();
    f->multi = curl_multi_init();
    es_http_global_unlock();
    if (f->multi == NULL)
        return "libcurl could not create a multi handle";
    /* HTTP/2 streams on one connection where the server offers it */
    curl_multi_setopt(f->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* keep a connection per slot between bursts */
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)ES_FLIGHT_MAX);
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

    if (f->multi == NULL && (*failure = open_multi(f)) != NULL)
        return -1;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        if (f->slots[i] == NULL) {
            f->slots[i] = calloc(1, sizeof *f->slots[i]);
            if (f->slots[i] == NULL) {
                *failure = "out of memory";
                return -1;
            }
        }
        if (!f->slots[i]->busy && !f->slots[i]->finished) {
            slot = f->slots[i];
            break;
        }
    }
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
    if (curl_multi_add_handle(f->multi, slot->easy) != CURLM_OK) {
        es_transfer_end(&slot->transfer);
        *failure = "libcurl refused one more transfer";
        return -1;
    }
    slot->busy = 1;
    slot->rc = CURLE_OK;
    slot->status = 0;
    f->in_flight++;
    /* on its way now, not at the next wait: the caller may read answers
     * for a while first. Whatever else this moves on, es_flight_wait
     * reports; a failure here, it meets again. */
    {
        int running;
        (void)curl_multi_perform(f->multi, &running);
    }
    return i;
}

/* A transfer libcurl says is done: out of the multi handle, its answer
 * kept in the slot for the caller. */
static int finish(es_flight *f, CURL *easy, CURLcode rc)
{
    es_slot *slot = NULL;
    long request_size = 0;
    int i;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
    for (i = 0; i < ES_FLIGHT_MAX && f->slots[i] != slot; i++)
        ;
    if (slot == NULL || i == ES_FLIGHT_MAX || !slot->busy)
        return ES_FLIGHT_NONE;
    slot->rc = rc;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &slot->status);
    /* as es_session_perform: did any request go out? */
    curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    slot->transfer.request_sent = request_size > 0;
    curl_multi_remove_handle(f->multi, easy);
    es_transfer_end(&slot->transfer);
    slot->busy = 0;
    slot->finished = 1;
    f->in_flight--;
    return i;
}

static int next_finished(es_flight *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE) {
            int i = finish(f, m->easy_handle, m->data.result);
            if (i >= 0)
                return i;
        }
    }
    return ES_FLIGHT_NONE;
}

/* The multi handle failed as a whole: every transfer in flight ends with
 * that failure, so that each request is answered. */
static void fail_all(es_flight *f, const char *why)
{
    int i;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        es_slot *slot = f->slots[i];
        if (slot != NULL && slot->busy) {
            curl_multi_remove_handle(f->multi, slot->easy);
            es_transfer_end(&slot->transfer);
            slot->rc = CURLE_RECV_ERROR;
            snprintf(slot->transfer.errbuf, sizeof slot->transfer.errbuf,
                     "libcurl's multi handle failed: %s", why);
            /* what went out is unknown: say it may have */
            slot->transfer.request_sent = 1;
            slot->busy = 0;
            slot->finished = 1;
            slot->unreported = 1;
            f->in_flight--;
        }
    }
}

/* A slot fail_all ended, not yet given. */
static int next_unreported(es_flight *f)
{
    int i;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        if (f->slots[i] != NULL && f->slots[i]->unreported) {
            f->slots[i]->unreported = 0;
            return i;
        }
    }
    return ES_FLIGHT_NONE;
}

int es_flight_wait(es_flight *f, long timeout_ms, const char **failure)
{
    double deadline = timeout_ms >= 0 ? es_monotonic() + (double)timeout_ms / 1000.0 : 0;
    int running, i;
    CURLMcode mc;

    if (f->multi == NULL)
        return ES_FLIGHT_NONE;
    i = next_unreported(f);
    if (i >= 0)
        return i;
    for (;;) {
        /* first the transfers' work that is ready, without waiting: the
         * requests started since the last call go out now, and are on
         * their way while the caller reads an answer already here */
        mc = f->in_flight > 0 ? curl_multi_perform(f->multi, &running) : CURLM_OK;
        i = next_finished(f);
        if (i >= 0)
            return i;
        if (f->in_flight == 0)
            return ES_FLIGHT_NONE;
        if (mc == CURLM_OK) {
            long wait_ms = 1000;
            if (timeout_ms >= 0) {
                double left = deadline - es_monotonic();
                /* the caller waits for a time to start more: after the
                 * tool's Ctrl-C nothing more starts (interrupt.h) */
                if (left <= 0 || es_interrupt_seen())
                    return ES_FLIGHT_TIMEOUT;
                /* a millisecond more, so that the deadline has passed
                 * when the poll ends */
                wait_ms = (long)(left * 1000.0) + 1;
                if (wait_ms > 1000)
                    wait_ms = 1000;
            }
            mc = curl_multi_poll(f->multi, NULL, 0, (int)wait_ms, NULL);
        }
        if (mc != CURLM_OK) {
            *failure = curl_multi_strerror(mc);
            fail_all(f, *failure);
            return ES_FLIGHT_FAILED;
        }
    }
}

void es_flight_taken(es_flight *f, int i)
{
    es_slot *slot = f->slots[i];
    slot->finished = 0;
    es_buffer_rewind(&slot->body, ES_SLOT_KEEP);
    es_buffer_rewind(&slot->transfer.body, ES_SLOT_KEEP);
}

void es_flight_close(es_flight *f)
{
    int i;
    for (i = 0; i < ES_FLIGHT_MAX; i++) {
        es_slot *slot = f->slots[i];
        if (slot == NULL)
            continue;
        if (slot->busy)
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
    f->in_flight = 0;
}
