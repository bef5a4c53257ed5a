#include "buffer.h"

#include <stdlib.h>
#include <string.h>

int es_buffer_append(es_buffer *b, const char *bytes, size_t n)
{
    if (n == 0)
        return 1;
    if (n > b->cap - b->len) {
        size_t want = b->cap ? b->cap : 4096;
        char *grown;
        while (want - b->len < n) {
            if (want > ((size_t)-1) / 2)
                return 0;
            want *= 2;
        }
        grown = realloc(b->data, want);
        if (grown == NULL)
            return 0;
        b->data = grown;
        b->cap = want;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return 1;
}

void es_buffer_rewind(es_buffer *b, size_t keep_at_most)
{
    b->len = 0;
    /* One huge listing must not pin its memory for the client's lifetime. */
    if (b->cap > keep_at_most)
        es_buffer_free(b);
}

void es_buffer_free(es_buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
