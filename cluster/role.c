/*
 * role.c — the shard map's codec and the role state machine (role.h).
 *
 * MAP TEXT: one JSON object, keys "epoch", "primary", "in_sync",
 * "start_seq" (required) and "handoff" (optional), each once; numbers are
 * whole, unsigned, without leading zeros; in_sync an array of numbers.
 * Anything else is refused: the map decides who may acknowledge, so a value
 * we do not fully understand must stop the node, not guess.
 *
 * DECISION RULES, in priority order (the first that applies is the action):
 *   etcd not reachable (map not fresh)   -> NONE: keep the current role;
 *                                           no CAS can succeed anyway, and
 *                                           the data path keeps serving
 *   map absent:  primary                 -> FENCE (the map was deleted)
 *                fenced                  -> REJOIN
 *                self is bootstrap       -> CREATE_MAP
 *   primary:     map names another or another epoch -> FENCE
 *                a member not gated       -> GATE_PEER (defensive)
 *                a member silent          -> DROP_STANDBY, or hold writes
 *                                           when min_in_sync forbids it
 *                a gated non-member silent -> UNGATE_PEER
 *                handoff                  -> CLEAR/RESUME/STOP/HANDOFF
 *                a gated peer caught up   -> ADD_STANDBY
 *                a connected peer close   -> GATE_PEER
 *   fenced                                -> REJOIN (cut when needed)
 *   standby/none: older term's tail at or after start_seq -> REJOIN + cut
 *                map names self           -> ASSUME or PROMOTE (reclaim)
 *                chain refused            -> REBUILD
 *                primary's key gone, self in in_sync -> PROMOTE
 *                not following the primary -> FOLLOW
 */
#include "cluster/role.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Map rules and text ------------------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

int role_map_in_sync(const role_map *m, uint32_t node)
{
	for (uint32_t i = 0; i < m->in_sync_count && i < ROLE_NODES_MAX; i++)
		if (m->in_sync[i] == node)
			return 1;
	return 0;
}

static int node_ok(uint64_t id)
{
	return id >= 1 && id <= ROLE_NODE_ID_MAX;
}

int role_map_check(const role_map *m, char *err, size_t errlen)
{
	if (m->epoch < 1)
		return fail(err, errlen, "shard map: epoch must be >= 1");
	if (!node_ok(m->primary))
		return fail(err, errlen, "shard map: primary %u is not a node id (1..%u)",
		            m->primary, ROLE_NODE_ID_MAX);
	if (m->in_sync_count < 1 || m->in_sync_count > ROLE_NODES_MAX)
		return fail(err, errlen, "shard map: in_sync has %u members (1..%d)",
		            m->in_sync_count, ROLE_NODES_MAX);
	for (uint32_t i = 0; i < m->in_sync_count; i++) {
		if (!node_ok(m->in_sync[i]))
			return fail(err, errlen, "shard map: in_sync member %u is not a node id",
			            m->in_sync[i]);
		for (uint32_t j = 0; j < i; j++)
			if (m->in_sync[j] == m->in_sync[i])
				return fail(err, errlen, "shard map: in_sync lists node %u twice",
				            m->in_sync[i]);
	}
	if (!role_map_in_sync(m, m->primary))
		return fail(err, errlen, "shard map: primary %u is not in in_sync", m->primary);
	if (m->start_seq < 1)
		return fail(err, errlen, "shard map: start_seq must be >= 1");
	if (m->handoff != 0 && !node_ok(m->handoff))
		return fail(err, errlen, "shard map: handoff %u is not a node id", m->handoff);
	return 0;
}

