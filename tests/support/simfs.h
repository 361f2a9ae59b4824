/*
 * simfs.h — a storage simulator for power-loss tests: an observer of
 * base/fsio.h that keeps, for a directory tree, what a completed sync has
 * made durable and what is only in the page cache, and at a simulated power
 * cut writes out a tree that a real disk could have been left with.
 *
 * The model (in the spirit of SQLite's crash VFS and TigerBeetle's storage
 * simulator, written from their ideas, not their code):
 *   - Files are nodes (inodes): a rename moves the node, so its data and
 *     its pending writes go with it. Each file has its DURABLE content and
 *     size (as of its last completed SYNC) and the list of changes reported
 *     since (writes, zeroed ranges, size changes), in order.
 *   - Directories are nodes too, each with its entries: per name, the
 *     DURABLE binding (as of the directory's last completed SYNC; none, a
 *     file or a directory) and the CURRENT one (after every reported
 *     create, mkdir, rename and unlink). A file's own sync does not make its
 *     name durable; only a sync of its directory does.
 *   - A power cut keeps, for every directory entry whose two bindings
 *     differ, one of them at random (a new file may vanish, an unlinked one
 *     reappear, a renamed one keep its old name, or have both names, or
 *     neither); for every file reached, its size is its durable size after
 *     a random prefix of its pending size changes, and each 512-byte
 *     sector holds its durable bytes after a random prefix (chosen per
 *     sector) of the pending changes that touch it: writes are dropped,
 *     torn at sector boundaries and reordered, never torn inside a sector.
 *   - Files that exist under the root when the simulator starts are taken
 *     as durable, names and bytes. A file the simulator first hears of later
 *     (written by a process it does not observe, such as a forked child)
 *     is ADOPTED: read from the disk at that moment, its bytes taken as
 *     durable (the writer is trusted to have synced them), its name as
 *     not yet durable. simfs_adopted() counts them, so a test can tell when
 *     a writer escapes the model.
 *
 * A SYNC makes durable every change to that file (or directory) reported
 * before it, as base/fsio.h says. A reporter with several I/Os of one file
 * in flight (io_uring chains that overlap) must keep that true: a write
 * whose completion is reaped before the completion of an fdatasync that
 * was already running may not be covered by it, so its report has to wait
 * until that SYNC is reported (reporting it later only hides states from
 * the cuts; reporting it earlier would make the model too kind).
 *
 * Only paths under the root are modelled (spelled as the root is: paths
 * are compared as strings after collapsing "//" and "/./"); other events
 * are ignored. Events reported from another process (a forked child's copy
 * of the observer) are ignored too, without taking a lock.
 *
 * Threading: every function may be called from any thread; one recursive
 * mutex serialises them, so a hook (simfs_set_hook) may call simfs_cut()
 * from inside the observer, on the thread that reported the event, while
 * the other reporting threads wait. A cut is non-destructive: the run goes
 * on and may be cut again.
 *
 * Free of Criterion; errors come back as -errno with a message.
 */
#ifndef BO_TEST_SIMFS_H
#define BO_TEST_SIMFS_H

#include <stddef.h>
#include <stdint.h>

#include "base/fsio.h"

#define SIMFS_SECTOR_BYTES 512u

typedef struct simfs simfs;

/* What one cut decided (for a test's summary: proof that the cut had
 * something to drop). */
typedef struct simfs_cut_stats {
	uint32_t files;           /* files written out */
	uint32_t dirs;            /* directories written out (the root excluded) */
	uint32_t entries_pending; /* entries whose durable and current bindings differ */
	uint32_t entries_old;     /* ... of which the cut kept the durable (old) one */
	uint64_t sectors_pending; /* sectors of the files written out with pending changes */
	uint64_t sectors_old;     /* ... of which the cut kept less than every change */
	uint32_t sizes_reverted;  /* files written out shorter or longer than their current size */
	uint64_t bytes;           /* bytes written out */
} simfs_cut_stats;

/* Called after each modelled event (the simulator holds its lock; the hook
 * may call simfs_cut and simfs_* getters, not the bo_fs_* wrappers).
 * `index` counts the modelled events from 1. */
typedef void (*simfs_hook_fn)(void *ctx, simfs *sim, const bo_fs_event *ev, uint64_t index);

/* A simulator of the tree under `root` (an existing directory), whose
 * current files and directories are taken as durable. Returns 0 and *out
 * (simfs_free), or -errno with a message in err. */
int simfs_new(const char *root, simfs **out, char *err, size_t errlen);

/* Frees the simulator. It must not be installed. */
void simfs_free(simfs *sim);

/* Installs sim as the process's fs observer (bo_fs_observe), or removes
 * whatever is installed (sim NULL). Same rule as bo_fs_observe: while no
 * other thread uses the wrappers. */
void simfs_install(simfs *sim);

/* The observer itself (a bo_fs_observer_fn with ctx = the simulator), for
 * a test that chains it behind its own. */
void simfs_observe(void *ctx, const bo_fs_event *ev);

/* Sets (fn non-NULL) or clears the hook. */
void simfs_set_hook(simfs *sim, simfs_hook_fn fn, void *ctx);

/* The power cut: writes into out_dir (created; its parent must exist; it
 * must be outside the root) a tree the disk could hold if power failed
 * now, chosen with `seed`. The simulator's state does not change. With st
 * non-NULL, stores what was decided. Returns 0, or -errno with a message
 * (out_dir may then be partly written). */
int simfs_cut(simfs *sim, uint64_t seed, const char *out_dir, simfs_cut_stats *st, char *err,
              size_t errlen);

/* Modelled events so far. */
uint64_t simfs_events(simfs *sim);

/* Files adopted so far (see above). */
uint64_t simfs_adopted(simfs *sim);

/* Events the model could not apply (a write to a directory, a rename of
 * the root...): a test should expect 0. */
uint64_t simfs_anomalies(simfs *sim);

#endif /* BO_TEST_SIMFS_H */
