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
    int coded;                          /* the answer named a Content-Encoding */
    char refused_coding[ES_HDR_VALUE_MAX];  /* one it names that is not decoded, or "" */
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
 * header would cost more than it saves (see es_http_open); a gzip or
 * deflate answer is decoded all the same, asked for or not, and one in
 * another coding refused (es_http_refused_coding). */
CURLcode es_http_perform(es_http *h, const char *method, const char *url,
                         const char *body, size_t body_len, int at_most_once,
                         int compressed, long *status);

/* "" when the last response did not carry that header. Of a header sent
 * twice, the first value counts (the nginx transport reads them the same
 * way). Bytes outside printable ASCII are kept as '?'. */
const char *es_http_header(const es_http *h, int which);

/* Content codings. libcurl decodes an answer's Content-Encoding for the
 * curl transport; es_content_decode does the same for the nginx transport,
 * which gets the bytes as they were sent, so that the two make the same of
 * every answer. Both take exactly gzip (and its alias x-gzip), deflate and
 * identity, and refuse any other coding: this libcurl would also decode br
 * and zstd, which the nginx transport could not, and an unknown one it
 * would fail on only once the body came. */

/* Copies the first coding of a Content-Encoding value (a comma-separated
 * list) that is not one of those into out (size bytes, printable ASCII,
 * cut to fit) and returns 1; 0 when all are. */
int es_http_refused_coding(const char *value, size_t len, char *out, size_t size);

typedef enum es_decode_status {
    ES_DECODED,
    ES_DECODE_REFUSED,          /* a coding not decoded here: see es_http_refused_coding */
    ES_DECODE_CORRUPT,          /* *detail says what, in zlib's (or libcurl's) words */
    ES_DECODE_TOO_LARGE,        /* more than max bytes */
    ES_DECODE_NO_MEMORY
} es_decode_status;

/* Decodes body, sent with that Content-Encoding value, as libcurl 7.88
 * does: the codings undone last to first; gzip takes zlib's format too;
 * deflate without its zlib header is taken as raw deflate, with up to 4
 * stray bytes after it; any other byte after the end of a stream is an
 * error; a stream that stops before its end gives what it held (the
 * envelope decoder then says what is missing); an empty body is empty;
 * more than 5 codings are refused. At most max bytes come out of each
 * step. The result is in *out (cleared first); *spare is scratch space;
 * the caller frees both. */
es_decode_status es_content_decode(const char *value, size_t value_len,
                                   const char *body, size_t body_len, size_t max,
                                   es_buffer *out, es_buffer *spare, const char **detail);

/* What went wrong when libcurl could not decode the last answer's content
 * (rc: the transfer's code), in es_content_decode's words where the two
 * meet; NULL when the failure was not that. */
const char *es_http_decode_failure(const es_http *h, CURLcode rc);

/* Names of the headers above, lower case, in enum order. */
extern const char *const es_http_header_names[ES_HDR_COUNT];

/* Idempotent. Wipes the header lists before freeing them: they hold the
 * credential, which should not linger in freed memory or a core dump. */
void es_http_close(es_http *h);

#endif
