#define _POSIX_C_SOURCE 200809L

#include "http.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* next_in as a pointer to const: zlib reads the body, never writes it */
#define ZLIB_CONST
#include <zlib.h>

const char *const es_http_header_names[ES_HDR_COUNT] = {
    "cf-ray", "content-type", "retry-after", "retry-after-ms",
    "x-should-retry", "ratelimit", "ratelimit-policy"
};

/* What a response body may keep between calls before it is given back. */
#define ES_KEEP_BUFFER (1024 * 1024)

/* The module's only global state: libcurl's one-time initialisation and
 * its version string, filled once under a mutex. A mutex rather than
 * pthread_once, so that race detectors (helgrind, TSan) see the order; the
 * same lock serialises what libcurl and lua-cjson do lazily on first use
 * (see es_http_global_lock). */
static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static int global_done;
static CURLcode global_status = CURLE_FAILED_INIT;
static char global_version[64];

void es_http_global_lock(void)
{
    pthread_mutex_lock(&global_lock);
}

void es_http_global_unlock(void)
{
    pthread_mutex_unlock(&global_lock);
}

int es_http_global_init(void)
{
    int ok;
    pthread_mutex_lock(&global_lock);
    if (!global_done) {
        global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (global_status == CURLE_OK) {
            const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
            snprintf(global_version, sizeof global_version, "%s", v->version);
        }
        global_done = 1;
    }
    ok = global_status == CURLE_OK;
    pthread_mutex_unlock(&global_lock);
    return ok;
}

const char *es_http_libcurl_version(void)
{
    /* written once before any es_http_global_init() returns true */
    return global_version;
}

static size_t on_body(char *bytes, size_t size, size_t count, void *userdata)
{
    es_http *h = userdata;
    size_t n = size * count;
    if (n > h->max_body - h->body.len) {
        h->body_too_large = 1;
        return 0;               /* libcurl stops with CURLE_WRITE_ERROR */
    }
    if (!es_buffer_append(&h->body, bytes, n)) {
        h->out_of_memory = 1;
        return 0;
    }
    return n;
}

/* ASCII only, whatever C locale the host process has set (in a Turkish
 * one, tolower('I') is not 'i'). */
static int ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The body of an at_most_once request. No seek callback goes with it, so
 * libcurl can never rewind it to send it again. */
static size_t on_read(char *buffer, size_t size, size_t count, void *userdata)
{
    es_http *h = userdata;
    size_t n = size * count;
    if (n > h->upload_left)
        n = h->upload_left;
    memcpy(buffer, h->upload, n);
    h->upload += n;
    h->upload_left -= n;
    return n;
}

static int names_equal(const char *a, size_t alen, const char *b)
{
    size_t i;
    for (i = 0; i < alen; i++) {
        if (b[i] == '\0' || ascii_lower((unsigned char)a[i]) != b[i])
            return 0;
    }
    return b[alen] == '\0';
}

static size_t on_header(char *line, size_t size, size_t count, void *userdata)
{
    es_http *h = userdata;
    size_t n = size * count, name_len, value_len;
    const char *colon, *value, *end = line + n;
    int i;

    /* A new status line starts a new response (after a 1xx): forget the
     * headers of the previous one. */
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        memset(h->header_values, 0, sizeof h->header_values);
        h->header_seen = 0;
        h->coded = 0;
        return n;
    }
    colon = memchr(line, ':', n);
    if (colon == NULL)
        return n;
    name_len = (size_t)(colon - line);
    value = colon + 1;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && is_blank((unsigned char)end[-1]))
        end--;
    value_len = (size_t)(end - value);
    /* A coding the nginx transport could not decode is refused here, before
     * libcurl decodes it (es_http.h): the transfer stops (a header callback
     * that takes less than it was given), and the error says which. */
    if (names_equal(line, name_len, "content-encoding")) {
        h->coded = 1;
        if (es_http_refused_coding(value, value_len, h->refused_coding, sizeof h->refused_coding))
            return 0;
        return n;
    }
    for (i = 0; i < ES_HDR_COUNT; i++) {
        if (names_equal(line, name_len, es_http_header_names[i])) {
            size_t k;
            char *out = h->header_values[i];
            if (h->header_seen & (1u << i))
                break;
            h->header_seen |= 1u << i;
            if (value_len >= ES_HDR_VALUE_MAX)
                value_len = ES_HDR_VALUE_MAX - 1;
            /* these reach logs and error lines: nothing a terminal obeys */
            for (k = 0; k < value_len; k++) {
                unsigned char c = (unsigned char)value[k];
                out[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
            }
            out[value_len] = '\0';
            break;
        }
    }
    return n;
}

