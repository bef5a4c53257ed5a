#include "session.h"

#include <stdlib.h>
#include <string.h>

/* One more line on a header list; 0 when memory runs out, the list then
 * kept as it was (curl_slist_append gives NULL and frees nothing), for
 * es_session_close to free. */
static int append_line(struct curl_slist **list, const char *line)
{
    struct curl_slist *longer = curl_slist_append(*list, line);
    if (longer == NULL)
        return 0;
    *list = longer;
    return 1;
}

#define SET(option, value) \
    do { if (curl_easy_setopt(easy, option, value) != CURLE_OK) \
        return "libcurl refused option " #option; } while (0)

const char *es_session_configure(const es_session *s, CURL *easy)
{
    SET(CURLOPT_NOSIGNAL, 1L);          /* no SIGALRM in a host's process */
    SET(CURLOPT_FOLLOWLOCATION, 0L);    /* a redirect could carry the token away */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (s->ca_bundle != NULL)
        SET(CURLOPT_CAINFO, s->ca_bundle);
    SET(CURLOPT_TIMEOUT_MS, s->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max_body);
    /* gzip only: "" would offer every coding this libcurl knows, a list it
     * builds again for every request. Set for every request, so that any
     * gzip answer is decoded, asked for or not (RFC 9110 lets a server
     * compress when the request names no coding); the requests whose answer
     * is one entry send an empty Accept-Encoding line, which tells libcurl
     * to send none: there the line costs more than it saves. */
    SET(CURLOPT_ACCEPT_ENCODING, "gzip");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return NULL;
}

CURL *es_session_new_handle(void)
{
    CURL *easy;
    /* curl_easy_init checks libcurl's own init flag without a lock that
     * race detectors understand */
    es_http_global_lock();
    easy = curl_easy_init();
    es_http_global_unlock();
    return easy;
}

const char *es_session_open(es_session *s, const es_session_options *o)
{
    static const char *const common[] = {
        "Accept: application/json",
        "Expect:",      /* no 100-continue round trip before a body */
        NULL
    };
    int i;

    if (!es_http_global_init())
        return "libcurl could not be initialised";
    s->easy = es_session_new_handle();
    if (s->easy == NULL)
        return "libcurl could not create a handle";
    s->max_body = o->max_body;
    s->timeout_ms = o->timeout_ms;
    s->connect_timeout_ms = o->connect_timeout_ms;
    if (o->ca_bundle != NULL) {
        size_t len = strlen(o->ca_bundle);
        s->ca_bundle = malloc(len + 1);
        if (s->ca_bundle == NULL)
            return "out of memory";
        memcpy(s->ca_bundle, o->ca_bundle, len + 1);
    }
    for (i = 0; common[i] != NULL; i++) {
        if (!es_session_add_header(s, common[i]))
            return "out of memory";
    }
    /* the lists of requests not asked for compressed: an empty
     * Accept-Encoding line (see es_session_configure) */
    if (!append_line(&s->headers[1][1], "Content-Type: application/json") ||
        !append_line(&s->headers[1][0], "Content-Type: application/json") ||
        !append_line(&s->headers[0][0], "Accept-Encoding:") ||
        !append_line(&s->headers[1][0], "Accept-Encoding:"))
        return "out of memory";
    /* The User-Agent as one more prebuilt line: CURLOPT_USERAGENT makes
     * libcurl format the header again on every request. The Lua side
     * refuses control bytes. */
    if (o->user_agent != NULL) {
        static const char prefix[] = "User-Agent: ";
        size_t len = strlen(o->user_agent);
        char *line = malloc(sizeof prefix + len);
        int added;
        if (line == NULL)
            return "out of memory";
        memcpy(line, prefix, sizeof prefix - 1);
        memcpy(line + sizeof prefix - 1, o->user_agent, len + 1);
        added = es_session_add_header(s, line);   /* libcurl keeps its own copy */
        free(line);
        if (!added)
            return "out of memory";
    }
    return es_session_configure(s, s->easy);
}

int es_session_add_header(es_session *s, const char *line)
{
    return append_line(&s->headers[0][0], line) && append_line(&s->headers[0][1], line) &&
           append_line(&s->headers[1][0], line) && append_line(&s->headers[1][1], line);
}

/* Is CURLOPT_CUSTOMREQUEST already what this request needs (NULL: none)? */
static int custom_method_is(const es_session *s, const char *custom)
{
    if (s->custom_set < 0)
        return 0;
    if (custom == NULL)
        return s->custom_set == 0;
    return s->custom_set == 1 && strcmp(s->custom_method, custom) == 0;
}

CURLcode es_session_perform(es_session *s, es_transfer *t, const char *method, const char *url,
                            const char *body, size_t body_len, int once, int compressed,
                            long *status)
{
    CURLcode rc;
    int with_body = body != NULL;
    const char *custom;

    *status = 0;
    if (s->attached != t) {
        rc = es_transfer_attach(t, s->easy);
        if (rc != CURLE_OK)
            return rc;
        s->attached = t;
    }
    es_transfer_begin(t, s->max_body, body, body_len);

    /* The handle is reused, so every call states its whole method setup
     * (libcurl keeps all of it: CUSTOMREQUEST is set where it changes). */
    if (with_body) {
        curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        /* without POSTFIELDS, libcurl reads the body through the
         * transfer's read callback */
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, once ? NULL : body);
    } else {
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    }
    custom = strcmp(method, with_body ? "POST" : "GET") == 0 ? NULL : method;
    if (!custom_method_is(s, custom)) {
        rc = curl_easy_setopt(s->easy, CURLOPT_CUSTOMREQUEST, custom);
        if (rc != CURLE_OK) {
            /* out of memory: what libcurl holds now is unknown */
            s->custom_set = -1;
            goto done;
        }
        if (custom == NULL) {
            s->custom_set = 0;
        } else if (strlen(custom) < sizeof s->custom_method) {
            memcpy(s->custom_method, custom, strlen(custom) + 1);
            s->custom_set = 1;
        } else {
            s->custom_set = -1;   /* too long to keep: set again next time */
        }
    }
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers[with_body][compressed != 0]);
    /* A URL libcurl refuses (too long) ends the call here: what the
     * handle would report is the last transfer's. */
    rc = curl_easy_setopt(s->easy, CURLOPT_URL, url);
    if (rc == CURLE_OK) {
        long request_size = 0;
        rc = curl_easy_perform(s->easy);
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, status);
        /* Did any request go out? A refused connect says "nothing was
         * sent" only when none did: libcurl may have sent the request on a
         * reused connection that died, and then have been refused a new one. */
        curl_easy_getinfo(s->easy, CURLINFO_REQUEST_SIZE, &request_size);
        t->request_sent = request_size > 0;
    }
done:
    /* The body belongs to the caller's stack: keep no pointer to it. */
    if (with_body)
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, NULL);
    es_transfer_end(t);
    return rc;
}

static void wipe_and_free(struct curl_slist *list)
{
    struct curl_slist *node;
    for (node = list; node != NULL; node = node->next) {
        volatile char *p = node->data;
        while (*p != '\0')
            *p++ = '\0';
    }
    curl_slist_free_all(list);
}

void es_session_close(es_session *s)
{
    int b, c;
    if (s->easy != NULL) {
        curl_easy_cleanup(s->easy);
        s->easy = NULL;
    }
    s->attached = NULL;
    free(s->ca_bundle);
    s->ca_bundle = NULL;
    for (b = 0; b < 2; b++) {
        for (c = 0; c < 2; c++) {
            wipe_and_free(s->headers[b][c]);
            s->headers[b][c] = NULL;
        }
    }
}
