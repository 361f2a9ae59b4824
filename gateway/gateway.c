/*
 * gateway.c — nng listeners, routing and replies (see gateway.h).
 *
 * A request slot goes round this cycle, driven by its nng context's aio:
 *
 *   RECV   nng hands over a message: decode it (wire.c), answer at once if
 *          it is malformed or we are draining; else submit its commands,
 *          grouped by shard, one ring claim per shard (a full ring makes
 *          those commands `busy`), and count them in `pending`.
 *   WAIT   each shard's output thread files results under the slot; the
 *          thread that brings `pending` to zero encodes the reply and
 *          starts the send. (`pending` starts at 1 while submitting so the
 *          reply cannot leave before every command was submitted.)
 *   SEND   the send completes: free the request's seat maps, re-arm RECV.
 *
 * Results reach the output ring only when their journal batch is durable,
 * so a reply never acknowledges a change that could be lost.
 */
#include "gateway.h"
#include "internal.h"
#include "auth.h"
#include "throttle.h"
#include "frame.h"
#include "node.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/seatmap.h"
#include "protocol/projection.h"
#include "protocol/wire.h"
#include "view/view.h"


void gw_config_default(gw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = "var";
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->shards = cores < 1 ? 1 : cores > 4 ? 4 : (uint32_t)cores;
	cfg->listen[0] = "tcp://127.0.0.1:7400";
	cfg->listen_count = 1;
	cfg->contexts = GW_CONTEXTS_DEFAULT;
	cfg->recv_max_bytes = WIRE_MSG_MAX;
	shard_config_default(&cfg->shard);
	/* Chosen for restart time: a snapshot costs the writer one hand-off
	 * (the builder thread replays the journal), so the interval only
	 * trades the builder's snapshot loads against the records a restart
	 * replays: at most about this many plus what arrived while the last
	 * one was built (perf/README.md, issue 12: ~1.5 s at 5M). */
	cfg->shard.snapshot_every = 5000000;
	committer_config_default(&cfg->committer);
	cfg->committer.dsn = NULL;
	cfg->status_every_ms = GW_STATUS_EVERY_MS_DEFAULT;
	cfg->version = "unknown";
	cfg->throttle_rate = GW_THROTTLE_RATE_DEFAULT; /* the reasoning: throttle.h */
	cfg->throttle_burst = GW_THROTTLE_BURST_DEFAULT;
	gw_node_config_default(&cfg->node);
}

static void busy_result(const bo_cmd *cmd, bo_result *r)
{
	memset(r, 0, sizeof(*r));
	r->op = cmd->op;
	r->status = BO_BUSY;
	r->client_id = cmd->client_id;
	r->request_id = cmd->request_id;
	r->event_id = cmd->event_id;
}

/* A command of a shard this node is not the primary of (cluster mode):
 * not submitted; the reply names the primary (slot_complete). */
static void not_primary_result(const bo_cmd *cmd, bo_result *r)
{
	busy_result(cmd, r);
	r->status = BO_NOT_PRIMARY;
}

/* Takes a token of c's event (throttle.h); when refused, answers c
 * throttled with the retry hint in r and returns 1. */
static int throttle_refused(gw_server *gw, const bo_cmd *c, bo_result *r, int64_t now_ns)
{
	uint32_t wait_ms = gw_throttle_take(gw->throttle, c->event_id, now_ns);
	if (wait_ms == 0)
		return 0;
	busy_result(c, r);
	r->status = BO_THROTTLED;
	r->retry_after_ms = wait_ms;
	return 1;
}

/* ---- Replies ------------------------------------------------------------- */

static void slot_send(gw_slot *sl)
{
	gw_server *gw = sl->gw;
	if (sl->reply_fn) {
		gw_observe_request(gw, sl->start_ns);
		sl->reply_fn(sl); /* the framed front (frame.c) sends it */
		return;
	}
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, sl->reply.data, sl->reply.size) != 0) {
		bo_log(BO_LOG_ERROR, "msg=\"out of memory for a reply: dropped (the client times out and retries)\"");
		if (m)
			nng_msg_free(m);
		wire_free_maps(sl->cmds, sl->count);
		sl->state = SLOT_RECV;
		atomic_fetch_sub_explicit(&gw->in_flight, 1, memory_order_relaxed);
		nng_ctx_recv(sl->ctx, sl->aio);
		return;
	}
	sl->state = SLOT_SEND;
	gw_observe_request(gw, sl->start_ns);
	nng_aio_set_msg(sl->aio, m);
	nng_ctx_send(sl->ctx, sl->aio);
}

static void send_error(gw_slot *sl, int status, const char *text)
{
	sl->reply.size = 0;
	int rc = wire_encode_error(status, text, &sl->reply);
	assert(rc == 0 || rc == -ENOMEM);
	(void)rc;
	sl->count = 0;
	slot_send(sl);
}

/* All results are in: encode and send (or wake the local caller). */
static void slot_complete(gw_slot *sl)
{
	if (sl->done_fn) {
		sl->done_fn(sl); /* another front (http.c) answers it */
		return;
	}
	if (sl->local) {
		sem_post(&sl->done);
		return;
	}
	gw_count_results(sl->gw, sl->res, sl->errs, sl->cmds, sl->count);
	sl->reply.size = 0;
	int rc;
	if (sl->gw->node && sl->primary) {
		/* Cluster: a not_primary result names the primary the map
		 * cache knows, so the client retries there. */
		for (uint32_t i = 0; i < sl->count; i++)
			if (sl->res[i].status == BO_NOT_PRIMARY)
				gw_node_primary(sl->gw->node, shard_for_event(sl->cmds[i].event_id, sl->gw->cfg.shards),
						&sl->primary[i]);
		rc = wire_encode_replies_primary(sl->res, sl->errs, sl->primary, sl->count, sl->is_array, &sl->reply);
	} else {
		rc = wire_encode_replies(sl->res, sl->errs, sl->count, sl->is_array, &sl->reply);
	}
	if (rc != 0) {
		/* A result without an encoding is an engine/codec bug; say so
		 * to the client rather than leaving it waiting. */
		bo_log(BO_LOG_ERROR, "msg=\"reply could not be encoded\" commands=%u", sl->count);
		sl->reply.size = 0;
		wire_encode_error(BO_INVALID, "internal error: reply could not be encoded", &sl->reply);
	}
	slot_send(sl);
}