/* One more line on a header list; 0 when memory runs out, the list then
 * kept as it was (curl_slist_append gives NULL and frees nothing), for
 * es_http_close to free. */
static int append_line(struct curl_slist **list, const char *line)
{
    struct curl_slist *longer = curl_slist_append(*list, line);
    if (longer == NULL)
        return 0;
    *list = longer;
    return 1;
}

#define SET(option, value) \
    do { if (curl_easy_setopt(h->easy, option, value) != CURLE_OK) \
        return "libcurl refused option " #option; } while (0)

const char *es_http_open(es_http *h, const es_http_options *o)
{
    static const char *const common[] = {
        "Accept: application/json",
        "Expect:",      /* no 100-continue round trip before a body */
        NULL
    };
    int i;

    if (!es_http_global_init())
        return "libcurl could not be initialised";
    /* curl_easy_init checks libcurl's own init flag without a lock that
     * race detectors understand */
    pthread_mutex_lock(&global_lock);
    h->easy = curl_easy_init();
    pthread_mutex_unlock(&global_lock);
    if (h->easy == NULL)
        return "libcurl could not create a handle";
    h->max_body = o->max_body;
    for (i = 0; common[i] != NULL; i++) {
        if (!es_http_add_header(h, common[i]))
            return "out of memory";
    }
    /* the small lists: an empty Accept-Encoding line (see below) */
    if (!append_line(&h->json_headers, "Content-Type: application/json") ||
        !append_line(&h->json_headers_small, "Content-Type: application/json") ||
        !append_line(&h->plain_headers_small, "Accept-Encoding:") ||
        !append_line(&h->json_headers_small, "Accept-Encoding:"))
        return "out of memory";
    /* The User-Agent as one more prebuilt line: CURLOPT_USERAGENT makes
     * libcurl format the header again on every request (callgrind, a whole
     * update against the emulator: 7,400 instructions of 233,100). The Lua
     * side refuses control bytes. */
    if (o->user_agent != NULL) {
        static const char prefix[] = "User-Agent: ";
        size_t len = strlen(o->user_agent);
        char *line = malloc(sizeof prefix + len);
        int added;
        if (line == NULL)
            return "out of memory";
        memcpy(line, prefix, sizeof prefix - 1);
        memcpy(line + sizeof prefix - 1, o->user_agent, len + 1);
        added = es_http_add_header(h, line);   /* libcurl keeps its own copy */
        free(line);
        if (!added)
            return "out of memory";
    }

    SET(CURLOPT_NOSIGNAL, 1L);          /* no SIGALRM in a host's process */
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, h);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, h);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_READDATA, h);
    SET(CURLOPT_FOLLOWLOCATION, 0L);    /* a redirect could carry the token away */
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_bundle != NULL)
        SET(CURLOPT_CAINFO, o->ca_bundle);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
    /* gzip only: "" would offer every coding this libcurl knows, a list it
     * builds again for every request. Set for every request, so that any
     * gzip answer is decoded, asked for or not (RFC 9110 lets a server
     * compress when the request names no coding); the requests whose answer
     * is one entry send an empty Accept-Encoding line, which tells libcurl
     * to send none: there the line costs more than it saves (callgrind, a
     * whole update: 196,559 instructions before, 192,383 after). */
    SET(CURLOPT_ACCEPT_ENCODING, "gzip");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return NULL;
}

int es_http_add_header(es_http *h, const char *line)
{
    return append_line(&h->plain_headers, line) && append_line(&h->json_headers, line) &&
           append_line(&h->plain_headers_small, line) && append_line(&h->json_headers_small, line);
}

