/* fuzz: setup and input splitting shared by the fuzz targets. */
#include "fuzz.h"

#include <string.h>
#include <jansson.h>
#include "lib/arena.h"
#include "lib/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(PIER_LOG_ERROR, "fuzz");
    json_object_seed(1);
    return 0;
}

char *fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = xmalloc(size + 1);
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

char *fuzz_line(char **cursor)
{
    char *line = *cursor;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}
