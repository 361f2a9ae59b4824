/*
 * gate.h — a gate on one kind of a shard's journal I/O, for tests that
 * must hold a writer at a known point: while the gate is closed, the
 * journal's fault hook (journal_options.fault = gate_hook, fault_ctx = the
 * gate) stops the writer before every I/O of the gate's kind. Holding
 * JOURNAL_IO_WRITE keeps a batch off the disk; holding JOURNAL_IO_SYNC
 * leaves it written but not durable. Criterion only (waits fail the test).
 */
#ifndef BO_TEST_GATE_H
#define BO_TEST_GATE_H

#include <pthread.h>

#include "journal/journal.h"

typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int kind;    /* the journal_io_kind held */
	int closed;
	int entered; /* I/Os held since the gate last closed */
} gate;

#define GATE_INIT(kind) {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, (kind), 0, 0}

/* The journal fault hook: ctx is the gate. Never fails the I/O. */
int gate_hook(void *ctx, journal_io *io);

/* Closes (counting entries from zero) or opens the gate. */
void gate_set(gate *g, int closed);

/* Waits until a writer is held at the gate; fails the test after ms. */
void gate_wait_entered(gate *g, int ms);

#endif /* BO_TEST_GATE_H */
