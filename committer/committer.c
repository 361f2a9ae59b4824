/*
 * committer.c — one thread per shard: journal follower -> changes -> one
 * PostgreSQL transaction per batch (see committer.h).
 *
 * Every session starts from the database: connect, migrate, read the
 * checkpoint, load the active holds, open a follower after the
 * checkpoint. Any failure ends the session; a transient one starts a new
 * session after a backoff, so whatever a failed or uncertain transaction
 * did or did not do, the next session sees the truth in the database (the
 * checkpoint moves in the batch's own transaction) and goes on from there.
 */
#include "committer/committer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "committer/changes.h"
#include "committer/pgstore.h"
#include "shard/follower.h"

struct committer {
	shard *s;
	uint32_t shard_id;
	committer_config cfg;
	char *dsn, *channel;
	pthread_t thread;
	atomic_int stop;
	/* Wakes a backoff sleep early on stop. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	/* The status, under lock. */
	committer_status st;
	int64_t oldest_unapplied_ms; /* timestamp of the first record read since the last commit; 0: none */
};

const char *committer_state_str(int state)
{
	static const char *const n[COMMITTER_STATE_COUNT] = {"starting", "running", "retrying", "stopped"};
	return state >= 0 && state < COMMITTER_STATE_COUNT ? n[state] : "?";
}

void committer_config_default(committer_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->batch_records = 8192;
	cfg->batch_ms = 10;
	cfg->retry_min_ms = 100;
	cfg->retry_max_ms = 5000;
	cfg->notify_channel = "boxoffice_inventory";
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Moves to `state`, logging only when the state changes. */
static void set_state(committer *c, int state, const char *reason)
{
	pthread_mutex_lock(&c->lock);
	int changed = c->st.state != state;
	c->st.state = state;
	snprintf(c->st.reason, sizeof(c->st.reason), "%s", reason ? reason : "");
	/* The reason goes into key="value" log lines and JSON: no double quotes
	 * or control characters (PostgreSQL quotes names with them). */
	for (char *ch = c->st.reason; *ch; ch++)
		if (*ch == '"')
			*ch = '\'';
		else if ((unsigned char)*ch < 0x20)
			*ch = ' ';
	uint64_t applied = c->st.applied_seq;
	char why[COMMITTER_REASON_LEN];
	memcpy(why, c->st.reason, sizeof(why));
	pthread_mutex_unlock(&c->lock);
	if (!changed)
		return;
	if (state == COMMITTER_RUNNING)
		bo_log(BO_LOG_INFO, "shard=%u msg=\"committer running\" applied_seq=%" PRIu64, c->shard_id, applied);
	else if (state == COMMITTER_RETRYING)
		bo_log(BO_LOG_WARN, "shard=%u msg=\"committer retrying: database unavailable\" applied_seq=%" PRIu64
		       " reason=\"%s\"", c->shard_id, applied, why);
	else if (state == COMMITTER_STOPPED && why[0])
		bo_log(BO_LOG_ERROR, "shard=%u msg=\"committer stopped; the shard keeps serving\" applied_seq=%" PRIu64
		       " reason=\"%s\"", c->shard_id, applied, why);
}

/* Sleeps up to ms unless stop is asked. */
static void backoff_sleep(committer *c, uint32_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->stop) && pthread_cond_timedwait(&c->wake, &c->lock, &until) != ETIMEDOUT) {
	}
	pthread_mutex_unlock(&c->lock);
}

/* Session outcomes. SESSION_AGAIN: another committer moved the checkpoint
 * (committer_config.shared): start again from it at once, no backoff. */
enum { SESSION_DONE = 0, SESSION_RETRY = 1, SESSION_FATAL = 2, SESSION_AGAIN = 3 };

static int pg_fail(const pgs_err *e, char *reason, size_t cap)
{
	snprintf(reason, cap, "%s", e->msg);
	return e->retry ? SESSION_RETRY : SESSION_FATAL;
}

/* Commits the gathered batch; on success the database, the status and the
 * shard's retention floor all move to its last record. */