/* Routes the decoded commands of a slot to their shards. */
void gw_slot_submit(gw_slot *sl)
{
	gw_server *gw = sl->gw;
	atomic_store_explicit(&sl->pending, 1, memory_order_relaxed);
	int draining = atomic_load_explicit(&gw->draining, memory_order_relaxed);
	/* Hot events: a mutating command takes a token of its event before it
	 * may enter a ring (gw_apply_local, the server's own, never does). */
	int throttle = gw->throttle != NULL && !sl->local;
	int64_t now_ns = throttle ? bo_clock_ns() : 0;
	uint32_t reads = 0, throttled = 0;
	for (uint32_t i = 0; i < sl->count; i++) {
		memset(&sl->res[i], 0, sizeof(bo_result));
		/* Reads are answered here, from the read model: they never
		 * enter a ring, never wait for a journal sync, and see what is
		 * durable (and applied) as they arrive. */
		const bo_cmd *c = &sl->cmds[i];
		if (sl->errs[i].status == BO_OK && (c->op == BO_OP_QUERY_AVAIL || c->op == BO_OP_QUERY_SEATS)) {
			uint32_t k = shard_for_event(c->event_id, gw->cfg.shards);
			if (gw->node) {
				/* Cluster: only the primary's read model is
				 * current (a standby's is rebuilt on promotion). */
				pthread_rwlock_rdlock(&gw->shard_rw[k]);
				if (gw_node_serving(gw->node, k) != 0)
					view_query(gw->views[k], c, &sl->res[i]);
				else
					not_primary_result(c, &sl->res[i]);
				pthread_rwlock_unlock(&gw->shard_rw[k]);
			} else {
				view_query(gw->views[k], c, &sl->res[i]);
			}
			reads++;
		} else if (throttle && sl->errs[i].status == BO_OK && bo_op_mutates(c->op) &&
			   throttle_refused(gw, c, &sl->res[i], now_ns)) {
			throttled++;
		}
	}
	if (reads)
		atomic_fetch_add_explicit(&gw->reads, reads, memory_order_relaxed);
	if (throttled)
		atomic_fetch_add_explicit(&gw->throttled, throttled, memory_order_relaxed);
	for (uint32_t k = 0; k < gw->cfg.shards && reads + throttled < sl->count; k++) {
		uint32_t n = 0;
		for (uint32_t i = 0; i < sl->count; i++) {
			uint8_t op = sl->cmds[i].op;
			if (sl->errs[i].status != BO_OK || op == BO_OP_QUERY_AVAIL || op == BO_OP_QUERY_SEATS ||
			    sl->res[i].status == BO_THROTTLED ||
			    shard_for_event(sl->cmds[i].event_id, gw->cfg.shards) != k)
				continue;
			sl->scratch[n] = sl->cmds[i];
			sl->tags[n] = ((uint64_t)sl->index << 32) | i;
			n++;
		}
		if (n == 0)
			continue;
		int rc = draining ? -EBUSY : 0;
		if (gw->node)
			pthread_rwlock_rdlock(&gw->shard_rw[k]); /* the node swaps roles and shards under it */
		int serving = gw->node && rc == 0 ? gw_node_serving(gw->node, k) : 1;
		if (serving == 0) {
			pthread_rwlock_unlock(&gw->shard_rw[k]);
			for (uint32_t j = 0; j < n; j++)
				not_primary_result(&sl->scratch[j], &sl->res[(uint32_t)sl->tags[j]]);
			continue;
		}
		if (rc == 0 && (serving < 0 || shard_failed(gw->shards[k])))
			rc = -EBUSY;
		if (rc == 0) {
			/* Count before submitting: a result may come back before
			 * shard_submit returns. */
			atomic_fetch_add_explicit(&sl->pending, n, memory_order_relaxed);
			rc = shard_submit(gw->shards[k], sl->scratch, sl->tags, n);
			if (rc != 0)
				atomic_fetch_sub_explicit(&sl->pending, n, memory_order_relaxed);
		}
		if (gw->node)
			pthread_rwlock_unlock(&gw->shard_rw[k]);
		if (rc != 0) {
			atomic_fetch_add_explicit(&gw->busy, n, memory_order_relaxed);
			for (uint32_t j = 0; j < n; j++)
				busy_result(&sl->scratch[j], &sl->res[(uint32_t)sl->tags[j]]);
		}
	}
	/* Drop the guard; acq_rel as for the output threads' decrements. */
	if (atomic_fetch_sub_explicit(&sl->pending, 1, memory_order_acq_rel) == 1)
		slot_complete(sl);
}

static void send_server_status(gw_slot *sl);
static void send_event_state(gw_slot *sl, uint64_t event_id);
static void send_cluster_admin(gw_slot *sl, int admin, const wire_admin_args *args);

/* The shared token (schemas/protocol.md section 17): the length of the
 * message's auth prefix (0: none) when the message may go on, or -1 after
 * answering it with one map (a malformed prefix: invalid/malformed; a
 * missing or wrong token on a server that has one: invalid/unauthorized).
 * Nothing of a refused message is applied. */
static int slot_auth(gw_slot *sl, const uint8_t *body, size_t len)
{
	gw_server *gw = sl->gw;
	const uint8_t *tok;
	size_t tok_len;
	wire_msg wm;
	int skip = wire_decode_auth(body, len, &tok, &tok_len, &wm);
	if (skip < 0) {
		atomic_fetch_add_explicit(&gw->invalid_msgs, 1, memory_order_relaxed);
		send_error(sl, BO_INVALID, wm.error);
		return -1;
	}
	if (gw_auth_ok(gw, (const char *)tok, tok_len))
		return skip;
	atomic_fetch_add_explicit(&gw->unauthorized, 1, memory_order_relaxed);
	/* Which of the two, but nothing about the token itself. */
	wire_cmd_error e = {.status = BO_INVALID, .detail = BO_D_UNAUTHORIZED};
	snprintf(e.text, sizeof(e.text), "%s", tok ? "wrong auth token" : "this server requires an auth token");
	sl->count = 0;
	sl->reply.size = 0;
	int rc = wire_encode_replies(&sl->res[0], &e, 1, 0, &sl->reply);
	assert(rc == 0 || rc == -ENOMEM);
	if (rc == 0)
		slot_send(sl);
	else
		send_error(sl, BO_INVALID, "unauthorized");
	return -1;
}

void gw_slot_receive(gw_slot *sl, const uint8_t *body, size_t len)
{
	gw_server *gw = sl->gw;
	wire_msg wm;
	wire_admin_args args;
	int skip = slot_auth(sl, body, len);
	if (skip < 0)
		return;
	body += skip; /* the request as it is without a token */
	len -= (size_t)skip;
	int admin = wire_decode_admin_args(body, len, &args, &wm);
	if (admin != WIRE_ADMIN_NONE) {
		if (admin < 0) {
			atomic_fetch_add_explicit(&gw->invalid_msgs, 1, memory_order_relaxed);
			send_error(sl, BO_INVALID, wm.error);
			return;
		}
		if (admin == WIRE_ADMIN_EVENT_STATE) {
			send_event_state(sl, args.event_id);
			return;
		}
		if (admin == WIRE_ADMIN_CLUSTER_STATUS || admin == WIRE_ADMIN_SWITCHOVER) {
			send_cluster_admin(sl, admin, &args);
			return;
		}
		assert(admin == WIRE_ADMIN_SERVER_STATUS);
		send_server_status(sl);
		return;
	}
	int rc = wire_decode_request(body, len, sl->cmds, sl->errs, sl->cap, &wm);
	if (rc != 0) {
		atomic_fetch_add_explicit(&gw->invalid_msgs, 1, memory_order_relaxed);
		send_error(sl, BO_INVALID, wm.error);
		return;
	}
	sl->count = wm.count;
	sl->is_array = wm.is_array;
	gw_slot_submit(sl);
}

static void slot_received(gw_slot *sl, nng_msg *msg)
{
	/* The message is ours until freed: decoding copies what it keeps (a
	 * create_event's map), so nothing refers to it after this. */
	gw_slot_receive(sl, nng_msg_body(msg), nng_msg_len(msg));
	nng_msg_free(msg);
}