int role_map_encode(const role_map *m, char *buf, size_t len)
{
	assert(m->present && role_map_check(m, NULL, 0) == 0);
	char members[ROLE_NODES_MAX * 8 + 1];
	size_t at = 0;
	for (uint32_t i = 0; i < m->in_sync_count; i++)
		at += (size_t)snprintf(members + at, sizeof members - at, "%s%u", i ? "," : "",
		                       m->in_sync[i]);
	assert(at < sizeof members);
	int n;
	if (m->handoff)
		n = snprintf(
		        buf, len,
		        "{\"epoch\":%llu,\"primary\":%u,\"in_sync\":[%s],\"start_seq\":%llu,\"handoff\":%u}",
		        (unsigned long long)m->epoch, m->primary, members,
		        (unsigned long long)m->start_seq, m->handoff);
	else
		n = snprintf(buf, len,
		             "{\"epoch\":%llu,\"primary\":%u,\"in_sync\":[%s],\"start_seq\":%llu}",
		             (unsigned long long)m->epoch, m->primary, members,
		             (unsigned long long)m->start_seq);
	assert(n > 0);
	if ((size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* The strict reader: a cursor over text[0..len). */
typedef struct cursor {
	const char *p;
	const char *end;
} cursor;

static void skip_ws(cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int take(cursor *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

/* A whole unsigned number: "0" or [1-9][0-9]*, within uint64. */
static int read_u64(cursor *c, uint64_t *out)
{
	skip_ws(c);
	const char *s = c->p;
	if (s >= c->end || *s < '0' || *s > '9')
		return -1;
	if (*s == '0' && s + 1 < c->end && s[1] >= '0' && s[1] <= '9')
		return -1; /* leading zero */
	uint64_t v = 0;
	while (s < c->end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
		s++;
	}
	/* A fraction or an exponent would make it another number. */
	if (s < c->end && (*s == '.' || *s == 'e' || *s == 'E'))
		return -1;
	c->p = s;
	*out = v;
	return 0;
}

/* A key: plain lower-case letters and '_' between quotes (no escapes: none
 * of our keys needs one, and an escaped spelling of one is not ours). */
static int read_key(cursor *c, char *key, size_t keylen)
{
	if (!take(c, '"'))
		return -1;
	size_t n = 0;
	while (c->p < c->end && *c->p != '"') {
		char ch = *c->p;
		if (!((ch >= 'a' && ch <= 'z') || ch == '_') || n + 1 >= keylen)
			return -1;
		key[n++] = ch;
		c->p++;
	}
	if (c->p >= c->end)
		return -1;
	c->p++;
	key[n] = '\0';
	return 0;
}

enum {
	K_EPOCH = 1,
	K_PRIMARY = 2,
	K_IN_SYNC = 4,
	K_START = 8,
	K_HANDOFF = 16
};

static int read_members(cursor *c, role_map *m, char *err, size_t errlen)
{
	if (!take(c, '['))
		return fail(err, errlen, "shard map: in_sync is not an array");
	if (take(c, ']'))
		return fail(err, errlen, "shard map: in_sync is empty");
	do {
		uint64_t v;
		if (read_u64(c, &v) != 0)
			return fail(err, errlen,
			            "shard map: in_sync holds something other than a node id");
		if (m->in_sync_count == ROLE_NODES_MAX)
			return fail(err, errlen, "shard map: in_sync has more than %d members",
			            ROLE_NODES_MAX);
		if (!node_ok(v))
			return fail(err, errlen,
			            "shard map: in_sync member %llu is not a node id (1..%u)",
			            (unsigned long long)v, ROLE_NODE_ID_MAX);
		m->in_sync[m->in_sync_count++] = (uint32_t)v;
	} while (take(c, ','));
	if (!take(c, ']'))
		return fail(err, errlen, "shard map: in_sync is not a closed array of numbers");
	return 0;
}

/* One "key": value pair into m; *seen collects the keys. */
static int read_field(cursor *c, role_map *m, unsigned *seen, char *err, size_t errlen)
{
	char key[16];
	if (read_key(c, key, sizeof key) != 0)
		return fail(err, errlen, "shard map: expected a known key");
	unsigned bit = !strcmp(key, "epoch")       ? K_EPOCH
	               : !strcmp(key, "primary")   ? K_PRIMARY
	               : !strcmp(key, "in_sync")   ? K_IN_SYNC
	               : !strcmp(key, "start_seq") ? K_START
	               : !strcmp(key, "handoff")   ? K_HANDOFF
	                                           : 0;
	if (!bit)
		return fail(err, errlen, "shard map: unknown key \"%s\"", key);
	if (*seen & bit)
		return fail(err, errlen, "shard map: key \"%s\" given twice", key);
	*seen |= bit;
	if (!take(c, ':'))
		return fail(err, errlen, "shard map: no ':' after \"%s\"", key);
	if (bit == K_IN_SYNC)
		return read_members(c, m, err, errlen);
	uint64_t v;
	if (read_u64(c, &v) != 0)
		return fail(err, errlen, "shard map: \"%s\" is not a whole unsigned number", key);
	if (bit == K_EPOCH)
		m->epoch = v;
	else if (bit == K_START)
		m->start_seq = v;
	else if (v > ROLE_NODE_ID_MAX && !(bit == K_HANDOFF && v == 0))
		return fail(err, errlen, "shard map: \"%s\" %llu is not a node id (1..%u)", key,
		            (unsigned long long)v, ROLE_NODE_ID_MAX);
	else if (bit == K_PRIMARY)
		m->primary = (uint32_t)v;
	else
		m->handoff = (uint32_t)v;
	return 0;
}

int role_map_decode(const char *text, size_t len, role_map *out, char *err, size_t errlen)
{
	if (!text)
		return fail(err, errlen, "shard map: no value");
	if (memchr(text, '\0', len))
		return fail(err, errlen, "shard map: a NUL byte in the value");
	cursor c = {text, text + len};
	role_map m;
	memset(&m, 0, sizeof m);
	unsigned seen = 0;
	if (!take(&c, '{'))
		return fail(err, errlen, "shard map: not a JSON object");
	if (!take(&c, '}')) {
		do {
			int rc = read_field(&c, &m, &seen, err, errlen);
			if (rc != 0)
				return rc;
		} while (take(&c, ','));
		if (!take(&c, '}'))
			return fail(err, errlen, "shard map: expected ',' or '}'");
	}
	skip_ws(&c);
	if (c.p != c.end)
		return fail(err, errlen, "shard map: bytes after the object");
	const unsigned need = K_EPOCH | K_PRIMARY | K_IN_SYNC | K_START;
	if ((seen & need) != need)
		return fail(err, errlen, "shard map: missing %s",
		            !(seen & K_EPOCH)     ? "epoch"
		            : !(seen & K_PRIMARY) ? "primary"
		            : !(seen & K_IN_SYNC) ? "in_sync"
		                                  : "start_seq");
	int rc = role_map_check(&m, err, errlen);
	if (rc != 0)
		return rc;
	m.present = 1;
	*out = m;
	return 0;
}

/* ---- Names --------------------------------------------------------------- */

const char *role_act_name(role_act a)
{
	static const char *const names[ROLE_ACT_COUNT] = {
	        [ROLE_ACT_NONE] = "none",
	        [ROLE_ACT_CREATE_MAP] = "create_map",
	        [ROLE_ACT_PROMOTE] = "promote",
	        [ROLE_ACT_ASSUME] = "assume",
	        [ROLE_ACT_FENCE] = "fence",
	        [ROLE_ACT_REJOIN] = "rejoin",
	        [ROLE_ACT_FOLLOW] = "follow",
	        [ROLE_ACT_REBUILD] = "rebuild",
	        [ROLE_ACT_DROP_STANDBY] = "drop_standby",
	        [ROLE_ACT_HOLD_WRITES] = "hold_writes",
	        [ROLE_ACT_GATE_PEER] = "gate_peer",
	        [ROLE_ACT_UNGATE_PEER] = "ungate_peer",
	        [ROLE_ACT_ADD_STANDBY] = "add_standby",
	        [ROLE_ACT_STOP_WRITES] = "stop_writes",
	        [ROLE_ACT_HANDOFF] = "handoff",
	        [ROLE_ACT_RESUME_WRITES] = "resume_writes",
	        [ROLE_ACT_CLEAR_HANDOFF] = "clear_handoff",
	};
	return (unsigned)a < ROLE_ACT_COUNT ? names[a] : "?";
}

const char *role_local_name(role_local l)
{
	switch (l) {
	case ROLE_NONE:
		return "none";
	case ROLE_STANDBY:
		return "standby";
	case ROLE_PRIMARY:
		return "primary";
	case ROLE_FENCED:
		return "fenced";
	}
	return "?";
}

/* ---- Decisions ----------------------------------------------------------- */

static int is_live(const role_view *v, uint32_t node)
{
	for (uint32_t i = 0; i < v->live_count; i++)
		if (v->live[i] == node)
			return 1;
	return 0;
}

static const role_peer *find_peer(const role_view *v, uint32_t node)
{
	for (uint32_t i = 0; i < v->peer_count; i++)
		if (v->peers[i].node == node)
			return &v->peers[i];
	return NULL;
}

static void act(role_action *out, role_act a, uint32_t peer, const char *why)
{
	out->act = a;
	out->peer = peer;
	out->why = why;
}

/* new_map = a fresh term of `primary` alone, after the current map. */
static void new_term(const role_view *v, role_action *out, uint32_t primary, uint64_t start_seq)
{
	role_map *n = &out->new_map;
	memset(n, 0, sizeof *n);
	n->present = 1;
	n->epoch = v->map.present ? v->map.epoch + 1 : 1;
	n->primary = primary;
	n->in_sync[0] = primary;
	n->in_sync_count = 1;
	n->start_seq = start_seq;
	n->mod_revision = v->map.present ? v->map.mod_revision : 0;
}

/* new_map = the current map (its revision to compare), to be edited. */
static role_map *same_term(const role_view *v, role_action *out)
{
	out->new_map = v->map;
	return &out->new_map;
}

static void remove_member(role_map *m, uint32_t node)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < m->in_sync_count; i++)
		if (m->in_sync[i] != node)
			m->in_sync[k++] = m->in_sync[i];
	m->in_sync_count = k;
	memset(&m->in_sync[k], 0, (ROLE_NODES_MAX - k) * sizeof m->in_sync[0]);
}

/* Members: every one gated (defensive) and none silent. Returns 1 when an
 * action was chosen; *hold is set to a silent member that may not go. */
static int decide_members(const role_view *v, role_action *out, uint32_t *hold)
{
	const role_map *m = &v->map;
	for (uint32_t i = 0; i < m->in_sync_count; i++) {
		uint32_t node = m->in_sync[i];
		if (node == v->self)
			continue;
		const role_peer *p = find_peer(v, node);
		assert(p && "role_view.peers must list every in-sync member");
		if (!p->gated) {
			act(out, ROLE_ACT_GATE_PEER, node,
			    "an in-sync member is not in the sync floor");
			return 1;
		}
	}
	for (uint32_t i = 0; i < m->in_sync_count; i++) {
		uint32_t node = m->in_sync[i];
		const role_peer *p = node == v->self ? NULL : find_peer(v, node);
		if (!p || p->silent_ms <= v->cfg.ack_timeout_ms)
			continue;
		if (m->in_sync_count - 1 < v->cfg.min_in_sync) {
			if (!*hold)
				*hold = node;
			continue;
		}
		act(out, ROLE_ACT_DROP_STANDBY, node, "an in-sync standby stopped acknowledging");
		remove_member(same_term(v, out), node);
		if (out->new_map.handoff == node)
			out->new_map.handoff = 0;
		return 1;
	}
	return 0;
}

/* A planned switchover (map.handoff). Returns 1 when an action was chosen. */
static int decide_handoff(const role_view *v, role_action *out)
{
	const role_map *m = &v->map;
	uint32_t h = m->handoff;
	const role_peer *p = h ? find_peer(v, h) : NULL;
	int target_ok = h && h != v->self && role_map_in_sync(m, h) && is_live(v, h);
	if (h && !target_ok) {
		if (v->writes_stopped) {
			act(out, ROLE_ACT_RESUME_WRITES, 0,
			    "the handoff target is no longer valid");
			return 1;
		}
		act(out, ROLE_ACT_CLEAR_HANDOFF, h, "handoff names no live in-sync peer");
		same_term(v, out)->handoff = 0;
		return 1;
	}
	if (!h) {
		if (v->writes_stopped) {
			act(out, ROLE_ACT_RESUME_WRITES, 0, "no handoff pending");
			return 1;
		}
		return 0;
	}
	if (!v->writes_stopped) {
		act(out, ROLE_ACT_STOP_WRITES, h, "handoff: stop taking commands first");
		return 1;
	}
	if (p && p->connected && p->acked_seq >= v->last_seq) {
		act(out, ROLE_ACT_HANDOFF, h, "handoff: the target holds every record");
		new_term(v, out, h, v->last_seq + 1);
		return 1;
	}
	act(out, ROLE_ACT_NONE, h, "handoff: waiting for the target's acknowledgement");
	return 1;
}

/* Non-members: ungate the silent, add the caught up, gate the close. */
static int decide_joiners(const role_view *v, role_action *out)
{
	const role_map *m = &v->map;
	for (uint32_t i = 0; i < v->peer_count; i++) {
		const role_peer *p = &v->peers[i];
		if (role_map_in_sync(m, p->node))
			continue;
		int silent = p->silent_ms > v->cfg.ack_timeout_ms;
		if (p->gated && (silent || !p->connected)) {
			act(out, ROLE_ACT_UNGATE_PEER, p->node, "a joining standby went silent");
			return 1;
		}
		if (p->gated && p->acked_seq >= p->gate_seq && m->in_sync_count < ROLE_NODES_MAX) {
			act(out, ROLE_ACT_ADD_STANDBY, p->node,
			    "a gated standby acknowledged its gate point");
			role_map *n = same_term(v, out);
			n->in_sync[n->in_sync_count++] = p->node;
			return 1;
		}
		if (!p->gated && p->connected && !silent &&
		    p->acked_seq + v->cfg.gate_lag_max >= v->last_seq &&
		    m->in_sync_count < ROLE_NODES_MAX) {
			act(out, ROLE_ACT_GATE_PEER, p->node,
			    "a standby caught up: wait for its acks");
			return 1;
		}
	}
	return 0;
}

static void decide_primary(const role_view *v, role_action *out)
{
	const role_map *m = &v->map;
	if (m->primary != v->self || m->epoch != v->local_epoch) {
		act(out, ROLE_ACT_FENCE, m->primary, "the map names another primary or term");
		return;
	}
	uint32_t hold = 0;
	if (decide_members(v, out, &hold) || decide_handoff(v, out) || decide_joiners(v, out))
		return;
	if (hold) {
		act(out, ROLE_ACT_HOLD_WRITES, hold,
		    "a standby is silent and min_in_sync forbids dropping it");
		return;
	}
	if (m->in_sync_count < v->cfg.min_in_sync) {
		act(out, ROLE_ACT_HOLD_WRITES, 0, "fewer in-sync copies than min_in_sync");
		return;
	}
	act(out, ROLE_ACT_NONE, 0, "primary: nothing to change");
}

/* REJOIN's cut: records of an older term at or after the term's start. */
static int needs_cut(const role_view *v)
{
	return v->local_epoch < v->map.epoch && v->last_seq >= v->map.start_seq;
}

static void rejoin(const role_view *v, role_action *out, const char *why)
{
	act(out, ROLE_ACT_REJOIN, 0, why);
	if (v->map.present && needs_cut(v)) {
		out->cut = 1;
		out->cut_after = v->map.start_seq - 1;
	}
}

static void decide_standby(const role_view *v, role_action *out)
{
	const role_map *m = &v->map;
	if (needs_cut(v)) {
		rejoin(v, out, "an older term's tail after the term's start");
		return;
	}
	if (m->primary == v->self) {
		if (v->local_epoch > m->epoch) {
			act(out, ROLE_ACT_NONE, 0, "local epoch ahead of the map: refusing to act");
			return;
		}
		if (v->local_epoch < m->epoch && v->last_seq + 1 == m->start_seq) {
			act(out, ROLE_ACT_ASSUME, 0, "the map names this node for a newer term");
			return;
		}
		act(out, ROLE_ACT_PROMOTE, 0,
		    "the map names this node but its term was lost: new term");
		new_term(v, out, v->self, v->last_seq + 1);
		return;
	}
	if (v->diverged) {
		act(out, ROLE_ACT_REBUILD, m->primary,
		    "the primary's chain does not continue this copy");
		return;
	}
	if (!is_live(v, m->primary) && v->local_epoch <= m->epoch &&
	    (role_map_in_sync(m, v->self) || v->cfg.allow_unsafe_promote)) {
		act(out, ROLE_ACT_PROMOTE, 0,
		    role_map_in_sync(m, v->self)
		            ? "the primary's node key is gone"
		            : "the primary's node key is gone (UNSAFE: not in sync)");
		new_term(v, out, v->self, v->last_seq + 1);
		return;
	}
	if (v->following != m->primary) {
		act(out, ROLE_ACT_FOLLOW, m->primary, "follow the map's primary");
		return;
	}
	act(out, ROLE_ACT_NONE, 0, "standby: following");
}

static void check_view(const role_view *v)
{
	assert(node_ok(v->self));
	assert(v->live_count <= ROLE_LIVE_MAX && v->peer_count <= ROLE_NODES_MAX);
	assert(!v->map.present || role_map_check(&v->map, NULL, 0) == 0);
	assert(v->cfg.min_in_sync >= 1);
	for (uint32_t i = 0; i < v->peer_count; i++)
		assert(node_ok(v->peers[i].node) && v->peers[i].node != v->self);
}

void role_decide(const role_view *v, role_action *out)
{
	check_view(v);
	memset(out, 0, sizeof *out);
	if (!v->map_fresh) {
		act(out, ROLE_ACT_NONE, 0, "etcd not reachable: keep the current role");
		return;
	}
	if (!v->map.present) {
		if (v->local == ROLE_PRIMARY)
			act(out, ROLE_ACT_FENCE, 0, "the shard map was deleted");
		else if (v->local == ROLE_FENCED)
			rejoin(v, out, "fenced: reopen as a standby");
		else if (v->self == v->cfg.bootstrap_primary) {
			act(out, ROLE_ACT_CREATE_MAP, 0,
			    "no map: this node is the bootstrap primary");
			new_term(v, out, v->self, v->last_seq + 1);
		} else
			act(out, ROLE_ACT_NONE, 0, "no map yet");
		return;
	}
	switch (v->local) {
	case ROLE_PRIMARY:
		decide_primary(v, out);
		return;
	case ROLE_FENCED:
		rejoin(v, out, "fenced: reopen as a standby");
		return;
	case ROLE_NONE:
	case ROLE_STANDBY:
		decide_standby(v, out);
		return;
	}
	assert(0 && "role_view.local out of range");
}
