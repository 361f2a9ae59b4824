/*
 * sys_redis.c — the Redis 7 + Lua baseline of boxoffice-bench (issue 11,
 * item 2): seat holds written the way Redis users write them, one Lua
 * script per operation, called with EVALSHA through synchronous hiredis.
 *
 * TARGET: "HOST:PORT" (default 127.0.0.1:6379), "HOST" (port 6379), or
 * "unix:PATH" for a unix socket. Options (--opt): timeout_ms=N, the
 * socket timeout after which a call counts as LG_NO_ANSWER (default
 * 10000); flush=1 lets setup empty a database that holds keys this
 * program did not write.
 *
 * CONNECTIONS: one lg_conn is one redisContext. exec(n == 1) sends one
 * EVALSHA and reads its reply (unpipelined); exec(n > 1) appends n
 * EVALSHAs and then reads n replies: one pipeline of depth n, one write
 * and as many reads as the replies need. A lost connection (I/O error,
 * timeout) marks the rest of the round LG_NO_ANSWER; the next exec
 * reconnects and loads the scripts again (a restarted server forgot them),
 * or pauses 20 ms and answers LG_NO_ANSWER while the server is away.
 *
 * KEYS of event e (the hash tag {e} keeps an event in one Cluster slot, so
 * every script's keys are in one slot):
 *   bo:{e}:s:<seat>  string. Absent: free. "h:<claim>" with an expiry at
 *                    the hold's end (PXAT): held. "b:<claim>", no expiry:
 *                    booked. Key expiry is the hold TTL: a hold nobody
 *                    confirms disappears by itself.
 *   bo:{e}:held      zset, member "<claim>:<seat>", score = the hold's
 *                    expiry in ms (the PXAT of the seat key): live holds,
 *                    for availability without scanning seat keys.
 *   bo:{e}:free      zset, member and score = seat number: seats known free,
 *                    for best-available. A seat leaves it when held; it
 *                    comes back on release, or when a sweep finds its
 *                    expired hold's key gone.
 *   bo:{e}:booked    counter of booked seats.
 *   bo:{e}:cap       seats of the event.
 *   bo:bench         marker: this database was filled by boxoffice-bench.
 * A claim is the hold request's request_id (unique in the run), so a
 * claim names one hold and "h:<claim>" proves the caller holds the seat.
 *
 * SWEEP (in READ and HOLD_BEST): expired members of `held` (score < now,
 * at most 64 per call so a script stays short) are removed; the
 * seat goes back to `free` when its key is gone (a key still "h:<claim>"
 * is left for a later sweep: inside a script Redis judges expiry by the
 * script's start time, which may lag TIME by a millisecond). Invariant:
 * every seat in `free` has no key; a seat with no key is in `free` or has
 * an expired member in `held` waiting for a sweep.
 *
 * OPERATIONS (each one script, atomic as every Redis script is):
 *   READ      sweep; cap - booked - ZCOUNT held [now, +inf].
 *   HOLD      all or nothing: any seat key present -> 0 (taken, nothing
 *             written); else SET h:<claim> PXAT now+ttl, ZADD held, ZREM
 *             free for each seat -> 1.
 *   HOLD_BEST sweep; the first 32 free seats of the category
 *             (its seats are one contiguous range: categories are row
 *             bands), lowest first; the first run of n adjacent seats in
 *             one row, else the first n; held as HOLD. Simpler than the
 *             engine's choice (no stranded-seat rule, no row centre): what
 *             a Redis user would write. Fewer than n free -> {} (taken).
 *   CONFIRM   every seat key must be "h:<claim>" (else 0: expired or not
 *             this buyer's, nothing written); SET b:<claim> without expiry
 *             (the plain SET drops the TTL), ZREM held, INCRBY booked n -> 1.
 *   RELEASE   every seat key "h:<claim>" (else 0); DEL, ZREM held, ZADD
 *             free -> 1.
 * TIME inside a script is allowed from Redis 7 on (scripts replicate
 * their effects). HOLD_BEST and the sweeps build seat key names inside the
 * script, which Redis Cluster tolerates because the hash tag keeps them in
 * the script's slot.
 *
 * OUTCOMES: 0 from HOLD/HOLD_BEST -> LG_TAKEN; 0 from CONFIRM/RELEASE ->
 * LG_EXPIRED; an error reply -> LG_ERROR (the first one is printed to
 * stderr), except BUSY/LOADING (the server refuses work for now) ->
 * LG_BUSY; I/O error or timeout -> LG_NO_ANSWER.
 *
 * SETUP checks PING, prints appendonly/appendfsync to stderr (which fsync
 * mode ran), loads the scripts, and with cfg->setup empties the database
 * (refusing one that holds keys it did not write, unless flush=1) and
 * creates the events. AUDIT scans bo:* once and counts seat keys by value
 * ("redis_booked", "redis_held") and sums the booked counters
 * ("redis_counter_booked": the scripts' bookkeeping must agree with the
 * seat keys).
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis.h>

#include "base/parse.h"
#include "lg.h"

/* Seat numbers one ZADD carries at setup (two arguments each). */
#define RD_SETUP_CHUNK 512u
/* Setup commands in flight before their replies are read. */
#define RD_SETUP_PIPE 32u
/* Keys SCAN returns per call in the audit (a hint to Redis). */
#define RD_SCAN_COUNT "1000"
#define RD_TIMEOUT_MS_DEFAULT 10000u
/* Pause after a failed reconnect (see rd_ready). */
#define RD_RECONNECT_PAUSE_MS 20

