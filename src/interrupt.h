/*
 * Ctrl-C for a command-line tool in the middle of bulk work: the first
 * SIGINT only raises a flag, which the request loop reads before it starts
 * another request (what is in flight finishes, and the tool says what was
 * done); the second ends the process as SIGINT always does.
 */
#ifndef ES_INTERRUPT_H
#define ES_INTERRUPT_H

/* Installs the handler; 0 when the system refused it. */
int es_interrupt_catch(void);

/* Whether a SIGINT came since es_interrupt_catch. */
int es_interrupt_seen(void);

#endif