static int commit_batch(committer *c, pgstore *pg, chg_state *cs, uint64_t *applied, char *reason, size_t cap)
{
	const chg_batch *b = chg_get_batch(cs);
	/* The follower hands out released records only, and the released
	 * sequence never goes back: what reaches the database is on every
	 * in-sync copy, so no failover can take it back (a cut of a rejoining
	 * copy stays after it: gateway/node.c checks that side). */
	assert(b->last_seq <= shard_released_seq(c->s));
	pgs_err e;
	if (pgs_apply(pg, c->shard_id, *applied, b, c->channel, &e) < 0) {
		if (e.moved && c->cfg.shared) {
			snprintf(reason, cap, "%s", e.msg);
			return SESSION_AGAIN;
		}
		return pg_fail(&e, reason, cap);
	}
	*applied = b->last_seq;
	shard_retain(c->s, b->last_seq);
	int64_t now = wall_ms();
	pthread_mutex_lock(&c->lock);
	c->st.applied_seq = b->last_seq;
	c->st.carried_seq = b->last_seq;
	c->st.batches++;
	c->st.changes += b->changes.n;
	c->st.outbox += b->outbox.n;
	c->st.last_commit_ms = (uint64_t)now;
	c->oldest_unapplied_ms = 0;
	pthread_mutex_unlock(&c->lock);
	if (c->cfg.on_commit) {
		committer_commit info = {.shard_id = c->shard_id,
					 .first_seq = b->first_seq,
					 .last_seq = b->last_seq,
					 .records = b->records,
					 .changes = b->changes.n,
					 .outbox = b->outbox.n,
					 .lag_ms = now > b->first_ms ? (uint64_t)(now - b->first_ms) : 0};
		c->cfg.on_commit(c->cfg.on_commit_ctx, &info);
	}
	chg_batch_clear(cs);
	return -1; /* go on */
}

/* Reads durable records into the batch until it is full, batch_ms passed
 * since its first record, or the follower is caught up (*idle). Returns -1
 * to go on, or a session outcome; *valid is cleared when the batch must
 * not be committed (a record did not translate: the batch may hold part
 * of it). A journal that ends (the shard failed) or breaks leaves the
 * records before it valid. */
static int fill_batch(committer *c, follower *f, chg_state *cs, int *idle, int *valid, char *reason, size_t cap)
{
	const chg_batch *b = chg_get_batch(cs);
	uint64_t started = 0;
	*idle = 0;
	*valid = 1;
	while (b->records < c->cfg.batch_records) {
		uint32_t timeout = 100;
		if (atomic_load(&c->stop))
			timeout = 0;
		else if (b->records > 0) {
			uint64_t waited = (bo_clock_ns() - started) / 1000000u;
			timeout = waited >= c->cfg.batch_ms ? 0 : c->cfg.batch_ms - (uint32_t)waited;
		}
		journal_record rec;
		int rc = follower_next(f, &rec, timeout);
		if (rc == 0) {
			*idle = 1;
			return -1;
		}
		if (rc < 0) {
			snprintf(reason, cap, "journal: %s", follower_error(f));
			return rc == -ENOMEM ? SESSION_RETRY : SESSION_FATAL;
		}
		if (b->records == 0) {
			started = bo_clock_ns();
			pthread_mutex_lock(&c->lock);
			if (c->oldest_unapplied_ms == 0)
				c->oldest_unapplied_ms = rec.timestamp_ms;
			pthread_mutex_unlock(&c->lock);
		}
		char err[192];
		rc = chg_record(cs, &rec, err, sizeof(err));
		if (rc < 0) {
			*valid = 0;
			snprintf(reason, cap, "journal record %" PRIu64 " (%s offset %" PRIu64 "): %s", rec.seq, rec.file,
				 rec.offset, rc == -ENOMEM ? "out of memory" : err);
			return rc == -ENOMEM ? SESSION_RETRY : SESSION_FATAL;
		}
	}
	return -1;
}

/* Opens the follower after the checkpoint; its failures are fatal (the
 * database and the journal disagree). */