CURLcode es_http_perform(es_http *h, const char *method, const char *url,
                         const char *body, size_t body_len, int at_most_once,
                         int compressed, long *status)
{
    CURLcode rc;
    int with_body = body != NULL;
    struct curl_slist *headers = with_body ? (compressed ? h->json_headers : h->json_headers_small)
                                           : (compressed ? h->plain_headers : h->plain_headers_small);

    es_buffer_rewind(&h->body, ES_KEEP_BUFFER);
    h->body_too_large = 0;
    h->out_of_memory = 0;
    h->errbuf[0] = '\0';
    memset(h->header_values, 0, sizeof h->header_values);
    h->header_seen = 0;
    h->request_sent = 0;
    h->coded = 0;
    h->refused_coding[0] = '\0';
    *status = 0;

    /* The handle is reused, so every call states its whole method setup. */
    if (with_body) {
        curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        /* without POSTFIELDS, libcurl reads the body through on_read */
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, at_most_once ? NULL : body);
        h->upload = body;
        h->upload_left = body_len;
    } else {
        curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h->easy, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, with_body ? "POST" : "GET") == 0 ? NULL : method);
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);
    /* A URL libcurl refuses (too long) ends the call here: what the
     * handle would report is the last transfer's. */
    rc = curl_easy_setopt(h->easy, CURLOPT_URL, url);
    if (rc == CURLE_OK) {
        long request_size = 0;
        rc = curl_easy_perform(h->easy);
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, status);
        /* Did any request go out? A refused connect says "nothing was
         * sent" only when none did: libcurl may have sent the request on a
         * reused connection that died, and then have been refused a new one. */
        curl_easy_getinfo(h->easy, CURLINFO_REQUEST_SIZE, &request_size);
        h->request_sent = request_size > 0;
    }
    /* The body belongs to the caller's stack: keep no pointer to it. */
    if (with_body)
        curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
    h->upload = NULL;
    h->upload_left = 0;
    return rc;
}

const char *es_http_header(const es_http *h, int which)
{
    return h->header_values[which];
}

/* The codings decoded here, as libcurl names them. */
enum { CODING_IDENTITY, CODING_GZIP, CODING_DEFLATE, CODING_OTHER };

static int coding_of(const char *name, size_t len)
{
    if (names_equal(name, len, "gzip") || names_equal(name, len, "x-gzip"))
        return CODING_GZIP;
    if (names_equal(name, len, "deflate"))
        return CODING_DEFLATE;
    if (names_equal(name, len, "identity"))
        return CODING_IDENTITY;
    return CODING_OTHER;
}

/* The next coding of a comma-separated list from *p (before end), blanks
 * around it taken off: 0 when the list is done. */
static int next_coding(const char **p, const char *end, const char **name, size_t *len)
{
    const char *s = *p, *e;
    while (s < end && (*s == ',' || *s == ' ' || *s == '\t'))
        s++;
    if (s == end)
        return 0;
    e = s;
    while (e < end && *e != ',')
        e++;
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *name = s;
    *len = (size_t)(e - s);
    return 1;
}

