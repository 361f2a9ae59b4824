/*
 * role_test.c — the role state machine's table tests (cluster/role.h):
 *  - the shard map's text: what role_map_encode writes is what
 *    role_map_decode reads back; everything malformed (not an object,
 *    unknown or repeated keys, signs, fractions, leading zeros, overflow,
 *    ids out of range, duplicates, a primary outside in_sync, trailing
 *    bytes, a NUL) is refused with -EPROTO and a message, *out untouched;
 *  - role_decide: one view per rule, and the action with its exact CAS
 *    (new_map and the revision it compares) or its local effect, including
 *    the rules whose absence loses acknowledged records: no promotion
 *    outside in_sync, no drop before min_in_sync allows it, no add before
 *    the gate point is acknowledged, a cut of an older term's tail only.
 * The simulator (role_sim_test.c) runs the same rules over random faults.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "cluster/role.h"

/* ---- The map's text ------------------------------------------------------ */

Test(role_map, round_trip)
{
	role_map m = {.present = 1,
	              .epoch = 7,
	              .primary = 2,
	              .in_sync = {2, 3, 65535},
	              .in_sync_count = 3,
	              .start_seq = 18446744073709551615ull,
	              .handoff = 3};
	char buf[ROLE_MAP_JSON_MAX];
	int n = role_map_encode(&m, buf, sizeof buf);
	cr_assert_gt(n, 0);
	cr_assert_str_eq(
	        buf,
	        "{\"epoch\":7,\"primary\":2,\"in_sync\":[2,3,65535],\"start_seq\":18446744073709551615,"
	        "\"handoff\":3}");
	role_map back;
	char err[128] = "";
	cr_assert_eq(role_map_decode(buf, (size_t)n, &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.present, 1);
	cr_assert_eq(back.epoch, 7);
	cr_assert_eq(back.primary, 2);
	cr_assert_eq(back.in_sync_count, 3);
	cr_assert_eq(back.in_sync[2], 65535);
	cr_assert_eq(back.start_seq, UINT64_MAX);
	cr_assert_eq(back.handoff, 3);

	m.handoff = 0;
	m.in_sync_count = 1;
	m.in_sync[0] = 2;
	n = role_map_encode(&m, buf, sizeof buf);
	cr_assert_str_eq(
	        buf,
	        "{\"epoch\":7,\"primary\":2,\"in_sync\":[2],\"start_seq\":18446744073709551615}",
	        "handoff 0 is left out");
	cr_assert_eq(role_map_encode(&m, buf, (size_t)n), -ENOSPC, "no room for the NUL");
	/* Whitespace between tokens, another key order and handoff 0 are fine. */
	const char *spaced =
	        " {\n\"start_seq\" : 5 ,\"in_sync\":[ 4 , 1 ],\t\"primary\":1,\"epoch\":3,\"handoff\":0}\r\n";
	cr_assert_eq(role_map_decode(spaced, strlen(spaced), &back, err, sizeof err), 0, "%s", err);
	cr_assert_eq(back.start_seq, 5);
	cr_assert_eq(back.in_sync[0], 4);
	cr_assert_eq(back.handoff, 0);
}

Test(role_map, refuses_malformed)
{
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{}",
	        "null",
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1]}", /* no start_seq */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1,\"x\":1}", /* unknown
	                                                                                  key */
	        "{\"epoch\":1,\"epoch\":2,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}", /* repeated
	                                                                                    */
	        "{\"epoch\":0,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}",   /* epoch 0 */
	        "{\"epoch\":-1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}",  /* sign */
	        "{\"epoch\":1.0,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}", /* fraction */
	        "{\"epoch\":1e3,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}", /* exponent */
	        "{\"epoch\":01,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}",  /* leading 0 */
	        "{\"epoch\":18446744073709551616,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}", /* overflow */
	        "{\"epoch\":\"1\",\"primary\":1,\"in_sync\":[1],\"start_seq\":1}",     /* string */
	        "{\"epoch\":1,\"primary\":0,\"in_sync\":[1],\"start_seq\":1}",         /* id 0 */
	        "{\"epoch\":1,\"primary\":65536,\"in_sync\":[65536],\"start_seq\":1}", /* id too big
	                                                                                */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[2],\"start_seq\":1}", /* primary outside */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1,1],\"start_seq\":1}", /* duplicate */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[],\"start_seq\":1}",    /* empty */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1,2,3,4,5,6,7,8,9],\"start_seq\":1}", /* too
	                                                                                          many
	                                                                                        */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1,],\"start_seq\":1}", /* trailing , */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":1,\"start_seq\":1}",    /* not array */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":0}",  /* start 0 */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1,\"handoff\":70000}",
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}x", /* trailing */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1",   /* unclosed */
	        "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1,}", /* trailing , */
	        "{\"ep\\u006fch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}", /* escaped key
	                                                                              */
	        "{\"epoch\" 1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}",       /* no colon */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		role_map out;
		memset(&out, 0xa5, sizeof out);
		role_map before = out;
		char err[128] = "";
		cr_assert_eq(role_map_decode(bad[i], strlen(bad[i]), &out, err, sizeof err),
		             -EPROTO, "accepted: %s", bad[i]);
		cr_assert_neq(err[0], '\0', "no message for: %s", bad[i]);
		cr_assert_eq(memcmp(&out, &before, sizeof out), 0, "*out written for: %s", bad[i]);
	}
	/* A NUL inside the value, and no value at all. */
	const char nul[] = "{\"epoch\":1,\"primary\":1,\"in_sync\":[1],\"start_seq\":1}\0";
	role_map out;
	char err[128];
	cr_assert_eq(role_map_decode(nul, sizeof nul - 1, &out, err, sizeof err), -EPROTO);
	cr_assert_eq(role_map_decode(NULL, 0, &out, err, sizeof err), -EPROTO);
}

