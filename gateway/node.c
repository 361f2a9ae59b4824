/*
 * node.c — the control plane of a cluster node (see node.h).
 *
 * A lease thread of its own (own etcd handle) grants the lease, writes the
 * node key under it and renews it every third of its TTL, registering
 * again when etcd says it expired. The control thread's loop: read
 * /boxoffice/ (node keys and shard maps) in one linearizable read;
 * per shard, build the role view (cluster/role.h), ask role_decide for the
 * next action and execute it in the order role.h documents (the CAS
 * first, the local effect after), a few actions per shard per turn; then
 * watch /boxoffice/ from the revision read, for at most GW_NODE_POLL_MS.
 * etcd unreachable: the read fails, the view says map_fresh 0, and the
 * role machine changes nothing; the data path goes on as it was.
 */
#include "node.h"
#include "internal.h"
#include "repl.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/log.h"
#include "cluster/etcd.h"
#include "cluster/role.h"
#include "protocol/wire.h"
#include "shard/shard.h"

_Static_assert(GW_NODE_ID_MAX == ROLE_NODE_ID_MAX, "node ids as the role machine takes them");
_Static_assert(GW_NODE_ADDR_MAX == WIRE_ADDRESS_LEN_MAX, "a node's address fits a not_primary reply");

#define NODE_PREFIX "/boxoffice/"
#define NODE_KEYS "/boxoffice/nodes/"
#define SHARD_KEYS "/boxoffice/shards/"
#define NODE_ACTIONS_PER_TURN 6
#define NODE_GATE_LAG_MAX 1000u

void gw_node_config_default(gw_node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->lease_ms = GW_NODE_LEASE_MS_DEFAULT;
	cfg->min_in_sync = 1;
	cfg->bootstrap_primary = 1;
}

/* A live node as its key says. */
typedef struct node_entry {
	uint32_t id;
	char client[GW_NODE_ADDR_MAX];
	char repl[GW_NODE_ADDR_MAX];
} node_entry;

typedef struct node_shard {
	role_local local; /* under n->lock (written by the control thread) */
	role_map map;	  /* the map cache, under n->lock */
	uint32_t following;
	int writes_stopped, writes_held;
	int reopening; /* gw_shard_acquire returns NULL */
	int rebuild_logged;
	uint64_t term_start_ms;
	/* The last sequence this node's database committer carried of this
	 * shard (0: none ran): the history up to it is in PostgreSQL, so no
	 * cut of a rejoin may remove it (checked in act REJOIN). */
	uint64_t carried_seq;
	uint32_t gate_node[ROLE_NODES_MAX];
	uint64_t gate_seq[ROLE_NODES_MAX];
} node_shard;

struct gw_node {
	gw_server *gw;
	gw_node_config cfg;
	const char *advertise;
	uint32_t shards;
	etcd *e;  /* the control thread's handle */
	etcd *ke; /* the lease thread's own (a handle is one thread's) */
	int64_t lease;
	int64_t renew_at_ms;
	int registered;
	/* The lease thread: renewal never waits behind the control thread's
	 * reads and CASes (a slow etcd must not let a healthy node's key
	 * expire sooner than it must). */
	pthread_t lease_thread;
	int lease_started;
	pthread_t thread;
	int started;
	atomic_int stop;
	gw_repl *repl;
	pthread_mutex_t lock; /* sh[].map, sh[].local, nodes[] */
	node_shard sh[GW_SHARDS_MAX];
	node_entry nodes[ROLE_LIVE_MAX];
	uint32_t node_count;
	int fresh; /* the last read of etcd succeeded */
	int64_t revision;
	/* One switchover at a time (under lock). */
	int sw_pending;
	uint32_t sw_shard, sw_to;
	int sw_cas_done;
	int64_t sw_deadline_ms;
	void (*sw_done)(void *ctx, int status, const char *text);
	void *sw_ctx;
	/* Shards and views replaced by a reopen: freed with the node, since
	 * the metrics and status readers may still hold the old pointers. */
	shard *grave_shards[64];
	view *grave_views[64];
	uint32_t graves;
};

/* ---- Shard access for the data plane -------------------------------------- */

shard *gw_shard_acquire(gw_server *gw, uint32_t k)
{
	pthread_rwlock_rdlock(&gw->shard_rw[k]);
	if (gw->node && gw->node->sh[k].reopening)
		return NULL;
	return gw->shards[k];
}

void gw_shard_release(gw_server *gw, uint32_t k) { pthread_rwlock_unlock(&gw->shard_rw[k]); }

int gw_node_serving(gw_node *n, uint32_t k)
{
	const node_shard *sh = &n->sh[k];
	if (sh->local != ROLE_PRIMARY || sh->reopening || sh->writes_stopped)
		return 0;
	return sh->writes_held ? -EBUSY : 1;
}

/* ---- The map cache ---------------------------------------------------------- */

static const node_entry *node_find(const gw_node *n, uint32_t id)
{
	for (uint32_t i = 0; i < n->node_count; i++)
		if (n->nodes[i].id == id)
			return &n->nodes[i];
	return NULL;
}

void gw_node_primary(gw_node *n, uint32_t k, wire_primary *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&n->lock);
	const role_map *m = &n->sh[k].map;
	if (m->present) {
		out->epoch = m->epoch;
		const node_entry *ne = m->primary != n->cfg.node_id ? node_find(n, m->primary) : NULL;
		if (m->primary == n->cfg.node_id) {
			out->known = 1;
			out->node = m->primary;
			snprintf(out->address, sizeof(out->address), "%s", n->advertise);
		} else if (ne && ne->client[0]) {
			out->known = 1;
			out->node = m->primary;
			snprintf(out->address, sizeof(out->address), "%s", ne->client);
		}
	}
	pthread_mutex_unlock(&n->lock);
}

