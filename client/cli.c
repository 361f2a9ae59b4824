/*
 * cli.c — boxoffice-cli: one command to a boxoffice server, one answer out.
 *
 * Built on the client library's synchronous boc_call with batching off
 * (linger 0, one command per message): a person or a script waits for
 * this one answer, there is nothing to coalesce it with.
 *
 * Exit codes (EXIT_* below) let scripts tell apart "the server said no"
 * (1) from "wrong arguments" (2) and "no answer" (3), which is the
 * difference between "do not retry" and "retry with the same --client and
 * --request" (the server's idempotency window makes that safe).
 *
 * Output: one human line (or a few, for status) on stdout; --json prints
 * one JSON object per reply on stdout instead. Errors about arguments and
 * connections go to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/parse.h"
#include "base/tokenfile.h"
#include "boxoffice.h"

enum {
	EXIT_OK = 0,        /* the server answered ok */
	EXIT_REFUSED = 1,   /* the server answered, not ok (status printed) */
	EXIT_USAGE = 2,     /* bad arguments, unreadable map file */
	EXIT_NO_ANSWER = 3, /* unreachable, timeout, protocol error */
};

#define CLI_URL_DEFAULT "tcp://127.0.0.1:7400"
#define CLI_TTL_MS_DEFAULT 600000u /* ten minutes: a typical checkout */
#define CLI_POOLS_MAX BO_POOLS_PER_EVENT_MAX

static const char *const usage_main =
        "usage: boxoffice-cli [OPTIONS] COMMAND [ARGS]\n"
        "\n"
        "Sends one command to a boxoffice server and prints its answer.\n"
        "\n"
        "Options (before or after COMMAND):\n"
        "  --url URL        server address (default $BOXOFFICE_URL or " CLI_URL_DEFAULT ")\n"
        "  --server URL     a server of the cluster; give it several times (or a\n"
        "                   comma-separated list, also for --url): commands go to the\n"
        "                   shard's primary, following not_primary answers with the\n"
        "                   same --client/--request, and skip servers that do not answer\n"
        "  --no-retry       ask only the one server given and never resend: a\n"
        "                   not_primary answer is printed as it came (to ask a given\n"
        "                   server what it answers, e.g. a deposed primary)\n"
        "  --json           print the reply as one JSON object\n"
        "  --client ID      client id of mutating commands (default: random per run);\n"
        "                   a hold is its client's: extend, release, confirm and cancel\n"
        "                   act only with the --client that made the hold\n"
        "  --request ID     request id (default: random); repeat the same --client and\n"
        "                   --request to retry a command safely: the server answers a\n"
        "                   repeated request with its first answer\n"
        "  --timeout MS     give up after MS milliseconds (default 5000)\n"
        "  --auth-token-file FILE\n"
        "                   send the server's shared token, read from FILE (one line,\n"
        "                   a file only its owner may read), with every request\n"
        "                   (default $BOXOFFICE_AUTH_TOKEN_FILE; none without either)\n"
        "  -h, --help       this text; COMMAND --help for a command's\n"
        "\n"
        "Commands:\n"
        "  create-event ID  --rows R --seats-per-row N [--categories C] [--pool CAP]...\n"
        "                   | --map FILE\n"
        "  hold ID          --seats LIST | --best N --category C | --pool P --quantity Q\n"
        "                   [--ttl-ms T]\n"
        "  extend ID HOLD   [--ttl-ms T]\n"
        "  release ID HOLD  [--operator]\n"
        "  confirm ID HOLD  --payref REF\n"
        "  cancel ID BOOKING [--operator]\n"
        "  block ID         --seats LIST\n"
        "  unblock ID       --seats LIST\n"
        "  status ID        [--seats LIST]\n"
        "  server-status    the server's shards: durable journal sequence, database\n"
        "                   committer state and lag\n"
        "  cluster          each server's view of the shard map: epoch, role, primary,\n"
        "                   in-sync set, replication lag\n"
        "  switchover SHARD NODE\n"
        "                   move SHARD's primary to NODE (an in-sync standby), with no\n"
        "                   failed request\n"
        "  watch ID         [--pub URL] [--server URL] [--count N] [--timeout-ms MS]\n"
        "                   live availability of event ID: its seats and pools, then\n"
        "                   a line per change, resynchronised when messages are lost\n"
        "                   (--pub default " BOC_SUB_PUB_URL_DEFAULT ")\n"
        "\n"
        "IDs are decimal or 0x-hexadecimal. LIST is seats numbered from 0 in map\n"
        "order, e.g. 12,13,14 or 12-14 (at most 16).\n"
        "\n"
        "A command refused busy or throttled (a hot event) was not applied: the line\n"
        "says when to retry (\"retry in N ms\"; --json: \"retry_after_ms\") and with which\n"
        "--client/--request.\n"
        "\n"
        "Exit status: 0 ok; 1 the server answered but refused (status printed);\n"
        "2 bad arguments; 3 no answer (server unreachable, timeout, protocol error).\n";

static const char *const usage_create =
        "usage: boxoffice-cli create-event ID --rows R --seats-per-row N [--categories C]\n"
        "                                     [--pool CAP]...\n"
        "       boxoffice-cli create-event ID --map FILE\n"
        "\n"
        "Creates event ID. With flags: R rows of N seats in section 0, best row first;\n"
        "the rows are split into C price categories (default 1) from best to worst,\n"
        "category 0 first; each --pool adds a general-admission pool of CAP places.\n"
        "\n"
        "With --map, FILE holds one directive per line ('#' starts a comment):\n"
        "  row SECTION SEATS CATEGORY          one row (rows are listed best first)\n"
        "  rows COUNT SECTION SEATS CATEGORY   COUNT such rows\n"
        "  pool CAPACITY                       a general-admission pool\n"
        "  categories C                        price categories (default: highest\n"
        "                                      category used + 1)\n"
        "Example:\n"
        "  rows 10 1 20 0      # section 1: ten rows of 20 seats, category 0\n"
        "  rows 20 2 30 1\n"
        "  pool 500            # standing area\n";

static const char *const usage_hold =
        "usage: boxoffice-cli hold ID --seats LIST [--ttl-ms T]\n"
        "       boxoffice-cli hold ID --best N --category C [--ttl-ms T]\n"
        "       boxoffice-cli hold ID --pool P --quantity Q [--ttl-ms T]\n"
        "\n"
        "Holds the listed seats (all or nothing), the best N seats of category C, or\n"
        "Q places of pool P, for T milliseconds (default 600000). Prints the hold id\n"
        "that extend, release and confirm take.\n";

static const char *const usage_extend =
        "usage: boxoffice-cli extend ID HOLD [--ttl-ms T]\n"
        "\nMakes hold HOLD of event ID expire T ms from now (default 600000).\n";
static const char *const usage_release =
        "usage: boxoffice-cli release ID HOLD [--operator]\n"
        "\nReleases hold HOLD: its seats are free again. Only the --client that made\n"
        "the hold may release it (any other gets not_found), unless --operator:\n"
        "an operator's release of any client's hold.\n";
static const char *const usage_confirm =
        "usage: boxoffice-cli confirm ID HOLD --payref REF\n"
        "\nTurns hold HOLD into a booking (same id), paid by payment reference REF\n"
        "(at most 32 bytes).\n";
static const char *const usage_cancel =
        "usage: boxoffice-cli cancel ID BOOKING [--operator]\n"
        "\nCancels a booking: its seats are free again. Only the --client that made\n"
        "the booking may cancel it (any other gets not_found), unless --operator:\n"
        "an operator's cancel of any client's booking.\n";
static const char *const usage_block =
        "usage: boxoffice-cli block ID --seats LIST\n"
        "       boxoffice-cli unblock ID --seats LIST\n"
        "\nTakes free seats off sale (block) or puts blocked seats back on sale (unblock).\n";
static const char *const usage_status =
        "usage: boxoffice-cli status ID [--seats LIST]\n"
        "\nPrints the availability of event ID (seats per state, free seats per\n"
        "category, pools), or the state of the listed seats.\n";

static const char *const usage_server_status =
        "usage: boxoffice-cli server-status [--json]\n"
        "\nPrints, per shard of the server: the durable journal sequence, the state of\n"
        "the committer that carries the journal into PostgreSQL (off: the server runs\n"
        "without a database; starting, running, retrying, stopped), the last sequence\n"
        "applied to the database, the lag in records and milliseconds, and why the\n"
        "committer is not running. --json prints {\"ok\": true, \"version\": ...,\n"
        "\"shards\": [{\"shard\", \"durable_seq\", \"batches\", \"committer\": {\"state\",\n"
        "\"applied_seq\", \"lag_records\", \"lag_ms\", \"batches\", \"changes\", \"outbox\",\n"
        "\"retries\", \"reason\"}}]} (schemas/protocol.md section 11).\n"
        "Exit status 0 whenever the server answered ok, whatever the committers' state.\n";

static const char *const usage_cluster =
        "usage: boxoffice-cli cluster [--json]\n"
        "\nAsks every server given (--server, --url) for its view of the cluster and\n"
        "prints one table per server: per shard its epoch, this server's role\n"
        "(primary, standby, fenced, none), the primary's node, the in-sync set, the\n"
        "last, durable and released sequences, and on a primary each standby's lag in\n"
        "records (node:lag). --json prints one object per server: {\"ok\": true,\n"
        "\"url\", \"node\", \"shards\": [{\"shard\", \"epoch\", \"role\", \"primary\",\n"
        "\"in_sync\", \"last_seq\", \"durable_seq\", \"released_seq\", \"standbys\":\n"
        "[{\"node\", \"acked_seq\", \"lag_records\"}]}]} (schemas/protocol.md,\n"
        "\"cluster_status\").\n"
        "Exit status 0 when every server answered, 3 when one did not.\n";