static void slot_cb(void *arg)
{
	gw_slot *sl = arg;
	gw_server *gw = sl->gw;
	int rv = nng_aio_result(sl->aio);
	if (sl->state == SLOT_SEND) {
		if (rv != 0) {
			/* The peer went away: the message is still ours. */
			nng_msg *m = nng_aio_get_msg(sl->aio);
			if (m)
				nng_msg_free(m);
		} else {
			atomic_fetch_add_explicit(&gw->requests, 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&gw->commands, sl->count, memory_order_relaxed);
		}
		wire_free_maps(sl->cmds, sl->count);
		sl->count = 0;
		sl->state = SLOT_RECV;
		int closing = atomic_load_explicit(&gw->closing, memory_order_relaxed);
		atomic_fetch_sub_explicit(&gw->in_flight, 1, memory_order_relaxed);
		if (rv == NNG_ECLOSED || closing)
			return; /* shutting down: this context takes no more requests */
		nng_ctx_recv(sl->ctx, sl->aio);
		return;
	}
	if (rv != 0) {
		if (rv == NNG_ECLOSED)
			return;
		nng_ctx_recv(sl->ctx, sl->aio); /* e.g. a connection reset mid-message */
		return;
	}
	atomic_fetch_add_explicit(&gw->in_flight, 1, memory_order_relaxed);
	sl->start_ns = bo_clock_ns();
	slot_received(sl, nng_aio_get_msg(sl->aio));
}

/* ---- Output threads ------------------------------------------------------ */

/* view_batch_end's emit: publish the event's changes (with --publish). */
static void out_emit(void *ctx, uint64_t event_id, uint64_t prev_seq, uint64_t seq, int64_t at_ms,
		     const bo_change *changes, uint32_t n)
{
	out_arg *oa = ctx;
	if (oa->gw->pub)
		gw_pub_emit(oa->gw->pub, &oa->scratch, event_id, prev_seq, seq, at_ms, changes, n);
}

/* The command a result answers, for the read model: only a create_event's
 * map is needed, and the request slot keeps it until the reply is sent. */
static const bo_cmd *out_cmd(gw_server *gw, const shard_out *o)
{
	if (o->u.result.op != BO_OP_CREATE_EVENT)
		return NULL;
	uint32_t si = (uint32_t)(o->tag >> 32), ci = (uint32_t)o->tag;
	assert(si < gw->slot_count && ci < gw->slots[si].count);
	return &gw->slots[si].cmds[ci];
}

/* How many of the n records polled (at most GW_OUT_POLL_MAX + 1) make
 * this read-model batch: at most GW_OUT_POLL_MAX, and never the first part
 * of a sequence whose records go on after it (the expiries of one TICK
 * share its sequence; one sequence must name one state). The record after
 * the batch was polled only to look at it. */
static uint32_t out_cut(ring *out, uint64_t first, uint32_t n)
{
	_Static_assert(SHARD_OUT_SEQ_RUN_MAX <= GW_OUT_POLL_MAX, "a sequence's records fit one batch");
	if (n <= GW_OUT_POLL_MAX)
		return n; /* everything published: the shard publishes a TICK whole */
	uint64_t next = ((const shard_out *)ring_slot(out, first + GW_OUT_POLL_MAX))->seq;
	uint32_t k = GW_OUT_POLL_MAX;
	while (next != 0 && k > 0 && ((const shard_out *)ring_slot(out, first + k - 1))->seq == next)
		k--;
	/* k == 0: one sequence over more records than a batch, which the
	 * shard never writes (SHARD_OUT_SEQ_RUN_MAX); cut anyway. */
	return k > 0 ? k : GW_OUT_POLL_MAX;
}

/* One shard's output thread. Each poll is one read-model batch: applied
 * (and published) before any of its replies leaves, so a client that has
 * its write's reply reads the write. */
static void *out_main(void *arg)
{
	out_arg *oa = arg;
	gw_server *gw = oa->gw;
	ring *out = shard_output(gw->shards[oa->shard]);
	view *v = gw->views[oa->shard];
	/* ring_poll moves past every record it returns: the ones out_cut
	 * leaves out of a batch (held) are the next batch's first. */
	uint64_t first = 0;
	uint32_t held = 0;
	for (;;) {
		uint64_t more_first;
		uint32_t more = ring_poll(out, GW_OUT_POLL_MAX + 1 - held, &more_first);
		if (held == 0)
			first = more_first;
		assert(more == 0 || more_first == first + held);
		uint32_t polled = held + more;
		if (polled == 0) {
			if (atomic_load_explicit(&gw->out_stop, memory_order_relaxed) ||
			    atomic_load_explicit(&gw->out_stop_k[oa->shard], memory_order_relaxed))
				break;
			ring_wait(out, 10 * 1000000);
			continue;
		}
		uint32_t n = out_cut(out, first, polled);
		view_batch_begin(v);
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind == SHARD_OUT_RESULT)
				view_add_result(v, &o->u.result, out_cmd(gw, o), o->seq, o->now_ms);
			else if (o->kind == SHARD_OUT_EXPIRY)
				view_add_expiry(v, &o->u.expiry, o->seq, o->now_ms);
		}
		view_batch_end(v, out_emit, oa);
		for (uint32_t i = n; i > 0; i--) {
			uint64_t seq = ((const shard_out *)ring_slot(out, first + i - 1))->seq;
			if (seq != 0) {
				atomic_store_explicit(&gw->view_seq[oa->shard], seq, memory_order_release);
				break;
			}
		}
		for (uint32_t i = 0; i < n; i++) {
			const shard_out *o = ring_slot(out, first + i);
			if (o->kind != SHARD_OUT_RESULT)
				continue;
			uint32_t si = (uint32_t)(o->tag >> 32), ci = (uint32_t)o->tag;
			assert(si < gw->slot_count);
			gw_slot *sl = &gw->slots[si];
			assert(ci < sl->count);
			sl->res[ci] = o->u.result;
			if (o->u.result.status == BO_BUSY) /* a failed shard's answer (shard.h) */
				atomic_fetch_add_explicit(&gw->busy, 1, memory_order_relaxed);
			if (atomic_fetch_sub_explicit(&sl->pending, 1, memory_order_acq_rel) == 1)
				slot_complete(sl);
		}
		ring_release(out, n);
		first += n;
		held = polled - n;
	}
	return NULL;
}

/* ---- event_state: a subscriber's snapshot -------------------------------- */

/* 1 when one more event_state fits this second's budget. */
int gw_event_state_admit(gw_server *gw)
{
	int64_t now = bo_clock_ms();
	pthread_mutex_lock(&gw->es_lock);
	if (now - gw->es_window_ms >= 1000) {
		gw->es_window_ms = now;
		gw->es_count = 0;
	}
	int ok = gw->es_count < BO_EVENT_STATE_PER_SEC_MAX;
	if (ok)
		gw->es_count++;
	pthread_mutex_unlock(&gw->es_lock);
	return ok;
}

