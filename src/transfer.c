#include "transfer.h"

#include <string.h>

/* What a response body may keep between requests before it is given back. */
#define ES_KEEP_BUFFER (1024 * 1024)

static size_t on_body(char *bytes, size_t size, size_t count, void *userdata)
{
    es_transfer *t = userdata;
    size_t n = size * count;
    if (n > t->max_body - t->body.len) {
        t->body_too_large = 1;
        return 0;               /* libcurl stops with CURLE_WRITE_ERROR */
    }
    if (!es_buffer_append(&t->body, bytes, n)) {
        t->out_of_memory = 1;
        return 0;
    }
    return n;
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The body of a request sent at most once. No seek callback goes with it,
 * so libcurl can never rewind it to send it again. */
static size_t on_read(char *buffer, size_t size, size_t count, void *userdata)
{
    es_transfer *t = userdata;
    size_t n = size * count;
    if (n > t->upload_left)
        n = t->upload_left;
    memcpy(buffer, t->upload, n);
    t->upload += n;
    t->upload_left -= n;
    return n;
}

static size_t on_header(char *line, size_t size, size_t count, void *userdata)
{
    es_transfer *t = userdata;
    size_t n = size * count, name_len, value_len;
    const char *colon, *value, *end = line + n;
    int i;

    /* A new status line starts a new response (after a 1xx): forget the
     * headers of the previous one. */
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        t->header_seen = 0;
        t->coded = 0;
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
     * libcurl decodes it (http.h): the transfer stops (a header callback
     * that takes less than it was given), and the error says which. */
    if (es_http_name_is(line, name_len, "content-encoding")) {
        t->coded = 1;
        if (es_http_refused_coding(value, value_len, t->refused_coding, sizeof t->refused_coding))
            return 0;
        return n;
    }
    for (i = 0; i < ES_HDR_COUNT; i++) {
        if (es_http_name_is(line, name_len, es_http_header_names[i])) {
            if (t->header_seen & (1u << i))
                break;
            t->header_seen |= 1u << i;
            if (value_len >= ES_HDR_VALUE_MAX)
                value_len = ES_HDR_VALUE_MAX - 1;
            es_http_copy_printable(t->header_values[i], value, value_len);
            break;
        }
    }
    return n;
}

#define ATTACH(option, value) \
    do { CURLcode rc_ = curl_easy_setopt(easy, option, value); \
         if (rc_ != CURLE_OK) return rc_; } while (0)

CURLcode es_transfer_attach(es_transfer *t, CURL *easy)
{
    ATTACH(CURLOPT_ERRORBUFFER, t->errbuf);
    ATTACH(CURLOPT_WRITEFUNCTION, on_body);
    ATTACH(CURLOPT_WRITEDATA, t);
    ATTACH(CURLOPT_HEADERFUNCTION, on_header);
    ATTACH(CURLOPT_HEADERDATA, t);
    ATTACH(CURLOPT_READFUNCTION, on_read);
    ATTACH(CURLOPT_READDATA, t);
    return CURLE_OK;
}

void es_transfer_begin(es_transfer *t, size_t max_body, const char *upload, size_t upload_len)
{
    es_buffer_rewind(&t->body, ES_KEEP_BUFFER);
    t->max_body = max_body;
    t->body_too_large = 0;
    t->out_of_memory = 0;
    t->errbuf[0] = '\0';
    t->header_seen = 0;
    t->request_sent = 0;
    t->coded = 0;
    t->refused_coding[0] = '\0';
    t->upload = upload;
    t->upload_left = upload != NULL ? upload_len : 0;
}

void es_transfer_end(es_transfer *t)
{
    t->upload = NULL;
    t->upload_left = 0;
}

const char *es_transfer_header(const es_transfer *t, int which)
{
    /* a value is good only while its bit says it came with this answer */
    return t->header_seen & (1u << which) ? t->header_values[which] : "";
}

const char *es_transfer_decode_failure(const es_transfer *t, CURLcode rc)
{
    /* libcurl's prefix to zlib's own words (process_zlib_error) */
    static const char prefix[] = "Error while processing content unencoding: ";
    if (rc == CURLE_BAD_CONTENT_ENCODING) {
        if (strncmp(t->errbuf, prefix, sizeof prefix - 1) == 0)
            return t->errbuf + sizeof prefix - 1;
        return t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(rc);
    }
    /* the one write error none of our callbacks asked for: bytes after
     * the end of a compressed stream (libcurl's process_trailer) */
    if (rc == CURLE_WRITE_ERROR && t->coded && !t->body_too_large && !t->out_of_memory &&
        t->refused_coding[0] == '\0')
        return es_http_bytes_after_end;
    return NULL;
}

void es_transfer_free(es_transfer *t)
{
    es_buffer_free(&t->body);
}