/* ---- Decisions ------------------------------------------------------------ */

/* A view of node `self` with a fresh map {epoch, primary, in_sync} and the
 * given live nodes. */
static role_view view_of(uint32_t self, role_local local, uint64_t epoch, uint32_t primary,
                         const uint32_t *members, uint32_t n)
{
	role_view v;
	memset(&v, 0, sizeof v);
	v.self = self;
	v.map_fresh = 1;
	v.map.present = 1;
	v.map.epoch = epoch;
	v.map.primary = primary;
	for (uint32_t i = 0; i < n; i++)
		v.map.in_sync[i] = members[i];
	v.map.in_sync_count = n;
	v.map.start_seq = 100;
	v.map.mod_revision = 42;
	v.local = local;
	v.local_epoch = epoch;
	v.last_seq = 150;
	v.released_seq = 150;
	v.live[0] = 1;
	v.live[1] = 2;
	v.live[2] = 3;
	v.live_count = 3;
	v.cfg.ack_timeout_ms = 1000;
	v.cfg.min_in_sync = 1;
	v.cfg.gate_lag_max = 10;
	return v;
}

static void add_peer(role_view *v, uint32_t node, uint64_t acked, uint64_t silent_ms, int gated,
                     uint64_t gate_seq)
{
	role_peer *p = &v->peers[v->peer_count++];
	p->node = node;
	p->connected = 1;
	p->acked_seq = acked;
	p->silent_ms = silent_ms;
	p->gated = gated;
	p->gate_seq = gate_seq;
}

static void remove_live(role_view *v, uint32_t node)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < v->live_count; i++)
		if (v->live[i] != node)
			v->live[k++] = v->live[i];
	v->live_count = k;
}

static role_action decide(const role_view *v)
{
	role_action a;
	role_decide(v, &a);
	return a;
}

Test(role_decide, create_and_stale_map)
{
	role_view v = view_of(1, ROLE_NONE, 0, 1, (uint32_t[]){1}, 1);
	memset(&v.map, 0, sizeof v.map);
	v.local_epoch = 0;
	v.cfg.bootstrap_primary = 1;
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_CREATE_MAP);
	cr_assert_eq(a.new_map.epoch, 1);
	cr_assert_eq(a.new_map.primary, 1);
	cr_assert_eq(a.new_map.in_sync_count, 1);
	cr_assert_eq(a.new_map.start_seq, 151);
	cr_assert_eq(a.new_map.mod_revision, 0, "a create compares version == 0");
	v.self = 2;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "only the bootstrap node creates");
	/* etcd unreachable: nothing changes, whatever the map says. */
	role_view s = view_of(2, ROLE_STANDBY, 3, 1, (uint32_t[]){1, 2}, 2);
	remove_live(&s, 1);
	s.map_fresh = 0;
	cr_assert_eq(decide(&s).act, ROLE_ACT_NONE);
	s.map_fresh = 1;
	cr_assert_eq(decide(&s).act, ROLE_ACT_PROMOTE);
}

