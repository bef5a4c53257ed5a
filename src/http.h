/*
 * The HTTP side of a client: one libcurl easy handle, kept for the client's
 * whole life so that connections and TLS sessions are reused, with header
 * lists built once. Knows nothing of Lua, so its callbacks cannot raise a
 * Lua error: they only copy bytes into C buffers and set flags.
 */
#ifndef ES_HTTP_H
#define ES_HTTP_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"

/* Response headers worth keeping: the ray id for errors, the rest for the
 * retry and rate-limit policy. */
enum {
    ES_HDR_CF_RAY,
    ES_HDR_CONTENT_TYPE,
    ES_HDR_RETRY_AFTER,
    ES_HDR_RETRY_AFTER_MS,
    ES_HDR_SHOULD_RETRY,
    ES_HDR_RATELIMIT,
    ES_HDR_RATELIMIT_POLICY,
    ES_HDR_COUNT
};

#define ES_HDR_VALUE_MAX 128

typedef struct es_http_options {
    const char *user_agent;
    const char *ca_bundle;      /* NULL: the system's trust store */
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_body;
} es_http_options;

typedef struct es_http {
    CURL *easy;
    struct curl_slist *plain_headers;   /* requests without a body */
    struct curl_slist *json_headers;    /* requests with a JSON body */
    struct curl_slist *plain_headers_small;  /* the same, for an answer that */
    struct curl_slist *json_headers_small;   /* is one entry: no Accept-Encoding */
    es_buffer body;
    size_t max_body;
    int body_too_large;
    int out_of_memory;
    char header_values[ES_HDR_COUNT][ES_HDR_VALUE_MAX];
    unsigned header_seen;               /* bit i: header i already came */
    const char *upload;                 /* an at_most_once body, while sent */
    size_t upload_left;
    int request_sent;                   /* the last perform issued request bytes */
    char errbuf[CURL_ERROR_SIZE];
} es_http;

/* Once per process, whatever the number of Lua states: 0 on failure. */
int es_http_global_init(void);
/* libcurl's version, once es_http_global_init() has succeeded. */
const char *es_http_libcurl_version(void);
/* Held while a first use might touch a library's lazily filled statics
 * (the first `require "cjson"` of a lua_State). */
void es_http_global_lock(void);
void es_http_global_unlock(void);

/* Returns NULL, or a static message saying what failed. On failure the
 * handle is left for es_http_close to clean. */
const char *es_http_open(es_http *h, const es_http_options *o);

/* A header line sent with every request; 0 when memory runs out. */
int es_http_add_header(es_http *h, const char *line);

/* at_most_once: the request must not reach the server twice (a create).
 * When a reused keep-alive connection dies before any byte of the answer,
 * libcurl sends the request again by itself, body included; it can only
 * do that by rewinding the body, so such a body is handed to libcurl
 * through a read callback that cannot rewind: the transfer then fails
 * (CURLE_SEND_FAIL_REWIND) instead of sending it twice, and the
 * connection is still reused as any other. */
/* compressed: ask for a gzip-compressed answer (Accept-Encoding), for the
 * calls whose answers can be large: a list page, a batch. Elsewhere the
 * header would cost more than it saves (see es_http_open); a compressed
 * answer is decoded all the same, asked for or not. */
CURLcode es_http_perform(es_http *h, const char *method, const char *url,
                         const char *body, size_t body_len, int at_most_once,
                         int compressed, long *status);

/* "" when the last response did not carry that header. Of a header sent
 * twice, the first value counts (the nginx transport reads them the same
 * way). Bytes outside printable ASCII are kept as '?'. */
const char *es_http_header(const es_http *h, int which);

/* Names of the headers above, lower case, in enum order. */
extern const char *const es_http_header_names[ES_HDR_COUNT];

/* Idempotent. Wipes the header lists before freeing them: they hold the
 * credential, which should not linger in freed memory or a core dump. */
void es_http_close(es_http *h);

#endif
