/* fuzz.c - libFuzzer target over the conformance interpreter: any input
 * must end with a trace or a clean rejection, never a crash, a sanitizer
 * report, a leak or a hang (`make fuzz`). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int scenario_run(const char *text, size_t len, char **out, size_t *outlen, char *msg, size_t msglen);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out, msg[512];
    size_t len;
    scenario_run((const char *)data, size, &out, &len, msg, sizeof msg);
    free(out);
    return 0;
}
