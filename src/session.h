/*
 * A client's side of libcurl: one easy handle, kept for the client's whole
 * life so that connections and TLS sessions are reused, the header lists
 * every request shares (built once), and the options. The state of one
 * request lives apart, in an es_transfer; a session sends one at a time.
 */
#ifndef ES_SESSION_H
#define ES_SESSION_H

#include <stddef.h>
#include <curl/curl.h>

#include "transfer.h"

/* Every value is given: the Lua side checks the options and holds their
 * defaults (config.lua). */
typedef struct es_session_options {
    const char *user_agent;
    const char *ca_bundle;      /* NULL: the system's trust store */
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_body;
} es_session_options;

typedef struct es_session {
    CURL *easy;
    es_transfer *attached;      /* the transfer the callbacks write to */
    /* [the request has a JSON body][its answer is asked for compressed]:
     * the credential and the other shared lines, then what that kind of
     * request adds (Content-Type; an empty Accept-Encoding line) */
    struct curl_slist *headers[2][2];
    size_t max_body;
    /* what every handle of the session is set up with (es_session_configure) */
    long timeout_ms;
    long connect_timeout_ms;
    char *ca_bundle;            /* a copy of the option, or NULL */
    /* CURLOPT_CUSTOMREQUEST as last set, kept as text of our own (the
     * caller's string need not outlive the call): libcurl copies the string
     * each time it is set, so it is set only when it changes. custom_set:
     * 0 none set, 1 custom_method is set, -1 unknown (set it next time). */
    char custom_method[16];
    int custom_set;
} es_session;

/* Returns NULL, or a static message saying what failed. On failure the
 * session is left for es_session_close to clean. */
const char *es_session_open(es_session *s, const es_session_options *o);

/* Sets up a handle as every handle of the session is (timeouts, TLS,
 * protocols, content coding): NULL, or what libcurl refused. */
const char *es_session_configure(const es_session *s, CURL *easy);

/* A new easy handle (NULL when out of memory), made under the module's
 * global lock. */
CURL *es_session_new_handle(void);

/* A header line sent with every request; 0 when memory runs out. */
int es_session_add_header(es_session *s, const char *line);

/* Sends one request and reads its answer into t; *status: the answer's
 * HTTP status, or 0.
 * once: the request must not reach the server twice (a create). When a
 * reused keep-alive connection dies before any byte of the answer, libcurl
 * sends the request again by itself, body included; it can only do that
 * by rewinding the body, so such a body is handed to libcurl through a
 * read callback that cannot rewind: the transfer then fails
 * (CURLE_SEND_FAIL_REWIND) instead of sending it twice, and the connection
 * is still reused as any other.
 * compressed: ask for a gzip-compressed answer (Accept-Encoding), for the
 * calls whose answers can be large: a list page, a batch. Elsewhere the
 * header would cost more than it saves (see es_session_open); a gzip or
 * deflate answer is decoded all the same, asked for or not, and one in
 * another coding refused (es_http_refused_coding). */
CURLcode es_session_perform(es_session *s, es_transfer *t, const char *method, const char *url,
                            const char *body, size_t body_len, int once, int compressed,
                            long *status);

/* Idempotent. Wipes the header lists before freeing them: they hold the
 * credential, which should not linger in freed memory or a core dump. */
void es_session_close(es_session *s);

#endif
