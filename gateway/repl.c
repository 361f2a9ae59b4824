/*
 * repl.c — the replication data plane (see repl.h).
 *
 * Sender (primary side), per (shard, standby): a thread that probes, then
 * follows the journal and sends APPENDs; an nng aio callback that takes
 * every message the standby sends back: an ACK moves the acknowledged
 * sequence and, when the sender is gated, the shard's sync floor at once
 * (on the nng thread: a reply must not wait for the sender thread's next
 * turn); a STATE or REFUSE goes to the sender thread's mailbox.
 *
 * Receiver (standby side): one thread takes the listener's messages and
 * appends with shard_replicate; one ack thread per shard waits for the
 * appended records to become durable and acknowledges them.
 */
#include "repl.h"
#include "internal.h"
#include "node.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>

#include "base/clock.h"
#include "base/log.h"
#include "journal/journal.h"
#include "protocol/repl.h"
#include "shard/follower.h"

_Static_assert(REPL_PAYLOAD_BYTES_MAX == JOURNAL_PAYLOAD_BYTES_MAX, "a journal record fits a replication record");

#define GW_REPL_PEERS_MAX 8u
/* Records one APPEND carries at most (the receiver's decode array). */
#define SEND_RECORDS_MAX REPL_RECORDS_MAX

typedef struct mailbox {
	int has;     /* 1: msg holds a STATE or REFUSE not yet handled */
	repl_msg msg;
} mailbox;

struct gw_sender {
	gw_repl *r;
	uint32_t k, node;
	char url[GW_NODE_ADDR_MAX];
	pthread_t thread;
	int thread_started;
	atomic_int stop;
	nng_socket sock;
	int sock_open;
	nng_dialer dialer;
	nng_aio *raio; /* receive aio: ACK / STATE / REFUSE */
	atomic_int state;
	atomic_uint_least64_t epoch; /* the primary's term: only acks of it count */
	atomic_uint_least64_t acked_seq, sent_seq;
	atomic_int_least64_t heard_ns; /* last ACK or STATE: the standby lives */
	/* Since when the stream waits for its acknowledgement to move: the
	 * last ACK that moved acked_seq, the positioning, or the send that
	 * made sent_seq pass acked_seq. Not heard_ns: the heartbeats' STATEs
	 * refresh that every GW_REPL_HEARTBEAT_MS while the standby lives,
	 * which would hide an append or an ACK lost on a reconnect for ever. */
	atomic_int_least64_t progress_ns;
	atomic_int gated;
	pthread_mutex_t lock; /* mailbox, halt_reason */
	mailbox box;
	char halt_reason[160];
	/* The sender thread's own. */
	repl_record *recs;
	uint64_t *checksums; /* of recs[i] */
	uint8_t *stage;	     /* copies of the payloads (the follower's are borrowed) */
	msgpack_sbuffer buf;
};

typedef struct ack_state {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	nng_pipe pipe;	   /* where the last append came from */
	uint64_t epoch;	   /* its epoch */
	uint64_t appended; /* last sequence appended */
	uint64_t acked;	   /* last durable sequence acknowledged */
	uint32_t following; /* the primary whose probes are answered (0: none) */
	nng_pipe accepted;  /* the pipe its probe came on: appends only from it */
	int diverged;	    /* an append failed the chain check */
	pthread_t thread;
	int started;
} ack_state;

struct gw_repl {
	gw_server *gw;
	uint32_t node_id;
	uint32_t min_in_sync;
	uint32_t shards;
	atomic_int stop;
	nng_socket lsock;
	int lsock_open;
	pthread_t recv_thread;
	int recv_started;
	pthread_mutex_t lock; /* senders[][] */
	gw_sender *senders[GW_SHARDS_MAX][GW_REPL_PEERS_MAX];
	pthread_mutex_t floor_lock[GW_SHARDS_MAX];
	ack_state acks[GW_SHARDS_MAX];
	/* The receive thread's own. */
	repl_record *recs;
	journal_record *jrecs;
	msgpack_sbuffer buf;
};

/* ---- Sending a message ---------------------------------------------------- */

/* Sends buf as one message on sock (to pipe p when p is set). 0 or -EIO. */
static int send_buf(nng_socket sock, nng_pipe p, const msgpack_sbuffer *buf)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) != 0)
		return -ENOMEM;
	if (nng_msg_append(m, buf->data, buf->size) != 0) {
		nng_msg_free(m);
		return -ENOMEM;
	}
	if (nng_pipe_id(p) > 0)
		nng_msg_set_pipe(m, p);
	if (nng_sendmsg(sock, m, 0) != 0) {
		nng_msg_free(m);
		return -EIO;
	}
	return 0;
}

/* ---- Sync floor ------------------------------------------------------------- */

/* Sets shard k's floor: the lowest acknowledged sequence of its gated
 * senders; none gated: UINT64_MAX (the primary's own durability is
 * enough), or 0 with --min-in-sync 2 (a write needs a second copy: hold). */