Test(role_decide, promote_only_from_in_sync)
{
	role_view v = view_of(2, ROLE_STANDBY, 3, 1, (uint32_t[]){1, 2}, 2);
	v.following = 1;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "the primary lives: keep following");
	remove_live(&v, 1);
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_PROMOTE);
	cr_assert_eq(a.new_map.epoch, 4);
	cr_assert_eq(a.new_map.primary, 2);
	cr_assert_eq(a.new_map.in_sync_count, 1);
	cr_assert_eq(a.new_map.in_sync[0], 2);
	cr_assert_eq(a.new_map.start_seq, 151, "the EPOCH record lands after the last record");
	cr_assert_eq(a.new_map.mod_revision, 42, "CAS against the map read");
	cr_assert_eq(a.new_map.handoff, 0);
	/* Node 3 is not in in_sync: it may have missed acknowledged records. */
	v.self = 3;
	v.following = 1;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE);
	v.cfg.allow_unsafe_promote = 1;
	cr_assert_eq(decide(&v).act, ROLE_ACT_PROMOTE, "only with the operator's flag");
}

Test(role_decide, standby_follows_and_cuts)
{
	role_view v = view_of(2, ROLE_NONE, 3, 1, (uint32_t[]){1}, 1);
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_FOLLOW);
	cr_assert_eq(a.peer, 1);
	/* An older term's records at and after start_seq: cut them first. */
	v.local_epoch = 2;
	v.last_seq = 100;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_REJOIN);
	cr_assert_eq(a.cut, 1);
	cr_assert_eq(a.cut_after, 99);
	/* Below start_seq nothing is cut: those records may be acknowledged. */
	v.last_seq = 99;
	cr_assert_eq(decide(&v).act, ROLE_ACT_FOLLOW);
	/* Same term: the records after start_seq are the primary's own. */
	v.local_epoch = 3;
	v.last_seq = 500;
	cr_assert_eq(decide(&v).act, ROLE_ACT_FOLLOW);
	v.diverged = 1;
	cr_assert_eq(decide(&v).act, ROLE_ACT_REBUILD);
	/* Fenced: always reopen first, cut when needed. */
	v.diverged = 0;
	v.local = ROLE_FENCED;
	v.local_epoch = 2;
	v.last_seq = 120;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_REJOIN);
	cr_assert_eq(a.cut_after, 99);
	v.last_seq = 80;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_REJOIN);
	cr_assert_eq(a.cut, 0);
}

Test(role_decide, map_names_self)
{
	/* A handoff (or our own CAS before a crash): the term is ours. */
	role_view v = view_of(2, ROLE_STANDBY, 4, 2, (uint32_t[]){2}, 1);
	v.local_epoch = 3;
	v.last_seq = 99;
	cr_assert_eq(decide(&v).act, ROLE_ACT_ASSUME);
	/* Restarted primary (term already journaled): a new term. */
	v.local_epoch = 4;
	v.last_seq = 130;
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_PROMOTE);
	cr_assert_eq(a.new_map.epoch, 5);
	cr_assert_eq(a.new_map.start_seq, 131);
	v.local_epoch = 5;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "local epoch ahead of etcd: refuse");
}

Test(role_decide, primary_fences)
{
	role_view v = view_of(1, ROLE_PRIMARY, 3, 2, (uint32_t[]){2}, 1);
	cr_assert_eq(decide(&v).act, ROLE_ACT_FENCE);
	v = view_of(1, ROLE_PRIMARY, 4, 1, (uint32_t[]){1}, 1);
	v.local_epoch = 3;
	cr_assert_eq(decide(&v).act, ROLE_ACT_FENCE, "a newer term of ours we did not start");
	v.local_epoch = 4;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE);
	v.map.present = 0;
	cr_assert_eq(decide(&v).act, ROLE_ACT_FENCE, "the map was deleted");
	v.map_fresh = 0;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "unreachable etcd never fences");
}