static void send_event_state(gw_slot *sl, uint64_t event_id)
{
	gw_server *gw = sl->gw;
	sl->count = 0;
	if (atomic_load_explicit(&gw->draining, memory_order_relaxed)) {
		send_error(sl, BO_BUSY, "server stopping, retry later");
		return;
	}
	if (!gw_event_state_admit(gw)) {
		atomic_fetch_add_explicit(&gw->event_states_throttled, 1, memory_order_relaxed);
		char text[WIRE_ERROR_LEN_MAX];
		snprintf(text, sizeof(text), "over %u event_state requests per second: retry later",
			 BO_EVENT_STATE_PER_SEC_MAX);
		send_error(sl, BO_THROTTLED, text);
		return;
	}
	bo_event_image im;
	uint32_t k = shard_for_event(event_id, gw->cfg.shards);
	int rc;
	if (gw->node) {
		pthread_rwlock_rdlock(&gw->shard_rw[k]);
		int serving = gw_node_serving(gw->node, k) != 0;
		rc = serving ? view_image(gw->views[k], event_id, &im) : 0;
		pthread_rwlock_unlock(&gw->shard_rw[k]);
		if (!serving) {
			wire_primary p;
			gw_node_primary(gw->node, k, &p);
			sl->reply.size = 0;
			if (wire_encode_not_primary(&p, "this server is not the primary of the event's shard", &sl->reply) == 0)
				slot_send(sl);
			else
				send_error(sl, BO_BUSY, "out of memory, retry later");
			return;
		}
	} else {
		rc = view_image(gw->views[k], event_id, &im);
	}
	if (rc == -ENOENT) {
		/* {"status": "not_found", "detail": "no_event", "error": ...}:
		 * the refusal shape of a command that failed to decode. */
		wire_cmd_error e = {.status = BO_NOT_FOUND, .detail = BO_D_NO_EVENT};
		snprintf(e.text, sizeof(e.text), "no such event");
		sl->reply.size = 0;
		rc = wire_encode_replies(&sl->res[0], &e, 1, 0, &sl->reply);
		assert(rc == 0 || rc == -ENOMEM);
		if (rc == 0) {
			slot_send(sl);
			return;
		}
	}
	if (rc == 0) {
		sl->reply.size = 0;
		rc = wire_encode_event_image(&im, &sl->reply);
		bo_event_image_free(&im);
		if (rc == 0) {
			atomic_fetch_add_explicit(&gw->event_states, 1, memory_order_relaxed);
			slot_send(sl);
			return;
		}
	}
	bo_log(BO_LOG_ERROR, "msg=\"event_state reply could not be built\" event=%" PRIu64 " error=%d", event_id, rc);
	send_error(sl, rc == -ENOMEM ? BO_BUSY : BO_INVALID,
		   rc == -ENOMEM ? "out of memory for the event's image, retry later"
				 : "internal error: event_state reply could not be encoded");
}

/* ---- Status: server_status, the status log, the committers --------------- */

static uint8_t wire_state(int state)
{
	switch (state) {
	case COMMITTER_STARTING:
		return WIRE_COMMITTER_STARTING;
	case COMMITTER_RUNNING:
		return WIRE_COMMITTER_RUNNING;
	case COMMITTER_RETRYING:
		return WIRE_COMMITTER_RETRYING;
	default:
		return WIRE_COMMITTER_STOPPED;
	}
}

/* One shard's status (status_lock held: the committer pointer is stable). */
static void shard_status_fill(gw_server *gw, uint32_t k, wire_shard_status *o)
{
	memset(o, 0, sizeof(*o));
	o->shard = k;
	shard_stats ss;
	shard_stats_get(gw->shards[k], &ss);
	o->durable_seq = ss.durable_seq;
	o->batches = ss.batches;
	wire_committer_status *w = &o->committer;
	if (!gw->cfg.committer.dsn) {
		w->state = WIRE_COMMITTER_OFF;
		snprintf(w->reason, sizeof(w->reason), "no database: journal not carried to PostgreSQL");
		return;
	}
	if (!gw->committers[k]) {
		int why = gw_committer_absent(gw, k);
		w->state = why == GW_COMMITTER_OFF_HERE ? WIRE_COMMITTER_OFF : WIRE_COMMITTER_STOPPED;
		snprintf(w->reason, sizeof(w->reason), "%s",
			 why == GW_COMMITTER_OFF_HERE ? "not the shard's primary here: its primary's committer carries "
							"it to PostgreSQL"
			 : why == GW_COMMITTER_NOT_STARTED ? "the committer did not start (the log says why)"
							   : "the server is stopping");
		return;
	}
	committer_status cs;
	committer_status_get(gw->committers[k], &cs);
	w->state = wire_state(cs.state);
	w->applied_seq = cs.applied_seq;
	w->lag_records = cs.lag_records;
	w->lag_ms = cs.lag_ms;
	w->batches = cs.batches;
	w->changes = cs.changes;
	w->outbox = cs.outbox;
	w->retries = cs.retries;
	_Static_assert(sizeof(w->reason) >= sizeof(cs.reason), "the reason fits");
	memcpy(w->reason, cs.reason, sizeof(cs.reason));
	w->reason[sizeof(cs.reason) - 1] = '\0';
}

/* Fills out (status_lock held). */
static void status_fill(gw_server *gw, wire_server_status *out)
{
	memset(out->version, 0, sizeof(out->version));
	snprintf(out->version, sizeof(out->version), "%s", gw->cfg.version ? gw->cfg.version : "unknown");
	out->shard_count = gw->cfg.shards;
	for (uint32_t k = 0; k < gw->cfg.shards; k++)
		shard_status_fill(gw, k, &out->shards[k]);
}

void gw_server_status(gw_server *gw, wire_server_status *out)
{
	pthread_mutex_lock(&gw->status_lock);
	status_fill(gw, out);
	pthread_mutex_unlock(&gw->status_lock);
}

/* Answers server_status (an nng callback): busy once the server drains, as
 * every other request. */
static void send_server_status(gw_slot *sl)
{
	gw_server *gw = sl->gw;
	sl->count = 0;
	pthread_mutex_lock(&gw->status_lock);
	int draining = atomic_load_explicit(&gw->draining, memory_order_relaxed);
	int rc = 0;
	if (!draining) {
		status_fill(gw, &gw->status_buf);
		sl->reply.size = 0;
		rc = wire_encode_server_status(&gw->status_buf, &sl->reply);
	}
	pthread_mutex_unlock(&gw->status_lock);
	if (draining) {
		send_error(sl, BO_BUSY, "server stopping, retry later");
		return;
	}
	if (rc != 0) {
		bo_log(BO_LOG_ERROR, "msg=\"server_status reply could not be encoded\" error=%d", rc);
		send_error(sl, BO_INVALID, "internal error: server_status reply could not be encoded");
		return;
	}
	slot_send(sl);
}

/* switchover's completion (the node's control thread). */
static void switchover_done(void *ctx, int status, const char *text)
{
	gw_slot *sl = ctx;
	sl->reply.size = 0;
	if (status == BO_NOT_PRIMARY) {
		wire_primary p;
		uint32_t k = (uint32_t)sl->start_aux;
		gw_node_primary(sl->gw->node, k, &p);
		if (wire_encode_not_primary(&p, text, &sl->reply) == 0) {
			slot_send(sl);
			return;
		}
	} else if (status == BO_OK) {
		if (wire_encode_ok(&sl->reply) == 0) {
			slot_send(sl);
			return;
		}
	}
	send_error(sl, status == BO_NOT_PRIMARY || status == BO_OK ? BO_BUSY : status,
		   status == BO_OK ? "out of memory, retry later" : text);
}

/* cluster_status and switchover: a single server answers them invalid (it
 * is no cluster node). */
static void send_cluster_admin(gw_slot *sl, int admin, const wire_admin_args *args)
{
	gw_server *gw = sl->gw;
	sl->count = 0;
	if (atomic_load_explicit(&gw->draining, memory_order_relaxed)) {
		send_error(sl, BO_BUSY, "server stopping, retry later");
		return;
	}
	if (!gw->node) {
		send_error(sl, BO_INVALID, "this server is not a cluster node (started without --etcd)");
		return;
	}
	if (admin == WIRE_ADMIN_SWITCHOVER) {
		sl->start_aux = args->shard;
		gw_node_switchover(gw->node, args->shard, args->to, switchover_done, sl);
		return;
	}
	pthread_mutex_lock(&gw->status_lock);
	gw_node_cluster_status(gw->node, &gw->cluster_buf);
	sl->reply.size = 0;
	int rc = wire_encode_cluster_status(&gw->cluster_buf, &sl->reply);
	pthread_mutex_unlock(&gw->status_lock);
	if (rc != 0) {
		bo_log(BO_LOG_ERROR, "msg=\"cluster_status reply could not be encoded\" error=%d", rc);
		send_error(sl, BO_INVALID, "internal error: cluster_status reply could not be encoded");
		return;
	}
	slot_send(sl);
}

