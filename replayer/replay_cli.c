/*
 * replay_cli.c — error lines and the option parser of boxoffice-replay (see
 * replay_cli.h).
 *
 * The parser is getopt_long in "return in order" mode ("-" first in the
 * option string): arguments are seen in the order given, so the first
 * problem on the line is the one reported, and DIR may come anywhere. Two
 * things getopt_long does on its own are undone, so that every spelling
 * means what it did before: it accepts unambiguous abbreviations ("--sha"
 * for --shard) — refused here as unknown, since a script that abbreviates
 * would break when a new option makes the prefix ambiguous; and it ends
 * option parsing at "--" — here "--" only makes the next argument DIR, even
 * one that starts with '-', and options may follow it.
 */
#include "replay_cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/parse.h"

void replay_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(REPLAY_PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int replay_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(REPLAY_PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see `" REPLAY_PROG "%s%s --help`)\n", cmd ? " " : "", cmd ? cmd : "");
	va_end(ap);
	return REPLAY_EXIT_USAGE;
}

/* getopt_long's codes for the long options (above any character). */
enum {
	O_SHARD = 256,
	O_JSON,
	O_NO_PROGRESS,
	O_ALLOW_TORN,
	O_FROM,
	O_TO,
	O_EVENT,
	O_AT,
	O_TRUNCATE_AT,
	O_BACKUP,
	O_SEATS_MAX,
	O_CLAIMS_MAX,
	O_IDEM_CAPACITY,
	O_EVENTS_MAX,
	O_DSN,
	O_FROM_SCRATCH,
	O_BATCH
};

/* Every option, and the REPLAY_OPT_* bit a command needs to take it (0:
 * every command takes it). */
static const struct {
	struct option opt;
	unsigned bit;
} all_options[] = {
        {{"shard", required_argument, NULL, O_SHARD}, 0},
        {{"json", no_argument, NULL, O_JSON}, 0},
        {{"no-progress", no_argument, NULL, O_NO_PROGRESS}, 0},
        {{"help", no_argument, NULL, 'h'}, 0},
        {{"allow-torn-tail", no_argument, NULL, O_ALLOW_TORN}, REPLAY_OPT_ALLOW_TORN},
        {{"from", required_argument, NULL, O_FROM}, REPLAY_OPT_RANGE},
        {{"to", required_argument, NULL, O_TO}, REPLAY_OPT_RANGE},
        {{"event", required_argument, NULL, O_EVENT}, REPLAY_OPT_EVENT},
        {{"at", required_argument, NULL, O_AT}, REPLAY_OPT_AT},
        {{"truncate-at", required_argument, NULL, O_TRUNCATE_AT}, REPLAY_OPT_CUT},
        {{"backup", required_argument, NULL, O_BACKUP}, REPLAY_OPT_CUT},
        {{"seats-max", required_argument, NULL, O_SEATS_MAX}, REPLAY_OPT_CAPACITY},
        {{"claims-max", required_argument, NULL, O_CLAIMS_MAX}, REPLAY_OPT_CAPACITY},
        {{"idem-capacity", required_argument, NULL, O_IDEM_CAPACITY}, REPLAY_OPT_CAPACITY},
        {{"events-max", required_argument, NULL, O_EVENTS_MAX}, REPLAY_OPT_CAPACITY},
        {{"dsn", required_argument, NULL, O_DSN}, REPLAY_OPT_PG},
        {{"from-scratch", no_argument, NULL, O_FROM_SCRATCH}, REPLAY_OPT_PG},
        {{"batch", required_argument, NULL, O_BATCH}, REPLAY_OPT_PG},
};
#define OPTIONS_N (sizeof all_options / sizeof all_options[0])

/* Longest option name a message quotes as "unknown option '--name' for
 * CMD"; anything longer is quoted whole, without the command. */
#define OPT_NAME_MAX 64u

