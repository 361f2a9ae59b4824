/* gate.c — see gate.h. */
#include "gate.h"

#include <time.h>

#include <criterion/criterion.h>

int gate_hook(void *ctx, journal_io *io)
{
	gate *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (g->closed && (int)io->kind == g->kind) {
		g->entered++;
		pthread_cond_broadcast(&g->cv);
		while (g->closed)
			pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return 0;
}

void gate_set(gate *g, int closed)
{
	pthread_mutex_lock(&g->mu);
	g->closed = closed;
	if (closed)
		g->entered = 0;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

void gate_wait_entered(gate *g, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	pthread_mutex_lock(&g->mu);
	int rc = 0;
	while (g->entered == 0 && rc == 0)
		rc = pthread_cond_timedwait(&g->cv, &g->mu, &ts);
	int entered = g->entered;
	pthread_mutex_unlock(&g->mu);
	cr_assert_gt(entered, 0, "the shard's writer never reached the held journal I/O");
}