/* A reason as one log value: quotes become ' and controls spaces, so the
 * line stays one key="value" line whatever the database said. */
static void log_text(char *dst, size_t cap, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch == '"' ? '\'' : ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	dst[i] = '\0';
}

static void status_log_shard(const wire_shard_status *s)
{
	const wire_committer_status *c = &s->committer;
	char reason[WIRE_REASON_LEN_MAX];
	log_text(reason, sizeof(reason), c->reason);
	int show_reason = c->state != WIRE_COMMITTER_RUNNING && reason[0];
	if (c->state == WIRE_COMMITTER_OFF) {
		bo_log(BO_LOG_INFO, "msg=\"status\" shard=%u durable_seq=%" PRIu64 " committer=off%s%s%s", s->shard,
		       s->durable_seq, show_reason ? " reason=\"" : "", show_reason ? reason : "",
		       show_reason ? "\"" : "");
		return;
	}
	bo_log(BO_LOG_INFO,
	       "msg=\"status\" shard=%u durable_seq=%" PRIu64 " committer=%s applied_seq=%" PRIu64
	       " lag_records=%" PRIu64 " lag_ms=%" PRIu64 "%s%s%s",
	       s->shard, s->durable_seq, wire_committer_state_name(c->state), c->applied_seq, c->lag_records,
	       c->lag_ms, show_reason ? " reason=\"" : "", show_reason ? reason : "", show_reason ? "\"" : "");
}

/* How often the status thread looks for a committer state change: the
 * committer has no callback, and its status is a handful of atomic loads. */
#define GW_STATUS_POLL_MS 100

/* The status thread: a line per shard every status_every_ms (the first at
 * once), and a shard's line as soon as its committer changes state. */
static void *status_main(void *arg)
{
	gw_server *gw = arg;
	wire_server_status *st = &gw->status_log_buf;
	uint8_t prev[GW_SHARDS_MAX];
	memset(prev, 0xff, sizeof(prev));
	int64_t next = bo_clock_ns();
	pthread_mutex_lock(&gw->status_stop_lock);
	while (!gw->status_stop) {
		pthread_mutex_unlock(&gw->status_stop_lock);
		gw_server_status(gw, st);
		int64_t now = bo_clock_ns();
		int periodic = now >= next;
		if (periodic)
			next = now + (int64_t)gw->cfg.status_every_ms * 1000000;
		gw_metrics_tick(gw);
		for (uint32_t k = 0; k < st->shard_count; k++) {
			uint8_t state = st->shards[k].committer.state;
			int changed = prev[k] != 0xff && prev[k] != state;
			prev[k] = state;
			if (periodic || changed)
				status_log_shard(&st->shards[k]);
		}
		int64_t wake = bo_clock_ns() + GW_STATUS_POLL_MS * 1000000LL;
		struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
		pthread_mutex_lock(&gw->status_stop_lock);
		if (!gw->status_stop)
			pthread_cond_timedwait(&gw->status_stop_cv, &gw->status_stop_lock, &ts);
	}
	pthread_mutex_unlock(&gw->status_stop_lock);
	return NULL;
}

static int status_thread_start(gw_server *gw, char *err, size_t errlen)
{
	if (gw->cfg.status_every_ms == 0)
		return 0;
	int rc = -pthread_create(&gw->status_thread, NULL, status_main, gw);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the status thread: %s", strerror(-rc));
		return rc;
	}
	gw->status_started = 1;
	return 0;
}

static void status_thread_stop(gw_server *gw)
{
	if (!gw->status_started)
		return;
	pthread_mutex_lock(&gw->status_stop_lock);
	gw->status_stop = 1;
	pthread_cond_signal(&gw->status_stop_cv);
	pthread_mutex_unlock(&gw->status_stop_lock);
	pthread_join(gw->status_thread, NULL);
	gw->status_started = 0;
}

int gw_committer_absent(gw_server *gw, uint32_t k)
{
	assert(gw->cfg.committer.dsn && !gw->committers[k]);
	if (gw->committer_failed[k])
		return GW_COMMITTER_NOT_STARTED;
	if (!gw->cfg.node.etcd || atomic_load_explicit(&gw->draining, memory_order_relaxed))
		return GW_COMMITTER_GONE;
	return GW_COMMITTER_OFF_HERE;
}

int gw_committer_start(gw_server *gw, uint32_t k, char *err, size_t errlen)
{
	assert(k < gw->cfg.shards);
	if (!gw->cfg.committer.dsn)
		return 0;
	assert(gw->committers[k] == NULL); /* one committer per shard and database */
	committer_config cc = gw->cfg.committer;
	/* In a cluster the old primary's committer may still finish a batch
	 * after this one started (committer.h: shared). */
	cc.shared = gw->cfg.node.etcd != NULL;
	char cerr[GW_ERR_LEN];
	committer *c;
	int rc = committer_start(gw->shards[k], &cc, &c, cerr, sizeof(cerr));
	pthread_mutex_lock(&gw->status_lock);
	gw->committers[k] = rc < 0 ? NULL : c;
	gw->committer_failed[k] = rc < 0;
	pthread_mutex_unlock(&gw->status_lock);
	if (rc < 0)
		snprintf(err, errlen, "shard %u: cannot start its database committer: %s", k, cerr);
	return rc;
}

int gw_committer_stop(gw_server *gw, uint32_t k, committer_status *last)
{
	assert(k < gw->cfg.shards);
	pthread_mutex_lock(&gw->status_lock);
	committer *c = gw->committers[k];
	gw->committers[k] = NULL;
	gw->committer_failed[k] = 0;
	pthread_mutex_unlock(&gw->status_lock);
	if (last)
		memset(last, 0, sizeof(*last));
	if (!c)
		return 0;
	committer_finish(c, last);
	return 1;
}

/* One committer per started shard (with a dsn; in a cluster none: the
 * node starts each where its shard becomes primary). Returns 0 or a
 * negative errno (err); what started is stopped by committers_stop(). */