/* The parse in progress. */
typedef struct parser {
	const replay_cmd *c;
	replay_opts *o;
	struct option longopts[OPTIONS_N + 1]; /* the options c takes, then zeros */
	char name[OPT_NAME_MAX];               /* "--name" of the element at hand */
} parser;

static void parser_init(parser *p, const replay_cmd *c, replay_opts *o)
{
	memset(p, 0, sizeof *p);
	p->c = c;
	p->o = o;
	size_t n = 0;
	for (size_t i = 0; i < OPTIONS_N; i++)
		if (all_options[i].bit == 0 || (c->options & all_options[i].bit))
			p->longopts[n++] = all_options[i].opt;
}

/* Copies the option name of argument `elem` (up to '=') into p->name.
 * Returns 0, or -1 when it is too long to be any option. */
static int element_name(parser *p, const char *elem)
{
	size_t n = strcspn(elem, "=");
	if (n >= sizeof p->name)
		return -1;
	memcpy(p->name, elem, n);
	p->name[n] = '\0';
	return 0;
}

/* The option of c spelled exactly as p->name, or NULL. */
static const struct option *exact_option(const parser *p)
{
	if (strncmp(p->name, "--", 2) != 0)
		return NULL;
	for (const struct option *lo = p->longopts; lo->name; lo++)
		if (strcmp(p->name + 2, lo->name) == 0)
			return lo;
	return NULL;
}

static int unknown_option(const parser *p)
{
	return replay_usage_error(p->c->name, "unknown option '%s' for %s", p->name, p->c->name);
}

/* getopt_long returned '?' or ':' for argument `elem`: say why. */
static int option_error(parser *p, int ch, const char *elem)
{
	if (element_name(p, elem) != 0)
		return replay_usage_error(p->c->name, "unknown option '%s'", elem);
	const struct option *lo = exact_option(p);
	if (!lo)
		return unknown_option(p);
	if (ch == ':')
		return replay_usage_error(p->c->name, "option %s needs a value", p->name);
	if (lo->has_arg == no_argument && lo->val != 'h' && strchr(elem, '='))
		return replay_usage_error(p->c->name, "option %s takes no value", p->name);
	return unknown_option(p);
}

static int positional(parser *p, const char *arg)
{
	if (p->o->dir)
		return replay_usage_error(p->c->name,
		                          "unexpected argument '%s' (DIR is already '%s')", arg,
		                          p->o->dir);
	p->o->dir = arg;
	return 0;
}

/* Stores engine capacity option `code` (1 .. UINT32_MAX). */
static int set_capacity(parser *p, int code, const char *val, uint64_t v)
{
	if (v == 0 || v > UINT32_MAX)
		return replay_usage_error(p->c->name, "%s %s is out of range", p->name, val);
	replay_opts *o = p->o;
	uint32_t *dst = code == O_SEATS_MAX       ? &o->seats_max
	                : code == O_CLAIMS_MAX    ? &o->claims_max
	                : code == O_IDEM_CAPACITY ? &o->idem_capacity
	                                          : &o->events_max;
	*dst = (uint32_t)v;
	return 0;
}