static void floor_update(gw_repl *r, uint32_t k)
{
	pthread_mutex_lock(&r->floor_lock[k]);
	uint64_t floor = UINT64_MAX;
	int gated = 0;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX; i++) {
		gw_sender *sd = r->senders[k][i];
		if (!sd || !atomic_load(&sd->gated))
			continue;
		gated++;
		uint64_t a = atomic_load(&sd->acked_seq);
		if (a < floor)
			floor = a;
	}
	pthread_mutex_unlock(&r->lock);
	if (gated == 0 && r->min_in_sync >= 2)
		floor = 0;
	shard *s = gw_shard_acquire(r->gw, k);
	if (s && !shard_is_standby(s))
		shard_set_sync_floor(s, floor);
	gw_shard_release(r->gw, k);
	pthread_mutex_unlock(&r->floor_lock[k]);
}

void gw_repl_floor_update(gw_repl *r, uint32_t k) { floor_update(r, k); }

/* ---- Sender: what comes back ------------------------------------------------ */

static void sender_recv_cb(void *arg)
{
	gw_sender *sd = arg;
	if (nng_aio_result(sd->raio) != 0) {
		if (!atomic_load(&sd->stop) && nng_aio_result(sd->raio) != NNG_ECLOSED &&
		    nng_aio_result(sd->raio) != NNG_ECANCELED)
			nng_recv_aio(sd->sock, sd->raio);
		return;
	}
	nng_msg *m = nng_aio_get_msg(sd->raio);
	repl_msg msg;
	char err[128];
	int rc = repl_decode(nng_msg_body(m), nng_msg_len(m), &msg, NULL, 0, err, sizeof(err));
	nng_msg_free(m);
	if (rc < 0 || (msg.type != REPL_APPEND && msg.type != REPL_PROBE && msg.u.ack.shard != sd->k)) {
		bo_log(BO_LOG_WARN, "msg=\"replication: bad message from standby\" shard=%u node=%u error=\"%s\"", sd->k,
		       sd->node, rc < 0 ? err : "wrong shard or type");
	} else if (msg.type == REPL_ACK) {
		atomic_store(&sd->heard_ns, bo_clock_ns());
		uint64_t prev = atomic_load(&sd->acked_seq);
		/* Only what was sent in this stream counts (a late ACK of an
		 * older stream names records the standby has anyway). */
		uint64_t a = msg.u.ack.durable_seq, sent = atomic_load(&sd->sent_seq);
		if (a > sent)
			a = sent; /* never more than this stream carried */
		/* An ack counts only for this primary's term (role.h): a late
		 * ack of an older stream, or one of another term, is ignored. */
		if (a > prev && msg.u.ack.epoch == atomic_load(&sd->epoch) &&
		    atomic_load(&sd->state) == GW_SENDER_STREAMING) {
			atomic_store(&sd->acked_seq, a);
			atomic_store(&sd->progress_ns, bo_clock_ns());
			if (atomic_load(&sd->gated))
				floor_update(sd->r, sd->k);
		}
	} else if (msg.type == REPL_STATE || msg.type == REPL_REFUSE) {
		if (msg.type == REPL_STATE)
			atomic_store(&sd->heard_ns, bo_clock_ns());
		pthread_mutex_lock(&sd->lock);
		/* A REFUSE is never overwritten by a STATE (heartbeat). */
		if (!sd->box.has || sd->box.msg.type != REPL_REFUSE || msg.type == REPL_REFUSE) {
			sd->box.msg = msg;
			sd->box.has = 1;
		}
		pthread_mutex_unlock(&sd->lock);
	}
	if (!atomic_load(&sd->stop))
		nng_recv_aio(sd->sock, sd->raio);
}

/* ---- Sender thread ---------------------------------------------------------- */

static void sender_halt(gw_sender *sd, const char *why)
{
	pthread_mutex_lock(&sd->lock);
	snprintf(sd->halt_reason, sizeof(sd->halt_reason), "%s", why);
	pthread_mutex_unlock(&sd->lock);
	atomic_store(&sd->state, GW_SENDER_HALTED);
	bo_log(BO_LOG_WARN, "msg=\"replication to standby halted\" shard=%u node=%u reason=\"%s\"", sd->k, sd->node,
	       why);
}

/* Positions the stream after the standby's last record (seq, checksum):
 * our record `seq` must have the same checksum (else the histories
 * diverged). Opens *f at seq and sets *prev. 0, or -1 after halting. */
