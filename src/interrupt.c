#define _POSIX_C_SOURCE 200809L

#include "interrupt.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t seen;

static void on_sigint(int signo)
{
    (void)signo;
    seen = 1;
}

int es_interrupt_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    /* once: the second Ctrl-C is SIGINT's default, which ends the process */
    sa.sa_flags = (int)SA_RESETHAND;
    seen = 0;
    return sigaction(SIGINT, &sa, NULL) == 0;
}

int es_interrupt_seen(void)
{
    return seen != 0;
}