Test(role_decide, drop_or_hold_silent_standby)
{
	role_view v = view_of(1, ROLE_PRIMARY, 3, 1, (uint32_t[]){1, 2}, 2);
	add_peer(&v, 2, 140, 1000, 1, 120);
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "at the timeout, not yet");
	v.peers[0].silent_ms = 1001;
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_DROP_STANDBY);
	cr_assert_eq(a.peer, 2);
	cr_assert_eq(a.new_map.epoch, 3, "same term");
	cr_assert_eq(a.new_map.in_sync_count, 1);
	cr_assert_eq(a.new_map.in_sync[0], 1);
	cr_assert_eq(a.new_map.mod_revision, 42);
	v.cfg.min_in_sync = 2;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_HOLD_WRITES);
	cr_assert_eq(a.peer, 2);
	/* An in-sync member outside the floor is put back in at once. */
	v.cfg.min_in_sync = 1;
	v.peers[0].silent_ms = 0;
	v.peers[0].gated = 0;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_GATE_PEER);
	cr_assert_eq(a.peer, 2);
	/* Alone with min_in_sync 2: hold. */
	v = view_of(1, ROLE_PRIMARY, 3, 1, (uint32_t[]){1}, 1);
	v.cfg.min_in_sync = 2;
	cr_assert_eq(decide(&v).act, ROLE_ACT_HOLD_WRITES);
}

Test(role_decide, gate_then_add)
{
	role_view v = view_of(1, ROLE_PRIMARY, 3, 1, (uint32_t[]){1}, 1);
	add_peer(&v, 2, 139, 0, 0, 0);
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "11 records behind: not yet");
	v.peers[0].acked_seq = 140;
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_GATE_PEER);
	cr_assert_eq(a.peer, 2);
	v.peers[0].gated = 1;
	v.peers[0].gate_seq = 150;
	v.peers[0].acked_seq = 149;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "not at its gate point yet");
	v.peers[0].acked_seq = 150;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_ADD_STANDBY);
	cr_assert_eq(a.new_map.in_sync_count, 2);
	cr_assert_eq(a.new_map.in_sync[1], 2);
	cr_assert_eq(a.new_map.epoch, 3);
	cr_assert_eq(a.new_map.mod_revision, 42);
	/* A gated joiner that goes silent leaves the floor. */
	v.peers[0].acked_seq = 149;
	v.peers[0].silent_ms = 5000;
	cr_assert_eq(decide(&v).act, ROLE_ACT_UNGATE_PEER);
}

Test(role_decide, handoff)
{
	role_view v = view_of(1, ROLE_PRIMARY, 3, 1, (uint32_t[]){1, 2}, 2);
	add_peer(&v, 2, 140, 0, 1, 100);
	v.map.handoff = 2;
	cr_assert_eq(decide(&v).act, ROLE_ACT_STOP_WRITES);
	v.writes_stopped = 1;
	cr_assert_eq(decide(&v).act, ROLE_ACT_NONE, "waiting for the target's ack of 150");
	v.peers[0].acked_seq = 150;
	role_action a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_HANDOFF);
	cr_assert_eq(a.peer, 2);
	cr_assert_eq(a.new_map.epoch, 4);
	cr_assert_eq(a.new_map.primary, 2);
	cr_assert_eq(a.new_map.in_sync_count, 1);
	cr_assert_eq(a.new_map.start_seq, 151);
	cr_assert_eq(a.new_map.handoff, 0);
	cr_assert_eq(a.new_map.mod_revision, 42);
	/* Target gone: resume, then clear the request. */
	remove_live(&v, 2);
	cr_assert_eq(decide(&v).act, ROLE_ACT_RESUME_WRITES);
	v.writes_stopped = 0;
	a = decide(&v);
	cr_assert_eq(a.act, ROLE_ACT_CLEAR_HANDOFF);
	cr_assert_eq(a.new_map.handoff, 0);
	cr_assert_eq(a.new_map.in_sync_count, 2);
}