static int sender_position(gw_sender *sd, shard *s, uint64_t seq, uint64_t checksum, follower **f, uint64_t *prev)
{
	char err[JOURNAL_ERR_LEN], why[320];
	follower_close(*f);
	*f = NULL;
	if (seq > shard_durable_seq(s)) {
		snprintf(why, sizeof(why), "standby has records through %" PRIu64 ", this primary's journal only through %" PRIu64 ": diverged",
			 seq, shard_durable_seq(s));
		sender_halt(sd, why);
		return -1;
	}
	int rc = follower_open(s, seq > 0 ? seq - 1 : 0, f, err, sizeof(err));
	if (rc == 0 && seq > 0) {
		journal_record rec;
		rc = follower_next(*f, &rec, 1000);
		if (rc == 1 && rec.checksum != checksum) {
			snprintf(why, sizeof(why), "record %" PRIu64 " differs from the standby's: diverged", seq);
			sender_halt(sd, why);
			return -1;
		}
		rc = rc == 1 ? 0 : rc == 0 ? -ETIMEDOUT : rc;
		snprintf(err, sizeof(err), "%s", *f ? follower_error(*f) : "");
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "cannot read the journal after %" PRIu64 ": %.200s", seq, err);
		sender_halt(sd, why);
		return -1;
	}
	*prev = seq > 0 ? checksum : 0;
	atomic_store(&sd->sent_seq, seq);
	atomic_store(&sd->progress_ns, bo_clock_ns());
	return 0;
}

/* Handles what the mailbox holds. Returns 1 when the stream is (re)positioned
 * or goes on, 0 when no message, -1 after a halt. */
static int sender_mail(gw_sender *sd, shard *s, follower **f, uint64_t *prev, int64_t *probe_at)
{
	pthread_mutex_lock(&sd->lock);
	mailbox box = sd->box;
	sd->box.has = 0;
	pthread_mutex_unlock(&sd->lock);
	if (!box.has)
		return 0;
	int state = atomic_load(&sd->state);
	if (box.msg.type == REPL_STATE) {
		const repl_state *st = &box.msg.u.state;
		if (state != GW_SENDER_CONNECTING)
			return 1; /* a heartbeat's answer */
		if (st->epoch > shard_epoch(s)) {
			sender_halt(sd, "the standby has a newer epoch: this primary is stale");
			return -1;
		}
		if (sender_position(sd, s, st->last_seq, st->last_checksum, f, prev) < 0)
			return -1;
		atomic_store(&sd->acked_seq, st->durable_seq < st->last_seq ? st->durable_seq : st->last_seq);
		atomic_store(&sd->state, GW_SENDER_STREAMING);
		/* What the STATE counts as acknowledged moves the floor now, as
		 * an ACK would: a standby that comes back holding every record
		 * we have (it made them durable, then died before its ACK came
		 * through) gets nothing more to append, so no ACK will ever come,
		 * and the replies of those records would stay held for good. */
		if (atomic_load(&sd->gated))
			floor_update(sd->r, sd->k);
		bo_log(BO_LOG_INFO, "msg=\"replication to standby streaming\" shard=%u node=%u from_seq=%" PRIu64, sd->k,
		       sd->node, st->last_seq);
		return 1;
	}
	const repl_refuse *rf = &box.msg.u.refuse;
	char why[200];
	switch (rf->reason) {
	case REPL_R_GAP:
		if (state == GW_SENDER_STREAMING)
			return sender_position(sd, s, rf->last_seq, rf->last_checksum, f, prev) < 0 ? -1 : 1;
		return 1;
	case REPL_R_STALE:
	case REPL_R_DIVERGED:
		snprintf(why, sizeof(why), "standby refused: %s (%.120s)", repl_reason_name(rf->reason), rf->message);
		sender_halt(sd, why);
		return -1;
	default: /* failed, not_standby: it may come back */
		if (state != GW_SENDER_CONNECTING)
			bo_log(BO_LOG_WARN, "msg=\"standby refused, probing again\" shard=%u node=%u reason=%s text=\"%s\"",
			       sd->k, sd->node, repl_reason_name(rf->reason), rf->message);
		atomic_store(&sd->state, GW_SENDER_CONNECTING);
		follower_close(*f);
		*f = NULL;
		*probe_at = bo_clock_ms() + GW_REPL_REPROBE_MS;
		return 1;
	}
}

static void sender_probe(gw_sender *sd, shard *s)
{
	repl_probe p = {.shard = sd->k, .epoch = shard_epoch(s), .node = sd->r->node_id};
	sd->buf.size = 0;
	if (repl_encode_probe(&p, &sd->buf) == 0)
		send_buf(sd->sock, (nng_pipe)NNG_PIPE_INITIALIZER, &sd->buf);
}

/* Gathers the durable records after the follower's position (at most
 * GW_REPL_BATCH_BYTES of payload, or one record) into recs/stage. Waits
 * up to wait_ms for the first. Returns the count, or -1 after a halt. */
static int sender_gather(gw_sender *sd, follower *f, uint32_t wait_ms)
{
	uint32_t n = 0;
	size_t bytes = 0;
	while (n < SEND_RECORDS_MAX) {
		journal_record rec;
		int rc = follower_next(f, &rec, n == 0 ? wait_ms : 0);
		if (rc == 0)
			break;
		if (rc < 0) {
			char why[160];
			snprintf(why, sizeof(why), "cannot follow the journal: %s", follower_error(f));
			sender_halt(sd, why);
			return -1;
		}
		memcpy(sd->stage + bytes, rec.payload, rec.payload_len);
		sd->recs[n] = (repl_record){.seq = rec.seq, .timestamp_ms = rec.timestamp_ms,
					    .payload = sd->stage + bytes, .len = rec.payload_len};
		sd->checksums[n] = rec.checksum;
		bytes += rec.payload_len;
		n++;
		if (bytes >= GW_REPL_BATCH_BYTES)
			break; /* stage holds BATCH_BYTES + one maximal payload */
	}
	return (int)n;
}

