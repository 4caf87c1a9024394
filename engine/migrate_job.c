#include "engine/migrate_job.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct mig_job {
    pid_t pid;
    int fd;                 /* the child's stdout: JSON lines */
    char buf[65536];
    size_t len;
    enum mig_job_state state;
    char msg[512];
    bool lost, exited;
    int status;
};

struct mig_job *mig_job_start(const char *exe, const char *qmp, const char *switchover,
                              const char *const *drives, const char *const *targets, size_t n,
                              unsigned long long speed)
{
    struct mig_job *j = calloc(1, sizeof *j);
    char speedarg[32];
    char **argv = calloc(14 + 2 * n, sizeof *argv), **vols = calloc(n ? n : 1, sizeof *vols);
    int p[2], a = 0;

    if (!j || !argv || !vols || pipe2(p, O_CLOEXEC) < 0) {
        err_set(errno ? errno : ENOMEM, "starting a migration");
        free(j);
        free(argv);
        free(vols);
        return NULL;
    }
    argv[a++] = (char *)exe;
    argv[a++] = "migrate";
    argv[a++] = "--qmp";
    argv[a++] = (char *)qmp;
    argv[a++] = "--switchover";
    argv[a++] = (char *)switchover;
    argv[a++] = "--retries";
    argv[a++] = "0";
    argv[a++] = "--output";
    argv[a++] = "json";
    if (speed) {
        snprintf(speedarg, sizeof speedarg, "%llu", speed);
        argv[a++] = "--speed";
        argv[a++] = speedarg;
    }
    for (size_t i = 0; i < n; i++) {
        if (asprintf(&vols[i], "%s=%s", drives[i], targets[i]) < 0)
            vols[i] = NULL;
        argv[a++] = "--volume";
        argv[a++] = vols[i] ? vols[i] : "";
    }
    argv[a] = NULL;
    j->pid = fork();
    if (j->pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        execv(exe, argv);
        _exit(127);
    }
    close(p[1]);
    for (size_t i = 0; i < n; i++)
        free(vols[i]);
    free(vols);
    free(argv);
    if (j->pid < 0) {
        err_set(errno, "fork");
        close(p[0]);
        free(j);
        return NULL;
    }
    j->fd = p[0];
    fcntl(j->fd, F_SETFL, O_NONBLOCK);
    j->state = MIG_JOB_STARTING;
    return j;
}

static void on_line(struct mig_job *j, const char *line)
{
    json_t *ev = json_loads(line, 0, NULL);
    const char *name = json_string_value(json_object_get(ev, "event"));
    const char *error = json_string_value(json_object_get(ev, "error"));

    if (!name) {
        json_decref(ev);
        return;
    }
    if (!strcmp(name, "started") && j->state == MIG_JOB_STARTING)
        j->state = MIG_JOB_RUNNING;
    if (!strcmp(name, "lost"))
        j->lost = true;
    if (error)
        snprintf(j->msg, sizeof j->msg, "%s", error);
    else if (!strcmp(name, "progress"))
        snprintf(j->msg, sizeof j->msg, "copied %lld of %lld bytes",
                 json_integer_value(json_object_get(ev, "done")),
                 json_integer_value(json_object_get(ev, "total")));
    json_decref(ev);
}

enum mig_job_state mig_job_poll(struct mig_job *j, char *msg, size_t len)
{
    ssize_t r;

    while (j->fd >= 0 && (r = read(j->fd, j->buf + j->len, sizeof j->buf - 1 - j->len)) > 0) {
        char *nl;

        j->len += (size_t)r;
        j->buf[j->len] = '\0';
        while ((nl = memchr(j->buf, '\n', j->len))) {
            *nl = '\0';
            on_line(j, j->buf);
            j->len -= (size_t)(nl + 1 - j->buf);
            memmove(j->buf, nl + 1, j->len);
        }
        if (j->len == sizeof j->buf - 1)
            j->len = 0;   /* a line this long is not ours: drop it */
    }
    if (!j->exited && waitpid(j->pid, &j->status, WNOHANG) == j->pid) {
        j->exited = true;
        if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0)
            j->state = MIG_JOB_SUCCEEDED;
        else if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 3)
            j->state = MIG_JOB_CANCELLED;
        else
            j->state = j->lost ? MIG_JOB_LOST : MIG_JOB_FAILED;
        if (j->state == MIG_JOB_FAILED && !j->msg[0])
            snprintf(j->msg, sizeof j->msg, "volmig migrate exited with status %d",
                     WIFEXITED(j->status) ? WEXITSTATUS(j->status) : 128 + WTERMSIG(j->status));
    }
    if (msg && len)
        snprintf(msg, len, "%s", j->msg);
    return j->state;
}

void mig_job_cancel(struct mig_job *j)
{
    if (!j->exited)
        kill(j->pid, SIGTERM);
}

void mig_job_free(struct mig_job *j)
{
    if (!j)
        return;
    if (!j->exited) {
        kill(j->pid, SIGKILL);
        waitpid(j->pid, NULL, 0);
    }
    if (j->fd >= 0)
        close(j->fd);
    free(j);
}
