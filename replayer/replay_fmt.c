/*
 * replay_fmt.c — printing records and values (formats in replay_fmt.h).
 */
#include "replay_fmt.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "base/json.h"
#include "base/names.h"

const char *replay_fmt_detail_token(int detail)
{
	const char *name = bo_detail_name(detail);
	return name ? name : "unknown";
}

void replay_fmt_time(int64_t ms, char *buf, size_t len)
{
	/* Floor division, so times before 1970 still print (a hostile or
	 * corrupted timestamp must print, not crash or wrap). */
	int64_t sec = ms / 1000, rem = ms % 1000;
	if (rem < 0) {
		rem += 1000;
		sec -= 1;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "@%" PRId64 "ms", ms);
		return;
	}
	char date[32];
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", date, (int)rem);
}

static void seat_list(FILE *f, const uint32_t *seats, uint32_t n, int json)
{
	if (json)
		fputc('[', f);
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, "%s%" PRIu32, i ? "," : "", seats[i]);
	if (json)
		fputc(']', f);
}

/* The command's essentials: only the fields its op uses. */
static void cmd_fields(FILE *f, const bo_cmd *c, const bo_seatmap *map, int json)
{
	const char *sep = json ? "," : " ";
	const char *eq = json ? "\":" : "=";
	const char *q = json ? "\"" : "";
	uint32_t n = c->seat_count <= BO_SEATS_PER_HOLD_MAX ? c->seat_count : BO_SEATS_PER_HOLD_MAX;
	switch (c->op) {
	case BO_OP_CREATE_EVENT:
		if (map)
			fprintf(f,
			        "%s%srows%s%" PRIu32 "%s%sseats%s%" PRIu32 "%s%spools%s%" PRIu32
			        "%s%scategories%s%" PRIu32,
			        sep, q, eq, map->row_count, sep, q, eq, map->seat_count, sep, q, eq,
			        map->pool_count, sep, q, eq, map->category_count);
		else
			fprintf(f, "%s%smap%s%s", sep, q, eq, json ? "null" : "none");
		break;
	case BO_OP_HOLD_SEATS:
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		fprintf(f, "%s%sseats%s", sep, q, eq);
		seat_list(f, c->seats, n, json);
		if (c->op == BO_OP_HOLD_SEATS)
			fprintf(f, "%s%sttl_ms%s%" PRIu32, sep, q, eq, c->ttl_ms);
		break;
	case BO_OP_HOLD_BEST:
		fprintf(f, "%s%scategory%s%u%s%sqty%s%u%s%sttl_ms%s%" PRIu32, sep, q, eq,
		        c->category, sep, q, eq, c->quantity, sep, q, eq, c->ttl_ms);
		break;
	case BO_OP_HOLD_POOL:
		fprintf(f, "%s%spool%s%u%s%sqty%s%u%s%sttl_ms%s%" PRIu32, sep, q, eq, c->pool, sep,
		        q, eq, c->quantity, sep, q, eq, c->ttl_ms);
		break;
	case BO_OP_EXTEND:
		fprintf(f, json ? ",\"claim\":%" PRIu64 : " claim=%#" PRIx64, c->claim_id);
		fprintf(f, "%s%sttl_ms%s%" PRIu32, sep, q, eq, c->ttl_ms);
		break;
	case BO_OP_CONFIRM: {
		fprintf(f, json ? ",\"claim\":%" PRIu64 : " claim=%#" PRIx64, c->claim_id);
		uint32_t pl =
		        c->payref_len <= BO_PAYREF_LEN_MAX ? c->payref_len : BO_PAYREF_LEN_MAX;
		fprintf(f, "%s%spayref%s", sep, q, eq);
		bo_json_str(f, c->payref, pl);
		break;
	}
	case BO_OP_RELEASE:
	case BO_OP_CANCEL:
		fprintf(f, json ? ",\"claim\":%" PRIu64 : " claim=%#" PRIx64, c->claim_id);
		break;
	default:
		break;
	}
	/* Who may touch the claim beyond its own client (engine.h,
	 * "Ownership"); only when set, so other lines read as they did. */
	if (c->flags & BO_CMD_F_OPERATOR)
		fprintf(f, "%s%soperator%strue", sep, q, eq);
	if (c->flags & BO_CMD_F_ANY_CLIENT)
		fprintf(f, "%s%sany_client%strue", sep, q, eq);
}

