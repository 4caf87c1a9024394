#include "engine/migrate_job.h"
#include "common/clock.h"
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
    bool lost, exited, switching;
    int status;
    size_t nvols;
    struct mig_job_progress *vols;
    int64_t *sampled_ms;     /* per volume: when rate was last sampled, */
    long long *sampled_done; /* and done then */
};

struct mig_job *mig_job_start(const char *exe, const char *qmp, const char *switchover,
                              const char *const *drives, const char *const *targets, size_t n,
                              unsigned long long speed, const char *mode)
{
    struct mig_job *j = calloc(1, sizeof *j);
    char speedarg[32];
    char **argv = calloc(16 + 2 * n, sizeof *argv), **vols = calloc(n ? n : 1, sizeof *vols);
    int p[2], a = 0;

    if (j) {
        j->nvols = n;
        j->vols = calloc(n ? n : 1, sizeof *j->vols);
        j->sampled_ms = calloc(n ? n : 1, sizeof *j->sampled_ms);
        j->sampled_done = calloc(n ? n : 1, sizeof *j->sampled_done);
    }
    if (!j || !j->vols || !j->sampled_ms || !j->sampled_done || !argv || !vols || pipe2(p, O_CLOEXEC) < 0) {
        err_set(errno ? errno : ENOMEM, "starting a migration");
        if (j) {
            free(j->vols);
            free(j->sampled_ms);
            free(j->sampled_done);
        }
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
    if (mode) {
        argv[a++] = "--mode";
        argv[a++] = (char *)mode;
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
        free(j->vols);
        free(j->sampled_ms);
        free(j->sampled_done);
        free(j);
        return NULL;
    }
    j->fd = p[0];
    fcntl(j->fd, F_SETFL, O_NONBLOCK);
    j->state = MIG_JOB_STARTING;
    return j;
}

/* Volume i's entry of a progress event: done and total as given; the rate
 * smoothed like volmig migrate's own (half old, half new), sampled at most
 * every 500 ms.  A done that goes back (a new bitmap pass, a retry) starts
 * the measure afresh. */
static void volume_progress(struct mig_job *j, size_t i, json_t *e)
{
    struct mig_job_progress *v = &j->vols[i];
    long long done = json_integer_value(json_object_get(e, "done"));
    long long total = json_integer_value(json_object_get(e, "total"));
    int64_t now = clock_ms();

    if (!v->known || done < j->sampled_done[i]) {
        j->sampled_ms[i] = now;
        j->sampled_done[i] = done;
        v->rate = 0;
    } else if (now - j->sampled_ms[i] >= 500) {
        double inst = (double)(done - j->sampled_done[i]) * 1000.0 /
                      (double)(now - j->sampled_ms[i]);

        v->rate = v->rate > 0 ? 0.5 * v->rate + 0.5 * inst : inst;
        j->sampled_ms[i] = now;
        j->sampled_done[i] = done;
    }
    v->done = done;
    v->total = total;
    v->eta = done >= total ? 0 : v->rate > 0 ? (double)(total - done) / v->rate : -1;
    v->known = true;
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
    if (!strcmp(name, "switching"))
        j->switching = true;
    if (!strcmp(name, "started"))
        j->switching = false;    /* a retry starts before the point of no return */
    if (!strcmp(name, "progress")) {
        json_t *e;
        size_t i;

        json_array_foreach(json_object_get(ev, "volumes"), i, e)
            if (i < j->nvols)
                volume_progress(j, i, e);
    }
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

size_t mig_job_progress(const struct mig_job *j, struct mig_job_progress *out, size_t n)
{
    size_t k = n < j->nvols ? n : j->nvols;

    memcpy(out, j->vols, k * sizeof *out);
    return k;
}

bool mig_job_switching(const struct mig_job *j)
{
    return j->switching;
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
    free(j->vols);
    free(j->sampled_ms);
    free(j->sampled_done);
    free(j);
}
