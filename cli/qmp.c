/* Placeholder until the qmp/ library lands (issue 3). */
#include "cli/cli.h"

int cmd_qmp(int argc, char **argv)
{
    (void)argc; (void)argv;
    cli_error("qmp", "not built yet");
    return EXIT_FAILED;
}