/* Stores option `code` with its value (NULL for flags). */
static int set_option(parser *p, int code, const char *val)
{
	replay_opts *o = p->o;
	uint64_t v = 0;
	if (val && code != O_BACKUP && code != O_DSN &&
	    bo_parse_u64(val, 0, UINT64_MAX, 0, &v) != 0)
		return replay_usage_error(p->c->name, "%s: '%s' is not a non-negative whole number",
		                          p->name, val);
	switch (code) {
	case O_JSON:
		o->json = 1;
		return 0;
	case O_NO_PROGRESS:
		o->no_progress = 1;
		return 0;
	case O_ALLOW_TORN:
		o->allow_torn_tail = 1;
		return 0;
	case O_SHARD:
		if (v > UINT32_MAX)
			return replay_usage_error(p->c->name, "--shard %s is out of range", val);
		o->have_shard = 1;
		o->shard = (uint32_t)v;
		return 0;
	case O_FROM:
		o->have_from = 1;
		o->from = v;
		return 0;
	case O_TO:
		o->have_to = 1;
		o->to = v;
		return 0;
	case O_EVENT:
		o->have_event = 1;
		o->event = v;
		return 0;
	case O_AT:
		if (v == 0)
			return replay_usage_error(p->c->name, "--at must be a seq >= 1");
		o->have_at = 1;
		o->at = v;
		return 0;
	case O_TRUNCATE_AT:
		if (v == 0)
			return replay_usage_error(p->c->name, "--truncate-at must be a seq >= 1");
		o->have_trunc = 1;
		o->trunc = v;
		return 0;
	case O_BACKUP:
		if (!val[0])
			return replay_usage_error(p->c->name, "--backup needs a directory");
		o->backup = val;
		return 0;
	case O_DSN:
		if (!val[0])
			return replay_usage_error(p->c->name, "--dsn needs a connection string");
		o->dsn = val;
		return 0;
	case O_FROM_SCRATCH:
		o->from_scratch = 1;
		return 0;
	case O_BATCH:
		if (v == 0 || v > REPLAY_BATCH_MAX)
			return replay_usage_error(p->c->name,
			                          "--batch %s is out of range (1 .. %u)", val,
			                          REPLAY_BATCH_MAX);
		o->batch = (uint32_t)v;
		return 0;
	default:
		return set_capacity(p, code, val, v);
	}
}

/* One option getopt_long recognised in argument `elem` (elem_done: the
 * argument is used up, not a cluster of short options going on). Returns
 * 0, an exit code, or -1 for --help. */
static int one_option(parser *p, int ch, const char *elem, int elem_done)
{
	if (elem[1] != '-') {
		/* A short option: only "-h" itself ("-hx" spells nothing). */
		if (ch == 'h' && elem_done && strcmp(elem, "-h") == 0)
			return -1;
		return option_error(p, '?', elem);
	}
	if (element_name(p, elem) != 0 || exact_option(p) == NULL)
		return option_error(p, '?', elem); /* an abbreviation */
	if (ch == 'h')
		return -1;
	return set_option(p, ch, optarg);
}

/* The checks that need the whole line. */
static int final_checks(const parser *p)
{
	const replay_opts *o = p->o;
	if (!o->dir)
		return replay_usage_error(p->c->name, "missing DIR");
	if (o->have_from && o->have_to && o->from > o->to)
		return replay_usage_error(p->c->name, "--from %" PRIu64 " is after --to %" PRIu64,
		                          o->from, o->to);
	return p->c->check ? p->c->check(o) : 0;
}

int replay_cli_parse(int argc, char **argv, const replay_cmd *c, replay_opts *o, int *done)
{
	memset(o, 0, sizeof *o);
	o->cmd = c->name;
	*done = 0;
	parser p;
	parser_init(&p, c, o);
	/* From argv[1], the command's name, as if it were the program's. */
	int ac = argc - 1;
	char **av = argv + 1;
	opterr = 0;
	optind = 1;
	for (;;) {
		int before = optind; /* in-order mode: the argument getopt looks at */
		int ch = getopt_long(ac, av, "-:h", p.longopts, NULL);
		int rc = 0;
		if (ch == -1) {
			if (before >= ac || strcmp(av[before], "--") != 0)
				break;
			/* "--": the next argument is DIR whatever it looks like. */
			if (before + 1 >= ac)
				return replay_usage_error(c->name, "missing DIR after --");
			rc = positional(&p, av[before + 1]);
			optind = before + 2;
		} else if (ch == 1) {
			rc = positional(&p, optarg);
		} else if (ch == '?' || ch == ':') {
			rc = option_error(&p, ch, av[before]);
		} else {
			rc = one_option(&p, ch, av[before], optind > before);
		}
		if (rc == -1) {
			fputs(c->usage, stdout);
			*done = 1;
			return REPLAY_EXIT_OK;
		}
		if (rc != 0)
			return rc;
	}
	return final_checks(&p);
}
