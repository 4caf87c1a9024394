/* libFuzzer target for the console's line parser, qmp/shell.c: any line
 * gives a command object or an error, never a crash.
 *
 * fuzz-sources: qmp/shell.c common/error.c
 * fuzz-libs: jansson
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    json_t *cmd;

    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    cmd = qmp_shell_parse(line);
    if (cmd && !json_is_string(json_object_get(cmd, "execute")))
        abort();
    json_decref(cmd);
    free(line);
    return 0;
}