static int committers_start(gw_server *gw, char *err, size_t errlen)
{
	if (!gw->cfg.committer.dsn || gw->cfg.node.etcd)
		return 0;
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		int rc = gw_committer_start(gw, k, err, errlen);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Stops every committer: each applies what is released (the shards are
 * stopped: nothing more comes) when the database is reachable, and exits. */
static void committers_stop(gw_server *gw)
{
	for (uint32_t k = 0; k < gw->cfg.shards; k++)
		gw_committer_stop(gw, k, NULL);
}

/* ---- Life cycle ---------------------------------------------------------- */

static int slot_init(gw_server *gw, gw_slot *sl, uint32_t index, uint32_t cap)
{
	sl->gw = gw;
	sl->index = index;
	sl->cap = cap;
	atomic_init(&sl->pending, 0);
	sl->cmds = calloc(cap, sizeof(bo_cmd));
	sl->errs = calloc(cap, sizeof(wire_cmd_error));
	sl->res = calloc(cap, sizeof(bo_result));
	sl->scratch = calloc(cap, sizeof(bo_cmd));
	sl->tags = calloc(cap, sizeof(uint64_t));
	if (gw->cfg.node.etcd && !(sl->primary = calloc(cap, sizeof(wire_primary))))
		return -ENOMEM;
	msgpack_sbuffer_init(&sl->reply);
	if (!sl->cmds || !sl->errs || !sl->res || !sl->scratch || !sl->tags)
		return -ENOMEM;
	return sem_init(&sl->done, 0, 0) == 0 ? 0 : -errno;
}

static void slot_fini(gw_slot *sl)
{
	if (sl->aio)
		nng_aio_free(sl->aio);
	wire_free_maps(sl->cmds, sl->count);
	free(sl->cmds);
	free(sl->errs);
	free(sl->res);
	free(sl->scratch);
	free(sl->tags);
	free(sl->primary);
	msgpack_sbuffer_destroy(&sl->reply);
	sem_destroy(&sl->done);
}

int gw_out_start(gw_server *gw, uint32_t k)
{
	atomic_store_explicit(&gw->out_stop_k[k], 0, memory_order_relaxed);
	gw->out_args[k] = (out_arg){.gw = gw, .shard = k};
	msgpack_sbuffer_init(&gw->out_args[k].scratch);
	int rc = -pthread_create(&gw->out_threads[k], NULL, out_main, &gw->out_args[k]);
	if (rc < 0)
		msgpack_sbuffer_destroy(&gw->out_args[k].scratch);
	return rc;
}

void gw_out_stop(gw_server *gw, uint32_t k)
{
	atomic_store_explicit(&gw->out_stop_k[k], 1, memory_order_relaxed);
	pthread_join(gw->out_threads[k], NULL);
	msgpack_sbuffer_destroy(&gw->out_args[k].scratch);
}

static void stop_outputs(gw_server *gw)
{
	atomic_store_explicit(&gw->out_stop, 1, memory_order_relaxed);
	for (uint32_t k = 0; k < gw->out_started; k++) {
		pthread_join(gw->out_threads[k], NULL);
		msgpack_sbuffer_destroy(&gw->out_args[k].scratch);
	}
	gw->out_started = 0;
}

static void stop_shards(gw_server *gw)
{
	/* The output threads keep draining while the writers finish. */
	for (uint32_t k = 0; k < gw->cfg.shards; k++)
		if (gw->shards[k])
			shard_stop(gw->shards[k]);
	stop_outputs(gw);
}

/* Opens (recovering) every shard. Returns 0 or a negative errno (err). */
static int shards_open(gw_server *gw, char *err, size_t errlen)
{
	const gw_config *cfg = &gw->cfg;
	for (uint32_t k = 0; k < cfg->shards; k++) {
		shard_config sc = cfg->shard;
		sc.id = k;
		sc.data_dir = cfg->data_dir;
		/* Cluster: every copy starts as a standby; the node's control
		 * thread promotes the ones the shard map gives this node. */
		if (cfg->node.etcd)
			sc.standby = 1;
		if (cfg->committer.dsn)
			sc.retain_seq = 0; /* keep the journal until the committer applied it */
		shard_recovery rec;
		char serr[GW_ERR_LEN];
		int rc = shard_open(&sc, &gw->shards[k], &rec, serr, sizeof(serr));
		if (rc < 0) {
			snprintf(err, errlen, "shard %u: %s", k, serr);
			return rc;
		}
		/* The read model starts from the recovered engine: every event
		 * at the last journal sequence (nothing later has happened). */
		rc = view_new(&sc.engine, &gw->views[k]);
		if (rc == 0)
			rc = view_load(gw->views[k], shard_engine(gw->shards[k]), rec.last_seq);
		atomic_store_explicit(&gw->view_seq[k], rec.last_seq, memory_order_relaxed);
		if (rc < 0) {
			snprintf(err, errlen, "shard %u: cannot build its read model: %s", k, strerror(-rc));
			return rc;
		}
		bo_log(BO_LOG_INFO,
		       "msg=\"shard recovered\" shard=%u snapshot_seq=%" PRIu64 " last_seq=%" PRIu64
		       " replayed=%" PRIu64 " seconds=%.3f%s%s%s",
		       k, rec.snapshot_seq, rec.last_seq, rec.replayed, rec.seconds,
		       rec.journal.note[0] ? " journal=\"" : "", rec.journal.note, rec.journal.note[0] ? "\"" : "");
	}
	return 0;
}

/* Starts each shard's writer and its output thread. Returns 0 or a
 * negative errno (err); what started is stopped by stop_shards(). */
static int shards_start(gw_server *gw, char *err, size_t errlen)
{
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		int rc = shard_start(gw->shards[k]);
		if (rc < 0) {
			snprintf(err, errlen, "shard %u: cannot start its thread: %s", k, strerror(-rc));
			return rc;
		}
		rc = gw_out_start(gw, k);
		if (rc < 0) {
			snprintf(err, errlen, "shard %u: cannot start its output thread: %s", k, strerror(-rc));
			return rc;
		}
		gw->out_started++;
	}
	return 0;
}

/* One slot per context, the local slot, then (with --http) the HTTP
 * front's: GW_HTTP_SLOTS_SMALL of one command, GW_HTTP_SLOTS_BIG of a
 * batch (http.c hands them out). */
/* The hot-event buckets: room for every event the shards may hold busy
 * at once (a full bucket's slot is reused, throttle.h). */
static int throttle_open(gw_server *gw, char *err, size_t errlen)
{
	const gw_config *cfg = &gw->cfg;
	uint64_t events = (uint64_t)cfg->shards * cfg->shard.engine.events_max;
	uint32_t events_max = events < 1024 ? 1024 : events > (1u << 20) ? (1u << 20) : (uint32_t)events;
	int rc = gw_throttle_new(cfg->throttle_rate, cfg->throttle_burst, events_max, &gw->throttle);
	if (rc < 0)
		snprintf(err, errlen, "cannot set up hot-event throttling: %s", strerror(-rc));
	return rc;
}

/* The capacity of slot i: an nng context's and the local slot hold a full
 * message; then come the HTTP front's (with --http), then the framed
 * front's (with --frame), each front's small slots (one command) first. */
static uint32_t slot_cap(const gw_config *cfg, uint32_t i)
{
	if (i <= cfg->contexts)
		return WIRE_BATCH_MAX;
	uint32_t h = i - cfg->contexts - 1;
	if (cfg->http) {
		if (h < GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG)
			return h < GW_HTTP_SLOTS_SMALL ? 1 : BO_HTTP_BATCH_MAX;
		h -= GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG;
	}
	return h < GW_FRAME_SLOTS_SMALL ? 1 : WIRE_BATCH_MAX;
}

static int slots_alloc(gw_server *gw, char *err, size_t errlen)
{
	uint32_t http = gw->cfg.http ? GW_HTTP_SLOTS_SMALL + GW_HTTP_SLOTS_BIG : 0;
	uint32_t frame = gw->cfg.frame ? GW_FRAME_SLOTS_SMALL + GW_FRAME_SLOTS_BIG : 0;
	gw->slot_count = gw->cfg.contexts + 1 + http + frame;
	gw->slots = calloc(gw->slot_count, sizeof(gw_slot));
	int rc = gw->slots ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < gw->slot_count && rc == 0; i++)
		rc = slot_init(gw, &gw->slots[i], i, slot_cap(&gw->cfg, i));
	if (rc < 0) {
		snprintf(err, errlen, "out of memory for %u request slots", gw->slot_count);
		return rc;
	}
	gw->slots[gw->cfg.contexts].local = 1;
	return 0;
}