static const char *const usage_switchover =
        "usage: boxoffice-cli switchover SHARD NODE [--json]\n"
        "\nAsks the primary of SHARD to hand it to NODE, which must be one of its\n"
        "in-sync standbys: the primary stops taking commands for the shard, waits\n"
        "until NODE has every record, and NODE takes over with the next epoch;\n"
        "clients follow it (not_primary) and resend, so no request fails. The\n"
        "command may be sent to any server: a not_primary answer is followed to the\n"
        "primary it names. Prints the outcome once the switchover is done or refused.\n";

static const char *const usage_watch =
        "usage: boxoffice-cli watch ID [--json] [--pub URL] [--server URL] [--count N]\n"
        "                              [--timeout-ms MS]\n"
        "\n"
        "Follows event ID live. Prints its availability (seats per state, free seats\n"
        "per category, pools) and then one line per change as the server makes it\n"
        "durable: the sequence, the cause (hold, release, expiry, confirm, cancel,\n"
        "block, unblock), the hold or booking, and the seats with their new state or\n"
        "the pool with the quantity moved and its free places after. When messages\n"
        "were lost (a slow terminal, a reconnection) it fetches the event again and\n"
        "says so (\"resynchronised ... (gap)\"): no change is ever silently missed. An\n"
        "event that does not exist yet is waited for: it is shown when created.\n"
        "\n"
        "  --pub URL        the server's projection publisher (default\n"
        "                   " BOC_SUB_PUB_URL_DEFAULT ", as scripts/run starts it; also\n"
        "                   ipc://var/boxoffice-pub.ipc)\n"
        "  --server URL     its request socket, for the event's image (default: --url,\n"
        "                   $BOXOFFICE_URL or " CLI_URL_DEFAULT ")\n"
        "  --count N        exit 0 after N changes\n"
        "  --timeout-ms MS  stop after MS milliseconds (plus a request in flight): exit\n"
        "                   0, or 3 when --count N changes did not come by then\n"
        "                   (default: run until killed)\n"
        "  --json           one JSON object per line: {\"type\": \"image\", \"event\",\n"
        "                   \"reason\" (join, gap, created, invalid, reconnect), \"seq\",\n"
        "                   \"seats\", \"by_state\": {\"free\", \"held\", \"booked\",\n"
        "                   \"blocked\"}, \"free_by_category\": [...], \"pools\":\n"
        "                   [{\"pool\", \"capacity\", \"free\"}]}, {\"type\": \"change\",\n"
        "                   \"event\", \"prev\", \"seq\", \"at_ms\", \"cause\", \"claim\",\n"
        "                   \"seats\" and \"state\" | \"pool\", \"quantity\", \"pool_free\"},\n"
        "                   {\"type\": \"missing\", \"event\"} (does not exist yet),\n"
        "                   {\"type\": \"no_image\", \"event\", \"error\", \"retry_ms\"}\n"
        "The global --timeout bounds each request for the image (default 5000 ms).\n";

/* ---- Argument helpers ---------------------------------------------------- */

static const char *g_usage = NULL;   /* the usage text bad arguments point to */
static const char *g_command = NULL; /* the command being parsed, for that hint */

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("boxoffice-cli: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fprintf(stderr, "(boxoffice-cli %s%s--help for usage)\n", g_command ? g_command : "",
	        g_command ? " " : "");
	exit(EXIT_USAGE);
}

/* A whole number argument (decimal or 0x hex, bo_parse_u64) no larger than
 * max; exits with a usage error naming `what` otherwise. A value past 64
 * bits is "not a number" like any other spelling bo_parse_u64 refuses. */
static uint64_t num_arg(const char *what, const char *s, uint64_t max)
{
	uint64_t v = 0;
	if (bo_parse_u64(s, 0, UINT64_MAX, BO_PARSE_HEX, &v) != 0)
		usage_error("%s: expected a number, got '%s'", what, s ? s : "");
	if (v > max)
		usage_error("%s: %s is larger than %" PRIu64, what, s, max);
	return v;
}

/* "12,13,14" or "12-14" or a mix; at most BO_SEATS_PER_HOLD_MAX seats. */
static uint32_t parse_seats(const char *s, uint32_t *seats)
{
	uint32_t n = 0;
	char buf[256];
	size_t len = strlen(s);
	if (len >= sizeof(buf))
		usage_error("--seats: list too long");
	if (len == 0 || s[0] == ',' || s[len - 1] == ',' || strstr(s, ",,") != NULL)
		usage_error("--seats: empty entry in '%s'", s);
	strcpy(buf, s);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		uint64_t lo, hi;
		if (dash != NULL && dash != tok) {
			*dash = '\0';
			lo = num_arg("--seats", tok, BO_SEATS_PER_EVENT_MAX - 1);
			hi = num_arg("--seats", dash + 1, BO_SEATS_PER_EVENT_MAX - 1);
			if (hi < lo)
				usage_error("--seats: range %" PRIu64 "-%" PRIu64 " goes backwards",
				            lo, hi);
		} else {
			lo = hi = num_arg("--seats", tok, BO_SEATS_PER_EVENT_MAX - 1);
		}
		for (uint64_t v = lo; v <= hi; v++) {
			if (n == BO_SEATS_PER_HOLD_MAX)
				usage_error("--seats: at most %u seats", BO_SEATS_PER_HOLD_MAX);
			seats[n++] = (uint32_t)v;
		}
	}
	if (n == 0)
		usage_error("--seats: no seats given");
	return n;
}

/* Command arguments after the command name: positionals and --name VALUE
 * (or --name=VALUE) options, in any order. */
typedef struct args {
	int npos;
	const char *pos[4];
	int nopt;
	const char *name[32];
	const char *value[32];
	bool used[32];
} args;

static const char *const flag_options[] = {"json", "operator", NULL}; /* take no value */

static bool is_flag(const char *name)
{
	for (int i = 0; flag_options[i]; i++)
		if (strcmp(name, flag_options[i]) == 0)
			return true;
	return false;
}

static void args_parse(args *a, int argc, char **argv)
{
	memset(a, 0, sizeof(*a));
	for (int i = 0; i < argc; i++) {
		const char *s = argv[i];
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			fputs(g_usage, stdout);
			exit(EXIT_OK);
		}
		if (strncmp(s, "--", 2) != 0 || s[2] == '\0') {
			if (a->npos == 4)
				usage_error("unexpected argument '%s'", s);
			a->pos[a->npos++] = s;
			continue;
		}
		if (a->nopt == 32)
			usage_error("too many options");
		const char *name = s + 2;
		const char *eq = strchr(name, '=');
		static char names[32][64];
		if (eq != NULL) {
			size_t len = (size_t)(eq - name);
			if (len >= sizeof(names[0]))
				usage_error("unknown option '%s'", s);
			memcpy(names[a->nopt], name, len);
			names[a->nopt][len] = '\0';
			a->name[a->nopt] = names[a->nopt];
			a->value[a->nopt] = eq + 1;
		} else if (is_flag(name)) {
			a->name[a->nopt] = name;
			a->value[a->nopt] = "";
		} else {
			if (i + 1 >= argc)
				usage_error("option --%s needs a value", name);
			a->name[a->nopt] = name;
			a->value[a->nopt] = argv[++i];
		}
		a->nopt++;
	}
}

/* The value of option `name` (the last one given), NULL when absent. */
static const char *opt_get(args *a, const char *name)
{
	const char *v = NULL;
	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->name[i], name) == 0) {
			v = a->value[i];
			a->used[i] = true;
		}
	return v;
}

static void args_done(args *a, int npos_want, const char *pos_names)
{
	/* --json may follow the command too: mark it used (main reads it). */
	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->name[i], "json") == 0)
			a->used[i] = true;
	for (int i = 0; i < a->nopt; i++)
		if (!a->used[i])
			usage_error("unknown option --%s for this command", a->name[i]);
	if (a->npos != npos_want)
		usage_error("expected %s", pos_names);
}

/* ---- Seat maps ----------------------------------------------------------- */

/* A row directive before the map is allocated. */
typedef struct row_spec {
	uint32_t count, section, seats, category;
} row_spec;

typedef struct map_spec {
	row_spec *rows;
	uint32_t nspec, cap;
	uint32_t pools[CLI_POOLS_MAX];
	uint32_t npools;
	uint32_t categories; /* 0 = derive */
} map_spec;

static void spec_add_row(map_spec *m, row_spec r)
{
	if (m->nspec == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->rows = realloc(m->rows, m->cap * sizeof(row_spec));
		if (m->rows == NULL) {
			fprintf(stderr, "boxoffice-cli: out of memory\n");
			exit(EXIT_NO_ANSWER);
		}
	}
	m->rows[m->nspec++] = r;
}

static void spec_add_pool(map_spec *m, uint32_t cap, const char *where)
{
	if (m->npools == CLI_POOLS_MAX)
		usage_error("%s: at most %u pools", where, CLI_POOLS_MAX);
	if (cap == 0)
		usage_error("%s: a pool needs a capacity of at least 1", where);
	m->pools[m->npools++] = cap;
}