static void result_human(FILE *f, const bo_result *r)
{
	char t[REPLAY_FMT_TIME_LEN];
	uint32_t n = r->seat_count <= BO_SEATS_PER_HOLD_MAX ? r->seat_count : BO_SEATS_PER_HOLD_MAX;
	if (r->status != BO_OK) {
		fprintf(f, " -> %s/%s", bo_status_str(r->status),
		        replay_fmt_detail_token(r->detail));
		if (n > 0)
			fprintf(f, " seat=%" PRIu32, r->seats[0]);
	} else {
		fprintf(f, " -> ok");
		if (r->claim_id != 0)
			fprintf(f, " claim=%#" PRIx64, r->claim_id);
		if (n > 0) {
			fputs(" seats=", f);
			seat_list(f, r->seats, n, 0);
		}
		if (r->op == BO_OP_HOLD_POOL)
			fprintf(f, " pool=%u", r->pool);
		if (r->quantity != 0)
			fprintf(f, " qty=%" PRIu32, r->quantity);
		if (r->expires_at_ms != 0) {
			replay_fmt_time(r->expires_at_ms, t, sizeof t);
			fprintf(f, " expires=%s", t);
		}
	}
	if (r->replayed)
		fputs(" replayed", f);
}

static void result_json(FILE *f, const bo_result *r)
{
	uint32_t n = r->seat_count <= BO_SEATS_PER_HOLD_MAX ? r->seat_count : BO_SEATS_PER_HOLD_MAX;
	fprintf(f, ",\"result\":{\"status\":\"%s\",\"detail\":\"%s\"", bo_status_str(r->status),
	        replay_fmt_detail_token(r->status == BO_OK ? BO_D_NONE : r->detail));
	fprintf(f, ",\"claim\":%" PRIu64 ",\"seats\":", r->claim_id);
	seat_list(f, r->seats, n, 1);
	fprintf(f, ",\"qty\":%" PRIu32, r->quantity);
	if (r->op == BO_OP_HOLD_POOL && r->status == BO_OK)
		fprintf(f, ",\"pool\":%u", r->pool);
	if (r->expires_at_ms != 0) {
		char t[REPLAY_FMT_TIME_LEN];
		replay_fmt_time(r->expires_at_ms, t, sizeof t);
		fprintf(f, ",\"expires_ms\":%" PRId64 ",\"expires\":\"%s\"", r->expires_at_ms, t);
	}
	fprintf(f, ",\"replayed\":%s}", r->replayed ? "true" : "false");
}

void replay_fmt_record(FILE *f, uint32_t shard, const journal_record *rec, const entry *en,
                       const bo_seatmap *map, int json)
{
	assert(f && rec && en);
	char t[REPLAY_FMT_TIME_LEN];
	replay_fmt_time(rec->timestamp_ms, t, sizeof t);
	const char *kind = en->kind == ENTRY_TICK ? "tick" : en->kind == ENTRY_EPOCH ? "epoch" : "command";
	if (json) {
		fprintf(f,
		        "{\"shard\":%" PRIu32 ",\"seq\":%" PRIu64 ",\"ts_ms\":%" PRId64
		        ",\"time\":\"%s\",\"kind\":\"%s\"",
		        shard, rec->seq, rec->timestamp_ms, t, kind);
		if (en->kind == ENTRY_COMMAND) {
			const bo_cmd *c = &en->cmd;
			fprintf(f,
			        ",\"op\":\"%s\",\"client\":%" PRIu64 ",\"request\":%" PRIu64
			        ",\"event\":%" PRIu64 ",\"cmd\":{",
			        bo_op_str(c->op), c->client_id, c->request_id, c->event_id);
			/* cmd_fields writes ",key:value" pairs: the object
			 * opens with the op so they always follow a member. */
			fprintf(f, "\"op\":\"%s\"", bo_op_str(c->op));
			cmd_fields(f, c, map, 1);
			fputc('}', f);
			result_json(f, &en->res);
		} else if (en->kind == ENTRY_EPOCH) {
			fprintf(f, ",\"epoch\":%" PRIu64, en->epoch);
		}
		fputs(",\"file\":", f);
		bo_json_cstr(f, rec->file ? rec->file : "");
		fprintf(f, ",\"offset\":%" PRIu64 ",\"payload_bytes\":%" PRIu32 "}\n", rec->offset,
		        rec->payload_len);
		return;
	}
	fprintf(f, "shard=%" PRIu32 " seq=%" PRIu64 " time=%s kind=%s", shard, rec->seq, t, kind);
	if (en->kind == ENTRY_COMMAND) {
		const bo_cmd *c = &en->cmd;
		fprintf(f, " op=%s client=%" PRIu64 " request=%" PRIu64 " event=%" PRIu64,
		        bo_op_str(c->op), c->client_id, c->request_id, c->event_id);
		cmd_fields(f, c, map, 0);
		result_human(f, &en->res);
	} else if (en->kind == ENTRY_EPOCH) {
		fprintf(f, " epoch=%" PRIu64, en->epoch);
	}
	fputc('\n', f);
}