/* The REP socket, its receive limit and one nng context per slot. */
static int socket_open(gw_server *gw, char *err, size_t errlen)
{
	int nrv = nng_rep0_open(&gw->sock);
	if (nrv != 0) {
		snprintf(err, errlen, "nng: cannot open a REP socket: %s", nng_strerror(nrv));
		return -EIO;
	}
	gw->sock_open = 1;
	/* nng's default is unlimited, and its TCP transport allocates
	 * whatever length a peer declares: bound it. */
	nng_socket_set_size(gw->sock, NNG_OPT_RECVMAXSZ, gw->cfg.recv_max_bytes + WIRE_SP_HEADER_BYTES);
	/* (recv_max_bytes is then exactly the largest request body a REQ peer can
	 * send: schemas/protocol.md section 2.) */
	for (uint32_t i = 0; i < gw->cfg.contexts; i++) {
		gw_slot *sl = &gw->slots[i];
		if ((nrv = nng_aio_alloc(&sl->aio, slot_cb, sl)) != 0 ||
		    (nrv = nng_ctx_open(&sl->ctx, gw->sock)) != 0) {
			snprintf(err, errlen, "nng: cannot set up request slot %u: %s", i, nng_strerror(nrv));
			return -EIO;
		}
	}
	return 0;
}

static int listeners_open(gw_server *gw, char *err, size_t errlen)
{
	const gw_config *cfg = &gw->cfg;
	for (uint32_t i = 0; i < cfg->listen_count; i++) {
		int nrv = nng_listen(gw->sock, cfg->listen[i], &gw->listeners[i], 0);
		if (nrv != 0) {
			snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen[i], nng_strerror(nrv));
			return nrv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL;
		}
		gw->listener_count++;
		bo_log(BO_LOG_INFO, "msg=\"listening\" url=%s", cfg->listen[i]);
	}
	return 0;
}

int gw_start(const gw_config *cfg, gw_server **out, char *err, size_t errlen)
{
	*out = NULL;
	err[0] = '\0';
	if (cfg->shards == 0 || cfg->shards > GW_SHARDS_MAX || cfg->listen_count == 0 ||
	    cfg->listen_count > GW_LISTEN_MAX || cfg->contexts == 0 || cfg->contexts > GW_CONTEXTS_MAX ||
	    cfg->recv_max_bytes == 0 || cfg->recv_max_bytes > WIRE_MSG_MAX) {
		snprintf(err, errlen,
			 "invalid configuration: shards 1..%u, 1..%u listen addresses, contexts 1..%u, recv max "
			 "1..%u bytes",
			 GW_SHARDS_MAX, GW_LISTEN_MAX, GW_CONTEXTS_MAX, WIRE_MSG_MAX);
		return -EINVAL;
	}
	int rc = gw_auth_check_config(cfg, err, errlen);
	if (rc < 0)
		return rc;
	if (cfg->throttle_rate > GW_THROTTLE_RATE_MAX ||
	    (cfg->throttle_rate > 0 && (cfg->throttle_burst == 0 || cfg->throttle_burst > GW_THROTTLE_BURST_MAX))) {
		snprintf(err, errlen, "invalid configuration: throttle rate 0 (off) or 1..%u with a burst of 1..%u",
			 GW_THROTTLE_RATE_MAX, GW_THROTTLE_BURST_MAX);
		return -EINVAL;
	}
	gw_server *gw = calloc(1, sizeof(*gw));
	if (!gw)
		return -ENOMEM;
	gw->cfg = *cfg;
	if (gw_auth_init(gw) < 0) {
		free(gw);
		return -ENOMEM;
	}
	pthread_mutex_init(&gw->local_lock, NULL);
	pthread_rwlockattr_t rwa;
	pthread_rwlockattr_init(&rwa);
	/* The submit path takes it for reading all the time: the node's rare
	 * writes must not starve. */
	pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	for (uint32_t k = 0; k < GW_SHARDS_MAX; k++)
		pthread_rwlock_init(&gw->shard_rw[k], &rwa);
	pthread_rwlockattr_destroy(&rwa);
	pthread_mutex_init(&gw->status_lock, NULL);
	pthread_mutex_init(&gw->status_stop_lock, NULL);
	pthread_mutex_init(&gw->es_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* bo_clock_ns deadlines */
	pthread_cond_init(&gw->status_stop_cv, &ca);
	pthread_condattr_destroy(&ca);
	gw_metrics_init(gw);
	rc = shards_open(gw, err, errlen);
	if (rc == 0 && cfg->throttle_rate > 0)
		rc = throttle_open(gw, err, errlen);
	if (rc == 0 && cfg->publish_count > 0)
		rc = gw_pub_start(cfg->publish, cfg->publish_count, &gw->pub, err, errlen);
	if (rc == 0)
		rc = shards_start(gw, err, errlen);
	if (rc == 0)
		rc = committers_start(gw, err, errlen);
	if (rc == 0)
		rc = status_thread_start(gw, err, errlen);
	if (rc == 0)
		rc = slots_alloc(gw, err, errlen);
	if (rc == 0)
		rc = socket_open(gw, err, errlen);
	if (rc == 0 && cfg->node.etcd) {
		gw_node *node;
		rc = gw_node_start(gw, &node, err, errlen);
	}
	if (rc == 0)
		rc = listeners_open(gw, err, errlen);
	if (rc == 0 && cfg->http)
		rc = gw_http_start(gw, err, errlen);
	if (rc == 0 && cfg->frame)
		rc = gw_frame_start(gw, err, errlen);
	if (rc < 0) {
		gw_frame_stop(gw);
		gw_http_stop(gw);
		if (gw->sock_open)
			nng_close(gw->sock);
		gw_node_stop(gw->node);
		stop_shards(gw);
		status_thread_stop(gw);
		committers_stop(gw);
		gw_free(gw);
		return rc;
	}
	for (uint32_t i = 0; i < cfg->contexts; i++)
		nng_ctx_recv(gw->slots[i].ctx, gw->slots[i].aio);
	atomic_store_explicit(&gw->ready, 1, memory_order_release); /* gw_ready */
	*out = gw;
	return 0;
}

static void *close_main(void *arg)
{
	gw_server *gw = arg;
	nng_close(gw->sock);
	atomic_store_explicit(&gw->closed, 1, memory_order_release);
	return NULL;
}

int gw_stop(gw_server *gw, int64_t timeout_ms)
{
	int rc = 0;
	/* New requests are answered busy from here on. The listeners stay
	 * open until the end: closing one closes the connections it accepted,
	 * and the replies still on their way would be lost. */
	atomic_store_explicit(&gw->draining, 1, memory_order_relaxed);
	int64_t deadline = bo_clock_ms() + timeout_ms;
	while (atomic_load_explicit(&gw->in_flight, memory_order_relaxed) > 0) {
		if (bo_clock_ms() > deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		usleep(1000);
	}
	/* The node first: its senders follow the shards, its control thread
	 * may reopen them. */
	gw_node_stop(gw->node);
	stop_shards(gw);
	/* The output threads are joined: nothing more is published. */
	gw_pub_stop(gw->pub);
	status_thread_stop(gw);
	committers_stop(gw);
	/* From here a context that answers (busy) takes no further request,
	 * so what is in flight can only shrink; wait for it once more. */
	atomic_store_explicit(&gw->closing, 1, memory_order_relaxed);
	int64_t closing_deadline = bo_clock_ms() + 1000;
	while (atomic_load_explicit(&gw->in_flight, memory_order_relaxed) > 0 && bo_clock_ms() < closing_deadline)
		usleep(1000);
	/* A request leaves in_flight when nng has taken its reply, not when the
	 * bytes are on the wire: give the pipes a moment to write them. */
	usleep(200000);
	gw_http_stop(gw);
	gw_frame_stop(gw); /* after the output threads: it answers what they left busy */
	for (uint32_t i = 0; i < gw->listener_count; i++)
		nng_listener_close(gw->listeners[i]);
	gw->listener_count = 0;
	if (gw->sock_open) {
		/* nng 1.5.2's nng_close() can hang after REP traffic (a known nng
		 * issue). Everything is durable and answered by now, so bound it:
		 * close from a helper thread and give up after 3 s. */
		pthread_t t;
		atomic_store_explicit(&gw->closed, 0, memory_order_relaxed);
		if (pthread_create(&t, NULL, close_main, gw) == 0) {
			int64_t close_deadline = bo_clock_ms() + 3000;
			while (!atomic_load_explicit(&gw->closed, memory_order_acquire) && bo_clock_ms() < close_deadline)
				usleep(1000);
			if (atomic_load_explicit(&gw->closed, memory_order_acquire)) {
				pthread_join(t, NULL);
			} else {
				pthread_detach(t);
				gw->close_hung = 1;
				bo_log(BO_LOG_WARN, "msg=\"nng_close did not return within 3 s; exiting without it\"");
				return rc;
			}
		} else {
			nng_close(gw->sock);
		}
		gw->sock_open = 0;
	}
	for (uint32_t i = 0; i < gw->cfg.contexts; i++)
		if (gw->slots[i].aio)
			nng_aio_stop(gw->slots[i].aio);
	return rc;
}

int gw_close_hung(const gw_server *gw) { return gw->close_hung; }

void gw_free(gw_server *gw)
{
	if (!gw)
		return;
	if (gw->slots) {
		for (uint32_t i = 0; i < gw->slot_count; i++)
			slot_fini(&gw->slots[i]);
		free(gw->slots);
	}
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		shard_free(gw->shards[k]);
		view_free(gw->views[k]);
	}
	gw_pub_free(gw->pub);
	gw_throttle_free(gw->throttle);
	gw_metrics_fini(gw);
	gw_node_free(gw->node);
	for (uint32_t k = 0; k < GW_SHARDS_MAX; k++)
		pthread_rwlock_destroy(&gw->shard_rw[k]);
	pthread_mutex_destroy(&gw->es_lock);
	pthread_mutex_destroy(&gw->local_lock);
	pthread_mutex_destroy(&gw->status_lock);
	pthread_mutex_destroy(&gw->status_stop_lock);
	pthread_cond_destroy(&gw->status_stop_cv);
	gw_auth_fini(gw);
	free(gw);
}

const char *gw_failed(const gw_server *gw)
{
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		const char *f = gw->shards[k] ? shard_failed(gw->shards[k]) : NULL;
		if (f)
			return f;
	}
	return NULL;
}

