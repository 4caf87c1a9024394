/* Storage progress on the migration object (KubeVirt shows none, kubevirt
 * issue 12260): what the engine reports, turned into the
 * volmig.io/progress annotation and status.migrationState. */
#include "k8s/k8s.h"

#include <stdio.h>
#include <string.h>

bool k8s_progress_parse(const char *msg, long long *done, long long *total)
{
    int n = 0;

    if (!msg || sscanf(msg, "copied %lld of %lld bytes%n", done, total, &n) != 2 ||
        msg[n] || *done < 0 || *total < 0)
        return false;
    return true;
}

void k8s_progress_sample(struct k8s_progress *p, long long done, long long total, time_t now)
{
    if (!p->started) {
        p->started = now;
        p->sampled = now;
        p->sampled_done = done;
    } else if (now - p->sampled >= 1 && done >= p->sampled_done) {
        double inst = (double)(done - p->sampled_done) / (double)(now - p->sampled);

        /* smoothed like volmig migrate's own rate: half old, half new */
        p->rate = p->rate > 0 ? 0.5 * p->rate + 0.5 * inst : inst;
        p->sampled = now;
        p->sampled_done = done;
    }
    p->done = done;
    p->total = total;
    p->known = true;
}

/* Whole seconds, rounded up, without libm. */
static json_int_t eta_seconds(long long left, double rate)
{
    double s = (double)left / rate;
    json_int_t w = (json_int_t)s;

    return (double)w < s ? w + 1 : w;
}

/* One volume's figures: the engine's (pv, may be NULL or not known), else
 * the totals when it is the only volume, else nulls. */
static void volume_figures(json_t *v, const struct k8s_progress *p,
                           const struct k8s_engine_volume_progress *pv, bool only)
{
    if (pv && pv->known) {
        json_object_set_new(v, "doneBytes", json_integer(pv->done));
        json_object_set_new(v, "totalBytes", json_integer(pv->total));
        json_object_set_new(v, "bytesPerSecond", pv->rate > 0 ? json_integer((json_int_t)(pv->rate + 0.5))
                                                              : json_null());
        json_object_set_new(v, "etaSeconds", pv->done >= pv->total ? json_integer(0) :
                            pv->eta >= 0 && pv->rate > 0 ? json_integer(eta_seconds(pv->total - pv->done, pv->rate)) :
                            json_null());
        return;
    }
    json_object_set_new(v, "doneBytes", only ? json_integer(p->done) : json_null());
    json_object_set_new(v, "totalBytes", only ? json_integer(p->total) : json_null());
    json_object_set_new(v, "bytesPerSecond", only && p->rate > 0 ? json_integer((json_int_t)(p->rate + 0.5))
                                                                 : json_null());
    json_object_set_new(v, "etaSeconds", !only ? json_null() : p->done >= p->total ? json_integer(0) :
                        p->rate > 0 ? json_integer(eta_seconds(p->total - p->done, p->rate)) :
                        json_null());
}

json_t *k8s_progress_json(const struct k8s_progress *p, const struct k8s_engine_volume_progress *per,
                          const json_t *migrated, time_t now)
{
    json_t *o = json_object(), *vols = json_array(), *e;
    long long left = p->total - p->done;
    size_t i, n = json_array_size(migrated);
    char when[32];

    json_array_foreach(migrated, i, e) {
        json_t *v = json_pack("{s:s?, s:s?, s:s?}", "volume", k8s_get_str(e, "volumeName"),
                              "source", k8s_get_str(e, "sourcePVCInfo.claimName"),
                              "destination", k8s_get_str(e, "destinationPVCInfo.claimName"));

        volume_figures(v, p, per ? &per[i] : NULL, n == 1);
        json_array_append_new(vols, v);
    }
    k8s_format_time(now, when);
    json_object_set_new(o, "volumes", vols);
    json_object_set_new(o, "doneBytes", json_integer(p->done));
    json_object_set_new(o, "totalBytes", json_integer(p->total));
    json_object_set_new(o, "percent", json_integer(p->total > 0 ? (json_int_t)(p->done * 100 / p->total)
                                                                : 0));
    json_object_set_new(o, "bytesPerSecond", json_integer((json_int_t)(p->rate + 0.5)));
    json_object_set_new(o, "etaSeconds", left <= 0 ? json_integer(0) :
                        p->rate > 0 ? json_integer(eta_seconds(left, p->rate)) :
                        json_null());
    json_object_set_new(o, "updated", json_string(when));
    return o;
}
