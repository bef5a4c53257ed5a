/*
 * One request's state, apart from the session that sends it: the answer's
 * body and the headers seen so far, the flags its callbacks raise, the
 * upload cursor of a body sent at most once, and libcurl's error text.
 * libcurl's callbacks write here and nowhere else; they know nothing of
 * Lua, so they cannot raise a Lua error: they only copy bytes and set flags.
 */
#ifndef ES_TRANSFER_H
#define ES_TRANSFER_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"
#include "http.h"

typedef struct es_transfer {
    es_buffer body;                     /* kept from one request to the next */
    size_t max_body;
    int body_too_large;
    int out_of_memory;
    char header_values[ES_HDR_COUNT][ES_HDR_VALUE_MAX];  /* where header_seen says */
    unsigned header_seen;               /* bit i: header i came with this answer */
    const char *upload;                 /* a body sent at most once, while sent */
    size_t upload_left;
    int request_sent;                   /* the request's bytes went out */
    int coded;                          /* the answer named a Content-Encoding */
    char refused_coding[ES_HDR_VALUE_MAX];  /* one it names that is not decoded, or "" */
    char errbuf[CURL_ERROR_SIZE];
} es_transfer;

/* Points easy's callbacks and error buffer at t: CURLE_OK, or libcurl's
 * refusal. */
CURLcode es_transfer_attach(es_transfer *t, CURL *easy);

/* Forgets the last request's answer, before a new one; upload: the body
 * read through the read callback (a body sent at most once), or NULL. */
void es_transfer_begin(es_transfer *t, size_t max_body, const char *upload, size_t upload_len);

/* After the request: the body belongs to the caller, so no pointer to it
 * is kept. */
void es_transfer_end(es_transfer *t);

/* "" when the answer did not carry that header. Of a header sent twice,
 * the first value counts (the nginx transport reads them the same way).
 * Bytes outside printable ASCII are kept as '?'. */
const char *es_transfer_header(const es_transfer *t, int which);

/* What went wrong when libcurl could not decode the answer's content (rc:
 * the transfer's code), in es_content_decode's words where the two meet;
 * NULL when the failure was not that. */
const char *es_transfer_decode_failure(const es_transfer *t, CURLcode rc);

void es_transfer_free(es_transfer *t);

#endif