/* Sends recs[0..n) as APPEND messages. 0, or -1 when a send failed (the
 * caller probes again: the standby says where it is). */
static int sender_ship(gw_sender *sd, shard *s, uint32_t n, uint64_t *prev)
{
	uint64_t epoch = shard_epoch(s);
	/* Nothing was outstanding: the wait for an acknowledgement starts now
	 * (an idle stream's last progress may be long ago). The ACK callback
	 * cannot move acked_seq past sent_seq meanwhile: it clamps to it. */
	if (atomic_load(&sd->sent_seq) <= atomic_load(&sd->acked_seq))
		atomic_store(&sd->progress_ns, bo_clock_ns());
	for (uint32_t i = 0; i < n;) {
		uint32_t taken = 0;
		sd->buf.size = 0;
		int rc = repl_encode_append(sd->k, epoch, sd->recs[i].seq, *prev, &sd->recs[i], n - i, &taken, &sd->buf);
		if (rc < 0)
			return -1;
		if (send_buf(sd->sock, (nng_pipe)NNG_PIPE_INITIALIZER, &sd->buf) < 0)
			return -1;
		i += taken;
		*prev = sd->checksums[i - 1];
		atomic_store(&sd->sent_seq, sd->recs[i - 1].seq);
	}
	return 0;
}

