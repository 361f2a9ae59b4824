/*
 * role_sim_test.c — a deterministic simulation of the cluster around the
 * role state machine (cluster/role.h), one PRNG seed per run, as
 * TigerBeetle's VOPR and FoundationDB's simulator do: everything that can
 * happen to 2..3 nodes serving 1..2 shards happens in simulated time
 * (5 ms ticks), in an order the seed chooses, and the safety invariants are
 * checked after every tick.
 *
 * THE WORLD
 *  - etcd: one linearizable store: the shard maps as JSON text (written
 *    with role_map_encode, read back with role_map_decode), a revision
 *    counter, CAS on mod_revision (create: absent), node keys under leases
 *    that expire TTL after their last renewal. Per node it may be
 *    unreachable; it may lose quorum (no CAS, no renewal, no read, and no
 *    lease expires, as etcd's leases need a leader; on recovery every lease
 *    gets a full TTL again). A CAS's answer may be lost after it applied
 *    (the node sees -ETIMEDOUT and must re-read, as role.h tells it), or
 *    be lost before it (-ETIMEDOUT, nothing changed).
 *  - the data plane: each node's journal per shard: entries (epoch, payload,
 *    chained hash), an appended end and a durable end (appends become
 *    durable a few ticks later; a crash loses the undurable tail). The
 *    primary appends client commands, ships durable runs (prev seq, prev
 *    hash, up to 8 entries) to the standbys that said hello, over a link
 *    that drops, delays (so reorders; one message in 200 by up to 3 s, so
 *    it may arrive terms later) and partitions; a standby appends only
 *    in order, only from a term >= its own epoch, only when the chain holds,
 *    and acks its durable seq to the primary it verified. The primary
 *    releases (acknowledges to the client) up to min(durable, sync floor),
 *    the floor being the lowest ack of its gated peers.
 *  - each node's picture of etcd lags (a watch): half of its control rounds
 *    decide on the map and live set it read before, so decisions race
 *    other nodes' CAS, which the compare on mod_revision must settle;
 *  - nodes crash and restart (volatile state lost), pause (no step at all,
 *    so a lease can expire under a primary that still believes it is one),
 *    and each runs a control loop that reads etcd, builds a role_view,
 *    calls role_decide and executes the action as role.h prescribes (the
 *    CAS first, local effects after its success; gate before add; stop the
 *    receiver before promoting; fence before rejoining).
 *  - an operator asks for planned switchovers (map.handoff) now and then.
 *
 * THE INVARIANTS (checked after every tick; the first violation stops the
 * run and prints the seed, the configuration and the last events):
 *  (a) every acknowledged command is durable, on the acknowledged history
 *      (chained hash at the highest acknowledged seq), in every member of
 *      the current map's in_sync, and in the log of every primary that
 *      acknowledges anything later;
 *  (b) one node acknowledges per epoch; a primary of an older epoch never
 *      acknowledges a seq at or after the next term's start_seq;
 *  (c) the current primary and every node of its term agree on their
 *      common prefix (chained hash at the shorter end);
 *  (d) the map's epoch never decreases;
 *  (e) liveness: after the faults heal, every shard acknowledges a command
 *      within a bounded simulated time.
 *
 * Seeds: BO_SIM_SEEDS runs (default 600, a few seconds); BO_SIM_SEED replays one.
 * Both are parsed strictly: garbage is refused, never read as zero runs.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/parse.h"
#include "cluster/role.h"
#include "tests/support/rng.h"

/* ---- Bounds and timing ---------------------------------------------------- */

#define NODES_MAX 3
#define SHARDS_MAX 2
#define LOG_MAX 16384     /* entries per journal: a run appends far fewer */
#define EPOCHS_MAX 4096   /* terms per shard per run */
#define NET_MAX 8192      /* messages in flight */
#define RUN_ENTRIES_MAX 8 /* entries per replication message */
#define TICK_MS 5
#define TTL_MS 3000         /* node lease */
#define RENEW_MS 1000       /* TTL / 3 */
#define CONTROL_MS 20       /* control loop period */
#define ACK_TIMEOUT_MS 600  /* an in-sync standby silent longer is dropped */
#define HELLO_MS 50         /* a standby not yet verified says hello again */
#define HEARTBEAT_MS 50     /* an idle primary still ships an empty run */
#define FAULT_MS 20000      /* faults happen during this much simulated time */
#define HEAL_LIMIT_MS 15000 /* after it, every shard must acknowledge within this */
#define TRACE_LINES 256
#define TRACE_LEN 160

/* ---- State ---------------------------------------------------------------- */

typedef struct entry {
	uint64_t epoch;   /* the term that wrote it */
	uint64_t payload; /* client command id; 0: the term's EPOCH record */
	uint64_t hash;    /* chained: f(previous hash, seq, epoch, payload) */
} entry;

typedef struct speer { /* a primary's knowledge of one standby, per term */
	int known;     /* said hello or acked in this term */
	int hello;     /* ship to it */
	int acked_any;
	uint64_t acked;
	uint64_t last_ack_ms;
	uint64_t since_ms; /* silence counts from here when it never acked */
	int gated;
	uint64_t gate_seq;
	uint64_t next_send;
	uint64_t last_send_ms;
} speer;