/* Parses a node key's value {"id":N,"client":"..","repl":".."}: 0, or -1
 * (logged once per bad value by the caller's reading). */
static int node_parse(const etcd_kv *kv, node_entry *out)
{
	json_error_t jerr;
	json_t *j = json_loadb(kv->value, kv->value_len, 0, &jerr);
	if (!j)
		return -1;
	json_t *id = json_object_get(j, "id"), *c = json_object_get(j, "client"), *r = json_object_get(j, "repl");
	int ok = json_is_integer(id) && json_integer_value(id) > 0 && json_integer_value(id) <= ROLE_NODE_ID_MAX &&
		 json_is_string(c) && json_is_string(r) && strlen(json_string_value(c)) < GW_NODE_ADDR_MAX &&
		 strlen(json_string_value(r)) < GW_NODE_ADDR_MAX;
	if (ok) {
		out->id = (uint32_t)json_integer_value(id);
		snprintf(out->client, sizeof(out->client), "%s", json_string_value(c));
		snprintf(out->repl, sizeof(out->repl), "%s", json_string_value(r));
	}
	json_decref(j);
	return ok ? 0 : -1;
}

/* Reads every node key and shard map into the cache. 0, or < 0 (etcd). */
static int node_read(gw_node *n)
{
	etcd_kv *kvs = NULL;
	size_t cnt = 0;
	int64_t rev = 0;
	char err[256];
	int rc = etcd_get_prefix(n->e, NODE_PREFIX, &kvs, &cnt, &rev, err, sizeof(err));
	if (rc < 0) {
		if (n->fresh)
			bo_log(BO_LOG_WARN, "msg=\"etcd unreachable: roles frozen, data path goes on\" error=\"%s\"", err);
		n->fresh = 0;
		return rc;
	}
	node_entry nodes[ROLE_LIVE_MAX];
	uint32_t nc = 0;
	role_map maps[GW_SHARDS_MAX];
	memset(maps, 0, sizeof(maps));
	for (size_t i = 0; i < cnt; i++) {
		const char *key = kvs[i].key;
		if (!strncmp(key, NODE_KEYS, strlen(NODE_KEYS))) {
			if (nc < ROLE_LIVE_MAX && node_parse(&kvs[i], &nodes[nc]) == 0)
				nc++;
		} else if (!strncmp(key, SHARD_KEYS, strlen(SHARD_KEYS))) {
			char *end;
			unsigned long k = strtoul(key + strlen(SHARD_KEYS), &end, 10);
			if (*end || k >= n->shards)
				continue;
			role_map m;
			char merr[160];
			if (role_map_decode(kvs[i].value, kvs[i].value_len, &m, merr, sizeof(merr)) < 0) {
				bo_log(BO_LOG_ERROR, "msg=\"shard map in etcd is not valid: ignored\" shard=%lu error=\"%s\"",
				       k, merr);
				continue;
			}
			m.mod_revision = kvs[i].mod_revision;
			maps[k] = m;
		}
	}
	etcd_kvs_free(kvs, cnt);
	pthread_mutex_lock(&n->lock);
	memcpy(n->nodes, nodes, nc * sizeof(node_entry));
	n->node_count = nc;
	for (uint32_t k = 0; k < n->shards; k++)
		n->sh[k].map = maps[k];
	pthread_mutex_unlock(&n->lock);
	if (!n->fresh)
		bo_log(BO_LOG_INFO, "msg=\"etcd reachable\" endpoint=%s nodes=%u", etcd_endpoint(n->e), nc);
	n->fresh = 1;
	n->revision = rev;
	return 0;
}

/* ---- Lease and node key ----------------------------------------------------- */

static int node_register(gw_node *n)
{
	char err[256], val[3 * GW_NODE_ADDR_MAX + 64];
	int64_t id, ttl_s;
	int rc = etcd_lease_grant(n->ke, n->cfg.lease_ms, &id, &ttl_s, err, sizeof(err));
	if (rc == 0) {
		json_t *j = json_pack("{s:i,s:s,s:s}", "id", (json_int_t)n->cfg.node_id, "client", n->advertise, "repl",
				      n->cfg.repl);
		char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		snprintf(val, sizeof(val), "%s", text ? text : "");
		free(text);
		char key[64];
		snprintf(key, sizeof(key), NODE_KEYS "%u", n->cfg.node_id);
		rc = val[0] ? etcd_put(n->ke, key, val, strlen(val), id, err, sizeof(err)) : -ENOMEM;
	}
	if (rc < 0) {
		bo_log(BO_LOG_WARN, "msg=\"cannot register this node in etcd (retrying)\" node=%u error=\"%s\"",
		       n->cfg.node_id, err);
		return rc;
	}
	n->lease = id;
	n->registered = 1;
	n->renew_at_ms = bo_clock_ms() + n->cfg.lease_ms / 3;
	bo_log(BO_LOG_INFO, "msg=\"node registered\" node=%u lease=%" PRId64 " ttl_s=%" PRId64 " client=%s repl=%s",
	       n->cfg.node_id, id, ttl_s, n->advertise, n->cfg.repl);
	return 0;
}

static void node_keepalive(gw_node *n)
{
	int64_t now = bo_clock_ms();
	if (!n->registered) {
		if (now >= n->renew_at_ms && node_register(n) < 0)
			n->renew_at_ms = now + 200;
		return;
	}
	if (now < n->renew_at_ms)
		return;
	char err[256];
	int rc = etcd_lease_keepalive(n->ke, n->lease, NULL, err, sizeof(err));
	if (rc == 1) {
		n->renew_at_ms = now + n->cfg.lease_ms / 3;
	} else if (rc == 0) {
		bo_log(BO_LOG_WARN, "msg=\"lease expired: registering again\" node=%u", n->cfg.node_id);
		n->registered = 0;
		n->renew_at_ms = now;
	} else {
		bo_log(BO_LOG_WARN, "msg=\"lease keepalive failed (retrying)\" node=%u error=\"%s\"", n->cfg.node_id, err);
		n->renew_at_ms = now + 100;
	}
}