static void spec_read_file(map_spec *m, const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		usage_error("--map %s: %s", path, strerror(errno));
	char line[512];
	unsigned lineno = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char where[300];
		snprintf(where, sizeof(where), "%s:%u", path, lineno);
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *tok[6];
		int n = 0;
		for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t != NULL;
		     t = strtok_r(NULL, " \t\r\n", &save)) {
			if (n == 6)
				usage_error("%s: too many words", where);
			tok[n++] = t;
		}
		if (n == 0)
			continue;
		bool one = strcmp(tok[0], "row") == 0 && n == 4;
		if (one || (strcmp(tok[0], "rows") == 0 && n == 5)) {
			/* "row S N C" is "rows 1 S N C". */
			char **fld = one ? tok : tok + 1;
			row_spec r;
			r.count = one ? 1 : (uint32_t)num_arg(where, tok[1], BO_ROWS_PER_EVENT_MAX);
			r.section = (uint32_t)num_arg(where, fld[1], BO_SECTIONS_PER_EVENT_MAX - 1);
			r.seats = (uint32_t)num_arg(where, fld[2], BO_SEATS_PER_ROW_MAX);
			r.category = (uint32_t)num_arg(where, fld[3], BO_CATEGORIES_MAX - 1);
			spec_add_row(m, r);
		} else if (strcmp(tok[0], "pool") == 0 && n == 2) {
			spec_add_pool(m, (uint32_t)num_arg(where, tok[1], BO_POOL_CAPACITY_MAX),
			              where);
		} else if (strcmp(tok[0], "categories") == 0 && n == 2) {
			m->categories = (uint32_t)num_arg(where, tok[1], BO_CATEGORIES_MAX);
		} else {
			fclose(f);
			usage_error("%s: expected 'row S N C', 'rows K S N C', 'pool CAP' or "
			            "'categories C'",
			            where);
		}
	}
	bool err = ferror(f);
	fclose(f);
	if (err)
		usage_error("--map %s: read error", path);
}

/* Builds the map of a spec; exits with a usage error when it breaks a rule. */
static bo_seatmap *spec_build(const map_spec *m)
{
	uint64_t rows = 0, seats = 0;
	uint32_t cat_max = 0;
	for (uint32_t i = 0; i < m->nspec; i++) {
		const row_spec *r = &m->rows[i];
		if (r->seats == 0 || r->count == 0)
			usage_error("seat map: rows need at least one seat");
		rows += r->count;
		seats += (uint64_t)r->count * r->seats;
		if (r->category + 1 > cat_max)
			cat_max = r->category + 1;
	}
	if (rows > BO_ROWS_PER_EVENT_MAX || seats > BO_SEATS_PER_EVENT_MAX)
		usage_error("seat map: %" PRIu64 " rows / %" PRIu64 " seats exceed %u / %u", rows,
		            seats, BO_ROWS_PER_EVENT_MAX, BO_SEATS_PER_EVENT_MAX);
	if (rows == 0 && m->npools == 0)
		usage_error("seat map: no rows and no pools: nothing to sell");
	uint32_t cats = m->categories ? m->categories : (cat_max ? cat_max : 1);
	if (cats < cat_max)
		usage_error("seat map: category %u used but only %u categories", cat_max - 1, cats);
	bo_seatmap *map = bo_seatmap_new((uint32_t)rows, (uint32_t)seats, m->npools);
	if (map == NULL)
		usage_error("seat map: out of memory");
	map->category_count = cats;
	uint32_t ri = 0, si = 0;
	for (uint32_t i = 0; i < m->nspec; i++)
		for (uint32_t k = 0; k < m->rows[i].count; k++) {
			map->rows[ri].section = (uint16_t)m->rows[i].section;
			map->rows[ri].seats = (uint16_t)m->rows[i].seats;
			ri++;
			memset(map->categories + si, (int)m->rows[i].category, m->rows[i].seats);
			si += m->rows[i].seats;
		}
	memcpy(map->pool_capacity, m->pools, m->npools * sizeof(uint32_t));
	bo_detail d = bo_seatmap_check(map);
	if (d != BO_D_NONE)
		usage_error("seat map: %s", boc_detail_text(d));
	return map;
}

/* ---- Output -------------------------------------------------------------- */

static void json_u32_array(const char *key, const uint32_t *v, uint32_t n)
{
	printf(",\"%s\":[", key);
	for (uint32_t i = 0; i < n; i++)
		printf("%s%" PRIu32, i ? "," : "", v[i]);
	putchar(']');
}

static void print_json(const bo_result *r, const char *text)
{
	const char *st = boc_status_name(r->status), *dt = boc_detail_name(r->detail);
	printf("{\"ok\":%s,\"status\":", r->status == BO_OK ? "true" : "false");
	bo_json_cstr(stdout, st ? st : "unknown");
	printf(",\"detail\":");
	bo_json_cstr(stdout, dt ? dt : "unknown");
	if (text[0]) {
		printf(",\"error\":");
		bo_json_cstr(stdout, text);
	}
	printf(",\"op\":");
	bo_json_cstr(stdout, boc_op_name(r->op) ? boc_op_name(r->op) : "unknown");
	printf(",\"event\":%" PRIu64 ",\"client\":%" PRIu64 ",\"request\":%" PRIu64, r->event_id,
	       r->client_id, r->request_id);
	/* Claim ids are 64-bit: JSON numbers lose precision past 2^53 in many
	 * parsers, so the hex string is the exact one. */
	if (r->claim_id)
		printf(",\"claim\":%" PRIu64 ",\"claim_hex\":\"0x%" PRIx64 "\"", r->claim_id,
		       r->claim_id);
	if (r->seat_count)
		json_u32_array("seats", r->seats, r->seat_count);
	if (r->op == BO_OP_QUERY_SEATS && r->status == BO_OK) {
		printf(",\"seat_states\":[");
		for (uint32_t i = 0; i < r->seat_count; i++) {
			const char *s = boc_seat_state_name(r->seat_state[i]);
			printf("%s", i ? "," : "");
			bo_json_cstr(stdout, s ? s : "unknown");
		}
		putchar(']');
	}
	if (r->quantity)
		printf(",\"quantity\":%" PRIu32, r->quantity);
	if (r->op == BO_OP_HOLD_POOL && r->status == BO_OK)
		printf(",\"pool\":%u", r->pool);
	if (r->expires_at_ms)
		printf(",\"expires_at_ms\":%" PRId64, r->expires_at_ms);
	if (r->replayed)
		printf(",\"replayed\":true");
	if (r->view_seq)
		printf(",\"seq\":%" PRIu64, r->view_seq);
	if (r->retry_after_ms)
		printf(",\"retry_after_ms\":%" PRIu32, r->retry_after_ms);
	if (r->op == BO_OP_QUERY_AVAIL && r->status == BO_OK) {
		const bo_avail *a = &r->avail;
		printf(",\"avail\":{\"free\":%" PRIu32 ",\"held\":%" PRIu32 ",\"booked\":%" PRIu32
		       ",\"blocked\":%" PRIu32,
		       a->by_state[BO_SEAT_FREE], a->by_state[BO_SEAT_HELD],
		       a->by_state[BO_SEAT_BOOKED], a->by_state[BO_SEAT_BLOCKED]);
		json_u32_array("free_by_category", a->free_by_category,
		               a->category_count <= BO_CATEGORIES_MAX ? a->category_count : 0);
		json_u32_array("pool_capacity", a->pool_capacity,
		               a->pool_count <= BO_POOLS_PER_EVENT_MAX ? a->pool_count : 0);
		json_u32_array("pool_free", a->pool_free,
		               a->pool_count <= BO_POOLS_PER_EVENT_MAX ? a->pool_count : 0);
		putchar('}');
	}
	printf("}\n");
}

static void print_seat_list(const bo_result *r)
{
	printf("[");
	for (uint32_t i = 0; i < r->seat_count && i < BO_SEATS_PER_HOLD_MAX; i++)
		printf("%s%" PRIu32, i ? " " : "", r->seats[i]);
	printf("]");
}

/* " expires in 600s", from the server's expiry time when it is on this
 * host's wall clock (the engine's clock), else from the requested TTL. */
static void print_expiry(const bo_result *r, uint32_t ttl_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t left = r->expires_at_ms - now;
	if (left >= -60000 && left <= (int64_t)BO_HOLD_LIFETIME_MS_MAX + 60000)
		printf(" expires in %" PRId64 "s", (left + 500) / 1000);
	else if (ttl_ms)
		printf(" expires in %" PRIu32 "s (expires_at_ms=%" PRId64 ")",
		       (ttl_ms + 500) / 1000, r->expires_at_ms);
}

