/*
 * cmd_repair.c — `boxoffice-replay repair`: the operator's explicit cut of a
 * corrupt journal. It makes a backup directory, has the journal cut itself
 * at --truncate-at (journal_truncate_at copies every byte it cuts into the
 * backup first), then moves the snapshots of cut seqs into the backup too:
 * they describe states the journal no longer reaches, and the shard would
 * refuse to start on them.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "journal/journal.h"
#include "journal/maint.h"
#include "replayer/replay_cli.h"
#include "replayer/replay_dir.h"

static const char usage[] =
        "Usage: " REPLAY_PROG " repair DIR --shard N --truncate-at SEQ [--backup DIR2] [--json]\n"
        "\n"
        "The explicit operator action for a corrupt journal: cuts shard N's journal so\n"
        "that SEQ - 1 is its last record (records SEQ and later are removed), after\n"
        "copying every byte it cuts into a backup directory:\n"
        "  default DIR/shard-NNNN/repair-<UTC time>/ (created), or DIR2 (created when\n"
        "  missing; must not be the shard directory).\n"
        "Snapshots of seq >= SEQ (they include cut records) are moved into the backup\n"
        "too. Prints what was cut and where the copy is (--json: one object,\n"
        "{\"shard\",\"truncated_at\",\"backup\",\"snapshots_moved\",\"summary\",\"ok\"}).\n"
        "Use `verify` first: its report names the seq of the first bad record; cutting\n"
        "there keeps everything before it. Never asks anything (scripts run it). The\n"
        "server must not be running. Refuses without --shard and --truncate-at.\n"
        "\n"
        "Exit: 0 cut (or nothing to cut), 1 the cut failed part-way (the message\n"
        "says how far; the backup is kept), 2 usage (also: SEQ outside the readable\n"
        "journal, DIR2 is the shard directory or not a directory), 3 I/O or\n"
        "environment (also: the backup directory cannot be created, a backup file\n"
        "exists already, a snapshot of a cut seq cannot be moved).\n";

static int check(const replay_opts *o)
{
	if (!o->have_shard)
		return replay_usage_error(
		        "repair", "repair needs --shard N (it never cuts more than one shard)");
	if (!o->have_trunc)
		return replay_usage_error(
		        "repair", "repair needs --truncate-at SEQ (the first seq to remove)");
	return 0;
}

/* Writes buf[0..n) to a new file `to` and fsyncs it. Returns 0 or -errno. */
static int write_new(const char *to, const uint8_t *buf, size_t n)
{
	int fd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = 0;
	size_t done = 0;
	while (done < n) {
		ssize_t k = write(fd, buf + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EIO;
			break;
		}
		done += (size_t)k;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* Moves file `from` into directory `dir` (rename; copy + fsync + unlink
 * across file systems). Returns 0 or -errno (-EEXIST: the name is taken
 * there). */
static int move_into(const char *from, const char *dir)
{
	const char *slash = strrchr(from, '/');
	const char *name = slash ? slash + 1 : from;
	char to[REPLAY_DIR_PATH_LEN];
	int tl = snprintf(to, sizeof to, "%s/%s", dir, name);
	if (tl < 0 || (size_t)tl >= sizeof to)
		return -ENAMETOOLONG;
	if (access(to, F_OK) == 0)
		return -EEXIST;
	if (rename(from, to) == 0)
		return 0;
	if (errno != EXDEV)
		return -errno;
	uint8_t *buf;
	size_t n;
	int rc = replay_dir_read_file(from, REPLAY_SNAPSHOT_BYTES_MAX, &buf, &n);
	if (rc < 0)
		return rc;
	rc = write_new(to, buf, n);
	free(buf);
	if (rc == 0 && unlink(from) != 0)
		rc = -errno;
	return rc;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

/* Makes the backup directory into backup: --backup (created when missing),
 * else DIR/shard-NNNN/repair-<UTC time>, and -2, -3 ... if run twice in one
 * second. Returns 0, or an exit code after an error line. */
static int make_backup(const replay_opts *o, const replay_shard_dir *d, char *backup, size_t len)
{
	if (o->backup) {
		snprintf(backup, len, "%s", o->backup);
		if (mkdir(backup, 0755) != 0 && errno != EEXIST) {
			replay_err("%s: cannot create backup directory: %s", backup,
			           strerror(errno));
			return REPLAY_EXIT_IO;
		}
		return 0;
	}
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char stamp[32];
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 1; i < 100; i++) {
		if (i == 1)
			snprintf(backup, len, "%s/repair-%s", d->path, stamp);
		else
			snprintf(backup, len, "%s/repair-%s-%d", d->path, stamp, i);
		if (mkdir(backup, 0755) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	replay_err("%s: cannot create backup directory: %s", backup, strerror(errno));
	return REPLAY_EXIT_IO;
}

/* Moves the snapshots of seqs >= o->trunc into backup, listing their seqs
 * in moved_list. Returns how many moved; *code becomes REPLAY_EXIT_IO when
 * one could not be moved (said on stderr). */
static uint32_t move_cut_snapshots(const replay_opts *o, const replay_shard_dir *d,
                                   const char *backup, char *moved_list, size_t list_len, int *code)
{
	uint32_t moved = 0;
	moved_list[0] = '\0';
	for (uint32_t i = 0; i < d->snap_count; i++) {
		if (d->snaps[i].seq < o->trunc)
			continue;
		char path[REPLAY_DIR_PATH_LEN];
		replay_dir_snap_path(d, i, path, sizeof path);
		int mr = move_into(path, backup);
		if (mr < 0) {
			replay_err(
			        "%s: cannot move this snapshot of a cut seq into %s: %s; move it "
			        "away before starting the shard",
			        path, backup, strerror(-mr));
			*code = REPLAY_EXIT_IO;
			continue;
		}
		moved++;
		size_t used = strlen(moved_list);
		snprintf(moved_list + used, list_len - used, "%s%" PRIu64, used ? ", " : "",
		         d->snaps[i].seq);
	}
	if (moved) {
		fsync_dir(d->path);
		fsync_dir(backup);
	}
	return moved;
}

static void print_result(const replay_opts *o, uint32_t shard, const char *backup,
                         const char *summary, uint32_t moved, const char *moved_list, int ok)
{
	if (o->json) {
		printf("{\"shard\":%" PRIu32 ",\"truncated_at\":%" PRIu64 ",\"backup\":", shard,
		       o->trunc);
		bo_json_cstr(stdout, backup);
		printf(",\"snapshots_moved\":%" PRIu32 ",\"summary\":", moved);
		bo_json_cstr(stdout, summary);
		printf(",\"ok\":%s}\n", ok ? "true" : "false");
		return;
	}
	printf("shard %" PRIu32 ": journal cut so that seq %" PRIu64 " is its last record: %s\n",
	       shard, o->trunc - 1, summary);
	printf("shard %" PRIu32 ": backup of what was cut: %s\n", shard, backup);
	if (moved)
		printf("shard %" PRIu32 ": snapshots of cut seqs moved into the backup: seq %s\n",
		       shard, moved_list);
}

/* Cuts shard d. Returns the exit code. */
static int repair_shard(const replay_opts *o, const replay_shard_dir *d)
{
	char backup[REPLAY_DIR_PATH_LEN];
	int code = make_backup(o, d, backup, sizeof backup);
	if (code != 0)
		return code;
	char jerr[JOURNAL_ERR_LEN] = "";
	int rc = journal_truncate_at(o->dir, d->shard, o->trunc, backup, jerr, sizeof jerr);
	if (rc < 0) {
		replay_err("shard %" PRIu32 ": repair refused or failed: %s", d->shard,
		           jerr[0] ? jerr : strerror(-rc));
		if (!o->backup)
			rmdir(backup); /* only succeeds when nothing was copied into it */
		if (rc == -ERANGE || rc == -EINVAL)
			return REPLAY_EXIT_USAGE;
		/* Nothing cut for these; a failure after the backups were
		 * written leaves a half-done cut: the operator must look. */
		return rc == -EEXIST || rc == -ENOENT || rc == -ENOMEM ? REPLAY_EXIT_IO
		                                                       : REPLAY_EXIT_FAILED;
	}
	char moved_list[1024];
	uint32_t moved = move_cut_snapshots(o, d, backup, moved_list, sizeof moved_list, &code);
	print_result(o, d->shard, backup, jerr, moved, moved_list, code == REPLAY_EXIT_OK);
	return code;
}

static int run(const replay_opts *o, const replay_shard_list *sl)
{
	/* check() demands --shard, so main selected exactly that one. */
	assert(sl->count == 1);
	replay_shard_dir d;
	char err[PATH_MAX + 256];
	if (replay_dir_scan(o->dir, sl->ids[0], &d, err, sizeof err) < 0) {
		replay_err("%s", err);
		return REPLAY_EXIT_IO;
	}
	int code = repair_shard(o, &d);
	replay_dir_free(&d);
	return code;
}

const replay_cmd cmd_repair = {
        .name = "repair",
        .usage = usage,
        .options = REPLAY_OPT_CUT,
        .check = check,
        .run = run,
};