/* ---- Scripts ---------------------------------------------------------- */

/* Limits inside the scripts (Redis runs one script at a time, so each
 * bounds the time every other client waits):
 *   64 expired holds per sweep; later calls sweep the rest.
 *   32 free seats HOLD_BEST looks at for an adjacent run (4 holds of the
 *   most seats a hold takes): on the flash workload a window of 128 cost
 *   35 us per EVALSHA and 8k requests/s, 32 cost 12 us and 31-38k/s
 *   (INFO commandstats, 8 connections 16 deep, appendfsync always).
 * The scripts' text is kept as written, not as clang-format would fold it. */
// clang-format off

/* now in ms from the server's clock. */
#define RD_LUA_NOW                                                                                 \
	"local t = redis.call('TIME')\n"                                                           \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* sweep(held, free, seat key prefix, now): see SWEEP above. */
#define RD_LUA_SWEEP                                                                               \
	"local function sweep(held, free, prefix, now)\n"                                          \
	"  local gone = redis.call('ZRANGEBYSCORE', held, '-inf', '(' .. now,\n"                   \
	"                          'LIMIT', 0, 64)\n"                                              \
	"  for _, m in ipairs(gone) do\n"                                                          \
	"    local sep = string.find(m, ':', 1, true)\n"                                           \
	"    local claim = string.sub(m, 1, sep - 1)\n"                                            \
	"    local seat = string.sub(m, sep + 1)\n"                                                \
	"    local v = redis.call('GET', prefix .. seat)\n"                                        \
	"    if v ~= 'h:' .. claim then\n"                                                         \
	"      redis.call('ZREM', held, m)\n"                                                      \
	"      if not v then redis.call('ZADD', free, seat, seat) end\n"                           \
	"    end\n"                                                                                \
	"  end\n"                                                                                  \
	"end\n"

/* KEYS: held, free, booked, cap. ARGV: seat key prefix "bo:{e}:s:".
 * Returns the free seats, or an error when the event does not exist. */
static const char rd_lua_read[] = RD_LUA_NOW RD_LUA_SWEEP
	"local cap = redis.call('GET', KEYS[4])\n"
	"if not cap then return redis.error_reply('ERR no such event') end\n"
	"sweep(KEYS[1], KEYS[2], ARGV[1], now)\n"
	"local booked = tonumber(redis.call('GET', KEYS[3]) or 0)\n"
	"return tonumber(cap) - booked - redis.call('ZCOUNT', KEYS[1], now, '+inf')\n";

/* KEYS: seat keys 1..n, held, free. ARGV: claim, ttl_ms, seat numbers 1..n.
 * Returns 1 (held) or 0 (a seat is taken; nothing written). The expiry is
 * passed on as a formatted integer: how Redis prints a Lua number changed
 * between versions, and PXAT takes only integer digits. */
static const char rd_lua_hold[] = "local n = #KEYS - 2\n"
	"for i = 1, n do\n"
	"  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end\n"
	"end\n" RD_LUA_NOW
	"local exp = string.format('%d', now + tonumber(ARGV[2]))\n"
	"local v = 'h:' .. ARGV[1]\n"
	"for i = 1, n do\n"
	"  redis.call('SET', KEYS[i], v, 'PXAT', exp)\n"
	"  redis.call('ZADD', KEYS[n + 1], exp, ARGV[1] .. ':' .. ARGV[i + 2])\n"
	"  redis.call('ZREM', KEYS[n + 2], ARGV[i + 2])\n"
	"end\n"
	"return 1\n";

/* KEYS: held, free. ARGV: claim, ttl_ms, n, first seat, last seat of the
 * category, seats per row, seat key prefix. Returns the seats held
 * (ascending) or {} when the category has fewer than n free seats. */