static void print_human_ok(const bo_result *r, const bo_seatmap *map, uint32_t ttl_ms)
{
	switch (r->op) {
	case BO_OP_CREATE_EVENT:
		printf("created event %" PRIu64, r->event_id);
		if (map)
			printf(": %" PRIu32 " seats in %" PRIu32 " rows, %" PRIu32
			       " categories, %" PRIu32 " pools",
			       map->seat_count, map->row_count, map->category_count,
			       map->pool_count);
		break;
	case BO_OP_HOLD_SEATS:
	case BO_OP_HOLD_BEST:
		printf("held %u seats ", r->seat_count);
		print_seat_list(r);
		printf(" hold=0x%" PRIx64, r->claim_id);
		print_expiry(r, ttl_ms);
		break;
	case BO_OP_HOLD_POOL:
		printf("held %" PRIu32 " from pool %u hold=0x%" PRIx64, r->quantity, r->pool,
		       r->claim_id);
		print_expiry(r, ttl_ms);
		break;
	case BO_OP_EXTEND:
		printf("extended hold=0x%" PRIx64, r->claim_id);
		print_expiry(r, ttl_ms);
		break;
	case BO_OP_RELEASE:
		printf("released hold=0x%" PRIx64 " (%" PRIu32 " tickets)", r->claim_id,
		       r->quantity);
		break;
	case BO_OP_CONFIRM:
		printf("confirmed booking=0x%" PRIx64 " (%" PRIu32 " tickets)", r->claim_id,
		       r->quantity);
		if (r->seat_count) {
			printf(" seats ");
			print_seat_list(r);
		}
		break;
	case BO_OP_CANCEL:
		printf("cancelled booking=0x%" PRIx64 " (%" PRIu32 " tickets)", r->claim_id,
		       r->quantity);
		break;
	case BO_OP_BLOCK:
	case BO_OP_UNBLOCK:
		printf("%s %u seats ", r->op == BO_OP_BLOCK ? "blocked" : "unblocked",
		       r->seat_count);
		print_seat_list(r);
		break;
	case BO_OP_QUERY_AVAIL: {
		const bo_avail *a = &r->avail;
		uint64_t total = 0;
		for (int s = 0; s < BO_SEAT_STATE_COUNT; s++)
			total += a->by_state[s];
		/* The read model's sequence: the journal sequence of the last
		 * change this answer includes (schemas/protocol.md section 4). */
		printf("event %" PRIu64, r->event_id);
		if (r->view_seq)
			printf(" at seq %" PRIu64, r->view_seq);
		printf(": %" PRIu64 " seats: %" PRIu32 " free, %" PRIu32
		       " held, %" PRIu32 " booked, %" PRIu32 " blocked",
		       total, a->by_state[BO_SEAT_FREE], a->by_state[BO_SEAT_HELD],
		       a->by_state[BO_SEAT_BOOKED], a->by_state[BO_SEAT_BLOCKED]);
		for (uint32_t c = 0; c < a->category_count && c < BO_CATEGORIES_MAX; c++)
			printf("\n  category %" PRIu32 ": %" PRIu32 " free", c,
			       a->free_by_category[c]);
		for (uint32_t p = 0; p < a->pool_count && p < BO_POOLS_PER_EVENT_MAX; p++)
			printf("\n  pool %" PRIu32 ": %" PRIu32 " of %" PRIu32 " free", p,
			       a->pool_free[p], a->pool_capacity[p]);
		break;
	}
	case BO_OP_QUERY_SEATS:
		for (uint32_t i = 0; i < r->seat_count && i < BO_QUERY_SEATS_MAX; i++) {
			const char *s = boc_seat_state_name(r->seat_state[i]);
			printf("%sseat %" PRIu32 ": %s", i ? "\n" : "", r->seats[i],
			       s ? s : "unknown");
		}
		break;
	default:
		printf("ok");
	}
	if (r->replayed)
		printf(" (repeated request: first answer)");
	putchar('\n');
}

static void print_human_refused(const bo_result *r, const char *text)
{
	const char *st = boc_status_name(r->status), *dn = boc_detail_name(r->detail);
	const char *op = boc_op_name(r->op);
	printf("%s refused: %s", op ? op : "command", st ? st : "unknown status");
	if (r->detail != BO_D_NONE && dn)
		printf(" (%s)", dn);
	if (text[0])
		printf(": %s", text);
	else if (r->detail != BO_D_NONE && boc_detail_text(r->detail))
		printf(": %s", boc_detail_text(r->detail));
	if ((r->status == BO_TAKEN || r->detail == BO_D_NOT_BLOCKED) && r->seat_count)
		printf(" [seat %" PRIu32 "]", r->seats[0]);
	if ((r->status == BO_BUSY || r->status == BO_THROTTLED) && r->retry_after_ms)
		printf(" - retry in %" PRIu32 " ms or later with --client %" PRIu64 " --request %" PRIu64,
		       r->retry_after_ms, r->client_id, r->request_id);
	else if (r->status == BO_BUSY || r->status == BO_THROTTLED)
		printf(" - retry later with --client %" PRIu64 " --request %" PRIu64, r->client_id,
		       r->request_id);
	putchar('\n');
}

/* ---- Commands ------------------------------------------------------------ */

typedef struct global {
	const char *url;
	char servers[BOC_SERVERS_MAX * BOC_ADDRESS_LEN_MAX]; /* --server, comma-joined */
	bool json;
	bool no_retry; /* --no-retry */
	uint64_t client, request;
	uint32_t timeout_ms;
	const char *auth_file;                    /* --auth-token-file, NULL: none */
	char auth_token[BO_AUTH_TOKEN_LEN_MAX + 1]; /* read from it by main */
} global;

/* What a command's parser produces. */
typedef struct built {
	const char *name;                 /* the command as typed */
	uint64_t cl, rq;                  /* --client / --request (0: the library picks) */
	bo_cmd cmd;                       /* the command to send */
	bo_seatmap *map;                  /* create-event's map (freed by main), else NULL */
	uint32_t ttl_ms;                  /* the TTL asked for (hold, extend), else 0 */
	bool server_status;               /* server-status: no command, boc_server_status */
	bool cluster;                     /* cluster: boc_cluster_status of every server */
	bool switchover;                  /* switchover: boc_switchover */
	uint32_t shard, node;             /* switchover: its arguments */
	bool watch;                       /* watch: a subscriber, not a command */
	uint64_t event;                   /* watch: the event */
	const char *pub_url, *server_url; /* watch: NULL for the defaults */
	uint64_t count;                   /* watch: changes to wait for, 0: no limit */
	uint64_t run_ms;                  /* watch: how long to run, 0: no limit */
} built;

static uint64_t event_arg(const args *a)
{
	return num_arg("event ID", a->pos[0], UINT64_MAX);
}

static uint32_t ttl_arg(args *a)
{
	const char *v = opt_get(a, "ttl-ms");
	return v ? (uint32_t)num_arg("--ttl-ms", v, UINT32_MAX) : CLI_TTL_MS_DEFAULT;
}

/* R rows of N seats in section 0 split into C bands, best first: row i gets
 * category i*C/R, so bands differ by at most one row. */
static void spec_from_flags(map_spec *m, const char *rows, const char *spr, const char *cats)
{
	if ((rows == NULL) != (spr == NULL))
		usage_error("--rows and --seats-per-row go together");
	if (rows == NULL && m->npools == 0)
		usage_error("give --rows and --seats-per-row, --pool, or --map");
	uint32_t r = rows ? (uint32_t)num_arg("--rows", rows, BO_ROWS_PER_EVENT_MAX) : 0;
	uint32_t n = spr ? (uint32_t)num_arg("--seats-per-row", spr, BO_SEATS_PER_ROW_MAX) : 0;
	uint32_t c = cats ? (uint32_t)num_arg("--categories", cats, BO_CATEGORIES_MAX) : 1;
	if (rows && (r == 0 || n == 0 || c == 0))
		usage_error("--rows, --seats-per-row and --categories must be >= 1");
	if (rows && c > r)
		usage_error("--categories %u: more categories than rows", c);
	for (uint32_t i = 0; i < r; i++) {
		row_spec rs = {.count = 1, .section = 0, .seats = n};
		rs.category = (uint32_t)((uint64_t)i * c / r);
		spec_add_row(m, rs);
	}
	m->categories = rows ? c : 0;
}

static void cmd_create(args *a, built *b)
{
	map_spec m;
	memset(&m, 0, sizeof(m));
	const char *file = opt_get(a, "map");
	const char *rows = opt_get(a, "rows"), *spr = opt_get(a, "seats-per-row");
	const char *cats = opt_get(a, "categories");
	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->name[i], "pool") == 0) {
			a->used[i] = true;
			spec_add_pool(
			        &m, (uint32_t)num_arg("--pool", a->value[i], BO_POOL_CAPACITY_MAX),
			        "--pool");
		}
	args_done(a, 1, "an event ID");
	if (file != NULL) {
		if (rows || spr || cats || m.npools)
			usage_error("--map cannot be combined with --rows, --seats-per-row, "
			            "--categories or --pool");
		spec_read_file(&m, file);
	} else {
		spec_from_flags(&m, rows, spr, cats);
	}
	b->map = spec_build(&m);
	free(m.rows);
	boc_create_event(&b->cmd, b->cl, b->rq, event_arg(a), b->map);
}

static void cmd_hold(args *a, built *b)
{
	const char *seats = opt_get(a, "seats"), *best = opt_get(a, "best");
	const char *cat = opt_get(a, "category"), *pool = opt_get(a, "pool");
	const char *qty = opt_get(a, "quantity");
	b->ttl_ms = ttl_arg(a);
	args_done(a, 1, "an event ID");
	int kinds = (seats != NULL) + (best != NULL) + (pool != NULL);
	if (kinds != 1)
		usage_error("give exactly one of --seats, --best or --pool");
	if (seats) {
		if (cat || qty)
			usage_error("--seats takes no --category or --quantity");
		uint32_t s[BO_SEATS_PER_HOLD_MAX];
		uint32_t n = parse_seats(seats, s);
		boc_hold_seats(&b->cmd, b->cl, b->rq, event_arg(a), s, n, b->ttl_ms);
	} else if (best) {
		if (cat == NULL || qty)
			usage_error("--best N needs --category C (and no --quantity)");
		boc_hold_best(&b->cmd, b->cl, b->rq, event_arg(a),
		              (uint8_t)num_arg("--category", cat, UINT8_MAX),
		              (uint16_t)num_arg("--best", best, UINT16_MAX), b->ttl_ms);
	} else {
		if (qty == NULL || cat)
			usage_error("--pool P needs --quantity Q (and no --category)");
		boc_hold_pool(&b->cmd, b->cl, b->rq, event_arg(a),
		              (uint8_t)num_arg("--pool", pool, UINT8_MAX),
		              (uint16_t)num_arg("--quantity", qty, UINT16_MAX), b->ttl_ms);
	}
}