static void *sender_main(void *arg)
{
	gw_sender *sd = arg;
	gw_repl *r = sd->r;
	/* The shard stays this node's primary while a sender of it runs: the
	 * node stops the senders before it stops or swaps the shard. */
	shard *s = r->gw->shards[sd->k];
	atomic_store(&sd->epoch, shard_epoch(s));
	follower *f = NULL;
	uint64_t prev = 0;
	int64_t probe_at = 0, last_probe = 0;
	while (!atomic_load(&sd->stop)) {
		int state = atomic_load(&sd->state);
		if (state == GW_SENDER_HALTED) {
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (sender_mail(sd, s, &f, &prev, &probe_at) < 0)
			continue;
		state = atomic_load(&sd->state);
		int64_t now = bo_clock_ms();
		if (state == GW_SENDER_CONNECTING) {
			if (now >= probe_at) {
				sender_probe(sd, s);
				probe_at = now + GW_REPL_HEARTBEAT_MS;
			}
			struct timespec ts = {0, 5 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		int n = sender_gather(sd, f, 5);
		if (n < 0)
			continue;
		if (n > 0 && sender_ship(sd, s, (uint32_t)n, &prev) < 0) {
			atomic_store(&sd->state, GW_SENDER_CONNECTING);
			probe_at = now;
			continue;
		}
		if (now - last_probe >= GW_REPL_HEARTBEAT_MS) {
			sender_probe(sd, s); /* its STATE tells the control plane the standby lives */
			last_probe = now;
		}
		int64_t waited_ms = (bo_clock_ns() - atomic_load(&sd->progress_ns)) / 1000000;
		if (atomic_load(&sd->sent_seq) > atomic_load(&sd->acked_seq) && waited_ms > GW_REPL_REPROBE_MS) {
			/* Sent and no acknowledgement moved for long: an append
			 * or an ACK may have been lost on a reconnect (the
			 * standby's repeated ACK goes to the pipe of its last
			 * append); the standby's STATE says where it is. A
			 * standby merely slow to sync costs one probe. */
			atomic_store(&sd->state, GW_SENDER_CONNECTING);
			probe_at = now;
		}
	}
	follower_close(f);
	return NULL;
}

/* ---- Sender life cycle ------------------------------------------------------ */

static void sender_free(gw_sender *sd)
{
	if (!sd)
		return;
	atomic_store(&sd->stop, 1);
	if (sd->thread_started)
		pthread_join(sd->thread, NULL);
	if (sd->raio)
		nng_aio_stop(sd->raio);
	if (sd->sock_open)
		nng_close(sd->sock);
	if (sd->raio)
		nng_aio_free(sd->raio);
	pthread_mutex_destroy(&sd->lock);
	free(sd->recs);
	free(sd->checksums);
	free(sd->stage);
	msgpack_sbuffer_destroy(&sd->buf);
	free(sd);
}

int gw_repl_sender_start(gw_repl *r, uint32_t k, uint32_t node, const char *url)
{
	assert(k < r->shards);
	pthread_mutex_lock(&r->lock);
	int free_i = -1;
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX; i++) {
		if (r->senders[k][i] && r->senders[k][i]->node == node) {
			pthread_mutex_unlock(&r->lock);
			return -EEXIST;
		}
		if (!r->senders[k][i] && free_i < 0)
			free_i = (int)i;
	}
	pthread_mutex_unlock(&r->lock);
	if (free_i < 0)
		return -ENOSPC;
	gw_sender *sd = calloc(1, sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->r = r;
	sd->k = k;
	sd->node = node;
	snprintf(sd->url, sizeof(sd->url), "%s", url);
	pthread_mutex_init(&sd->lock, NULL);
	msgpack_sbuffer_init(&sd->buf);
	atomic_store(&sd->heard_ns, bo_clock_ns());
	atomic_store(&sd->progress_ns, bo_clock_ns());
	sd->recs = calloc(SEND_RECORDS_MAX, sizeof(repl_record));
	sd->checksums = calloc(SEND_RECORDS_MAX, sizeof(uint64_t));
	sd->stage = malloc(GW_REPL_BATCH_BYTES + JOURNAL_PAYLOAD_BYTES_MAX);
	int rc = sd->recs && sd->checksums && sd->stage ? 0 : -ENOMEM;
	if (rc == 0 && (nng_pair1_open(&sd->sock) != 0 || nng_aio_alloc(&sd->raio, sender_recv_cb, sd) != 0))
		rc = -EIO;
	if (rc == 0) {
		sd->sock_open = 1;
		nng_socket_set_size(sd->sock, NNG_OPT_RECVMAXSZ, REPL_MSG_MAX);
		nng_socket_set_ms(sd->sock, NNG_OPT_SENDTIMEO, 200);
		nng_socket_set_ms(sd->sock, NNG_OPT_RECONNMINT, 20);
		nng_socket_set_ms(sd->sock, NNG_OPT_RECONNMAXT, 200);
		/* Non-blocking: the standby may not be up yet; nng keeps dialling. */
		if (nng_dial(sd->sock, url, &sd->dialer, NNG_FLAG_NONBLOCK) != 0)
			rc = -EINVAL;
	}
	if (rc == 0) {
		nng_recv_aio(sd->sock, sd->raio);
		rc = -pthread_create(&sd->thread, NULL, sender_main, sd);
		sd->thread_started = rc == 0;
	}
	if (rc < 0) {
		sender_free(sd);
		return rc;
	}
	pthread_mutex_lock(&r->lock);
	r->senders[k][free_i] = sd;
	pthread_mutex_unlock(&r->lock);
	bo_log(BO_LOG_INFO, "msg=\"replication sender started\" shard=%u node=%u url=%s", k, node, url);
	return 0;
}

void gw_repl_sender_stop(gw_repl *r, uint32_t k, uint32_t node)
{
	gw_sender *sd = NULL;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX; i++)
		if (r->senders[k][i] && r->senders[k][i]->node == node) {
			sd = r->senders[k][i];
			r->senders[k][i] = NULL;
		}
	pthread_mutex_unlock(&r->lock);
	if (!sd)
		return;
	int was_gated = atomic_load(&sd->gated);
	sender_free(sd);
	if (was_gated)
		floor_update(r, k);
	bo_log(BO_LOG_INFO, "msg=\"replication sender stopped\" shard=%u node=%u", k, node);
}

void gw_repl_senders_stop_shard(gw_repl *r, uint32_t k)
{
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX; i++) {
		pthread_mutex_lock(&r->lock);
		gw_sender *sd = r->senders[k][i];
		uint32_t node = sd ? sd->node : 0;
		pthread_mutex_unlock(&r->lock);
		if (sd)
			gw_repl_sender_stop(r, k, node);
	}
}

int gw_repl_sender_info(gw_repl *r, uint32_t k, uint32_t node, gw_sender_info *out)
{
	int found = 0;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX && !found; i++) {
		gw_sender *sd = r->senders[k][i];
		if (!sd || sd->node != node)
			continue;
		found = 1;
		out->state = atomic_load(&sd->state);
		out->node = node;
		out->acked_seq = atomic_load(&sd->acked_seq);
		out->sent_seq = atomic_load(&sd->sent_seq);
		out->silent_ms = (bo_clock_ns() - atomic_load(&sd->heard_ns)) / 1000000;
		out->gated = atomic_load(&sd->gated);
		pthread_mutex_lock(&sd->lock);
		snprintf(out->halt_reason, sizeof(out->halt_reason), "%s", sd->halt_reason);
		pthread_mutex_unlock(&sd->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

uint32_t gw_repl_sender_nodes(gw_repl *r, uint32_t k, uint32_t *nodes, uint32_t max)
{
	uint32_t n = 0;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX && n < max; i++)
		if (r->senders[k][i])
			nodes[n++] = r->senders[k][i]->node;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int gw_repl_gate(gw_repl *r, uint32_t k, uint32_t node, int gated)
{
	int found = 0;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < GW_REPL_PEERS_MAX; i++) {
		gw_sender *sd = r->senders[k][i];
		if (sd && sd->node == node) {
			atomic_store(&sd->gated, gated ? 1 : 0);
			found = 1;
		}
	}
	pthread_mutex_unlock(&r->lock);
	floor_update(r, k);
	return found ? 0 : -ENOENT;
}

/* ---- Receiver (standby side) ------------------------------------------------ */

static void recv_reply_refuse(gw_repl *r, nng_pipe p, uint32_t k, shard *s, uint8_t reason, const char *text)
{
	repl_refuse rf = {.shard = k, .reason = reason};
	if (s) {
		rf.epoch = shard_epoch(s);
		shard_last_record(s, &rf.last_seq, &rf.last_checksum);
	}
	snprintf(rf.message, sizeof(rf.message), "%s", text);
	r->buf.size = 0;
	if (repl_encode_refuse(&rf, &r->buf) == 0)
		send_buf(r->lsock, p, &r->buf);
}

static void recv_probe(gw_repl *r, nng_pipe p, const repl_probe *pr)
{
	if (pr->shard >= r->shards) {
		recv_reply_refuse(r, p, pr->shard, NULL, REPL_R_NOT_STANDBY, "no such shard here");
		return;
	}
	ack_state *as = &r->acks[pr->shard];
	pthread_mutex_lock(&as->lock);
	uint32_t following = as->following;
	if (following == pr->node)
		as->accepted = p;
	pthread_mutex_unlock(&as->lock);
	shard *s = gw_shard_acquire(r->gw, pr->shard);
	if (!s) {
		recv_reply_refuse(r, p, pr->shard, NULL, REPL_R_FAILED, "shard being reopened");
	} else if (following != pr->node && shard_epoch(s) <= pr->epoch) {
		char text[96];
		snprintf(text, sizeof(text), "this standby follows node %u", following);
		recv_reply_refuse(r, p, pr->shard, s, REPL_R_NOT_STANDBY, text);
	} else if (shard_epoch(s) > pr->epoch) {
		recv_reply_refuse(r, p, pr->shard, s, REPL_R_STALE, "this copy has a newer epoch");
	} else if (!shard_is_standby(s)) {
		recv_reply_refuse(r, p, pr->shard, s, REPL_R_NOT_STANDBY, "this node holds the shard as a primary");
	} else if (shard_failed(s)) {
		recv_reply_refuse(r, p, pr->shard, s, REPL_R_FAILED, shard_failed(s));
	} else {
		repl_state st = {.shard = pr->shard, .epoch = shard_epoch(s), .node = r->node_id,
				 .durable_seq = shard_durable_seq(s)};
		shard_last_record(s, &st.last_seq, &st.last_checksum);
		r->buf.size = 0;
		if (repl_encode_state(&st, &r->buf) == 0)
			send_buf(r->lsock, p, &r->buf);
	}
	gw_shard_release(r->gw, pr->shard);
}

static uint8_t refuse_reason(int rc)
{
	switch (rc) {
	case -ESTALE:
		return REPL_R_STALE;
	case -ERANGE:
		return REPL_R_GAP;
	case -EBADMSG:
	case -EPROTO:
		return REPL_R_DIVERGED;
	case -EPERM:
		return REPL_R_NOT_STANDBY;
	default:
		return REPL_R_FAILED;
	}
}

static void recv_append(gw_repl *r, nng_pipe p, const repl_append *a)
{
	if (a->shard >= r->shards) {
		recv_reply_refuse(r, p, a->shard, NULL, REPL_R_NOT_STANDBY, "no such shard here");
		return;
	}
	for (uint32_t i = 0; i < a->count; i++)
		r->jrecs[i] = (journal_record){.seq = r->recs[i].seq, .timestamp_ms = r->recs[i].timestamp_ms,
					       .shard_id = a->shard, .payload_len = r->recs[i].len,
					       .payload = r->recs[i].payload};
	/* Under the ack lock: gw_repl_follow(0) returns only once no append
	 * runs (a promotion reads the last seq after it). */
	ack_state *as = &r->acks[a->shard];
	pthread_mutex_lock(&as->lock);
	if (as->following == 0 || nng_pipe_id(as->accepted) != nng_pipe_id(p)) {
		pthread_mutex_unlock(&as->lock);
		recv_reply_refuse(r, p, a->shard, NULL, REPL_R_NOT_STANDBY, "not following this sender (probe first)");
		return;
	}
	shard *s = gw_shard_acquire(r->gw, a->shard);
	char err[256] = "";
	int rc = s ? shard_replicate(s, a->epoch, a->prev, r->jrecs, a->count, err, sizeof(err)) : -ESHUTDOWN;
	if (rc < 0) {
		if (rc != -ERANGE)
			bo_log(BO_LOG_WARN, "msg=\"replication: append refused\" shard=%u first_seq=%" PRIu64 " error=\"%s\"",
			       a->shard, a->first_seq, err);
		if (rc == -EBADMSG)
			as->diverged = 1;
		recv_reply_refuse(r, p, a->shard, s, refuse_reason(rc), err[0] ? err : "shard being reopened");
	}
	gw_shard_release(r->gw, a->shard);
	if (rc < 0) {
		pthread_mutex_unlock(&as->lock);
		return;
	}
	as->pipe = p;
	as->epoch = a->epoch;
	as->appended = a->first_seq + a->count - 1;
	pthread_cond_signal(&as->cv);
	pthread_mutex_unlock(&as->lock);
}

static void *recv_main(void *arg)
{
	gw_repl *r = arg;
	while (!atomic_load(&r->stop)) {
		nng_msg *m;
		int nrv = nng_recvmsg(r->lsock, &m, 0);
		if (nrv == NNG_ETIMEDOUT)
			continue;
		if (nrv != 0)
			break;
		repl_msg msg;
		char err[128];
		nng_pipe p = nng_msg_get_pipe(m);
		if (repl_decode(nng_msg_body(m), nng_msg_len(m), &msg, r->recs, REPL_RECORDS_MAX, err, sizeof(err)) < 0)
			bo_log(BO_LOG_WARN, "msg=\"replication: bad message from a primary\" error=\"%s\"", err);
		else if (msg.type == REPL_PROBE)
			recv_probe(r, p, &msg.u.probe);
		else if (msg.type == REPL_APPEND)
			recv_append(r, p, &msg.u.append);
		nng_msg_free(m); /* the records point into it: after the append */
	}
	return NULL;
}

/* One per shard: acknowledges what became durable. */
typedef struct ack_arg {
	gw_repl *r;
	uint32_t k;
} ack_arg;

/* An idle standby repeats its last acknowledgement this often. */
#define GW_REPL_REACK_NS (200 * 1000000LL)

static void *ack_main(void *arg)
{
	gw_repl *r = ((ack_arg *)arg)->r;
	uint32_t k = ((ack_arg *)arg)->k;
	free(arg);
	ack_state *as = &r->acks[k];
	msgpack_sbuffer buf;
	msgpack_sbuffer_init(&buf);
	int64_t last_ack_ns = 0;
	pthread_mutex_lock(&as->lock);
	while (!atomic_load(&r->stop)) {
		if (as->appended <= as->acked) {
			int64_t now = bo_clock_ns();
			if (as->acked > 0 && now - last_ack_ns > GW_REPL_REACK_NS) {
				/* Idle: say the last acknowledgement again. The
				 * primary ignores acks while it re-probes, and an
				 * idle stream sends nothing that would make this
				 * copy ack again: without the repeat a gated standby
				 * could wait for ever below its gate (seen: shard 1
				 * gated at 44, acked 30, no load). Acks are
				 * cumulative, so a repeat is harmless. */
				repl_ack a = {.shard = k, .epoch = as->epoch, .durable_seq = as->acked,
					      .last_seq = as->appended};
				nng_pipe p = as->pipe;
				pthread_mutex_unlock(&as->lock);
				shard *s = gw_shard_acquire(r->gw, k);
				int standby = s && shard_is_standby(s);
				gw_shard_release(r->gw, k);
				buf.size = 0;
				if (standby && repl_encode_ack(&a, &buf) == 0)
					send_buf(r->lsock, p, &buf);
				last_ack_ns = now;
				pthread_mutex_lock(&as->lock);
				continue;
			}
			int64_t wake = now + 50 * 1000000LL;
			struct timespec ts = {.tv_sec = wake / 1000000000, .tv_nsec = wake % 1000000000};
			pthread_cond_timedwait(&as->cv, &as->lock, &ts);
			continue;
		}
		uint64_t acked = as->acked, appended = as->appended, epoch = as->epoch;
		nng_pipe p = as->pipe;
		pthread_mutex_unlock(&as->lock);
		uint64_t durable = 0;
		shard *s = gw_shard_acquire(r->gw, k);
		int standby = s && shard_is_standby(s);
		int rc = standby ? shard_durable_wait(s, acked, 50 * 1000000LL, &durable) : 0;
		gw_shard_release(r->gw, k);
		/* Only what was appended from the stream is acknowledged: after
		 * a promotion this copy's durable sequence covers records of
		 * its own term, which the old primary must never count. */
		if (durable > appended)
			durable = appended;
		if (rc == 1 && durable > acked) {
			repl_ack a = {.shard = k, .epoch = epoch, .durable_seq = durable, .last_seq = appended};
			buf.size = 0;
			if (repl_encode_ack(&a, &buf) == 0)
				send_buf(r->lsock, p, &buf);
			last_ack_ns = bo_clock_ns();
		}
		pthread_mutex_lock(&as->lock);
		if (rc == 1 && durable > as->acked)
			as->acked = durable;
		if (!standby)
			as->acked = as->appended; /* promoted or reopening: nothing to acknowledge */
		if (rc < 0)
			as->acked = as->appended; /* failed shard: nothing more becomes durable */
	}
	pthread_mutex_unlock(&as->lock);
	msgpack_sbuffer_destroy(&buf);
	return NULL;
}

void gw_repl_follow(gw_repl *r, uint32_t k, uint32_t node)
{
	ack_state *as = &r->acks[k];
	pthread_mutex_lock(&as->lock);
	if (as->following != node)
		as->accepted = (nng_pipe)NNG_PIPE_INITIALIZER;
	as->following = node;
	pthread_mutex_unlock(&as->lock);
}

int gw_repl_diverged(gw_repl *r, uint32_t k)
{
	ack_state *as = &r->acks[k];
	pthread_mutex_lock(&as->lock);
	int d = as->diverged;
	pthread_mutex_unlock(&as->lock);
	return d;
}

void gw_repl_diverged_clear(gw_repl *r, uint32_t k)
{
	ack_state *as = &r->acks[k];
	pthread_mutex_lock(&as->lock);
	as->diverged = 0;
	pthread_mutex_unlock(&as->lock);
}

/* The standby lost or cut records (a reopen): acknowledge from `seq` again. */
void gw_repl_ack_reset(gw_repl *r, uint32_t k, uint64_t seq)
{
	ack_state *as = &r->acks[k];
	pthread_mutex_lock(&as->lock);
	as->acked = seq;
	as->appended = seq;
	pthread_mutex_unlock(&as->lock);
}

int gw_repl_start(gw_server *gw, const char *url, uint32_t node_id, uint32_t min_in_sync, gw_repl **out, char *err,
		  size_t errlen)
{
	*out = NULL;
	gw_repl *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->gw = gw;
	r->node_id = node_id;
	r->min_in_sync = min_in_sync;
	r->shards = gw->cfg.shards;
	pthread_mutex_init(&r->lock, NULL);
	msgpack_sbuffer_init(&r->buf);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (uint32_t k = 0; k < GW_SHARDS_MAX; k++) {
		pthread_mutex_init(&r->floor_lock[k], NULL);
		pthread_mutex_init(&r->acks[k].lock, NULL);
		pthread_cond_init(&r->acks[k].cv, &ca);
	}
	pthread_condattr_destroy(&ca);
	r->recs = calloc(REPL_RECORDS_MAX, sizeof(repl_record));
	r->jrecs = calloc(REPL_RECORDS_MAX, sizeof(journal_record));
	int rc = r->recs && r->jrecs ? 0 : -ENOMEM;
	int nrv = 0;
	if (rc == 0 && (nrv = nng_pair1_open_poly(&r->lsock)) != 0)
		rc = -EIO;
	if (rc == 0) {
		r->lsock_open = 1;
		nng_socket_set_size(r->lsock, NNG_OPT_RECVMAXSZ, REPL_MSG_MAX);
		nng_socket_set_ms(r->lsock, NNG_OPT_RECVTIMEO, 100);
		nng_socket_set_ms(r->lsock, NNG_OPT_SENDTIMEO, 200);
		if ((nrv = nng_listen(r->lsock, url, NULL, 0)) != 0)
			rc = nrv == NNG_EADDRINUSE ? -EADDRINUSE : -EINVAL;
	}
	if (rc == 0)
		rc = -pthread_create(&r->recv_thread, NULL, recv_main, r);
	r->recv_started = rc == 0;
	for (uint32_t k = 0; k < r->shards && rc == 0; k++) {
		ack_arg *aa = malloc(sizeof(*aa));
		if (!aa) {
			rc = -ENOMEM;
			break;
		}
		*aa = (ack_arg){r, k};
		rc = -pthread_create(&r->acks[k].thread, NULL, ack_main, aa);
		if (rc < 0)
			free(aa);
		r->acks[k].started = rc == 0;
	}
	if (rc < 0) {
		snprintf(err, errlen, "replication listener %s: %s", url,
			 nrv ? nng_strerror(nrv) : strerror(-rc));
		gw_repl_stop(r);
		return rc;
	}
	bo_log(BO_LOG_INFO, "msg=\"replication listening\" url=%s", url);
	*out = r;
	return 0;
}

void gw_repl_stop(gw_repl *r)
{
	if (!r)
		return;
	for (uint32_t k = 0; k < r->shards; k++)
		gw_repl_senders_stop_shard(r, k);
	atomic_store(&r->stop, 1);
	for (uint32_t k = 0; k < r->shards; k++) {
		if (!r->acks[k].started)
			continue;
		pthread_mutex_lock(&r->acks[k].lock);
		pthread_cond_signal(&r->acks[k].cv);
		pthread_mutex_unlock(&r->acks[k].lock);
		pthread_join(r->acks[k].thread, NULL);
	}
	if (r->recv_started)
		pthread_join(r->recv_thread, NULL);
	if (r->lsock_open)
		nng_close(r->lsock);
	for (uint32_t k = 0; k < GW_SHARDS_MAX; k++) {
		pthread_mutex_destroy(&r->floor_lock[k]);
		pthread_mutex_destroy(&r->acks[k].lock);
		pthread_cond_destroy(&r->acks[k].cv);
	}
	pthread_mutex_destroy(&r->lock);
	free(r->recs);
	free(r->jrecs);
	msgpack_sbuffer_destroy(&r->buf);
	free(r);
}