static const char rd_lua_hold_best[] = RD_LUA_NOW RD_LUA_SWEEP
	"sweep(KEYS[1], KEYS[2], ARGV[7], now)\n"
	"local n = tonumber(ARGV[3])\n"
	"local per_row = tonumber(ARGV[6])\n"
	"local cand = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[4], ARGV[5],\n"
	"                        'LIMIT', 0, 32)\n"
	"if #cand < n then return {} end\n"
	"local first, run, prev = 1, 0, -2\n"
	"for i = 1, #cand do\n"
	"  local s = tonumber(cand[i])\n"
	"  if s == prev + 1 and math.floor(s / per_row) == math.floor(prev / per_row) then\n"
	"    run = run + 1\n"
	"  else\n"
	"    run = 1\n"
	"  end\n"
	"  prev = s\n"
	"  if run == n then first = i - n + 1 break end\n"
	"end\n"
	"if run < n then first = 1 end\n"
	"local seats = {}\n"
	"for i = 1, n do\n"
	"  seats[i] = tonumber(cand[first + i - 1])\n"
	"  if redis.call('EXISTS', ARGV[7] .. seats[i]) == 1 then\n"
	"    return redis.error_reply('ERR free set out of step at seat ' .. seats[i])\n"
	"  end\n"
	"end\n"
	"local exp = string.format('%d', now + tonumber(ARGV[2]))\n"
	"local v = 'h:' .. ARGV[1]\n"
	"for i = 1, n do\n"
	"  redis.call('SET', ARGV[7] .. seats[i], v, 'PXAT', exp)\n"
	"  redis.call('ZADD', KEYS[1], exp, ARGV[1] .. ':' .. seats[i])\n"
	"  redis.call('ZREM', KEYS[2], seats[i])\n"
	"end\n"
	"return seats\n";

/* KEYS: seat keys 1..n, held, booked. ARGV: claim, seat numbers 1..n.
 * Returns 1 (booked) or 0 (not all seats held by this claim; nothing
 * written). */
static const char rd_lua_confirm[] = "local n = #KEYS - 2\n"
	"local h = 'h:' .. ARGV[1]\n"
	"for i = 1, n do\n"
	"  if redis.call('GET', KEYS[i]) ~= h then return 0 end\n"
	"end\n"
	"local b = 'b:' .. ARGV[1]\n"
	"for i = 1, n do\n"
	"  redis.call('SET', KEYS[i], b)\n"
	"  redis.call('ZREM', KEYS[n + 1], ARGV[1] .. ':' .. ARGV[i + 1])\n"
	"end\n"
	"redis.call('INCRBY', KEYS[n + 2], n)\n"
	"return 1\n";

/* KEYS: seat keys 1..n, held, free. ARGV: claim, seat numbers 1..n.
 * Returns 1 (released) or 0 (not all seats held by this claim). */
static const char rd_lua_release[] = "local n = #KEYS - 2\n"
	"local h = 'h:' .. ARGV[1]\n"
	"for i = 1, n do\n"
	"  if redis.call('GET', KEYS[i]) ~= h then return 0 end\n"
	"end\n"
	"for i = 1, n do\n"
	"  redis.call('DEL', KEYS[i])\n"
	"  redis.call('ZREM', KEYS[n + 1], ARGV[1] .. ':' .. ARGV[i + 1])\n"
	"  redis.call('ZADD', KEYS[n + 2], ARGV[i + 1], ARGV[i + 1])\n"
	"end\n"
	"return 1\n";

/* Indexed by enum lg_op. */
static const char *const rd_scripts[LG_OP_COUNT] = {
	[LG_READ] = rd_lua_read,
	[LG_HOLD_SEATS] = rd_lua_hold,
	[LG_HOLD_BEST] = rd_lua_hold_best,
	[LG_CONFIRM] = rd_lua_confirm,
	[LG_RELEASE] = rd_lua_release,
};
// clang-format on

/* ---- State ------------------------------------------------------------ */

typedef struct rd_sys {
	char host[128];         /* TCP host, or "" for a unix socket */
	int port;               /* TCP port */
	char path[108];         /* unix socket path when host is "" */
	struct timeval timeout; /* connect and I/O */
	uint32_t seats;         /* per event */
	uint32_t per_row;
	uint32_t categories;
	uint32_t rows_per_band;    /* rows of one category (lg_category's band) */
	char sha[LG_OP_COUNT][41]; /* SCRIPT LOAD's answers */
	atomic_int error_told;     /* the first error reply was printed */
} rd_sys;

/* Arguments of one command: pointers into buf. */
#define RD_ARGC_MAX ((int)(4 + 2 * (LG_SEATS_MAX + 4)))
#define RD_ARGBUF 1024u

typedef struct rd_args {
	int argc;
	const char *argv[RD_ARGC_MAX];
	size_t len[RD_ARGC_MAX];
	size_t used;         /* bytes of buf in use */
	char buf[RD_ARGBUF]; /* the arguments' text, NUL-separated */
} rd_args;

typedef struct rd_conn {
	rd_sys *sys;
	redisContext *c; /* NULL: lost, reconnect on the next exec */
	int reload;      /* a NOSCRIPT answer: load the scripts again */
	rd_args args;    /* scratch for the command being appended */
} rd_conn;

/* ---- Helpers ---------------------------------------------------------- */

static void rd_errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rd_errf(char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, LG_ERR_LEN, fmt, ap);
	va_end(ap);
}

static void rd_args_reset(rd_args *a)
{
	a->argc = 0;
	a->used = 0;
}

