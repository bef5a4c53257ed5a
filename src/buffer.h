/*
 * A growable byte buffer that a transfer keeps from one call to the next, so
 * that a steady stream of small responses costs no allocation at all.
 */
#ifndef ES_BUFFER_H
#define ES_BUFFER_H

#include <stddef.h>

typedef struct es_buffer {
    char *data;
    size_t len;
    size_t cap;
} es_buffer;

/* Returns 0 when memory runs out; the buffer is then left as it was. */
int es_buffer_append(es_buffer *b, const char *bytes, size_t n);

/* Forgets the contents; gives the memory back only when it grew large. */
void es_buffer_rewind(es_buffer *b, size_t keep_at_most);

void es_buffer_free(es_buffer *b);

#endif
