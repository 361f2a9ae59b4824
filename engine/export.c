/*
 * export.c — the engine's export API (engine.h, "Export"): what the read
 * model (view/view.h) copies from a recovered engine before the shard's
 * writer starts. Read only, and only while no thread changes the engine,
 * so it reads the tables directly with no ordering of any kind.
 */
#include "engine.h"
#include "engine_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint32_t engine_event_count(const engine *e)
{
	assert(e);
	return e->event_count;
}

/* The image's arrays: malloc(0) may return NULL, so an empty array is a
 * one-byte block (bo_event_image_free frees it like any other). */
static void *image_array(size_t n, size_t size)
{
	return malloc(n ? n * size : 1);
}

int engine_event_image(const engine *e, uint32_t index, bo_event_image *im)
{
	assert(e && im);
	*im = (bo_event_image){0};
	if (index >= e->event_count)
		return -ENOENT;
	const event *ev = &e->events[index];
	im->rows = image_array(ev->row_count, sizeof(bo_row_def));
	im->categories = image_array(ev->seat_count, 1);
	im->states = image_array(ev->seat_count, 1);
	if (!im->rows || !im->categories || !im->states) {
		bo_event_image_free(im);
		return -ENOMEM;
	}
	im->event_id = ev->id;
	im->seat_count = ev->seat_count;
	im->row_count = ev->row_count;
	im->category_count = ev->category_count;
	im->pool_count = ev->pool_count;
	for (uint32_t r = 0; r < ev->row_count; r++) {
		const row *rw = &e->rows[ev->row_base + r];
		im->rows[r] = (bo_row_def){.section = rw->section, .seats = rw->len};
	}
	const seat *seats = &e->seats[ev->seat_base];
	for (uint32_t s = 0; s < ev->seat_count; s++) {
		im->categories[s] = seats[s].cat;
		im->states[s] = seats[s].state;
	}
	for (uint32_t p = 0; p < ev->pool_count; p++) {
		assert(ev->pool_held[p] + ev->pool_booked[p] <= ev->pool_cap[p]);
		im->pool_capacity[p] = ev->pool_cap[p];
		im->pool_free[p] = ev->pool_cap[p] - ev->pool_held[p] - ev->pool_booked[p];
	}
	return 0;
}

void engine_foreach_pool_hold(const engine *e, engine_pool_hold_fn fn, void *ctx)
{
	assert(e && fn);
	for (uint32_t slot = 0; slot < e->claims_fresh; slot++) {
		const claim *c = &e->claims[slot];
		if (c->state != CL_HELD || !c->is_pool)
			continue;
		assert(c->event < e->event_count);
		fn(ctx, e->events[c->event].id, claim_id_of(e, slot), c->pool, c->quantity);
	}
}