static void rd_arg(rd_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one formatted argument; the sizes are bounded by lg.h's limits,
 * so running out of room is a programming error. */
static void rd_arg(rd_args *a, const char *fmt, ...)
{
	assert(a->argc < RD_ARGC_MAX);
	char *at = a->buf + a->used;
	size_t room = sizeof(a->buf) - a->used;
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	assert(len >= 0 && (size_t)len < room);
	a->argv[a->argc] = at;
	a->len[a->argc] = (size_t)len;
	a->argc++;
	a->used += (size_t)len + 1;
}

static void rd_arg_str(rd_args *a, const char *s)
{
	rd_arg(a, "%s", s);
}

/* Parses "HOST:PORT", "HOST" or "unix:PATH". */
static int rd_parse_target(rd_sys *s, const char *target, char *err)
{
	if (!target || !*target)
		target = "127.0.0.1:6379";
	if (strncmp(target, "unix:", 5) == 0) {
		if (strlen(target + 5) == 0 || strlen(target + 5) >= sizeof(s->path)) {
			rd_errf(err, "redis: bad unix socket target '%s'", target);
			return -EINVAL;
		}
		s->host[0] = '\0';
		strcpy(s->path, target + 5);
		return 0;
	}
	const char *colon = strrchr(target, ':');
	size_t hlen = colon ? (size_t)(colon - target) : strlen(target);
	uint64_t port = 6379;
	if (colon && bo_parse_u64(colon + 1, 1, 65535, 0, &port) != 0) {
		rd_errf(err, "redis: bad port in target '%s' (HOST:PORT, port 1..65535)", target);
		return -EINVAL;
	}
	if (hlen == 0 || hlen >= sizeof(s->host)) {
		rd_errf(err, "redis: bad host in target '%s' (HOST:PORT)", target);
		return -EINVAL;
	}
	memcpy(s->host, target, hlen);
	s->host[hlen] = '\0';
	s->port = (int)port;
	return 0;
}

static void rd_target_str(const rd_sys *s, char *buf, size_t len)
{
	if (s->host[0])
		snprintf(buf, len, "%s:%d", s->host, s->port);
	else
		snprintf(buf, len, "unix:%s", s->path);
}

/* A connected context with its I/O timeout, or NULL with err. */
static redisContext *rd_connect(const rd_sys *s, char *err)
{
	redisContext *c = s->host[0] ? redisConnectWithTimeout(s->host, s->port, s->timeout)
	                             : redisConnectUnixWithTimeout(s->path, s->timeout);
	char where[160];
	rd_target_str(s, where, sizeof(where));
	if (!c) {
		rd_errf(err, "redis: cannot allocate a connection to %s", where);
		return NULL;
	}
	if (c->err || redisSetTimeout(c, s->timeout) != REDIS_OK) {
		rd_errf(err, "redis: connect to %s: %s", where, c->errstr);
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Runs one command (printf-style, hiredis's format) and checks the reply
 * type; returns the reply (caller frees) or NULL with err. */
static redisReply *rd_call(redisContext *c, int type, char *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r) {
		rd_errf(err, "redis: '%s': %s", fmt, c->errstr);
		return NULL;
	}
	if (r->type != type) {
		rd_errf(err, "redis: '%s': unexpected answer%s%s", fmt,
		        r->type == REDIS_REPLY_ERROR ? ": " : "",
		        r->type == REDIS_REPLY_ERROR ? r->str : "");
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* SCRIPT LOAD of every script; fills sha[op]. */
static int rd_load_scripts(redisContext *c, char sha[LG_OP_COUNT][41], char *err)
{
	for (unsigned op = 0; op < LG_OP_COUNT; op++) {
		redisReply *r =
		        rd_call(c, REDIS_REPLY_STRING, err, "SCRIPT LOAD %s", rd_scripts[op]);
		if (!r)
			return -EIO;
		if (r->len != 40) {
			rd_errf(err, "redis: SCRIPT LOAD answered '%s', not a SHA1", r->str);
			freeReplyObject(r);
			return -EPROTO;
		}
		memcpy(sha[op], r->str, 41);
		freeReplyObject(r);
	}
	return 0;
}

/* Prints which persistence ran: the harness records the fsync mode, this
 * line lets a reader of the log check it. */
static void rd_log_persistence(redisContext *c, const rd_sys *s)
{
	const char *names[2] = {"appendonly", "appendfsync"};
	char vals[2][32] = {"?", "?"};
	for (unsigned i = 0; i < 2; i++) {
		redisReply *r = redisCommand(c, "CONFIG GET %s", names[i]);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[1]->type == REDIS_REPLY_STRING)
			snprintf(vals[i], sizeof(vals[i]), "%s", r->element[1]->str);
		if (r)
			freeReplyObject(r);
	}
	char where[160];
	rd_target_str(s, where, sizeof(where));
	fprintf(stderr, "redis: target=%s appendonly=%s appendfsync=%s\n", where, vals[0], vals[1]);
}

/* Empties the database for a fresh run. A database holding keys without
 * our marker belongs to someone else: refuse unless flush=1. */
static int rd_flush(redisContext *c, const lg_config *cfg, char *err)
{
	redisReply *r = rd_call(c, REDIS_REPLY_INTEGER, err, "DBSIZE");
	if (!r)
		return -EIO;
	long long keys = r->integer;
	freeReplyObject(r);
	if (keys > 0) {
		r = rd_call(c, REDIS_REPLY_INTEGER, err, "EXISTS bo:bench");
		if (!r)
			return -EIO;
		int ours = r->integer == 1;
		freeReplyObject(r);
		char flush[8];
		int forced =
		        lg_opt(cfg->opts, "flush", flush, sizeof(flush)) && strcmp(flush, "1") == 0;
		if (!ours && !forced) {
			rd_errf(err,
			        "redis: the database holds %lld keys boxoffice-bench did not write; "
			        "use an empty server or --opt flush=1 to erase them",
			        keys);
			return -EEXIST;
		}
	}
	if (!(r = rd_call(c, REDIS_REPLY_STATUS, err, "FLUSHDB")))
		return -EIO;
	freeReplyObject(r);
	if (!(r = rd_call(c, REDIS_REPLY_STATUS, err, "SET bo:bench 1")))
		return -EIO;
	freeReplyObject(r);
	return 0;
}

/* Reads `pending` replies of pipelined setup commands; any error fails. */
static int rd_drain(redisContext *c, unsigned pending, char *err)
{
	int rc = 0;
	for (unsigned i = 0; i < pending; i++) {
		redisReply *r;
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			rd_errf(err, "redis: setup: %s", c->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ERROR && rc == 0) {
			rd_errf(err, "redis: setup: %s", r->str);
			rc = -EPROTO;
		}
		freeReplyObject(r);
	}
	return rc;
}

/* Room for one ZADD of the free set at setup: RD_SETUP_CHUNK seats, each
 * twice (score and member); it outgrows rd_args. */
typedef struct rd_zadd {
	const char *argv[2 + 2 * RD_SETUP_CHUNK];
	size_t len[2 + 2 * RD_SETUP_CHUNK];
	char text[(2 + 2 * RD_SETUP_CHUNK) * 24]; /* 24 > "bo:{4294967295}:free" */
} rd_zadd;

/* Appends ZADD bo:{e}:free of seats s0..s1-1 (score = member = seat). */
static void rd_append_free(redisContext *c, rd_zadd *z, uint32_t e, uint32_t s0, uint32_t s1)
{
	assert(s1 > s0 && s1 - s0 <= RD_SETUP_CHUNK);
	size_t argc = 2 + 2 * (size_t)(s1 - s0), used = 0;
	char *p = z->text;
	for (size_t i = 0; i < argc; i++) {
		int len;
		if (i == 0)
			len = sprintf(p, "ZADD");
		else if (i == 1)
			len = sprintf(p, "bo:{%" PRIu32 "}:free", e);
		else
			len = sprintf(p, "%" PRIu32, s0 + (uint32_t)(i - 2) / 2);
		z->argv[i] = p;
		z->len[i] = (size_t)len;
		p += len + 1;
		used += (size_t)len + 1;
	}
	assert(used <= sizeof(z->text));
	redisAppendCommandArgv(c, (int)argc, z->argv, z->len);
}

/* Creates cfg->events events: cap, booked 0, every seat in `free`.
 * Pipelined: setup of many events would otherwise take a round trip (and
 * with appendfsync always an fsync) per command. */
static int rd_create_events(redisContext *c, const lg_config *cfg, rd_args *a, char *err)
{
	rd_zadd *z = malloc(sizeof(*z));
	if (!z) {
		rd_errf(err, "redis: setup: out of memory");
		return -ENOMEM;
	}
	unsigned pending = 0;
	int rc = 0;
	for (uint32_t e = 0; e < cfg->events && rc == 0; e++) {
		rd_args_reset(a);
		rd_arg_str(a, "MSET");
		rd_arg(a, "bo:{%" PRIu32 "}:cap", e);
		rd_arg(a, "%" PRIu32, cfg->seats_per_event);
		rd_arg(a, "bo:{%" PRIu32 "}:booked", e);
		rd_arg_str(a, "0");
		redisAppendCommandArgv(c, a->argc, a->argv, a->len);
		pending++;
		for (uint32_t s0 = 0; s0 < cfg->seats_per_event; s0 += RD_SETUP_CHUNK) {
			uint32_t left = cfg->seats_per_event - s0;
			rd_append_free(c, z, e, s0,
			               s0 + (left < RD_SETUP_CHUNK ? left : RD_SETUP_CHUNK));
			pending++;
		}
		if (pending >= RD_SETUP_PIPE) {
			rc = rd_drain(c, pending, err);
			pending = 0;
		}
	}
	if (rc == 0)
		rc = rd_drain(c, pending, err);
	free(z);
	return rc;
}

/* ---- lg_system --------------------------------------------------------- */

static int rd_setup(const lg_config *cfg, void **sysp, char *err)
{
	assert(cfg->per_row > 0 && cfg->categories > 0 && cfg->seats_per_event > 0);
	rd_sys *s = calloc(1, sizeof(*s));
	rd_args *a = malloc(sizeof(*a));
	redisContext *c = NULL;
	int rc = -ENOMEM;
	if (!s || !a) {
		rd_errf(err, "redis: out of memory");
		goto fail;
	}
	if ((rc = rd_parse_target(s, cfg->target, err)) < 0)
		goto fail;
	char buf[32];
	uint64_t timeout_ms = RD_TIMEOUT_MS_DEFAULT;
	if (lg_opt(cfg->opts, "timeout_ms", buf, sizeof(buf)) &&
	    bo_parse_u64(buf, 1, 3600000, 0, &timeout_ms) != 0) {
		rd_errf(err, "redis: --opt timeout_ms=%s: want 1..3600000", buf);
		rc = -EINVAL;
		goto fail;
	}
	s->timeout.tv_sec = (time_t)(timeout_ms / 1000);
	s->timeout.tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000);
	s->seats = cfg->seats_per_event;
	s->per_row = cfg->per_row;
	s->categories = cfg->categories;
	uint32_t rows = (cfg->seats_per_event + cfg->per_row - 1) / cfg->per_row;
	s->rows_per_band = (rows + cfg->categories - 1) / cfg->categories;
	rc = -EIO;
	if (!(c = rd_connect(s, err)))
		goto fail;
	redisReply *r = rd_call(c, REDIS_REPLY_STATUS, err, "PING");
	if (!r)
		goto fail;
	freeReplyObject(r);
	rd_log_persistence(c, s);
	if (cfg->setup) {
		if ((rc = rd_flush(c, cfg, err)) < 0 || (rc = rd_create_events(c, cfg, a, err)) < 0)
			goto fail;
	}
	if ((rc = rd_load_scripts(c, s->sha, err)) < 0)
		goto fail;
	redisFree(c);
	free(a);
	*sysp = s;
	return 0;
fail:
	if (c)
		redisFree(c);
	free(a);
	free(s);
	return rc;
}

static int rd_conn_open(void *sysp, unsigned idx, void **connp, char *err)
{
	(void)idx;
	rd_conn *cn = calloc(1, sizeof(*cn));
	if (!cn) {
		rd_errf(err, "redis: out of memory");
		return -ENOMEM;
	}
	cn->sys = sysp;
	if (!(cn->c = rd_connect(cn->sys, err))) {
		free(cn);
		return -ECONNREFUSED;
	}
	*connp = cn;
	return 0;
}

static void rd_conn_close(void *connp)
{
	rd_conn *cn = connp;
	if (cn->c)
		redisFree(cn->c);
	free(cn);
}

/* Appends EVALSHA of req's script with its keys and arguments to args.
 * Returns 0, or -EINVAL for a request no script can carry (the request is
 * then answered LG_ERROR without a round trip). */
static int rd_build(const rd_sys *s, const lg_req *q, rd_args *a)
{
	uint32_t e = q->event;
	rd_args_reset(a);
	rd_arg_str(a, "EVALSHA");
	rd_arg_str(a, s->sha[q->op]);
	switch (q->op) {
	case LG_READ:
		rd_arg_str(a, "4");
		rd_arg(a, "bo:{%" PRIu32 "}:held", e);
		rd_arg(a, "bo:{%" PRIu32 "}:free", e);
		rd_arg(a, "bo:{%" PRIu32 "}:booked", e);
		rd_arg(a, "bo:{%" PRIu32 "}:cap", e);
		rd_arg(a, "bo:{%" PRIu32 "}:s:", e);
		return 0;
	case LG_HOLD_BEST: {
		if (q->n == 0 || q->n > LG_SEATS_MAX || q->category >= s->categories)
			return -EINVAL;
		uint64_t band = (uint64_t)s->rows_per_band * s->per_row;
		uint64_t lo = q->category * band, hi = lo + band;
		if (hi > s->seats)
			hi = s->seats;
		if (lo >= hi)
			return -EINVAL;
		rd_arg_str(a, "2");
		rd_arg(a, "bo:{%" PRIu32 "}:held", e);
		rd_arg(a, "bo:{%" PRIu32 "}:free", e);
		rd_arg(a, "%" PRIu64, q->request_id);
		rd_arg(a, "%" PRIu32, q->ttl_ms);
		rd_arg(a, "%u", (unsigned)q->n);
		rd_arg(a, "%" PRIu64, lo);
		rd_arg(a, "%" PRIu64, hi - 1);
		rd_arg(a, "%" PRIu32, s->per_row);
		rd_arg(a, "bo:{%" PRIu32 "}:s:", e);
		return 0;
	}
	case LG_HOLD_SEATS:
	case LG_CONFIRM:
	case LG_RELEASE:
		break;
	default:
		assert(!"unknown op");
	}
	if (q->n == 0 || q->n > LG_SEATS_MAX)
		return -EINVAL;
	/* A seat named twice would be counted twice by the scripts. */
	for (unsigned i = 0; i < q->n; i++)
		for (unsigned j = i + 1; j < q->n; j++)
			if (q->seat[i] == q->seat[j])
				return -EINVAL;
	rd_arg(a, "%u", (unsigned)q->n + 2);
	for (unsigned i = 0; i < q->n; i++)
		rd_arg(a, "bo:{%" PRIu32 "}:s:%" PRIu32, e, q->seat[i]);
	rd_arg(a, "bo:{%" PRIu32 "}:held", e);
	rd_arg(a, q->op == LG_CONFIRM ? "bo:{%" PRIu32 "}:booked" : "bo:{%" PRIu32 "}:free", e);
	rd_arg(a, "%" PRIu64, q->op == LG_HOLD_SEATS ? q->request_id : q->claim);
	if (q->op == LG_HOLD_SEATS)
		rd_arg(a, "%" PRIu32, q->ttl_ms);
	for (unsigned i = 0; i < q->n; i++)
		rd_arg(a, "%" PRIu32, q->seat[i]);
	return 0;
}

/* An error reply: BUSY/LOADING are the server shedding work; anything
 * else is a bug here or in a script, printed once so it gets noticed. */
static uint8_t rd_error_outcome(rd_conn *cn, const redisReply *r)
{
	if (strncmp(r->str, "BUSY", 4) == 0 || strncmp(r->str, "LOADING", 7) == 0)
		return LG_BUSY;
	if (strncmp(r->str, "NOSCRIPT", 8) == 0)
		cn->reload = 1;
	if (atomic_exchange(&cn->sys->error_told, 1) == 0)
		fprintf(stderr, "redis: error reply (first of the run): %s\n", r->str);
	return LG_ERROR;
}

/* Fills q's outcome and outputs from its script's reply. */
static void rd_parse(rd_conn *cn, lg_req *q, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		q->outcome = rd_error_outcome(cn, r);
		return;
	}
	q->outcome = LG_ERROR;
	switch (q->op) {
	case LG_READ:
		if (r->type == REDIS_REPLY_INTEGER) {
			q->avail_out = r->integer;
			q->outcome = LG_OK;
		}
		return;
	case LG_HOLD_SEATS:
		if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1))
			return;
		q->outcome = r->integer ? LG_OK : LG_TAKEN;
		if (r->integer) {
			q->claim_out = q->request_id;
			q->nseats_out = q->n;
			memcpy(q->seat_out, q->seat, q->n * sizeof(q->seat[0]));
		}
		return;
	case LG_HOLD_BEST:
		if (r->type != REDIS_REPLY_ARRAY)
			return;
		if (r->elements == 0) {
			q->outcome = LG_TAKEN;
			return;
		}
		if (r->elements != q->n)
			return;
		for (size_t i = 0; i < r->elements; i++) {
			if (r->element[i]->type != REDIS_REPLY_INTEGER)
				return;
			q->seat_out[i] = (uint32_t)r->element[i]->integer;
		}
		q->nseats_out = q->n;
		q->claim_out = q->request_id;
		q->outcome = LG_OK;
		return;
	case LG_CONFIRM:
	case LG_RELEASE:
		if (r->type == REDIS_REPLY_INTEGER && (r->integer == 0 || r->integer == 1))
			q->outcome = r->integer ? LG_OK : LG_EXPIRED;
		return;
	default:
		assert(!"unknown op");
	}
}