static int open_follower(committer *c, uint64_t applied, follower **f, char *reason, size_t cap)
{
	char err[JOURNAL_ERR_LEN];
	int rc = follower_open_released(c->s, applied, f, err, sizeof(err));
	if (rc == 0)
		return -1;
	if (rc == -ERANGE)
		snprintf(reason, cap,
			 "the database's checkpoint (%" PRIu64 ") is ahead of this shard's journal (durable %" PRIu64
			 "): the database was written from another journal%s",
			 applied, shard_durable_seq(c->s),
			 c->cfg.shared ? " (in a cluster: another node's committer carried this shard further; "
					 "this node is no longer its primary, or was promoted unsafely)"
				       : "");
	else
		snprintf(reason, cap, "journal: %.200s", err);
	return rc == -ENOMEM ? SESSION_RETRY : SESSION_FATAL;
}

/* Connects and loads the position: pg and cs are the caller's to free. */
static int session_start(committer *c, pgstore **pg, chg_state **cs, uint64_t *applied, char *reason, size_t cap)
{
	pgs_err e;
	uint64_t outbox = 0;
	/* The checkpoint and the holds active at it from one snapshot: another
	 * server's committer may commit in between (a cluster's failover). */
	if (pgs_connect(c->dsn, pg, &e) < 0 || pgs_migrate(*pg, &e) < 0 || pgs_snapshot_begin(*pg, &e) < 0 ||
	    pgs_checkpoint(*pg, c->shard_id, applied, &outbox, &e) < 0)
		return pg_fail(&e, reason, cap);
	if (chg_new(c->shard_id, cs) != 0) {
		snprintf(reason, cap, "out of memory");
		return SESSION_RETRY;
	}
	chg_position(*cs, *applied, outbox);
	if (pgs_load_holds(*pg, c->shard_id, *cs, &e) < 0 || pgs_snapshot_end(*pg, &e) < 0)
		return pg_fail(&e, reason, cap);
	pthread_mutex_lock(&c->lock);
	c->st.applied_seq = *applied;
	pthread_mutex_unlock(&c->lock);
	return -1;
}

static int session(committer *c, char *reason, size_t cap)
{
	pgstore *pg = NULL;
	chg_state *cs = NULL;
	follower *f = NULL;
	uint64_t applied = 0;
	int rc = session_start(c, &pg, &cs, &applied, reason, cap);
	if (rc < 0)
		rc = open_follower(c, applied, &f, reason, cap);
	if (rc < 0)
		shard_retain(c->s, applied);
	/* "running" once a batch committed or there was nothing to commit: a
	 * database that accepts connections but fails every batch stays
	 * "retrying" (one log line), not running/retrying per attempt. */
	int healthy = 0;
	while (rc < 0) {
		int idle = 0, valid = 1, committed = 0;
		int frc = fill_batch(c, f, cs, &idle, &valid, reason, cap);
		if (valid && chg_get_batch(cs)->records > 0) {
			char why[COMMITTER_REASON_LEN];
			int crc = commit_batch(c, pg, cs, &applied, why, sizeof(why));
			if (crc >= 0) {
				snprintf(reason, cap, "%s", why);
				rc = crc;
				break;
			}
			committed = 1;
		}
		if ((idle || committed) && !healthy) {
			set_state(c, COMMITTER_RUNNING, NULL);
			healthy = 1;
		}
		if (frc >= 0)
			rc = frc;
		else if (idle && atomic_load(&c->stop))
			rc = SESSION_DONE;
	}
	follower_close(f);
	chg_free(cs);
	pgs_close(pg);
	return rc;
}