void gw_stats_get(const gw_server *cgw, gw_stats *out)
{
	gw_server *gw = (gw_server *)cgw;
	out->requests = atomic_load_explicit(&gw->requests, memory_order_relaxed);
	out->commands = atomic_load_explicit(&gw->commands, memory_order_relaxed);
	out->invalid_msgs = atomic_load_explicit(&gw->invalid_msgs, memory_order_relaxed);
	out->busy = atomic_load_explicit(&gw->busy, memory_order_relaxed);
	out->reads = atomic_load_explicit(&gw->reads, memory_order_relaxed);
	out->ring_commands = 0;
	for (uint32_t k = 0; k < gw->cfg.shards; k++) {
		shard_stats ss;
		if (!gw->shards[k])
			continue;
		shard_stats_get(gw->shards[k], &ss);
		out->ring_commands += ss.submitted;
	}
	out->event_states = atomic_load_explicit(&gw->event_states, memory_order_relaxed);
	out->event_states_throttled = atomic_load_explicit(&gw->event_states_throttled, memory_order_relaxed);
	out->unauthorized = atomic_load_explicit(&gw->unauthorized, memory_order_relaxed);
	out->throttled = atomic_load_explicit(&gw->throttled, memory_order_relaxed);
	memset(&out->pub, 0, sizeof(out->pub));
	if (gw->pub)
		gw_pub_stats_get(gw->pub, &out->pub);
}

/* Copies cmds[0..n) into the local slot, each create_event's map as a copy
 * the slot owns: a shard borrows a map until the command's result comes
 * out, which can be after a timed-out gw_apply_local returned and its
 * caller freed the original. Returns 0 or -ENOMEM / -EINVAL (nothing kept). */
static int local_copy_in(gw_slot *sl, const bo_cmd *cmds, uint32_t n)
{
	memcpy(sl->cmds, cmds, n * sizeof(bo_cmd));
	for (uint32_t i = 0; i < n; i++) {
		if (cmds[i].op != BO_OP_CREATE_EVENT || !cmds[i].map)
			continue;
		bo_seatmap *copy;
		int rc = bo_seatmap_dup(cmds[i].map, &copy);
		sl->cmds[i].map = copy;
		if (rc < 0) {
			wire_free_maps(sl->cmds, i);
			return rc;
		}
	}
	return 0;
}

/* Waits until `done` is posted or the CLOCK_MONOTONIC deadline (ns) passes.
 * Returns 0 or -ETIMEDOUT. */
static int local_wait(gw_slot *sl, int64_t deadline_ns)
{
	struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
	while (sem_clockwait(&sl->done, CLOCK_MONOTONIC, &ts) != 0)
		if (errno != EINTR)
			return -ETIMEDOUT;
	return 0;
}

int gw_apply_local(gw_server *gw, const bo_cmd *cmds, uint32_t n, bo_result *res, int64_t timeout_ms)
{
	assert(n >= 1 && n <= WIRE_BATCH_MAX);
	int64_t deadline = bo_clock_ns() + (timeout_ms > 0 ? timeout_ms : 0) * 1000000;
	pthread_mutex_lock(&gw->local_lock);
	gw_slot *sl = &gw->slots[gw->cfg.contexts];
	int rc = 0;
	if (sl->abandoned) {
		/* The slot is the previous call's until its last result is in. */
		if (local_wait(sl, deadline) < 0) {
			rc = -EBUSY;
			goto out;
		}
		wire_free_maps(sl->cmds, sl->count);
		sl->count = 0;
		sl->abandoned = 0;
	}
	if ((rc = local_copy_in(sl, cmds, n)) < 0)
		goto out;
	memset(sl->errs, 0, n * sizeof(wire_cmd_error));
	sl->count = n;
	sl->is_array = 1;
	gw_slot_submit(sl);
	if (local_wait(sl, deadline) < 0) {
		/* Results still in flight will be filed under count and res[] as
		 * usual; the next call collects them. */
		sl->abandoned = 1;
		rc = -ETIMEDOUT;
		goto out;
	}
	memcpy(res, sl->res, n * sizeof(bo_result));
	wire_free_maps(sl->cmds, sl->count);
	sl->count = 0;
out:
	pthread_mutex_unlock(&gw->local_lock);
	return rc;
}