typedef struct nshard {
	entry *log; /* log[seq], seq 1..last; log[0] the chain seed */
	uint64_t last, durable;
	uint64_t epoch; /* highest epoch in log[1..last] */
	role_local local;
	role_map map; /* cached from etcd */
	int fresh;
	uint32_t live[ROLE_LIVE_MAX];
	uint32_t live_count;
	/* standby */
	uint32_t following;
	int verified;
	uint64_t verified_epoch;
	int diverged;
	uint64_t last_hello_ms, acked_sent, last_ack_sent_ms;
	uint64_t last_append_ms; /* the receiver's silence detector */
	/* primary */
	int writes_stopped, hold;
	uint64_t released;
	speer peers[NODES_MAX + 1];
} nshard;

typedef struct node {
	int up;
	uint64_t down_until, paused_until;
	int etcd_cut;
	uint64_t renewed_ms;
	uint64_t next_control_ms;
	nshard sh[SHARDS_MAX];
} node;

enum {
	M_HELLO,
	M_APPEND,
	M_ACK,
	M_DIVERGED
};

typedef struct msg {
	uint64_t at;
	int kind, from, to, shard;
	uint64_t epoch, prev_seq, prev_hash, seq;
	int n;
	entry e[RUN_ENTRIES_MAX];
} msg;

typedef struct shard_truth {                    /* what the checker knows */
	uint64_t acked_max_seq, acked_max_hash; /* the acknowledged history's end */
	uint32_t acker[EPOCHS_MAX];             /* who acknowledged in each epoch */
	uint64_t epoch_start[EPOCHS_MAX];
	uint64_t acks, acks_after_heal;
} shard_truth;

typedef struct sim {
	uint64_t seed, rng, now;
	int nodes, shards;
	uint32_t min_in_sync;
	int loss_pct, delay_max_ms;
	int healed;
	/* etcd */
	int quorum;
	int64_t rev;
	int map_present[SHARDS_MAX];
	char map_text[SHARDS_MAX][ROLE_MAP_JSON_MAX];
	int64_t map_rev[SHARDS_MAX];
	uint64_t map_epoch[SHARDS_MAX];
	int key_present[NODES_MAX + 1];
	uint64_t key_expiry[NODES_MAX + 1];
	/* network */
	int cut[NODES_MAX + 1][NODES_MAX + 1];
	msg *net;
	int net_count;
	node n[NODES_MAX + 1];
	shard_truth truth[SHARDS_MAX];
	uint64_t next_payload;
	/* trace */
	char trace[TRACE_LINES][TRACE_LEN];
	uint64_t trace_count;
	char failure[512];
} sim;

/* How often each action ran (CAS succeeded where there is one) over all
 * runs: printed at the end, so a run that never reaches a rule shows. */
static uint64_t executed[ROLE_ACT_COUNT];
static uint64_t late_acks, cuts, map_changes;

/* ---- Helpers -------------------------------------------------------------- */

static uint64_t rnd(sim *s, uint64_t n)
{
	return n ? trng_xorshift(&s->rng) % n : 0;
}

static int chance(sim *s, uint32_t per_million)
{
	return rnd(s, 1000000) < per_million;
}

static void trace(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trace(sim *s, const char *fmt, ...)
{
	char *line = s->trace[s->trace_count++ % TRACE_LINES];
	int at = snprintf(line, TRACE_LEN, "%6" PRIu64 " ", s->now);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + at, TRACE_LEN - (size_t)at, fmt, ap);
	va_end(ap);
}

