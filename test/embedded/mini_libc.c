/* mini_libc.c - what GCC may call in a freestanding build (-nostdlib):
 * memset and memcpy (the headers' __builtin_memset/__builtin_memcpy can
 * become calls). Linked into the size firmwares and the example; counted
 * as runtime, not library. */
#include <stddef.h>

void *memset(void *d, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = (unsigned char *)d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    unsigned char *p = (unsigned char *)d;
    const unsigned char *q = (const unsigned char *)s;
    while (n--) *p++ = *q++;
    return d;
}