/* Drops a broken connection; the next exec reconnects. */
static void rd_lose(rd_conn *cn)
{
	redisFree(cn->c);
	cn->c = NULL;
}

/* Reconnects (and reloads the scripts when needed). 0, or -1 when the
 * server is still unreachable or not ready (LOADING refuses SCRIPT LOAD),
 * after a pause: a refused connect returns at once, and a closed loop
 * would otherwise spin, reporting a flood of instant no-answers instead of
 * the outage's length. */
static int rd_ready(rd_conn *cn)
{
	char err[LG_ERR_LEN];
	if (!cn->c) {
		if (!(cn->c = rd_connect(cn->sys, err)))
			goto pause;
		cn->reload = 1;
	}
	if (cn->reload) {
		/* Every connection loads the same scripts, so their SHA1s are
		 * the ones setup stored: only the server's cache needs them. */
		char sha[LG_OP_COUNT][41];
		if (rd_load_scripts(cn->c, sha, err) < 0) {
			rd_lose(cn);
			goto pause;
		}
		cn->reload = 0;
	}
	return 0;
pause:;
	struct timespec ts = {0, RD_RECONNECT_PAUSE_MS * 1000000L};
	nanosleep(&ts, NULL);
	return -1;
}

static void rd_exec(void *connp, lg_req *reqs, unsigned n)
{
	rd_conn *cn = connp;
	assert(n >= 1);
	for (unsigned i = 0; i < n; i++) {
		reqs[i].outcome = LG_NO_ANSWER;
		reqs[i].nseats_out = 0;
		reqs[i].claim_out = 0;
	}
	if (rd_ready(cn) < 0)
		return;
	/* A request no script can carry is answered LG_ERROR here and not
	 * sent; every other one stays LG_NO_ANSWER until its reply is read. */
	for (unsigned i = 0; i < n; i++) {
		if (rd_build(cn->sys, &reqs[i], &cn->args) < 0) {
			reqs[i].outcome = LG_ERROR;
			continue;
		}
		if (redisAppendCommandArgv(cn->c, cn->args.argc, cn->args.argv, cn->args.len) !=
		    REDIS_OK) {
			rd_lose(cn);
			return;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (reqs[i].outcome == LG_ERROR)
			continue;
		redisReply *r;
		if (redisGetReply(cn->c, (void **)&r) != REDIS_OK) {
			/* The rest stay LG_NO_ANSWER. */
			rd_lose(cn);
			return;
		}
		rd_parse(cn, &reqs[i], r);
		freeReplyObject(r);
	}
}

/* Counts the seat keys of one SCAN batch by value: their GETs go out as
 * one pipeline, then the replies are read. */
static int rd_audit_batch(redisContext *c, const lg_config *cfg, const redisReply *keys,
                          int64_t *booked, int64_t *held, char *err)
{
	size_t pending = 0;
	for (size_t i = 0; i < keys->elements; i++) {
		const char *k = keys->element[i]->str;
		uint32_t e, seat;
		int end = 0;
		if (sscanf(k, "bo:{%" SCNu32 "}:s:%" SCNu32 "%n", &e, &seat, &end) != 2 ||
		    k[end] != '\0' || e >= cfg->events)
			continue;
		redisAppendCommand(c, "GET %s", k);
		pending++;
	}
	for (size_t i = 0; i < pending; i++) {
		redisReply *r;
		if (redisGetReply(c, (void **)&r) != REDIS_OK) {
			rd_errf(err, "redis: audit: %s", c->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_STRING && strncmp(r->str, "b:", 2) == 0)
			(*booked)++;
		else if (r->type == REDIS_REPLY_STRING && strncmp(r->str, "h:", 2) == 0)
			(*held)++;
		freeReplyObject(r);
	}
	return 0;
}

static int rd_audit(void *sysp, const lg_config *cfg, lg_audit *out, char *err)
{
	rd_sys *s = sysp;
	redisContext *c = rd_connect(s, err);
	if (!c)
		return -EIO;
	int64_t booked = 0, held = 0, counted = 0;
	char cursor[32] = "0";
	int rc = 0;
	do {
		redisReply *r = rd_call(c, REDIS_REPLY_ARRAY, err,
		                        "SCAN %s MATCH bo:{*}:s:* COUNT %s", cursor, RD_SCAN_COUNT);
		if (!r) {
			rc = -EIO;
			break;
		}
		if (r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			rd_errf(err, "redis: audit: SCAN answered an unexpected shape");
			freeReplyObject(r);
			rc = -EPROTO;
			break;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		rc = rd_audit_batch(c, cfg, r->element[1], &booked, &held, err);
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	for (uint32_t e = 0; rc == 0 && e < cfg->events; e++) {
		redisReply *r = redisCommand(c, "GET bo:{%" PRIu32 "}:booked", e);
		if (!r) {
			rd_errf(err, "redis: audit: %s", c->errstr);
			rc = -EIO;
			break;
		}
		if (r->type == REDIS_REPLY_STRING)
			counted += strtoll(r->str, NULL, 10);
		freeReplyObject(r);
	}
	redisFree(c);
	if (rc < 0)
		return rc;
	out->nfigs = 3;
	snprintf(out->figs[0].name, sizeof(out->figs[0].name), "redis_booked");
	out->figs[0].value = booked;
	snprintf(out->figs[1].name, sizeof(out->figs[1].name), "redis_held");
	out->figs[1].value = held;
	snprintf(out->figs[2].name, sizeof(out->figs[2].name), "redis_counter_booked");
	out->figs[2].value = counted;
	return 0;
}

static void rd_teardown(void *sysp)
{
	free(sysp);
}

const lg_system lg_sys_redis = {
        .name = "redis",
        .ops = (1u << LG_READ) | (1u << LG_HOLD_SEATS) | (1u << LG_HOLD_BEST) | (1u << LG_CONFIRM) |
               (1u << LG_RELEASE),
        .setup = rd_setup,
        .conn_open = rd_conn_open,
        .exec = rd_exec,
        .conn_close = rd_conn_close,
        .audit = rd_audit,
        .teardown = rd_teardown,
};