static void *lease_main(void *arg)
{
	gw_node *n = arg;
	while (!atomic_load(&n->stop)) {
		node_keepalive(n);
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* ---- Local effects ---------------------------------------------------------- */

/* The flags the submit path reads (gw_node_serving) change under the
 * shard's write lock. */
static void set_held(gw_node *n, uint32_t k, int held)
{
	pthread_rwlock_wrlock(&n->gw->shard_rw[k]);
	n->sh[k].writes_held = held;
	pthread_rwlock_unlock(&n->gw->shard_rw[k]);
}

static void set_local(gw_node *n, uint32_t k, role_local l)
{
	gw_server *gw = n->gw;
	pthread_rwlock_wrlock(&gw->shard_rw[k]);
	pthread_mutex_lock(&n->lock);
	n->sh[k].local = l;
	pthread_mutex_unlock(&n->lock);
	pthread_rwlock_unlock(&gw->shard_rw[k]);
}

static void bury(gw_node *n, shard *s, view *v)
{
	if (n->graves < 64) {
		n->grave_shards[n->graves] = s;
		n->grave_views[n->graves++] = v;
	} else {
		/* More reopens than we keep: free the oldest-free way (rare). */
		shard_free(s);
		view_free(v);
	}
}

/* Shard k stopped and its output thread joined; then fn; then both
 * started again. The submit path does not touch k meanwhile (it is not
 * primary, or reopening). */
static int reopen_shard(gw_node *n, uint32_t k, int cut, uint64_t cut_after, int standby)
{
	gw_server *gw = n->gw;
	pthread_rwlock_wrlock(&gw->shard_rw[k]);
	n->sh[k].reopening = 1;
	pthread_rwlock_unlock(&gw->shard_rw[k]);
	shard *old = gw->shards[k];
	view *oldv = gw->views[k];
	shard_stop(old);
	gw_out_stop(gw, k);
	char err[GW_ERR_LEN];
	int rc = 0;
	shard *s = old;
	shard_recovery rec = {0};
	if (standby) {
		if (cut && (rc = shard_cut_after(gw->cfg.data_dir, k, cut_after, err, sizeof(err))) < 0)
			bo_log(BO_LOG_ERROR, "msg=\"cannot cut the journal\" shard=%u after=%" PRIu64 " error=\"%s\"", k,
			       cut_after, err);
		shard_config sc = gw->cfg.shard;
		sc.id = k;
		sc.data_dir = gw->cfg.data_dir;
		sc.standby = 1;
		/* As gw_start opens it: with a database, a standby keeps its whole
		 * journal, since the committer it runs once promoted resumes from
		 * the database's checkpoint, which it cannot know before. */
		if (gw->cfg.committer.dsn)
			sc.retain_seq = 0;
		if (rc == 0 && (rc = shard_open(&sc, &s, &rec, err, sizeof(err))) < 0) {
			bo_log(BO_LOG_ERROR, "msg=\"cannot reopen the shard as a standby\" shard=%u error=\"%s\"", k, err);
			s = old;
		}
	}
	view *v = NULL;
	if (rc == 0 && (rc = view_new(&gw->cfg.shard.engine, &v)) == 0 &&
	    (rc = view_load(v, shard_engine(s), standby ? rec.last_seq : shard_durable_seq(s))) < 0) {
		view_free(v);
		v = NULL;
	}
	if (!v) {
		bo_log(BO_LOG_ERROR, "msg=\"cannot rebuild the shard's read model: queries answer from the old one\" shard=%u error=%d",
		       k, rc);
		v = oldv;
	}
	/* status_lock before shard_rw: cluster_status takes them so. */
	pthread_mutex_lock(&gw->status_lock);
	pthread_rwlock_wrlock(&gw->shard_rw[k]);
	gw->shards[k] = s;
	gw->views[k] = v;
	atomic_store(&gw->view_seq[k], standby ? rec.last_seq : shard_durable_seq(s));
	pthread_rwlock_unlock(&gw->shard_rw[k]);
	pthread_mutex_unlock(&gw->status_lock);
	if (s != old)
		bury(n, old, NULL);
	if (v != oldv)
		bury(n, NULL, oldv);
	int orc = gw_out_start(gw, k);
	int src = shard_start(s);
	pthread_rwlock_wrlock(&gw->shard_rw[k]);
	n->sh[k].reopening = 0;
	pthread_rwlock_unlock(&gw->shard_rw[k]);
	if (orc < 0 || src < 0)
		bo_log(BO_LOG_ERROR, "msg=\"cannot restart the shard's threads\" shard=%u", k);
	if (standby)
		gw_repl_ack_reset(n->repl, k, rec.last_seq);
	return rc < 0 ? rc : orc < 0 ? orc : src;
}

/* Stops the receiver of k and waits until what it appended is durable.
 * Returns the durable last seq, or -1 when it did not get there in time. */
static int64_t quiesce_standby(gw_node *n, uint32_t k)
{
	gw_repl_follow(n->repl, k, 0);
	n->sh[k].following = 0;
	shard *s = n->gw->shards[k];
	uint64_t last, cs;
	shard_last_record(s, &last, &cs);
	for (int i = 0; i < 50 && shard_durable_seq(s) < last; i++)
		shard_durable_wait(s, last - 1, 100 * 1000000LL, NULL);
	return shard_durable_seq(s) >= last ? (int64_t)last : -1;
}

/* Stops shard k's database committer, if one runs here, and remembers how
 * far it carried (node_shard.carried_seq). The shard's released sequence
 * stays where it was: the caller fenced the shard, or it is a standby. */
static void committer_off(gw_node *n, uint32_t k)
{
	committer_status last;
	if (!gw_committer_stop(n->gw, k, &last))
		return;
	/* It carried only released records (committer.c asserts it). */
	assert(last.carried_seq <= shard_released_seq(n->gw->shards[k]));
	if (last.carried_seq > n->sh[k].carried_seq)
		n->sh[k].carried_seq = last.carried_seq;
	bo_log(BO_LOG_INFO, "msg=\"committer stopped: not the shard's primary any more\" shard=%u carried_seq=%" PRIu64
	       " applied_seq=%" PRIu64, k, last.carried_seq, last.applied_seq);
}

/* Starts shard k's committer once k is promoted here: it resumes
 * from the database's own checkpoint, which the old primary's committer
 * left at a record this copy holds, equal byte for byte (the database
 * never gets more than what every in-sync copy has, and only an in-sync
 * copy is promoted). A failure leaves the shard serving without one,
 * loudly (server_status shows it stopped). */
static void committer_on(gw_node *n, uint32_t k)
{
	char err[GW_ERR_LEN];
	if (gw_committer_start(n->gw, k, err, sizeof(err)) < 0)
		bo_log(BO_LOG_ERROR, "msg=\"the shard serves without its database committer\" shard=%u error=\"%s\"", k,
		       err);
}

/* Standby -> primary of `epoch`: the read model rebuilt from the engine
 * (a standby's replicated records do not pass through the output thread),
 * then shard_promote. 0 or < 0. */
static int become_primary(gw_node *n, uint32_t k, uint64_t epoch, const char *why)
{
	int rc = reopen_shard(n, k, 0, 0, 0);
	if (rc == 0)
		rc = shard_promote(n->gw->shards[k], epoch);
	if (rc < 0) {
		bo_log(BO_LOG_ERROR, "msg=\"promotion failed\" shard=%u epoch=%" PRIu64 " error=%d", k, epoch, rc);
		return rc;
	}
	node_shard *sh = &n->sh[k];
	pthread_rwlock_wrlock(&n->gw->shard_rw[k]);
	sh->writes_stopped = sh->writes_held = 0;
	pthread_rwlock_unlock(&n->gw->shard_rw[k]);
	memset(sh->gate_node, 0, sizeof(sh->gate_node));
	sh->term_start_ms = (uint64_t)bo_clock_ms();
	set_local(n, k, ROLE_PRIMARY);
	gw_repl_floor_update(n->repl, k);
	committer_on(n, k);
	bo_log(BO_LOG_WARN, "msg=\"role change: primary\" shard=%u epoch=%" PRIu64 " node=%u why=\"%s\"", k, epoch,
	       n->cfg.node_id, why);
	return 0;
}

static void become_fenced(gw_node *n, uint32_t k, const char *why)
{
	set_local(n, k, ROLE_FENCED);
	shard_fence(n->gw->shards[k]);
	/* After the fence: nothing more is released, so the committer's last
	 * batch is of records the new term holds too. */
	committer_off(n, k);
	gw_repl_senders_stop_shard(n->repl, k);
	pthread_rwlock_wrlock(&n->gw->shard_rw[k]);
	n->sh[k].writes_stopped = n->sh[k].writes_held = 0;
	pthread_rwlock_unlock(&n->gw->shard_rw[k]);
	bo_log(BO_LOG_WARN, "msg=\"role change: fenced\" shard=%u epoch=%" PRIu64 " map_epoch=%" PRIu64 " node=%u why=\"%s\"",
	       k, shard_epoch(n->gw->shards[k]), n->sh[k].map.epoch, n->cfg.node_id, why);
}

/* ---- etcd CAS of a map ------------------------------------------------------- */

/* Writes a->new_map over the map it compares. 1 swapped (the cache holds
 * the new map), 0 lost (re-read), < 0 error (re-read; outcome checked). */
static int map_cas(gw_node *n, uint32_t k, const role_map *nm)
{
	char key[64], val[ROLE_MAP_JSON_MAX], err[256];
	snprintf(key, sizeof(key), SHARD_KEYS "%u", k);
	int len = role_map_encode(nm, val, sizeof(val));
	assert(len > 0);
	int64_t rev = 0;
	int rc = etcd_cas(n->e, key, nm->mod_revision, val, (size_t)len, 0, &rev, err, sizeof(err));
	if (rc == -ETIMEDOUT || rc == -EAGAIN) {
		/* Outcome unknown: the map equal to ours byte for byte means it
		 * happened (an epoch is never written twice the same way). */
		char *cur = NULL;
		size_t clen = 0;
		int64_t crev = 0;
		if (etcd_get(n->e, key, &cur, &clen, &crev, NULL, 0) == 1 && clen == (size_t)len &&
		    !memcmp(cur, val, clen)) {
			rc = 1;
			rev = crev;
		}
		free(cur);
	}
	if (rc < 0)
		bo_log(BO_LOG_WARN, "msg=\"shard map CAS failed\" shard=%u error=\"%s\"", k, err);
	if (rc != 1)
		return rc;
	role_map m = *nm;
	m.mod_revision = rev;
	pthread_mutex_lock(&n->lock);
	n->sh[k].map = m;
	pthread_mutex_unlock(&n->lock);
	return 1;
}

/* ---- The role view ---------------------------------------------------------- */

static uint64_t gate_seq_of(const node_shard *sh, uint32_t node)
{
	for (uint32_t i = 0; i < ROLE_NODES_MAX; i++)
		if (sh->gate_node[i] == node)
			return sh->gate_seq[i];
	return 0;
}

static void gate_seq_set(node_shard *sh, uint32_t node, uint64_t seq)
{
	uint32_t slot = ROLE_NODES_MAX;
	for (uint32_t i = 0; i < ROLE_NODES_MAX; i++)
		if (sh->gate_node[i] == node || (slot == ROLE_NODES_MAX && sh->gate_node[i] == 0))
			slot = i;
	if (slot < ROLE_NODES_MAX) {
		sh->gate_node[slot] = node;
		sh->gate_seq[slot] = seq;
	}
}

/* Primary: a sender for every other live node, and none for a node that is
 * neither live nor in the map's in_sync. */
static void senders_sync(gw_node *n, uint32_t k)
{
	const role_map *m = &n->sh[k].map;
	for (uint32_t i = 0; i < n->node_count; i++) {
		const node_entry *ne = &n->nodes[i];
		gw_sender_info si;
		if (ne->id == n->cfg.node_id || gw_repl_sender_info(n->repl, k, ne->id, &si))
			continue;
		gw_repl_sender_start(n->repl, k, ne->id, ne->repl);
	}
	uint32_t ids[ROLE_NODES_MAX];
	uint32_t cnt = gw_repl_sender_nodes(n->repl, k, ids, ROLE_NODES_MAX);
	for (uint32_t i = 0; i < cnt; i++)
		if (!node_find(n, ids[i]) && !(m->present && role_map_in_sync(m, ids[i])))
			gw_repl_sender_stop(n->repl, k, ids[i]);
}

static void view_build(gw_node *n, uint32_t k, role_view *v)
{
	memset(v, 0, sizeof(*v));
	node_shard *sh = &n->sh[k];
	shard *s = n->gw->shards[k];
	v->self = n->cfg.node_id;
	pthread_mutex_lock(&n->lock);
	v->map = sh->map;
	for (uint32_t i = 0; i < n->node_count && v->live_count < ROLE_LIVE_MAX; i++)
		v->live[v->live_count++] = n->nodes[i].id;
	pthread_mutex_unlock(&n->lock);
	v->map_fresh = n->fresh;
	v->local = sh->local;
	v->last_seq = shard_durable_seq(s); /* before the epoch (role.h) */
	v->local_epoch = shard_epoch(s);
	v->released_seq = shard_released_seq(s);
	v->following = sh->following;
	v->diverged = gw_repl_diverged(n->repl, k);
	v->writes_stopped = sh->writes_stopped;
	if (sh->local == ROLE_PRIMARY) {
		senders_sync(n, k);
		uint64_t now = (uint64_t)bo_clock_ms();
		/* Peers: every node with a sender, then in-sync members without. */
		uint32_t ids[2 * ROLE_NODES_MAX];
		uint32_t cnt = gw_repl_sender_nodes(n->repl, k, ids, ROLE_NODES_MAX);
		for (uint32_t i = 0; v->map.present && i < v->map.in_sync_count; i++) {
			uint32_t id = v->map.in_sync[i], dup = id == v->self;
			for (uint32_t j = 0; j < cnt && !dup; j++)
				dup = ids[j] == id;
			if (!dup)
				ids[cnt++] = id;
		}
		for (uint32_t i = 0; i < cnt && v->peer_count < ROLE_NODES_MAX; i++) {
			uint32_t id = ids[i];
			gw_sender_info si;
			int has = gw_repl_sender_info(n->repl, k, id, &si);
			role_peer *p = &v->peers[v->peer_count++];
			p->node = id;
			if (has) {
				p->connected = si.state == GW_SENDER_STREAMING;
				p->acked_seq = si.acked_seq;
				p->silent_ms = si.silent_ms < 0 ? 0 : (uint64_t)si.silent_ms;
				p->gated = si.gated;
				p->gate_seq = gate_seq_of(sh, id);
			} else {
				p->silent_ms = now - sh->term_start_ms;
			}
		}
	}
	v->cfg.ack_timeout_ms = n->cfg.lease_ms / 2 < 300 ? 300 : n->cfg.lease_ms / 2;
	v->cfg.min_in_sync = n->cfg.min_in_sync;
	v->cfg.bootstrap_primary = n->cfg.bootstrap_primary;
	v->cfg.allow_unsafe_promote = n->cfg.allow_unsafe_promote;
	v->cfg.gate_lag_max = NODE_GATE_LAG_MAX;
}

/* ---- Executing an action ------------------------------------------------------ */

/* The primary's actions about one standby (role.h's order). Returns as
 * act(). */
static int act_peer(gw_node *n, uint32_t k, const role_action *a)
{
	node_shard *sh = &n->sh[k];
	shard *s = n->gw->shards[k];
	switch (a->act) {
	case ROLE_ACT_DROP_STANDBY:
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		gw_repl_gate(n->repl, k, a->peer, 0);
		bo_log(BO_LOG_WARN, "msg=\"standby dropped from in_sync\" shard=%u epoch=%" PRIu64 " standby=%u node=%u why=\"%s\"",
		       k, a->new_map.epoch, a->peer, n->cfg.node_id, a->why);
		return 1;
	case ROLE_ACT_HOLD_WRITES:
		if (!sh->writes_held)
			bo_log(BO_LOG_WARN, "msg=\"writes held: --min-in-sync not met\" shard=%u standby=%u why=\"%s\"", k,
			       a->peer, a->why);
		if (!sh->writes_held)
			set_held(n, k, 1);
		return 0;
	case ROLE_ACT_GATE_PEER:
		gw_repl_gate(n->repl, k, a->peer, 1);
		{
			uint64_t last, cs;
			shard_last_record(s, &last, &cs);
			gate_seq_set(sh, a->peer, last);
		}
		bo_log(BO_LOG_INFO, "msg=\"standby gated\" shard=%u standby=%u gate_seq=%" PRIu64, k, a->peer,
		       gate_seq_of(sh, a->peer));
		return 1;
	case ROLE_ACT_UNGATE_PEER:
		gw_repl_gate(n->repl, k, a->peer, 0);
		bo_log(BO_LOG_INFO, "msg=\"standby ungated\" shard=%u standby=%u why=\"%s\"", k, a->peer, a->why);
		return 1;
	case ROLE_ACT_ADD_STANDBY:
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		bo_log(BO_LOG_INFO, "msg=\"standby in sync\" shard=%u epoch=%" PRIu64 " standby=%u node=%u", k,
		       a->new_map.epoch, a->peer, n->cfg.node_id);
		return 1;
	default:
		return 0;
	}
}

/* A rejoin's cut would remove records this node's committer put into
 * PostgreSQL. role.h's safety argument rules it out: the committer carries
 * released records only, which every in-sync copy had durable, and the new
 * term starts after the last record of an in-sync copy. So it is a broken
 * invariant (asserted), unless an operator allowed a standby that was not
 * in sync to take the shard: then the database holds records the cluster
 * lost, and only a rebuild of the database from the journal can fix it. */
static void cut_below_database(gw_node *n, uint32_t k, uint64_t cut_after)
{
	bo_log(BO_LOG_ERROR,
	       "msg=\"the journal is cut below what this node's committer put into PostgreSQL: the database holds "
	       "records the cluster lost; rebuild it from the primary's journal (boxoffice-replay to-postgres)\" "
	       "shard=%u cut_after=%" PRIu64 " carried_seq=%" PRIu64 " allow_unsafe_promote=%d",
	       k, cut_after, n->sh[k].carried_seq, n->cfg.allow_unsafe_promote);
	assert(n->cfg.allow_unsafe_promote && "a cut below the committer's position without an unsafe promotion");
}

/* Executes a (role.h's order). Returns 1 when the caller may ask again at
 * once, 0 when the shard waits for the next turn (nothing to do, a lost
 * CAS, an error). */
static int act(gw_node *n, uint32_t k, const role_view *v, const role_action *a)
{
	gw_server *gw = n->gw;
	node_shard *sh = &n->sh[k];
	shard *s = gw->shards[k];
	if (a->act != ROLE_ACT_HOLD_WRITES && sh->writes_held) {
		set_held(n, k, 0);
		bo_log(BO_LOG_INFO, "msg=\"writes resumed\" shard=%u", k);
	}
	switch (a->act) {
	case ROLE_ACT_NONE:
		return 0;
	case ROLE_ACT_CREATE_MAP:
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		bo_log(BO_LOG_INFO, "msg=\"shard map created\" shard=%u epoch=%" PRIu64 " node=%u", k, a->new_map.epoch,
		       n->cfg.node_id);
		become_primary(n, k, a->new_map.epoch, a->why);
		return 1;
	case ROLE_ACT_PROMOTE: {
		int64_t last = quiesce_standby(n, k);
		if (last < 0)
			return 0; /* not durable in time (a failing disk?): next turn */
		if ((uint64_t)last != v->last_seq)
			return 1; /* moved: ask again with the new last seq */
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		become_primary(n, k, a->new_map.epoch, a->why);
		return 1;
	}
	case ROLE_ACT_ASSUME:
		if (quiesce_standby(n, k) < 0)
			return 0;
		become_primary(n, k, v->map.epoch, a->why);
		return 1;
	case ROLE_ACT_FENCE:
		become_fenced(n, k, a->why);
		return 1;
	case ROLE_ACT_REJOIN:
		gw_repl_senders_stop_shard(n->repl, k);
		gw_repl_follow(n->repl, k, 0);
		sh->following = 0;
		committer_off(n, k); /* before the reopen: it follows this shard object */
		if (a->cut && sh->carried_seq > a->cut_after)
			cut_below_database(n, k, a->cut_after);
		set_local(n, k, ROLE_NONE);
		if (a->cut || v->local == ROLE_FENCED || !shard_is_standby(s)) {
			if (reopen_shard(n, k, a->cut, a->cut_after, 1) < 0)
				return 0;
		}
		gw_repl_diverged_clear(n->repl, k);
		set_local(n, k, ROLE_STANDBY);
		bo_log(BO_LOG_WARN,
		       "msg=\"role change: standby\" shard=%u epoch=%" PRIu64 " map_epoch=%" PRIu64 " node=%u cut=%d "
		       "cut_after=%" PRIu64 " why=\"%s\"",
		       k, shard_epoch(gw->shards[k]), v->map.epoch, n->cfg.node_id, a->cut, a->cut_after, a->why);
		return 1;
	case ROLE_ACT_FOLLOW:
		gw_repl_follow(n->repl, k, a->peer);
		sh->following = a->peer;
		bo_log(BO_LOG_INFO, "msg=\"following\" shard=%u primary=%u epoch=%" PRIu64 " node=%u", k, a->peer,
		       v->map.epoch, n->cfg.node_id);
		return 1;
	case ROLE_ACT_REBUILD:
		if (!sh->rebuild_logged)
			bo_log(BO_LOG_ERROR,
			       "msg=\"this copy cannot continue the primary's journal: rebuild it (stop the server, "
			       "remove its shard directory, start again)\" shard=%u node=%u why=\"%s\"",
			       k, n->cfg.node_id, a->why);
		sh->rebuild_logged = 1;
		return 0;
	case ROLE_ACT_DROP_STANDBY:
	case ROLE_ACT_HOLD_WRITES:
	case ROLE_ACT_GATE_PEER:
	case ROLE_ACT_UNGATE_PEER:
	case ROLE_ACT_ADD_STANDBY:
		return act_peer(n, k, a);
	case ROLE_ACT_STOP_WRITES:
		pthread_rwlock_wrlock(&gw->shard_rw[k]);
		sh->writes_stopped = 1;
		pthread_rwlock_unlock(&gw->shard_rw[k]);
		bo_log(BO_LOG_INFO, "msg=\"switchover: writes stopped\" shard=%u to=%u", k, v->map.handoff);
		return 1;
	case ROLE_ACT_HANDOFF:
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		bo_log(BO_LOG_WARN, "msg=\"switchover: handed off\" shard=%u epoch=%" PRIu64 " to=%u node=%u", k,
		       a->new_map.epoch, a->peer, n->cfg.node_id);
		become_fenced(n, k, a->why);
		return 1;
	case ROLE_ACT_RESUME_WRITES:
		pthread_rwlock_wrlock(&gw->shard_rw[k]);
		sh->writes_stopped = 0;
		pthread_rwlock_unlock(&gw->shard_rw[k]);
		bo_log(BO_LOG_INFO, "msg=\"switchover abandoned: writes resumed\" shard=%u", k);
		return 1;
	case ROLE_ACT_CLEAR_HANDOFF:
		if (map_cas(n, k, &a->new_map) != 1)
			return 0;
		bo_log(BO_LOG_INFO, "msg=\"switchover request cleared\" shard=%u why=\"%s\"", k, a->why);
		return 1;
	default:
		return 0;
	}
}

static void shard_turn(gw_node *n, uint32_t k)
{
	for (int i = 0; i < NODE_ACTIONS_PER_TURN && !atomic_load(&n->stop); i++) {
		role_view v;
		role_action a;
		view_build(n, k, &v);
		role_decide(&v, &a);
		if (a.act != ROLE_ACT_NONE)
			bo_log(BO_LOG_DEBUG, "msg=\"role action\" shard=%u action=%s why=\"%s\"", k, role_act_name(a.act),
			       a.why ? a.why : "");
		if (!act(n, k, &v, &a))
			break;
	}
}

/* ---- Switchover ------------------------------------------------------------- */

static void sw_finish(gw_node *n, int status, const char *text)
{
	void (*done)(void *, int, const char *) = n->sw_done;
	void *ctx = n->sw_ctx;
	pthread_mutex_lock(&n->lock);
	n->sw_pending = 0;
	pthread_mutex_unlock(&n->lock);
	done(ctx, status, text);
}

void gw_node_switchover(gw_node *n, uint32_t k, uint32_t to, void (*done)(void *ctx, int status, const char *text),
			void *ctx)
{
	if (k >= n->shards) {
		done(ctx, BO_INVALID, "no such shard");
		return;
	}
	pthread_mutex_lock(&n->lock);
	int busy = n->sw_pending;
	if (!busy) {
		n->sw_pending = 1;
		n->sw_shard = k;
		n->sw_to = to;
		n->sw_cas_done = 0;
		n->sw_deadline_ms = bo_clock_ms() + GW_NODE_SWITCHOVER_MS;
		n->sw_done = done;
		n->sw_ctx = ctx;
	}
	pthread_mutex_unlock(&n->lock);
	if (busy)
		done(ctx, BO_BUSY, "another switchover is in progress here");
}

/* The control thread's part: CAS the handoff, then wait for the map. */
static void sw_turn(gw_node *n)
{
	pthread_mutex_lock(&n->lock);
	int pending = n->sw_pending;
	uint32_t k = n->sw_shard, to = n->sw_to;
	role_map m = n->sh[k].map;
	role_local local = n->sh[k].local;
	pthread_mutex_unlock(&n->lock);
	if (!pending)
		return;
	if (n->sw_cas_done) {
		if (m.present && m.primary == to)
			sw_finish(n, BO_OK, "");
		else if (bo_clock_ms() > n->sw_deadline_ms)
			sw_finish(n, BO_BUSY, "the switchover did not complete in time (the map keeps its request)");
		return;
	}
	if (!n->fresh) {
		if (bo_clock_ms() > n->sw_deadline_ms)
			sw_finish(n, BO_BUSY, "etcd is not reachable");
		return;
	}
	if (!m.present || m.primary != n->cfg.node_id || local != ROLE_PRIMARY) {
		sw_finish(n, BO_NOT_PRIMARY, "this server is not the shard's primary");
		return;
	}
	if (to == n->cfg.node_id) {
		sw_finish(n, BO_OK, "");
		return;
	}
	if (!role_map_in_sync(&m, to)) {
		sw_finish(n, BO_INVALID, "the target is not an in-sync standby of the shard");
		return;
	}
	role_map nm = m;
	nm.handoff = to;
	int rc = map_cas(n, k, &nm);
	if (rc == 1) {
		n->sw_cas_done = 1;
		bo_log(BO_LOG_INFO, "msg=\"switchover requested\" shard=%u to=%u epoch=%" PRIu64, k, to, m.epoch);
	}
}

/* ---- The control thread ------------------------------------------------------- */

static void *node_main(void *arg)
{
	gw_node *n = arg;
	while (!atomic_load(&n->stop)) {
		node_read(n);
		for (uint32_t k = 0; k < n->shards && !atomic_load(&n->stop); k++)
			shard_turn(n, k);
		sw_turn(n);
		if (atomic_load(&n->stop))
			break;
		char err[128];
		if (!n->fresh || etcd_watch_prefix(n->e, NODE_PREFIX, n->revision, GW_NODE_POLL_MS, NULL, err,
						   sizeof(err)) < 0) {
			struct timespec ts = {0, GW_NODE_POLL_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* ---- cluster_status ------------------------------------------------------------ */

void gw_node_cluster_status(gw_node *n, wire_cluster_status *out)
{
	gw_server *gw = n->gw;
	memset(out, 0, sizeof(*out));
	out->node = n->cfg.node_id;
	out->shard_count = n->shards;
	for (uint32_t k = 0; k < n->shards; k++) {
		wire_shard_cluster *o = &out->shards[k];
		o->shard = k;
		pthread_mutex_lock(&n->lock);
		role_map m = n->sh[k].map;
		role_local local = n->sh[k].local;
		pthread_mutex_unlock(&n->lock);
		o->role = local == ROLE_PRIMARY ? WIRE_ROLE_PRIMARY
			  : local == ROLE_STANDBY ? WIRE_ROLE_STANDBY
			  : local == ROLE_FENCED  ? WIRE_ROLE_FENCED
						  : WIRE_ROLE_NONE;
		if (m.present) {
			o->primary_known = 1;
			o->primary = m.primary;
			o->in_sync_count = m.in_sync_count;
			memcpy(o->in_sync, m.in_sync, m.in_sync_count * sizeof(uint32_t));
		}
		shard *s = gw_shard_acquire(gw, k);
		if (s) {
			uint64_t cs;
			shard_last_record(s, &o->last_seq, &cs);
			o->epoch = shard_epoch(s);
			o->durable_seq = shard_durable_seq(s);
			o->released_seq = shard_released_seq(s);
		}
		gw_shard_release(gw, k);
		if (local != ROLE_PRIMARY)
			continue;
		uint32_t ids[ROLE_NODES_MAX];
		uint32_t cnt = gw_repl_sender_nodes(n->repl, k, ids, ROLE_NODES_MAX);
		for (uint32_t i = 0; i < cnt && o->standby_count < WIRE_CLUSTER_STANDBYS_MAX; i++) {
			gw_sender_info si;
			if (!gw_repl_sender_info(n->repl, k, ids[i], &si))
				continue;
			wire_standby_status *w = &o->standbys[o->standby_count++];
			w->node = ids[i];
			w->acked_seq = si.acked_seq;
			w->lag_records = o->last_seq > si.acked_seq ? o->last_seq - si.acked_seq : 0;
		}
	}
}

/* ---- Life cycle ------------------------------------------------------------------ */

int gw_node_start(gw_server *gw, gw_node **out, char *err, size_t errlen)
{
	*out = NULL;
	const gw_node_config *c = &gw->cfg.node;
	gw_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->gw = gw;
	n->cfg = *c;
	n->advertise = c->advertise ? c->advertise : gw->cfg.listen[0];
	n->shards = gw->cfg.shards;
	pthread_mutex_init(&n->lock, NULL);
	for (uint32_t k = 0; k < n->shards; k++)
		n->sh[k].local = ROLE_STANDBY; /* gw_start opened every copy as a standby */
	if (strlen(n->advertise) >= GW_NODE_ADDR_MAX || strlen(c->repl) >= GW_NODE_ADDR_MAX ||
	    strpbrk(n->advertise, "\"\\") || strpbrk(c->repl, "\"\\")) {
		snprintf(err, errlen, "--advertise and --repl: URLs of at most %u bytes without quotes or backslashes",
			 GW_NODE_ADDR_MAX - 1);
		pthread_mutex_destroy(&n->lock);
		free(n);
		return -EINVAL;
	}
	int etcd_timeout = (int)(c->lease_ms / 3 < 200 ? 200 : c->lease_ms / 3);
	int rc = etcd_open(c->etcd, etcd_timeout, &n->e, err, errlen);
	if (rc == 0)
		rc = etcd_open(c->etcd, etcd_timeout, &n->ke, err, errlen);
	if (rc == 0)
		rc = gw_repl_start(gw, c->repl, c->node_id, c->min_in_sync, &n->repl, err, errlen);
	if (rc == 0) {
		gw->node = n; /* the submit path reads roles from here on */
		rc = -pthread_create(&n->lease_thread, NULL, lease_main, n);
		n->lease_started = rc == 0;
		if (rc == 0) {
			rc = -pthread_create(&n->thread, NULL, node_main, n);
			n->started = rc == 0;
		}
		if (rc < 0)
			snprintf(err, errlen, "cannot start the control thread: %s", strerror(-rc));
	}
	if (rc < 0) {
		gw->node = NULL;
		gw_node_free(n);
		return rc;
	}
	bo_log(BO_LOG_INFO, "msg=\"cluster node started\" node=%u etcd=%s repl=%s advertise=%s lease_ms=%u min_in_sync=%u",
	       c->node_id, c->etcd, c->repl, n->advertise, c->lease_ms, c->min_in_sync);
	*out = n;
	return 0;
}

void gw_node_stop(gw_node *n)
{
	if (!n)
		return;
	atomic_store(&n->stop, 1);
	if (n->started)
		pthread_join(n->thread, NULL);
	n->started = 0;
	if (n->lease_started)
		pthread_join(n->lease_thread, NULL);
	n->lease_started = 0;
	if (n->sw_pending)
		sw_finish(n, BO_BUSY, "the server is stopping");
	gw_repl_stop(n->repl);
	n->repl = NULL;
	if (n->registered)
		etcd_lease_revoke(n->ke, n->lease, NULL, 0);
	n->registered = 0;
	etcd_close(n->e);
	etcd_close(n->ke);
	n->e = n->ke = NULL;
	n->started = 0;
}

void gw_node_free(gw_node *n)
{
	if (!n)
		return;
	gw_node_stop(n);
	for (uint32_t i = 0; i < n->graves; i++) {
		if (n->grave_shards[i])
			shard_free(n->grave_shards[i]);
		if (n->grave_views[i])
			view_free(n->grave_views[i]);
	}
	pthread_mutex_destroy(&n->lock);
	free(n);
}