static void cmd_extend(args *a, built *b)
{
	b->ttl_ms = ttl_arg(a);
	args_done(a, 2, "an event ID and a HOLD id");
	boc_extend(&b->cmd, b->cl, b->rq, event_arg(a), num_arg("HOLD", a->pos[1], UINT64_MAX),
	           b->ttl_ms);
}

/* --operator (release, cancel): present or not; it takes no value. */
static bool operator_arg(args *a)
{
	const char *v = opt_get(a, "operator");
	if (v != NULL && v[0] != '\0')
		usage_error("--operator takes no value");
	return v != NULL;
}

static void cmd_release(args *a, built *b)
{
	bool op = operator_arg(a);
	args_done(a, 2, "an event ID and a HOLD id");
	boc_release(&b->cmd, b->cl, b->rq, event_arg(a), num_arg("HOLD", a->pos[1], UINT64_MAX));
	if (op)
		(void)boc_as_operator(&b->cmd); /* a release always takes it */
}

static void cmd_confirm(args *a, built *b)
{
	const char *ref = opt_get(a, "payref");
	args_done(a, 2, "an event ID and a HOLD id");
	if (ref == NULL || ref[0] == '\0')
		usage_error("confirm needs --payref REF");
	if (strlen(ref) > BO_PAYREF_LEN_MAX)
		usage_error("--payref: at most %u bytes", BO_PAYREF_LEN_MAX);
	boc_confirm(&b->cmd, b->cl, b->rq, event_arg(a), num_arg("HOLD", a->pos[1], UINT64_MAX),
	            ref);
}

static void cmd_cancel(args *a, built *b)
{
	bool op = operator_arg(a);
	args_done(a, 2, "an event ID and a BOOKING id");
	boc_cancel(&b->cmd, b->cl, b->rq, event_arg(a), num_arg("BOOKING", a->pos[1], UINT64_MAX));
	if (op)
		(void)boc_as_operator(&b->cmd); /* a cancel always takes it */
}

/* block and unblock: the same arguments. */
static void build_block(args *a, built *b, bool block)
{
	const char *seats = opt_get(a, "seats");
	args_done(a, 1, "an event ID");
	if (seats == NULL)
		usage_error("%s needs --seats LIST", b->name);
	uint32_t s[BO_SEATS_PER_HOLD_MAX];
	uint32_t n = parse_seats(seats, s);
	if (block)
		boc_block(&b->cmd, b->cl, b->rq, event_arg(a), s, n);
	else
		boc_unblock(&b->cmd, b->cl, b->rq, event_arg(a), s, n);
}

static void cmd_block(args *a, built *b)
{
	build_block(a, b, true);
}
static void cmd_unblock(args *a, built *b)
{
	build_block(a, b, false);
}

static void cmd_status(args *a, built *b)
{
	const char *seats = opt_get(a, "seats");
	args_done(a, 1, "an event ID");
	if (seats) {
		uint32_t s[BO_SEATS_PER_HOLD_MAX];
		uint32_t n = parse_seats(seats, s);
		boc_query_seats(&b->cmd, event_arg(a), s, n);
	} else {
		boc_query_avail(&b->cmd, event_arg(a));
	}
	b->cmd.request_id = b->rq;
}

static void cmd_server_status(args *a, built *b)
{
	args_done(a, 0, "no arguments");
	b->server_status = true;
}

static void cmd_cluster(args *a, built *b)
{
	args_done(a, 0, "no arguments");
	b->cluster = true;
}

static void cmd_switchover(args *a, built *b)
{
	args_done(a, 2, "SHARD and NODE");
	b->switchover = true;
	b->shard = (uint32_t)num_arg("SHARD", a->pos[0], UINT32_MAX);
	b->node = (uint32_t)num_arg("NODE", a->pos[1], UINT32_MAX);
}

static void cmd_watch(args *a, built *b)
{
	b->pub_url = opt_get(a, "pub");
	b->server_url = opt_get(a, "server");
	const char *count = opt_get(a, "count"), *run = opt_get(a, "timeout-ms");
	args_done(a, 1, "an event ID");
	b->watch = true;
	b->event = event_arg(a);
	if (b->event == 0)
		usage_error("event ID must be non-zero");
	if (count != NULL && (b->count = num_arg("--count", count, UINT64_MAX)) == 0)
		usage_error("--count must be at least 1");
	if (run != NULL && (b->run_ms = num_arg("--timeout-ms", run, UINT32_MAX)) == 0)
		usage_error("--timeout-ms must be at least 1");
}

/* The commands: name, usage text (COMMAND --help, and the hint of a usage
 * error), and the parser of its arguments, which fills a built or exits
 * with a usage error. */
static const struct cli_cmd {
	const char *name;
	const char *const *usage;
	void (*parse)(args *a, built *b);
} commands[] = {
        {"create-event", &usage_create, cmd_create},
        {"hold", &usage_hold, cmd_hold},
        {"extend", &usage_extend, cmd_extend},
        {"release", &usage_release, cmd_release},
        {"confirm", &usage_confirm, cmd_confirm},
        {"cancel", &usage_cancel, cmd_cancel},
        {"block", &usage_block, cmd_block},
        {"unblock", &usage_block, cmd_unblock},
        {"status", &usage_status, cmd_status},
        {"server-status", &usage_server_status, cmd_server_status},
        {"cluster", &usage_cluster, cmd_cluster},
        {"switchover", &usage_switchover, cmd_switchover},
        {"watch", &usage_watch, cmd_watch},
};

static const struct cli_cmd *command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

/* `help [COMMAND]`: prints a usage text and exits. */
__attribute__((noreturn)) static void help(int argc, char **argv)
{
	if (argc > 1) {
		const struct cli_cmd *c = command_find(argv[1]);
		if (c == NULL)
			usage_error("help: unknown command '%s'", argv[1]);
		fputs(*c->usage, stdout);
	} else {
		fputs(usage_main, stdout);
	}
	exit(EXIT_OK);
}

/* Builds the command named argv[0] from argv[1..argc) into *b. */
static void build(global *g, int argc, char **argv, built *b)
{
	memset(b, 0, sizeof(*b));
	b->name = argv[0];
	b->cl = g->client;
	b->rq = g->request;
	g_command = b->name;
	for (int k = 1; k < argc; k++)
		if (strcmp(argv[k], "--json") == 0)
			g->json = true;
	if (strcmp(b->name, "help") == 0)
		help(argc, argv);
	const struct cli_cmd *c = command_find(b->name);
	if (c == NULL) {
		g_command = NULL;
		usage_error("unknown command '%s'", b->name);
	}
	g_usage = *c->usage;
	args a;
	args_parse(&a, argc - 1, argv + 1);
	c->parse(&a, b);
}

static bool is_global_with_value(const char *key)
{
	return strcmp(key, "--url") == 0 || strcmp(key, "--server") == 0 || strcmp(key, "--client") == 0 ||
	       strcmp(key, "--request") == 0 || strcmp(key, "--timeout") == 0 ||
	       strcmp(key, "--auth-token-file") == 0;
}

/* Applies one global option; false when key is not one. */
static bool take_global(global *g, const char *key, const char *val)
{
	if (strcmp(key, "--url") == 0) {
		g->url = val;
	} else if (strcmp(key, "--server") == 0) {
		size_t have = strlen(g->servers);
		if (val[0] == '\0' || have + 1 + strlen(val) >= sizeof(g->servers))
			usage_error("--server: empty, or too many servers");
		snprintf(g->servers + have, sizeof(g->servers) - have, "%s%s", have ? "," : "", val);
	} else if (strcmp(key, "--client") == 0) {
		/* 0 would mean "pick one for me": a retry with the same flags
		 * would then not be the same request. */
		g->client = num_arg("--client", val, UINT64_MAX);
		if (g->client == 0)
			usage_error("--client must be non-zero (0 is not a client id)");
	} else if (strcmp(key, "--request") == 0) {
		g->request = num_arg("--request", val, UINT64_MAX);
		if (g->request == 0)
			usage_error("--request must be non-zero (0 asks for a fresh id)");
	} else if (strcmp(key, "--timeout") == 0) {
		g->timeout_ms = (uint32_t)num_arg("--timeout", val, BOC_TIMEOUT_MS_MAX);
	} else if (strcmp(key, "--auth-token-file") == 0) {
		g->auth_file = val;
	} else {
		return false;
	}
	return true;
}

/* Reads the global options before the command (argv[1..]); returns the
 * index of the command. Exits on --help. */
static int globals_before(global *g, int argc, char **argv)
{
	int i = 1;
	for (; i < argc && strncmp(argv[i], "-", 1) == 0; i++) {
		const char *s = argv[i];
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			fputs(usage_main, stdout);
			exit(EXIT_OK);
		}
		if (strcmp(s, "--json") == 0) {
			g->json = true;
			continue;
		}
		if (strcmp(s, "--no-retry") == 0) {
			g->no_retry = true;
			continue;
		}
		const char *val = NULL;
		const char *eq = strchr(s, '=');
		char key[32];
		size_t klen = eq ? (size_t)(eq - s) : strlen(s);
		if (klen >= sizeof(key))
			usage_error("unknown option '%s'", s);
		memcpy(key, s, klen);
		key[klen] = '\0';
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			usage_error("option %s needs a value", s);
		if (!take_global(g, key, val))
			usage_error("unknown option '%s'", key);
	}
	return i;
}