static void *run(void *arg)
{
	committer *c = arg;
	uint32_t backoff = c->cfg.retry_min_ms;
	char reason[COMMITTER_REASON_LEN];
	for (;;) {
		reason[0] = '\0';
		int rc = session(c, reason, sizeof(reason));
		if (rc == SESSION_DONE) {
			set_state(c, COMMITTER_STOPPED, NULL);
			break;
		}
		if (rc == SESSION_FATAL) {
			set_state(c, COMMITTER_STOPPED, reason);
			break;
		}
		if (rc == SESSION_AGAIN) {
			/* Not a fault of the database: the other committer carried
			 * the same records (committer_config.shared). Counted as a
			 * retried attempt all the same. */
			pthread_mutex_lock(&c->lock);
			c->st.retries++;
			pthread_mutex_unlock(&c->lock);
			bo_log(BO_LOG_INFO, "shard=%u msg=\"committer: checkpoint moved by another committer, "
			       "starting again from the database's\" reason=\"%s\"", c->shard_id, reason);
			if (atomic_load(&c->stop))
				break;
			continue;
		}
		pthread_mutex_lock(&c->lock);
		int was_running = c->st.state == COMMITTER_RUNNING;
		c->st.retries++;
		pthread_mutex_unlock(&c->lock);
		if (was_running)
			backoff = c->cfg.retry_min_ms;
		set_state(c, COMMITTER_RETRYING, reason);
		if (atomic_load(&c->stop))
			break; /* the database is away: do not hold shutdown up */
		backoff_sleep(c, backoff);
		if (atomic_load(&c->stop))
			break;
		backoff = backoff * 2 > c->cfg.retry_max_ms ? c->cfg.retry_max_ms : backoff * 2;
	}
	return NULL;
}

/* A NOTIFY channel is an SQL identifier written into the statement: only
 * lower-case letters, digits and '_', not starting with a digit. */
static int channel_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

int committer_start(shard *s, const committer_config *cfg, committer **out, char *err, size_t errlen)
{
	assert(s && cfg && out);
	const shard_config *sc = shard_get_config(s);
	if (!cfg->dsn || !*cfg->dsn)
		return snprintf(err, errlen, "no database DSN"), -EINVAL;
	if (!sc->data_dir)
		return snprintf(err, errlen, "shard %u has no journal", sc->id), -EINVAL;
	if (cfg->batch_records == 0 || cfg->batch_ms == 0 || cfg->retry_min_ms == 0 ||
	    cfg->retry_max_ms < cfg->retry_min_ms)
		return snprintf(err, errlen, "bad committer batch or retry settings"), -EINVAL;
	if (!cfg->notify_channel || !channel_ok(cfg->notify_channel))
		return snprintf(err, errlen, "bad NOTIFY channel name (lower-case letters, digits, '_')"), -EINVAL;
	committer *c = calloc(1, sizeof(*c));
	if (!c || !(c->dsn = strdup(cfg->dsn)) || !(c->channel = strdup(cfg->notify_channel))) {
		if (c) {
			free(c->dsn);
			free(c);
		}
		return snprintf(err, errlen, "out of memory"), -ENOMEM;
	}
	c->s = s;
	c->shard_id = sc->id;
	c->cfg = *cfg;
	c->cfg.dsn = c->dsn;
	c->cfg.notify_channel = c->channel;
	c->st.shard_id = sc->id;
	c->st.state = COMMITTER_STARTING;
	atomic_init(&c->stop, 0);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&c->thread, NULL, run, c);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the committer thread: %s", strerror(rc));
		pthread_cond_destroy(&c->wake);
		pthread_mutex_destroy(&c->lock);
		free(c->channel);
		free(c->dsn);
		free(c);
		return -rc;
	}
	*out = c;
	return 0;
}

void committer_status_get(const committer *cc, committer_status *out)
{
	committer *c = (committer *)cc;
	uint64_t durable = shard_durable_seq(c->s);
	int64_t now = wall_ms();
	pthread_mutex_lock(&c->lock);
	*out = c->st;
	int64_t oldest = c->oldest_unapplied_ms;
	pthread_mutex_unlock(&c->lock);
	out->durable_seq = durable;
	out->lag_records = durable > out->applied_seq ? durable - out->applied_seq : 0;
	out->lag_ms = out->lag_records && oldest && now > oldest ? (uint64_t)(now - oldest) : 0;
}

void committer_stop(committer *c) { committer_finish(c, NULL); }

void committer_finish(committer *c, committer_status *last)
{
	if (last)
		memset(last, 0, sizeof(*last));
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stop, 1);
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	if (last)
		committer_status_get(c, last);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c->channel);
	free(c->dsn);
	free(c);
}