int es_http_refused_coding(const char *value, size_t len, char *out, size_t size)
{
    const char *p = value, *end = value + len, *name;
    size_t name_len, k;
    while (next_coding(&p, end, &name, &name_len)) {
        if (coding_of(name, name_len) != CODING_OTHER)
            continue;
        if (size == 0)
            return 1;
        if (name_len >= size)
            name_len = size - 1;
        /* it reaches error lines: nothing a terminal obeys */
        for (k = 0; k < name_len; k++) {
            unsigned char c = (unsigned char)name[k];
            out[k] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        out[name_len] = '\0';
        return 1;
    }
    return 0;
}

/* libcurl's limit on codings stacked on one answer (CVE-2023-23916), and
 * its words when it refuses more. */
#define MAX_CODINGS 5
static const char too_many_codings[] = "Reject response due to more than 5 content encodings";
/* libcurl's words for a zlib failure that zlib does not explain */
static const char zlib_unexplained[] = "Unknown failure within decompression software.";
static const char bytes_after_end[] = "bytes after the end of the compressed data";

/* One coding undone: in -> out (appended), as libcurl's zlib writer does
 * it (lib/content_encoding.c). */
static es_decode_status inflate_one(int coding, const unsigned char *in, size_t in_len, size_t max,
                                    es_buffer *out, const char **detail)
{
    unsigned char chunk[16384];
    z_stream z;
    const unsigned char *next = in;
    size_t left = in_len, stray_allowed = 0;
    int raw = 0, produced = 0, rc;
    es_decode_status result = ES_DECODED;

    memset(&z, 0, sizeof z);
    /* gzip: windowBits + 32 takes a gzip or a zlib header, as libcurl's */
    rc = coding == CODING_GZIP ? inflateInit2(&z, MAX_WBITS + 32) : inflateInit(&z);
    if (rc != Z_OK)
        return rc == Z_MEM_ERROR ? ES_DECODE_NO_MEMORY : ES_DECODE_CORRUPT;
    for (;;) {
        size_t got;
        if (z.avail_in == 0 && left > 0) {
            /* zlib counts in unsigned int */
            uInt n = left > UINT_MAX ? UINT_MAX : (uInt)left;
            z.next_in = next;
            z.avail_in = n;
            next += n;
            left -= n;
        }
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        rc = inflate(&z, Z_NO_FLUSH);
        got = sizeof chunk - z.avail_out;
        if (got > 0 && (rc == Z_OK || rc == Z_STREAM_END)) {
            if (got > max - out->len) {
                result = ES_DECODE_TOO_LARGE;
                break;
            }
            if (!es_buffer_append(out, (const char *)chunk, got)) {
                result = ES_DECODE_NO_MEMORY;
                break;
            }
            produced = 1;
        }
        if (rc == Z_OK)
            continue;
        if (rc == Z_STREAM_END) {
            if ((size_t)z.avail_in + left > stray_allowed) {
                *detail = bytes_after_end;
                result = ES_DECODE_CORRUPT;
            }
            break;
        }
        /* no progress without more input, and there is none: the stream
         * stops early, and what it held is the answer (libcurl's way) */
        if (rc == Z_BUF_ERROR && z.avail_in == 0 && left == 0)
            break;
        /* deflate sent without its zlib header, before anything came out:
         * read again as raw deflate, which may end with 4 stray bytes */
        if (rc == Z_DATA_ERROR && coding == CODING_DEFLATE && !raw && !produced &&
            inflateReset2(&z, -MAX_WBITS) == Z_OK) {
            raw = 1;
            stray_allowed = 4;
            next = in;
            left = in_len;
            z.avail_in = 0;
            continue;
        }
        *detail = z.msg != NULL ? z.msg : zlib_unexplained;
        result = rc == Z_MEM_ERROR ? ES_DECODE_NO_MEMORY : ES_DECODE_CORRUPT;
        break;
    }
    inflateEnd(&z);
    return result;
}

es_decode_status es_content_decode(const char *value, size_t value_len,
                                   const char *body, size_t body_len, size_t max,
                                   es_buffer *out, es_buffer *spare, const char **detail)
{
    int codings[MAX_CODINGS];
    int count = 0, i;
    const char *p = value, *end = value + value_len, *name;
    size_t name_len;
    const char *in = body;
    size_t in_len = body_len;
    es_buffer *target = out, *other = spare;

    *detail = NULL;
    out->len = 0;
    spare->len = 0;
    while (next_coding(&p, end, &name, &name_len)) {
        int c = coding_of(name, name_len);
        if (c == CODING_OTHER)
            return ES_DECODE_REFUSED;
        if (count == MAX_CODINGS) {
            *detail = too_many_codings;
            return ES_DECODE_CORRUPT;
        }
        codings[count++] = c;
    }
    /* libcurl never hands an empty body to a decoder */
    if (body_len > 0) {
        for (i = count - 1; i >= 0; i--) {
            es_buffer *swap;
            es_decode_status st;
            if (codings[i] == CODING_IDENTITY)
                continue;
            target->len = 0;
            st = inflate_one(codings[i], (const unsigned char *)in, in_len, max, target, detail);
            if (st != ES_DECODED)
                return st;
            in = target->data != NULL ? target->data : "";
            in_len = target->len;
            swap = target;
            target = other;
            other = swap;
        }
    }
    /* the last step's output is in `other` (or, with none, the body) */
    if (in == body) {
        out->len = 0;
        if (!es_buffer_append(out, body, body_len))
            return ES_DECODE_NO_MEMORY;
    } else if (other != out) {
        es_buffer tmp = *out;
        *out = *spare;
        *spare = tmp;
    }
    return ES_DECODED;
}

const char *es_http_decode_failure(const es_http *h, CURLcode rc)
{
    /* libcurl's prefix to zlib's own words (process_zlib_error) */
    static const char prefix[] = "Error while processing content unencoding: ";
    if (rc == CURLE_BAD_CONTENT_ENCODING) {
        if (strncmp(h->errbuf, prefix, sizeof prefix - 1) == 0)
            return h->errbuf + sizeof prefix - 1;
        return h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(rc);
    }
    /* the one write error none of our callbacks asked for: bytes after
     * the end of a compressed stream (libcurl's process_trailer) */
    if (rc == CURLE_WRITE_ERROR && h->coded && !h->body_too_large && !h->out_of_memory &&
        h->refused_coding[0] == '\0')
        return bytes_after_end;
    return NULL;
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

void es_http_close(es_http *h)
{
    if (h->easy != NULL) {
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }
    wipe_and_free(h->plain_headers);
    wipe_and_free(h->json_headers);
    wipe_and_free(h->plain_headers_small);
    wipe_and_free(h->json_headers_small);
    h->plain_headers = NULL;
    h->json_headers = NULL;
    h->plain_headers_small = NULL;
    h->json_headers_small = NULL;
    es_buffer_free(&h->body);
}