/* The global options may also follow the command (`hold 1 --best 2
 * --client 42`): takes them out of argv[first..argc) and leaves the command
 * and its own arguments in rest[]; returns their count. */
static int globals_after(global *g, int first, int argc, char **argv, char **rest, int cap)
{
	int nrest = 0;
	for (int k = first; k < argc; k++) {
		const char *s = argv[k];
		const char *eq = strchr(s, '=');
		char key[32];
		size_t klen = eq ? (size_t)(eq - s) : strlen(s);
		if (strcmp(s, "--no-retry") == 0) {
			g->no_retry = true;
			continue;
		}
		if (strncmp(s, "--", 2) == 0 && klen < sizeof(key)) {
			memcpy(key, s, klen);
			key[klen] = '\0';
			/* watch has a --server of its own (its request socket). */
			bool watch_server = strcmp(key, "--server") == 0 && first < argc &&
			                    strcmp(argv[first], "watch") == 0;
			if (is_global_with_value(key) && !watch_server) {
				const char *val = eq ? eq + 1 : (k + 1 < argc ? argv[++k] : NULL);
				if (!val)
					usage_error("option %s needs a value", key);
				take_global(g, key, val);
				continue;
			}
		}
		if (nrest == cap)
			usage_error("too many arguments");
		rest[nrest++] = argv[k];
	}
	return nrest;
}

/* Prints what a failed call means for the caller; returns EXIT_NO_ANSWER. */
static int report_no_answer(const global *g, const bo_cmd *cmd, const bo_result *res, int rc,
                            const char *text)
{
	if (g->json) {
		printf("{\"ok\":false,\"status\":\"no_answer\",\"error\":");
		bo_json_cstr(stdout, boc_strerror(rc));
		printf(",\"message\":");
		bo_json_cstr(stdout, text);
		printf(",\"client\":%" PRIu64 ",\"request\":%" PRIu64 "}\n", res->client_id,
		       res->request_id);
	}
	fprintf(stderr, "boxoffice-cli: no answer from %s: %s (%s)\n", g->url, boc_strerror(rc),
	        text);
	if (bo_op_mutates(cmd->op))
		fprintf(stderr,
		        "boxoffice-cli: the command may or may not have been applied; "
		        "retry with --client %" PRIu64 " --request %" PRIu64 "\n",
		        res->client_id, res->request_id);
	return EXIT_NO_ANSWER;
}

/* ---- server-status --------------------------------------------------------- */

static void print_server_status_json(const boc_server_report *st)
{
	printf("{\"ok\":true,\"status\":\"ok\",\"version\":");
	bo_json_cstr(stdout, st->version);
	printf(",\"shards\":[");
	for (uint32_t k = 0; k < st->shard_count && k < BOC_SHARDS_MAX; k++) {
		const boc_shard_status *s = &st->shards[k];
		const boc_committer_status *c = &s->committer;
		const char *state = boc_committer_state_name(c->state);
		printf("%s{\"shard\":%" PRIu32 ",\"durable_seq\":%" PRIu64 ",\"batches\":%" PRIu64
		       ",\"committer\":{\"state\":",
		       k ? "," : "", s->shard, s->durable_seq, s->batches);
		bo_json_cstr(stdout, state ? state : "unknown");
		printf(",\"applied_seq\":%" PRIu64 ",\"lag_records\":%" PRIu64
		       ",\"lag_ms\":%" PRIu64 ",\"batches\":%" PRIu64 ",\"changes\":%" PRIu64
		       ",\"outbox\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"reason\":",
		       c->applied_seq, c->lag_records, c->lag_ms, c->batches, c->changes, c->outbox,
		       c->retries);
		bo_json_cstr(stdout, c->reason);
		printf("}}");
	}
	printf("]}\n");
}

