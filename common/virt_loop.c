#include "common/virt_loop.h"

#include <pthread.h>
#include <unistd.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static int loop_ok;

static void quiet_errors(void *opaque, virErrorPtr e)
{
    (void)opaque; (void)e;      /* errors are read with virGetLastErrorMessage */
}

static void *loop_thread(void *arg)
{
    (void)arg;
    for (;;)
        if (virEventRunDefaultImpl() < 0)
            usleep(100000);
    return NULL;
}

static void loop_start(void)
{
    pthread_t t;

    virSetErrorFunc(NULL, quiet_errors);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
        return;
    if (pthread_create(&t, NULL, loop_thread, NULL) != 0)
        return;
    pthread_detach(t);
    loop_ok = 1;
}

int virt_loop_start(void)
{
    pthread_once(&loop_once, loop_start);
    return loop_ok ? 0 : -1;
}