/* Records the first violation; the run stops at the end of the tick. */
static void violation(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violation(sim *s, const char *fmt, ...)
{
	if (s->failure[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof s->failure, fmt, ap);
	va_end(ap);
	trace(s, "VIOLATION: %s", s->failure);
}

static uint64_t chain(uint64_t prev, uint64_t seq, uint64_t epoch, uint64_t payload)
{
	return trng_mix64(prev ^
	                  trng_mix64(seq * 0x100000001b3ull ^ trng_mix64(epoch ^ (payload << 20))));
}

static int active(const sim *s, int id)
{
	return s->n[id].up && s->now >= s->n[id].paused_until;
}

static int etcd_ok(const sim *s, int id)
{
	return s->quorum && !s->n[id].etcd_cut;
}

static uint64_t log_epoch(const nshard *h)
{
	uint64_t e = 0;
	for (uint64_t q = 1; q <= h->last; q++)
		if (h->log[q].epoch > e)
			e = h->log[q].epoch;
	return e;
}

static void append(nshard *h, uint64_t epoch, uint64_t payload)
{
	cr_assert_lt(h->last + 1, LOG_MAX);
	uint64_t q = ++h->last;
	h->log[q].epoch = epoch;
	h->log[q].payload = payload;
	h->log[q].hash = chain(h->log[q - 1].hash, q, epoch, payload);
	if (epoch > h->epoch)
		h->epoch = epoch;
}

static void send(sim *s, msg m)
{
	if (s->cut[m.from][m.to] || chance(s, (uint32_t)s->loss_pct * 10000) ||
	    s->net_count == NET_MAX)
		return;
	m.at = s->now + 1 + rnd(s, (uint64_t)s->delay_max_ms);
	if (!s->healed && chance(s, 5000))
		m.at += rnd(s, 3000); /* a straggler: retransmissions, a stalled socket */
	s->net[s->net_count++] = m;
}

static void reset_peers(sim *s, nshard *h)
{
	memset(h->peers, 0, sizeof h->peers);
	for (int j = 1; j <= NODES_MAX; j++)
		h->peers[j].since_ms = s->now;
}

/* ---- etcd ------------------------------------------------------------------ */

/* Returns 1 swapped, 0 compare failed, -ETIMEDOUT (not applied, or applied
 * with its answer lost). */
static int etcd_cas(sim *s, int id, int k, const role_map *nm)
{
	if (!etcd_ok(s, id) || chance(s, 30000))
		return -ETIMEDOUT; /* not applied: the request was lost */
	char why[128];
	if (role_map_check(nm, why, sizeof why) != 0) {
		violation(s, "node %d wrote an invalid map for shard %d: %s", id, k, why);
		return 0;
	}
	int match = nm->mod_revision == 0 ? !s->map_present[k]
	                                  : s->map_present[k] && s->map_rev[k] == nm->mod_revision;
	if (!match)
		return 0;
	if (s->map_present[k] && nm->epoch < s->map_epoch[k])
		violation(s, "(d) shard %d: map epoch %" PRIu64 " -> %" PRIu64, k, s->map_epoch[k],
		          nm->epoch);
	cr_assert_gt(role_map_encode(nm, s->map_text[k], ROLE_MAP_JSON_MAX), 0);
	s->map_present[k] = 1;
	s->map_rev[k] = ++s->rev;
	if (nm->epoch > s->map_epoch[k]) {
		cr_assert_lt(nm->epoch, EPOCHS_MAX);
		s->truth[k].epoch_start[nm->epoch] = nm->start_seq;
	}
	s->map_epoch[k] = nm->epoch;
	map_changes++;
	trace(s, "etcd shard %d rev %" PRId64 " by %d: %s", k, s->rev, id, s->map_text[k]);
	if (chance(s, 50000))
		return -ETIMEDOUT; /* applied, answer lost */
	return 1;
}

/* The node's read of etcd (a watch, in the real node): map and live keys. */
static void etcd_read(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	if (!etcd_ok(s, id)) {
		h->fresh = 0;
		return;
	}
	h->fresh = 1;
	memset(&h->map, 0, sizeof h->map);
	if (s->map_present[k]) {
		char err[128];
		int rc = role_map_decode(s->map_text[k], strlen(s->map_text[k]), &h->map, err,
		                         sizeof err);
		cr_assert_eq(rc, 0, "decode of our own text: %s", err);
		h->map.mod_revision = s->map_rev[k];
	}
	h->live_count = 0;
	for (int j = 1; j <= s->nodes; j++)
		if (s->key_present[j])
			h->live[h->live_count++] = (uint32_t)j;
}

static void etcd_tick(sim *s)
{
	if (!s->quorum)
		return; /* no leader: no lease expires */
	for (int j = 1; j <= s->nodes; j++)
		if (s->key_present[j] && s->now >= s->key_expiry[j]) {
			s->key_present[j] = 0;
			trace(s, "etcd: node %d's key expired", j);
		}
}

/* ---- The checker ---------------------------------------------------------- */

/* A primary releases seq q of its own term to the client. */
static void acknowledge(sim *s, int id, int k, uint64_t q)
{
	nshard *h = &s->n[id].sh[k];
	shard_truth *t = &s->truth[k];
	uint64_t e = h->epoch;
	if (t->acker[e] && t->acker[e] != (uint32_t)id)
		violation(s, "(b) shard %d epoch %" PRIu64 ": nodes %u and %d both acknowledge", k,
		          e, t->acker[e], id);
	if (s->map_epoch[k] > e)
		late_acks++;
	t->acker[e] = (uint32_t)id;
	if (s->map_epoch[k] > e && t->epoch_start[e + 1] && q >= t->epoch_start[e + 1])
		violation(s,
		          "(b) shard %d: node %d (epoch %" PRIu64 ") acknowledges seq %" PRIu64
		          " after epoch %" PRIu64 " started at %" PRIu64,
		          k, id, e, q, e + 1, t->epoch_start[e + 1]);
	if (q > t->acked_max_seq && t->acked_max_seq &&
	    (h->last < t->acked_max_seq || h->log[t->acked_max_seq].hash != t->acked_max_hash))
		violation(s,
		          "(a) shard %d: node %d acknowledges seq %" PRIu64
		          " without the acknowledged seq %" PRIu64,
		          k, id, q, t->acked_max_seq);
	if (q <= t->acked_max_seq) {
		/* A late release of an older record (its ack came from a standby
		 * before it took a newer term): it must be on the acknowledged
		 * history, which every holder of its end shares. */
		const nshard *ref = NULL;
		for (int j = 1; j <= s->nodes && !ref; j++) {
			const nshard *c = &s->n[j].sh[k];
			if (c->last >= t->acked_max_seq &&
			    c->log[t->acked_max_seq].hash == t->acked_max_hash)
				ref = c;
		}
		if (!ref || ref->log[q].hash != h->log[q].hash)
			violation(s,
			          "(a) shard %d: node %d acknowledges seq %" PRIu64
			          " off the acknowledged history",
			          k, id, q);
	}
	if (q > t->acked_max_seq) {
		t->acked_max_seq = q;
		t->acked_max_hash = h->log[q].hash;
	}
	t->acks++;
	if (s->healed)
		t->acks_after_heal++;
}

static void check(sim *s)
{
	for (int k = 0; k < s->shards; k++) {
		shard_truth *t = &s->truth[k];
		if (!s->map_present[k])
			continue;
		role_map m;
		cr_assert_eq(role_map_decode(s->map_text[k], strlen(s->map_text[k]), &m, NULL, 0),
		             0);
		for (uint32_t i = 0; i < m.in_sync_count && t->acked_max_seq; i++) {
			const nshard *h = &s->n[m.in_sync[i]].sh[k];
			if (h->durable < t->acked_max_seq ||
			    h->log[t->acked_max_seq].hash != t->acked_max_hash)
				violation(s,
				          "(a) shard %d: in-sync node %u (durable %" PRIu64
				          ") lacks acknowledged seq %" PRIu64,
				          k, m.in_sync[i], h->durable, t->acked_max_seq);
		}
		const nshard *p = &s->n[m.primary].sh[k];
		if (!s->n[m.primary].up || p->local != ROLE_PRIMARY || p->epoch != m.epoch)
			continue;
		for (int j = 1; j <= s->nodes; j++) {
			const nshard *h = &s->n[j].sh[k];
			if (j == (int)m.primary || h->epoch != m.epoch)
				continue;
			uint64_t c = h->last < p->last ? h->last : p->last;
			if (h->log[c].hash != p->log[c].hash)
				violation(
				        s,
				        "(c) shard %d: node %d and primary %u differ at seq %" PRIu64
				        " (epoch %" PRIu64 ")",
				        k, j, m.primary, c, m.epoch);
		}
	}
}

/* ---- The data plane ------------------------------------------------------- */

static void standby_hello(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	h->last_hello_ms = s->now;
	send(s, (msg){.kind = M_HELLO,
	              .from = id,
	              .to = (int)h->following,
	              .shard = k,
	              .seq = h->last});
}

static void on_hello(sim *s, const msg *m)
{
	nshard *h = &s->n[m->to].sh[m->shard];
	if (h->local != ROLE_PRIMARY)
		return;
	if (m->seq > h->durable) {
		/* Its tail is not ours (an older term's): it cannot continue. */
		send(s, (msg){.kind = M_DIVERGED,
		              .from = m->to,
		              .to = m->from,
		              .shard = m->shard,
		              .epoch = h->epoch});
		return;
	}
	speer *p = &h->peers[m->from];
	if (!p->known)
		p->since_ms = s->now;
	p->known = 1;
	p->hello = 1;
	p->next_send = m->seq + 1;
	p->last_send_ms = 0;
}

static void on_append(sim *s, const msg *m)
{
	nshard *h = &s->n[m->to].sh[m->shard];
	if (h->local != ROLE_STANDBY || h->following != (uint32_t)m->from)
		return;
	if (m->epoch < h->epoch)
		return; /* an older term: fencing (shard_replicate -ESTALE) */
	if (m->prev_seq != h->last) {
		if (s->now - h->last_hello_ms >= HELLO_MS)
			standby_hello(s, m->to, m->shard); /* gap or overlap: resume */
		return;
	}
	if (h->log[h->last].hash != m->prev_hash) {
		h->diverged = 1; /* -EBADMSG */
		trace(s, "node %d shard %d: chain refused at %" PRIu64, m->to, m->shard, h->last);
		return;
	}
	for (int i = 0; i < m->n; i++)
		append(h, m->e[i].epoch, m->e[i].payload);
	cr_assert_eq(h->log[h->last].hash, m->n ? m->e[m->n - 1].hash : m->prev_hash,
	             "chain arithmetic");
	h->verified = 1;
	h->verified_epoch = m->epoch;
	h->last_append_ms = s->now;
}

static void on_ack(sim *s, const msg *m)
{
	nshard *h = &s->n[m->to].sh[m->shard];
	if (h->local != ROLE_PRIMARY || m->epoch != h->epoch)
		return;
	speer *p = &h->peers[m->from];
	p->known = 1;
	p->acked_any = 1;
	p->last_ack_ms = s->now;
	if (m->seq > p->acked)
		p->acked = m->seq;
}

static void deliver(sim *s)
{
	int k = 0;
	for (int i = 0; i < s->net_count; i++) {
		msg *m = &s->net[i];
		if (m->at > s->now || (s->n[m->to].up && !active(s, m->to))) {
			s->net[k++] = *m; /* not yet, or its receiver is paused */
			continue;
		}
		if (!s->n[m->to].up)
			continue; /* lost with the crashed node's sockets */
		switch (m->kind) {
		case M_HELLO:
			on_hello(s, m);
			break;
		case M_APPEND:
			on_append(s, m);
			break;
		case M_ACK:
			on_ack(s, m);
			break;
		case M_DIVERGED:
			if (s->n[m->to].sh[m->shard].following == (uint32_t)m->from)
				s->n[m->to].sh[m->shard].diverged = 1;
			break;
		}
	}
	s->net_count = k;
}

static void primary_ship(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	for (int j = 1; j <= s->nodes; j++) {
		speer *p = &h->peers[j];
		if (j == id || !p->hello)
			continue;
		if (p->next_send > h->durable + 1)
			p->next_send = h->durable + 1;
		if (p->next_send > h->durable && s->now - p->last_send_ms < HEARTBEAT_MS)
			continue;
		msg m = {.kind = M_APPEND, .from = id, .to = j, .shard = k, .epoch = h->epoch};
		m.prev_seq = p->next_send - 1;
		m.prev_hash = h->log[m.prev_seq].hash;
		while (m.n < RUN_ENTRIES_MAX && p->next_send <= h->durable)
			m.e[m.n++] = h->log[p->next_send++];
		p->last_send_ms = s->now;
		send(s, m);
	}
}

static void primary_release(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	uint64_t floor = UINT64_MAX;
	for (int j = 1; j <= s->nodes; j++)
		if (j != id && h->peers[j].gated && h->peers[j].acked < floor)
			floor = h->peers[j].acked;
	uint64_t to = h->durable < floor ? h->durable : floor;
	for (uint64_t q = h->released + 1; q <= to; q++)
		if (h->log[q].payload && h->log[q].epoch == h->epoch)
			acknowledge(s, id, k, q);
	if (to > h->released)
		h->released = to;
}

static void node_shard_tick(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	if (h->last > h->durable && chance(s, 400000))
		h->durable = h->last;
	if (h->local == ROLE_PRIMARY) {
		if (!h->writes_stopped && !h->hold && h->last + 2 < LOG_MAX && chance(s, 300000))
			append(h, h->epoch, ++s->next_payload);
		primary_release(s, id, k);
		primary_ship(s, id, k);
	} else if (h->local == ROLE_STANDBY && h->following) {
		/* A primary silent for long (restarted, or it lost our hello):
		 * the connection is considered broken; say hello again. */
		if (h->verified && s->now - h->last_append_ms > ACK_TIMEOUT_MS / 2)
			h->verified = 0;
		if (!h->verified && s->now - h->last_hello_ms >= HELLO_MS)
			standby_hello(s, id, k);
		if (h->verified &&
		    (h->durable > h->acked_sent || s->now - h->last_ack_sent_ms >= HEARTBEAT_MS)) {
			h->acked_sent = h->durable;
			h->last_ack_sent_ms = s->now;
			send(s, (msg){.kind = M_ACK,
			              .from = id,
			              .to = (int)h->following,
			              .shard = k,
			              .epoch = h->verified_epoch,
			              .seq = h->durable});
		}
	}
}

/* ---- The control loop: exactly what the node does with each action ------- */

static void build_view(sim *s, int id, int k, role_view *v)
{
	nshard *h = &s->n[id].sh[k];
	memset(v, 0, sizeof *v);
	v->self = (uint32_t)id;
	v->map = h->map;
	v->map_fresh = h->fresh;
	memcpy(v->live, h->live, sizeof v->live);
	v->live_count = h->live_count;
	v->local = h->local;
	v->last_seq = h->durable;
	v->local_epoch = h->epoch;
	v->released_seq = h->released;
	v->following = h->following;
	v->diverged = h->diverged;
	v->writes_stopped = h->writes_stopped;
	v->cfg.ack_timeout_ms = ACK_TIMEOUT_MS;
	v->cfg.min_in_sync = s->min_in_sync;
	v->cfg.bootstrap_primary = 1;
	v->cfg.gate_lag_max = 64;
	if (h->local != ROLE_PRIMARY)
		return;
	for (int j = 1; j <= s->nodes; j++) {
		const speer *p = &h->peers[j];
		if (j == id || (!p->known && !role_map_in_sync(&h->map, (uint32_t)j)))
			continue;
		role_peer *r = &v->peers[v->peer_count++];
		uint64_t from =
		        p->acked_any && p->last_ack_ms > p->since_ms ? p->last_ack_ms : p->since_ms;
		r->node = (uint32_t)j;
		r->silent_ms = s->now - from;
		r->connected = p->acked_any && r->silent_ms <= ACK_TIMEOUT_MS;
		r->acked_seq = p->acked;
		r->gated = p->gated;
		r->gate_seq = p->gate_seq;
	}
}

/* The CAS of an action, with the unknown outcome resolved by a re-read as
 * role.h says. Returns 1 when the map now is new_map (cached), else 0. */
static int do_cas(sim *s, int id, int k, const role_action *a)
{
	nshard *h = &s->n[id].sh[k];
	int rc = etcd_cas(s, id, k, &a->new_map);
	if (rc == -ETIMEDOUT && etcd_ok(s, id)) {
		char want[ROLE_MAP_JSON_MAX];
		cr_assert_gt(role_map_encode(&a->new_map, want, sizeof want), 0);
		rc = s->map_present[k] && !strcmp(s->map_text[k], want) ? 1 : 0;
	}
	if (rc != 1) {
		trace(s, "node %d shard %d: %s CAS failed (%d)", id, k, role_act_name(a->act), rc);
		etcd_read(s, id, k);
		return 0;
	}
	h->map = a->new_map;
	h->map.mod_revision = s->map_rev[k];
	return 1;
}

static void become_primary(sim *s, int id, int k, uint64_t epoch, uint64_t start_seq)
{
	nshard *h = &s->n[id].sh[k];
	h->following = 0;
	h->verified = 0;
	cr_assert_eq(start_seq, h->last + 1, "the EPOCH record must land at start_seq");
	append(h, epoch, 0);
	h->local = ROLE_PRIMARY;
	h->released = start_seq - 1;
	h->writes_stopped = 0;
	h->hold = 0;
	reset_peers(s, h);
	trace(s, "node %d shard %d: primary of epoch %" PRIu64 " from seq %" PRIu64, id, k, epoch,
	      start_seq);
}

static void stop_receiver(nshard *h)
{
	h->following = 0;
	h->verified = 0;
	h->durable = h->last; /* wait until durable == last */
}

/* Executes one action. Returns 1 to ask again now, 0 to stop this round. */
static int execute(sim *s, int id, int k, const role_action *a)
{
	nshard *h = &s->n[id].sh[k];
	switch (a->act) {
	case ROLE_ACT_NONE:
		return 0;
	case ROLE_ACT_CREATE_MAP:
	case ROLE_ACT_PROMOTE:
		if (h->following || h->last != h->durable || a->new_map.start_seq != h->last + 1) {
			stop_receiver(h); /* then re-read last_seq and ask again */
			return 1;
		}
		if (do_cas(s, id, k, a))
			become_primary(s, id, k, a->new_map.epoch, a->new_map.start_seq);
		return 1;
	case ROLE_ACT_ASSUME:
		stop_receiver(h);
		if (h->last + 1 != h->map.start_seq)
			return 1;
		become_primary(s, id, k, h->map.epoch, h->map.start_seq);
		return 1;
	case ROLE_ACT_FENCE:
		h->local = ROLE_FENCED;
		trace(s, "node %d shard %d: fenced (epoch %" PRIu64 ", released %" PRIu64 ")", id,
		      k, h->epoch, h->released);
		return 1;
	case ROLE_ACT_REJOIN:
		h->durable = h->last; /* a clean close syncs */
		if (a->cut) {
			cr_assert_leq(a->cut_after, h->last);
			h->last = h->durable = a->cut_after;
			h->epoch = log_epoch(h);
			trace(s, "node %d shard %d: cut after %" PRIu64, id, k, a->cut_after);
			cuts++;
		}
		h->local = ROLE_STANDBY;
		h->following = 0;
		h->verified = 0;
		h->diverged = 0;
		h->writes_stopped = 0;
		h->hold = 0;
		reset_peers(s, h);
		return 1;
	case ROLE_ACT_FOLLOW:
		h->local = ROLE_STANDBY;
		h->following = a->peer;
		h->verified = 0;
		standby_hello(s, id, k);
		return 0;
	case ROLE_ACT_REBUILD: {
		/* A fresh copy from the primary (a snapshot transfer, modelled as
		 * its durable journal). */
		const nshard *p = &s->n[h->map.primary].sh[k];
		if (!s->n[h->map.primary].up || p->local != ROLE_PRIMARY)
			return 0;
		memcpy(h->log, p->log, (p->durable + 1) * sizeof(entry));
		h->last = h->durable = p->durable;
		h->epoch = log_epoch(h);
		h->diverged = 0;
		h->verified = 0;
		trace(s, "node %d shard %d: rebuilt from %u up to %" PRIu64, id, k, h->map.primary,
		      h->last);
		standby_hello(s, id, k);
		return 0;
	}
	case ROLE_ACT_DROP_STANDBY:
		if (do_cas(s, id, k, a))
			h->peers[a->peer].gated = 0;
		return 1;
	case ROLE_ACT_HOLD_WRITES:
		h->hold = 1;
		return 0;
	case ROLE_ACT_GATE_PEER:
		h->peers[a->peer].gated = 1;
		h->peers[a->peer].gate_seq = h->durable; /* read after the floor includes it */
		return 1;
	case ROLE_ACT_UNGATE_PEER:
		h->peers[a->peer].gated = 0;
		h->peers[a->peer].known = 0;
		h->peers[a->peer].hello = 0;
		return 1;
	case ROLE_ACT_ADD_STANDBY:
	case ROLE_ACT_CLEAR_HANDOFF:
		do_cas(s, id, k, a);
		return 1;
	case ROLE_ACT_STOP_WRITES:
		h->writes_stopped = 1;
		return 1;
	case ROLE_ACT_HANDOFF:
		if (do_cas(s, id, k, a)) {
			h->local = ROLE_FENCED;
			trace(s, "node %d shard %d: handed off to %u", id, k, a->peer);
		}
		return 1;
	case ROLE_ACT_RESUME_WRITES:
		h->writes_stopped = 0;
		return 1;
	case ROLE_ACT_COUNT:
		break;
	}
	cr_assert_fail("unknown action %d", a->act);
	return 0;
}

static void control(sim *s, int id, int k)
{
	nshard *h = &s->n[id].sh[k];
	/* The node's watch lags: half of the rounds decide on the map and the
	 * live set as they were, so a decision may race another node's CAS
	 * (which its own CAS then loses, on mod_revision). */
	if (!etcd_ok(s, id))
		h->fresh = 0;
	else if (!h->fresh || chance(s, 500000))
		etcd_read(s, id, k);
	h->hold = 0;
	/* The writer and the links run between two actions of the control
	 * thread: a round executes 1..4 of them, then the world moves on. */
	int rounds = 1 + (int)rnd(s, 4);
	for (int round = 0; round < rounds; round++) {
		role_view v;
		role_action a;
		build_view(s, id, k, &v);
		role_decide(&v, &a);
		if (a.act != ROLE_ACT_NONE && a.act != ROLE_ACT_HOLD_WRITES)
			trace(s, "node %d shard %d %s e%" PRIu64 " last %" PRIu64 ": %s %u (%s)",
			      id, k, role_local_name(h->local), h->epoch, h->last,
			      role_act_name(a.act), a.peer, a.why);
		executed[a.act]++;
		if (!execute(s, id, k, &a))
			return;
	}
}

/* ---- Faults --------------------------------------------------------------- */

static void crash(sim *s, int id)
{
	s->n[id].up = 0;
	s->n[id].down_until = s->now + 200 + rnd(s, 3000);
	trace(s, "node %d CRASH until %" PRIu64, id, s->n[id].down_until);
}

static void restart(sim *s, int id)
{
	node *n = &s->n[id];
	n->up = 1;
	n->paused_until = 0;
	n->renewed_ms = 0;
	for (int k = 0; k < s->shards; k++) {
		nshard *h = &n->sh[k];
		entry *log = h->log;
		uint64_t durable = h->durable;
		memset(h, 0, sizeof *h);
		h->log = log;
		h->last = h->durable = durable; /* the undurable tail is lost */
		h->epoch = log_epoch(h);
		h->local = ROLE_NONE;
		reset_peers(s, h);
	}
	trace(s, "node %d RESTART", id);
}

static void operator_handoff(sim *s)
{
	int k = (int)rnd(s, (uint64_t)s->shards);
	if (!s->quorum || !s->map_present[k])
		return;
	role_map m;
	cr_assert_eq(role_map_decode(s->map_text[k], strlen(s->map_text[k]), &m, NULL, 0), 0);
	if (m.in_sync_count < 2 || m.handoff)
		return;
	uint32_t target = m.in_sync[rnd(s, m.in_sync_count)];
	if (target == m.primary)
		return;
	m.handoff = target;
	m.mod_revision = s->map_rev[k];
	trace(s, "operator: switch shard %d over to %u", k, target);
	etcd_cas(s, 0, k, &m);
}

static void faults(sim *s)
{
	int id = 1 + (int)rnd(s, (uint64_t)s->nodes);
	int other = 1 + (int)rnd(s, (uint64_t)s->nodes);
	if (s->n[id].up && chance(s, 800))
		crash(s, id);
	if (s->n[id].up && active(s, id) && chance(s, 800)) {
		s->n[id].paused_until = s->now + 100 + rnd(s, 5000);
		trace(s, "node %d PAUSE until %" PRIu64, id, s->n[id].paused_until);
	}
	if (id != other && chance(s, 1000)) {
		int on = !s->cut[id][other];
		s->cut[id][other] = s->cut[other][id] = on;
		trace(s, "link %d-%d %s", id, other, on ? "CUT" : "healed");
	}
	if (chance(s, 500)) {
		s->n[id].etcd_cut = !s->n[id].etcd_cut;
		trace(s, "node %d %s etcd", id, s->n[id].etcd_cut ? "CUT FROM" : "reaches");
	}
	if (chance(s, s->quorum ? 150 : 2000)) {
		s->quorum = !s->quorum;
		trace(s, "etcd quorum %s", s->quorum ? "BACK" : "LOST");
		if (s->quorum)
			for (int j = 1; j <= s->nodes; j++)
				s->key_expiry[j] =
				        s->now + TTL_MS; /* a new leader renews every lease */
	}
	if (chance(s, 400))
		operator_handoff(s);
}

static void heal(sim *s)
{
	s->healed = 1;
	s->loss_pct = 0;
	if (!s->quorum)
		for (int j = 1; j <= s->nodes; j++)
			s->key_expiry[j] = s->now + TTL_MS;
	s->quorum = 1;
	memset(s->cut, 0, sizeof s->cut);
	for (int j = 1; j <= s->nodes; j++) {
		s->n[j].etcd_cut = 0;
		s->n[j].paused_until = 0;
		if (!s->n[j].up)
			restart(s, j);
	}
	trace(s, "HEAL");
}

/* ---- One run --------------------------------------------------------------- */

static void node_tick(sim *s, int id)
{
	node *n = &s->n[id];
	if (etcd_ok(s, id)) {
		if (!s->key_present[id] || s->now - n->renewed_ms >= RENEW_MS) {
			if (!s->key_present[id])
				trace(s, "node %d registers", id);
			s->key_present[id] = 1;
			s->key_expiry[id] = s->now + TTL_MS;
			n->renewed_ms = s->now;
		}
	}
	for (int k = 0; k < s->shards; k++)
		node_shard_tick(s, id, k);
	if (s->now >= n->next_control_ms) {
		n->next_control_ms = s->now + CONTROL_MS;
		for (int k = 0; k < s->shards; k++)
			control(s, id, k);
	}
}

static void sim_init(sim *s, uint64_t seed)
{
	memset(s, 0, sizeof *s);
	s->seed = seed;
	s->rng = trng_mix64(seed) | 1;
	s->nodes = 2 + (int)rnd(s, 2);
	s->shards = 1 + (int)rnd(s, 2);
	s->min_in_sync = s->nodes == 3 && rnd(s, 4) == 0 ? 2 : 1;
	s->loss_pct = (int)rnd(s, 21);
	s->delay_max_ms = 1 + (int)rnd(s, 40);
	s->quorum = 1;
	s->net = calloc(NET_MAX, sizeof(msg));
	cr_assert_not_null(s->net);
	for (int j = 1; j <= s->nodes; j++) {
		s->n[j].up = 1;
		for (int k = 0; k < s->shards; k++) {
			s->n[j].sh[k].log = calloc(LOG_MAX, sizeof(entry));
			cr_assert_not_null(s->n[j].sh[k].log);
			reset_peers(s, &s->n[j].sh[k]);
		}
	}
}

static void sim_free(sim *s)
{
	free(s->net);
	for (int j = 1; j <= s->nodes; j++)
		for (int k = 0; k < s->shards; k++)
			free(s->n[j].sh[k].log);
}

static void print_failure(const sim *s)
{
	fprintf(stderr,
	        "role_sim: seed %" PRIu64 " (replay: BO_SIM_SEED=%" PRIu64
	        "): %d nodes, %d shards, "
	        "min_in_sync %u, loss %d%%, delay <= %d ms\n",
	        s->seed, s->seed, s->nodes, s->shards, s->min_in_sync, s->loss_pct,
	        s->delay_max_ms);
	uint64_t first = s->trace_count > TRACE_LINES ? s->trace_count - TRACE_LINES : 0;
	for (uint64_t i = first; i < s->trace_count; i++)
		fprintf(stderr, "  %s\n", s->trace[i % TRACE_LINES]);
	fprintf(stderr, "role_sim: seed %" PRIu64 ": %s\n", s->seed, s->failure);
}

/* Runs one seed; returns 1 when every invariant held. */
static int run(uint64_t seed, uint64_t *acks)
{
	sim *s = calloc(1, sizeof *s);
	cr_assert_not_null(s);
	sim_init(s, seed);
	int order[NODES_MAX];
	uint64_t heal_at = FAULT_MS;
	while (!s->failure[0]) {
		s->now += TICK_MS;
		if (!s->healed && s->now >= heal_at)
			heal(s);
		if (!s->healed)
			faults(s);
		for (int j = 1; j <= s->nodes; j++)
			if (!s->n[j].up && s->now >= s->n[j].down_until)
				restart(s, j);
		etcd_tick(s);
		deliver(s);
		for (int j = 0; j < s->nodes; j++)
			order[j] = j + 1;
		for (int j = s->nodes - 1; j > 0; j--) {
			int r = (int)rnd(s, (uint64_t)j + 1), t = order[j];
			order[j] = order[r];
			order[r] = t;
		}
		for (int j = 0; j < s->nodes; j++)
			if (active(s, order[j]))
				node_tick(s, order[j]);
		check(s);
		if (s->healed) {
			int live = 1;
			for (int k = 0; k < s->shards; k++)
				live &= s->truth[k].acks_after_heal > 0;
			if (live)
				break;
			if (s->now >= heal_at + HEAL_LIMIT_MS)
				violation(
				        s,
				        "(e) no acknowledgement on every shard %d ms after the faults healed",
				        HEAL_LIMIT_MS);
		}
	}
	int ok = !s->failure[0];
	if (!ok)
		print_failure(s);
	for (int k = 0; k < s->shards; k++)
		*acks += s->truth[k].acks;
	sim_free(s);
	free(s);
	return ok;
}

static uint64_t env_u64(const char *name, uint64_t fallback, int *given)
{
	const char *v = getenv(name);
	uint64_t n = fallback;
	*given = v != NULL;
	/* A bad count must not pass quietly as zero runs. */
	if (v && bo_parse_u64(v, 1, UINT64_MAX, 0, &n) != 0)
		cr_assert_fail("%s: a whole number >= 1, not '%s'", name, v);
	return n;
}

Test(role_sim, invariants_hold_over_seeds, .timeout = 3600)
{
	int one = 0, many = 0;
	uint64_t replay = env_u64("BO_SIM_SEED", 0, &one);
	uint64_t seeds = env_u64("BO_SIM_SEEDS", 600, &many);
	uint64_t acks = 0, failed = 0;
	if (one) {
		cr_assert(run(replay, &acks), "seed %" PRIu64 " failed (trace above)", replay);
		return;
	}
	for (uint64_t i = 1; i <= seeds && !failed; i++)
		if (!run(i, &acks))
			failed = i;
	cr_assert_eq(failed, 0, "seed %" PRIu64 " broke an invariant (trace above)", failed);
	cr_log_info("%" PRIu64 " seeds, %" PRIu64 " acknowledged commands", seeds, acks);
	fprintf(stderr,
	        "role_sim: %" PRIu64 " seeds, %" PRIu64 " acknowledged commands, %" PRIu64
	        " map changes, %" PRIu64 " late acknowledgements by an old primary, %" PRIu64
	        " cuts; decisions:",
	        seeds, acks, map_changes, late_acks, cuts);
	for (int a = 1; a < ROLE_ACT_COUNT; a++)
		fprintf(stderr, " %s %" PRIu64, role_act_name((role_act)a), executed[a]);
	fprintf(stderr, "\n");
}