/* One table row per shard; "-" where an off committer has no value. */
static void print_server_status_table(const boc_server_report *st)
{
	printf("server %s, %" PRIu32 " shard%s\n", st->version, st->shard_count,
	       st->shard_count == 1 ? "" : "s");
	printf("%5s %12s %-9s %12s %11s %8s  %s\n", "shard", "durable", "committer", "applied",
	       "lag_records", "lag_ms", "reason");
	for (uint32_t k = 0; k < st->shard_count && k < BOC_SHARDS_MAX; k++) {
		const boc_shard_status *s = &st->shards[k];
		const boc_committer_status *c = &s->committer;
		const char *state = boc_committer_state_name(c->state);
		printf("%5" PRIu32 " %12" PRIu64 " %-9s ", s->shard, s->durable_seq,
		       state ? state : "unknown");
		if (c->state == BOC_COMMITTER_OFF)
			printf("%12s %11s %8s", "-", "-", "-");
		else
			printf("%12" PRIu64 " %11" PRIu64 " %8" PRIu64, c->applied_seq,
			       c->lag_records, c->lag_ms);
		/* The reason is the server's text: printed as it is, minus
		 * control bytes that would break the table. */
		printf("  ");
		for (const char *p = c->reason; *p; p++)
			putchar((unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p);
		putchar('\n');
	}
}

/* Runs server-status on an open client; returns the exit code. */
static int run_server_status(const global *g, boc_client *c)
{
	static boc_server_report st; /* ~20 KiB */
	char text[BOC_TEXT_LEN_MAX];
	int rc = boc_server_status(c, &st, text, sizeof(text));
	if (rc < 0) {
		if (g->json) {
			printf("{\"ok\":false,\"status\":\"no_answer\",\"error\":");
			bo_json_cstr(stdout, boc_strerror(rc));
			printf(",\"message\":");
			bo_json_cstr(stdout, text);
			printf("}\n");
		}
		fprintf(stderr, "boxoffice-cli: no answer from %s: %s (%s)\n", g->url,
		        boc_strerror(rc), text);
		return EXIT_NO_ANSWER;
	}
	if (st.status != BO_OK) {
		const char *name = boc_status_name(st.status);
		if (g->json) {
			printf("{\"ok\":false,\"status\":");
			bo_json_cstr(stdout, name ? name : "unknown");
			printf(",\"error\":");
			bo_json_cstr(stdout, text);
			printf("}\n");
		} else {
			printf("server-status refused: %s: %s\n", name ? name : "unknown", text);
		}
		return EXIT_REFUSED;
	}
	if (g->json)
		print_server_status_json(&st);
	else
		print_server_status_table(&st);
	return EXIT_OK;
}

/* ---- cluster and switchover -------------------------------------------------- */

static void print_cluster_json(const char *url, const boc_cluster_report *r)
{
	printf("{\"ok\":true,\"status\":\"ok\",\"url\":");
	bo_json_cstr(stdout, url);
	printf(",\"node\":%" PRIu32 ",\"shards\":[", r->node);
	for (uint32_t k = 0; k < r->shard_count && k < BOC_SHARDS_MAX; k++) {
		const boc_shard_cluster *s = &r->shards[k];
		const char *role = boc_role_name(s->role);
		printf("%s{\"shard\":%" PRIu32 ",\"epoch\":%" PRIu64 ",\"role\":", k ? "," : "",
		       s->shard, s->epoch);
		bo_json_cstr(stdout, role ? role : "unknown");
		if (s->primary_known)
			printf(",\"primary\":%" PRIu32, s->primary);
		else
			printf(",\"primary\":null");
		printf(",\"in_sync\":[");
		for (uint32_t i = 0; i < s->in_sync_count && i <= BOC_CLUSTER_STANDBYS_MAX; i++)
			printf("%s%" PRIu32, i ? "," : "", s->in_sync[i]);
		printf("],\"last_seq\":%" PRIu64 ",\"durable_seq\":%" PRIu64
		       ",\"released_seq\":%" PRIu64 ",\"standbys\":[",
		       s->last_seq, s->durable_seq, s->released_seq);
		for (uint32_t i = 0; i < s->standby_count && i < BOC_CLUSTER_STANDBYS_MAX; i++)
			printf("%s{\"node\":%" PRIu32 ",\"acked_seq\":%" PRIu64
			       ",\"lag_records\":%" PRIu64 "}",
			       i ? "," : "", s->standbys[i].node, s->standbys[i].acked_seq,
			       s->standbys[i].lag_records);
		printf("]}");
	}
	printf("]}\n");
}

/* One row per shard: what this server believes. */
static void print_cluster_table(const char *url, const boc_cluster_report *r)
{
	printf("node %" PRIu32 " (%s), %" PRIu32 " shard%s\n", r->node, url, r->shard_count,
	       r->shard_count == 1 ? "" : "s");
	printf("%5s %8s %-8s %7s %-14s %12s %12s %12s  %s\n", "shard", "epoch", "role", "primary",
	       "in_sync", "last_seq", "durable", "released", "lag (node:records)");
	for (uint32_t k = 0; k < r->shard_count && k < BOC_SHARDS_MAX; k++) {
		const boc_shard_cluster *s = &r->shards[k];
		const char *role = boc_role_name(s->role);
		char primary[16] = "-", in_sync[64] = "";
		if (s->primary_known)
			snprintf(primary, sizeof(primary), "%" PRIu32, s->primary);
		for (uint32_t i = 0; i < s->in_sync_count && i <= BOC_CLUSTER_STANDBYS_MAX; i++) {
			size_t at = strlen(in_sync);
			snprintf(in_sync + at, sizeof(in_sync) - at, "%s%" PRIu32, i ? "," : "",
			         s->in_sync[i]);
		}
		printf("%5" PRIu32 " %8" PRIu64 " %-8s %7s %-14s %12" PRIu64 " %12" PRIu64
		       " %12" PRIu64 "  ",
		       s->shard, s->epoch, role ? role : "unknown", primary, in_sync[0] ? in_sync : "-",
		       s->last_seq, s->durable_seq, s->released_seq);
		if (s->standby_count == 0)
			printf("-");
		for (uint32_t i = 0; i < s->standby_count && i < BOC_CLUSTER_STANDBYS_MAX; i++)
			printf("%s%" PRIu32 ":%" PRIu64, i ? " " : "", s->standbys[i].node,
			       s->standbys[i].lag_records);
		putchar('\n');
	}
}

/* cluster_status of one server; returns the exit code for it. */
static int cluster_one(const global *g, const boc_options *o, const char *url)
{
	static boc_cluster_report r; /* tens of KiB */
	boc_client *c;
	boc_retry_options ro;
	boc_retry_options_default(&ro);
	ro.no_retry = 1;
	int rc = boc_open_servers((const char *const[]){url}, 1, o, &ro, &c);
	if (rc == -EINVAL)
		usage_error("'%s' is not an address nng accepts", url);
	char text[BOC_TEXT_LEN_MAX] = "";
	if (rc == 0) {
		rc = boc_cluster_status(c, &r, text, sizeof(text));
		boc_close(c);
	}
	if (rc < 0) {
		if (g->json) {
			printf("{\"ok\":false,\"status\":\"no_answer\",\"url\":");
			bo_json_cstr(stdout, url);
			printf(",\"error\":");
			bo_json_cstr(stdout, text[0] ? text : boc_strerror(rc));
			printf("}\n");
		}
		fprintf(stderr, "boxoffice-cli: no answer from %s: %s (%s)\n", url, boc_strerror(rc),
		        text);
		return EXIT_NO_ANSWER;
	}
	if (r.status != BO_OK) {
		const char *name = boc_status_name(r.status);
		if (g->json) {
			printf("{\"ok\":false,\"url\":");
			bo_json_cstr(stdout, url);
			printf(",\"status\":");
			bo_json_cstr(stdout, name ? name : "unknown");
			printf(",\"error\":");
			bo_json_cstr(stdout, text);
			printf("}\n");
		} else {
			printf("%s: cluster refused: %s: %s\n", url, name ? name : "unknown", text);
		}
		return EXIT_REFUSED;
	}
	if (g->json)
		print_cluster_json(url, &r);
	else
		print_cluster_table(url, &r);
	return EXIT_OK;
}

/* cluster: every server of the list, each for itself (no retry: a
 * server's own view is what is asked). The worst outcome is the exit code. */
static int run_cluster(const global *g, const boc_options *o)
{
	char list[sizeof(g->servers)];
	snprintf(list, sizeof(list), "%s", g->url);
	int code = EXIT_OK;
	bool first = true;
	for (char *save = NULL, *url = strtok_r(list, ",", &save); url != NULL;
	     url = strtok_r(NULL, ",", &save)) {
		if (!first && !g->json)
			putchar('\n');
		first = false;
		int rc = cluster_one(g, o, url);
		if (rc > code)
			code = rc;
	}
	return code;
}

static int run_switchover(const global *g, const built *b, boc_client *c)
{
	int status;
	char text[BOC_TEXT_LEN_MAX];
	int rc = boc_switchover(c, b->shard, b->node, &status, text, sizeof(text));
	if (rc < 0) {
		if (g->json) {
			printf("{\"ok\":false,\"status\":\"no_answer\",\"error\":");
			bo_json_cstr(stdout, text);
			printf("}\n");
		}
		fprintf(stderr, "boxoffice-cli: no answer from %s: %s (%s)\n", g->url,
		        boc_strerror(rc), text);
		return EXIT_NO_ANSWER;
	}
	const char *name = boc_status_name(status);
	if (g->json) {
		printf("{\"ok\":%s,\"status\":", status == BO_OK ? "true" : "false");
		bo_json_cstr(stdout, name ? name : "unknown");
		printf(",\"shard\":%" PRIu32 ",\"to\":%" PRIu32 ",\"error\":", b->shard, b->node);
		bo_json_cstr(stdout, text);
		printf("}\n");
	} else if (status == BO_OK) {
		printf("shard %" PRIu32 ": primary moved to node %" PRIu32 "\n", b->shard, b->node);
	} else {
		printf("switchover refused: %s: %s\n", name ? name : "unknown", text);
	}
	return status == BO_OK ? EXIT_OK : EXIT_REFUSED;
}

/* ---- watch ----------------------------------------------------------------- */

typedef struct watcher {
	bool json;
	const char *server_url; /* for messages */
	uint64_t count;         /* changes wanted, 0: no limit */
	uint64_t seen;          /* changes printed */
} watcher;

static bool watcher_done(const watcher *w)
{
	return w->count != 0 && w->seen >= w->count;
}

/* Seats per state and free seats per category: one pass over the image. */
static void image_counts(const bo_event_image *im, uint32_t by_state[BO_SEAT_STATE_COUNT],
                         uint32_t free_by_cat[BO_CATEGORIES_MAX])
{
	memset(by_state, 0, sizeof(uint32_t) * BO_SEAT_STATE_COUNT);
	memset(free_by_cat, 0, sizeof(uint32_t) * BO_CATEGORIES_MAX);
	for (uint32_t i = 0; i < im->seat_count; i++) {
		uint8_t st = im->states[i];
		if (st < BO_SEAT_STATE_COUNT)
			by_state[st]++;
		if (st == BO_SEAT_FREE && im->categories[i] < BO_CATEGORIES_MAX)
			free_by_cat[im->categories[i]]++;
	}
}

static void print_image_json(const bo_event_image *im, int reason)
{
	uint32_t by_state[BO_SEAT_STATE_COUNT], free_by_cat[BO_CATEGORIES_MAX];
	image_counts(im, by_state, free_by_cat);
	const char *r = boc_resync_reason_name(reason);
	printf("{\"type\":\"image\",\"event\":%" PRIu64 ",\"reason\":", im->event_id);
	bo_json_cstr(stdout, r ? r : "unknown");
	printf(",\"seq\":%" PRIu64 ",\"seats\":%" PRIu32 ",\"by_state\":{", im->seq,
	       im->seat_count);
	for (int st = 0; st < BO_SEAT_STATE_COUNT; st++) {
		printf("%s", st ? "," : "");
		bo_json_cstr(stdout, boc_seat_state_name(st));
		printf(":%" PRIu32, by_state[st]);
	}
	putchar('}');
	uint32_t cats = im->category_count <= BO_CATEGORIES_MAX ? im->category_count : 0;
	json_u32_array("free_by_category", free_by_cat, cats);
	printf(",\"pools\":[");
	for (uint32_t p = 0; p < im->pool_count && p < BO_POOLS_PER_EVENT_MAX; p++)
		printf("%s{\"pool\":%" PRIu32 ",\"capacity\":%" PRIu32 ",\"free\":%" PRIu32 "}",
		       p ? "," : "", p, im->pool_capacity[p], im->pool_free[p]);
	printf("]}\n");
}

static void print_image_human(const bo_event_image *im, int reason)
{
	uint32_t by_state[BO_SEAT_STATE_COUNT], free_by_cat[BO_CATEGORIES_MAX];
	image_counts(im, by_state, free_by_cat);
	switch (reason) {
	case BOC_RESYNC_JOIN:
		printf("event %" PRIu64 " at seq %" PRIu64, im->event_id, im->seq);
		break;
	case BOC_RESYNC_CREATED:
		printf("event %" PRIu64 " created, at seq %" PRIu64, im->event_id, im->seq);
		break;
	default:
		printf("resynchronised event %" PRIu64 " at seq %" PRIu64 " (%s: %s)", im->event_id,
		       im->seq,
		       boc_resync_reason_name(reason) ? boc_resync_reason_name(reason) : "?",
		       reason == BOC_RESYNC_GAP         ? "messages were lost"
		       : reason == BOC_RESYNC_RECONNECT ? "reconnected to the publisher"
		                                        : "a message did not fit");
		break;
	}
	printf(": %" PRIu32 " seats: %" PRIu32 " free, %" PRIu32 " held, %" PRIu32
	       " booked, %" PRIu32 " blocked\n",
	       im->seat_count, by_state[BO_SEAT_FREE], by_state[BO_SEAT_HELD],
	       by_state[BO_SEAT_BOOKED], by_state[BO_SEAT_BLOCKED]);
	if (im->category_count > 0 && im->category_count <= BO_CATEGORIES_MAX) {
		printf("  free by category:");
		for (uint32_t c = 0; c < im->category_count; c++)
			printf(" %" PRIu32 ": %" PRIu32 "%s", c, free_by_cat[c],
			       c + 1 < im->category_count ? "," : "");
		putchar('\n');
	}
	for (uint32_t p = 0; p < im->pool_count && p < BO_POOLS_PER_EVENT_MAX; p++)
		printf("  pool %" PRIu32 ": %" PRIu32 " of %" PRIu32 " free\n", p, im->pool_free[p],
		       im->pool_capacity[p]);
}

static void watch_on_resync(void *ctx, uint64_t event_id, const bo_event_image *im, int reason)
{
	watcher *w = ctx;
	(void)event_id;
	if (watcher_done(w))
		return;
	if (w->json)
		print_image_json(im, reason);
	else
		print_image_human(im, reason);
	fflush(stdout);
}

static void watch_on_change(void *ctx, const boc_sub_msg *m, const bo_change *c,
                            const bo_event_image *im)
{
	watcher *w = ctx;
	if (watcher_done(w))
		return;
	w->seen++;
	const char *cause = boc_cause_name(c->cause), *state = boc_seat_state_name(c->state);
	if (w->json) {
		printf("{\"type\":\"change\",\"event\":%" PRIu64 ",\"prev\":%" PRIu64
		       ",\"seq\":%" PRIu64 ",\"at_ms\":%" PRId64 ",\"cause\":",
		       m->event_id, m->prev_seq, m->seq, m->at_ms);
		bo_json_cstr(stdout, cause ? cause : "unknown");
		if (c->claim_id)
			printf(",\"claim\":%" PRIu64 ",\"claim_hex\":\"0x%" PRIx64 "\"",
			       c->claim_id, c->claim_id);
		if (c->is_pool) {
			printf(",\"pool\":%u,\"quantity\":%" PRIu32 ",\"pool_free\":%" PRIu32,
			       c->pool, c->quantity, c->pool_free);
		} else {
			json_u32_array("seats", c->seats,
			               c->seat_count <= BO_SEATS_PER_HOLD_MAX ? c->seat_count : 0);
			printf(",\"state\":");
			bo_json_cstr(stdout, state ? state : "unknown");
		}
		printf("}\n");
	} else {
		printf("seq %" PRIu64 " %-7s", m->seq, cause ? cause : "unknown");
		if (c->claim_id) /* hex, as hold and confirm print and take it */
			printf(" claim 0x%" PRIx64, c->claim_id);
		if (c->is_pool) {
			printf(" pool %u: %" PRIu32 " moved, %" PRIu32 " of %" PRIu32 " free\n",
			       c->pool, c->quantity, c->pool_free,
			       c->pool < BO_POOLS_PER_EVENT_MAX ? im->pool_capacity[c->pool] : 0);
		} else {
			printf(" seats");
			for (uint32_t i = 0; i < c->seat_count && i < BO_SEATS_PER_HOLD_MAX; i++)
				printf(" %" PRIu32, c->seats[i]);
			printf(" -> %s\n", state ? state : "unknown");
		}
	}
	fflush(stdout);
}

static void watch_on_no_image(void *ctx, uint64_t event_id, int err, int status, const char *text,
                              uint32_t retry_ms)
{
	watcher *w = ctx;
	if (err == 0 && status == BO_NOT_FOUND) {
		if (w->json)
			printf("{\"type\":\"missing\",\"event\":%" PRIu64 "}\n", event_id);
		else
			printf("event %" PRIu64
			       " does not exist (yet); waiting for it to be created\n",
			       event_id);
		fflush(stdout);
		return;
	}
	const char *what = err < 0 ? boc_strerror(err) : boc_status_name(status);
	if (w->json) {
		printf("{\"type\":\"no_image\",\"event\":%" PRIu64 ",\"error\":", event_id);
		bo_json_cstr(stdout, what ? what : "unknown");
		printf(",\"message\":");
		bo_json_cstr(stdout, text);
		printf(",\"retry_ms\":%" PRIu32 "}\n", retry_ms);
		fflush(stdout);
	}
	fprintf(stderr,
	        "boxoffice-cli: no image of event %" PRIu64
	        " from %s: %s (%s); retrying in %" PRIu32 " ms\n",
	        event_id, w->server_url, what ? what : "unknown", text, retry_ms);
}

/* Runs watch; returns the exit code. */
static int run_watch(const global *g, const built *b)
{
	watcher w = {.json = g->json, .count = b->count};
	w.server_url = b->server_url ? b->server_url : g->url;
	const char *pub = b->pub_url ? b->pub_url : BOC_SUB_PUB_URL_DEFAULT;
	boc_sub_options o;
	boc_sub_options_default(&o);
	o.pub_url = pub;
	o.req_url = w.server_url;
	o.timeout_ms = g->timeout_ms;
	o.auth_token = g->auth_token;
	o.on_change = watch_on_change;
	o.on_resync = watch_on_resync;
	o.on_no_image = watch_on_no_image;
	o.ctx = &w;
	boc_sub *s;
	char err[BOC_TEXT_LEN_MAX + 64];
	int rc = boc_sub_open(&o, &s, err, sizeof(err));
	if (rc == -EINVAL)
		usage_error("%s", err);
	if (rc != 0) {
		fprintf(stderr, "boxoffice-cli: cannot open a subscriber: %s\n", err);
		return EXIT_NO_ANSWER;
	}
	g_command = NULL;
	int64_t start_ms = bo_clock_ms();
	/* Not needed for correctness (a late connection resynchronises), but
	 * it makes a missing publisher visible at once. */
	uint32_t connect_ms = b->run_ms && b->run_ms < 1000 ? (uint32_t)b->run_ms : 1000;
	if (boc_sub_wait_connected(s, connect_ms) != 0)
		fprintf(stderr,
		        "boxoffice-cli: no publisher at %s yet (is the server running with "
		        "--publish?); waiting for it\n",
		        pub);
	rc = boc_sub_watch(s, b->event);
	while (rc == 0 && !watcher_done(&w)) {
		int64_t left = b->run_ms ? (int64_t)b->run_ms - (bo_clock_ms() - start_ms) : 1000;
		if (left <= 0)
			break;
		int n = boc_sub_poll(s, (uint32_t)(left < 1000 ? left : 1000));
		if (n < 0)
			rc = n;
	}
	boc_sub_close(s);
	if (rc != 0) {
		fprintf(stderr, "boxoffice-cli: watch failed: %s\n", boc_strerror(rc));
		return EXIT_NO_ANSWER;
	}
	if (b->count != 0 && !watcher_done(&w)) {
		fprintf(stderr,
		        "boxoffice-cli: %" PRIu64 " of %" PRIu64 " changes within %" PRIu64 " ms\n",
		        w.seen, b->count, b->run_ms);
		return EXIT_NO_ANSWER;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	global g = {.url = getenv("BOXOFFICE_URL"), .timeout_ms = BOC_TIMEOUT_MS_DEFAULT};
	if (g.url == NULL || g.url[0] == '\0')
		g.url = CLI_URL_DEFAULT;
	g_usage = usage_main;
	int first = globals_before(&g, argc, argv);
	static char *rest[256];
	int nrest =
	        globals_after(&g, first, argc, argv, rest, (int)(sizeof(rest) / sizeof(rest[0])));
	if (g.servers[0] != '\0')
		g.url = g.servers; /* --server wins over --url and $BOXOFFICE_URL */
	if (nrest == 0)
		usage_error("no command given");
	if (g.timeout_ms == 0)
		usage_error("--timeout must be at least 1 ms");
	if (g.auth_file == NULL && (g.auth_file = getenv("BOXOFFICE_AUTH_TOKEN_FILE")) && !*g.auth_file)
		g.auth_file = NULL;
	if (g.auth_file != NULL) {
		char why[512];
		size_t len;
		g_command = NULL;
		if (bo_token_file_read(g.auth_file, g.auth_token, &len, why, sizeof(why)) < 0)
			usage_error("%s", why);
	}

	built b;
	build(&g, nrest, rest, &b);
	if (b.watch) {
		int code = run_watch(&g, &b);
		return fflush(stdout) == 0 ? code : EXIT_NO_ANSWER;
	}

	boc_options o;
	boc_options_default(&o);
	o.linger_zero = 1; /* one command: nothing to wait for */
	o.batch_max = 1;
	o.inflight_max = 1;
	o.queue_max = 1;
	o.timeout_ms = g.timeout_ms;
	o.client_id = g.client;
	o.auth_token = g.auth_token; /* "" without a file: none */
	if (b.cluster) {
		g_command = NULL;
		int code = run_cluster(&g, &o);
		return fflush(stdout) == 0 ? code : EXIT_NO_ANSWER;
	}
	boc_client *c;
	int rc;
	if (g.no_retry) {
		if (strchr(g.url, ',') != NULL)
			usage_error("--no-retry asks one server: give one --url or --server");
		boc_retry_options ro;
		boc_retry_options_default(&ro);
		ro.no_retry = 1;
		rc = boc_open_servers((const char *const[]){g.url}, 1, &o, &ro, &c);
	} else {
		rc = boc_open(g.url, &o, &c);
	}
	g_command = NULL;
	if (rc == -EINVAL)
		usage_error("--url '%s' is not an address nng accepts", g.url);
	if (rc != 0) {
		fprintf(stderr, "boxoffice-cli: cannot open a client: %s\n", boc_strerror(rc));
		bo_seatmap_free(b.map);
		return EXIT_NO_ANSWER;
	}
	if (b.server_status) {
		int code = run_server_status(&g, c);
		boc_close(c);
		return fflush(stdout) == 0 ? code : EXIT_NO_ANSWER;
	}
	if (b.switchover) {
		int code = run_switchover(&g, &b, c);
		boc_close(c);
		return fflush(stdout) == 0 ? code : EXIT_NO_ANSWER;
	}
	bo_result res;
	char text[BOC_TEXT_LEN_MAX];
	rc = boc_call(c, &b.cmd, &res, text, sizeof(text));
	boc_close(c);
	int code;
	if (rc < 0) {
		code = report_no_answer(&g, &b.cmd, &res, rc, text);
	} else {
		if (g.json)
			print_json(&res, text);
		else if (res.status == BO_OK)
			print_human_ok(&res, b.map, b.ttl_ms);
		else
			print_human_refused(&res, text);
		code = res.status == BO_OK ? EXIT_OK : EXIT_REFUSED;
	}
	bo_seatmap_free(b.map);
	return fflush(stdout) == 0 ? code : EXIT_NO_ANSWER;
}
