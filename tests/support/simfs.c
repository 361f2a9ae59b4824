/*
 * simfs.c — the storage simulator of the power-loss tests (see simfs.h).
 */
#include "tests/support/simfs.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/rng.h"

/* A change to a file not yet covered by a sync. */
enum {
	CH_WRITE = 1,
	CH_ZERO,
	CH_GROW,
	CH_TRUNC
};

typedef struct change {
	int kind;
	uint64_t off, len; /* WRITE, ZERO: the range; GROW, TRUNC: len is the size */
	uint8_t *data;     /* WRITE: a copy of the bytes; owned */
} change;

typedef struct node node;

typedef struct dent {
	char *name; /* owned */
	node *cur;  /* the binding now, or NULL */
	node *dur;  /* the binding as of the directory's last sync, or NULL */
} dent;

struct node {
	int is_dir;
	uint32_t refs; /* dent slots (cur or dur) naming it, +1 for the root */
	/* File: durable bytes [0, dsize) in dat (the rest of dcap is zero). */
	uint8_t *dat;
	uint64_t dsize, dcap;
	uint64_t csize; /* current size */
	change *ch;
	uint32_t nch, capch;
	/* Directory. */
	dent *ents;
	uint32_t nents, capents;
	/* The current cut's image of the file (computed once per cut, so two
	 * names of one node get the same bytes). */
	uint64_t cut_gen;
	uint8_t *cut_img;
	uint64_t cut_size;
	node *cut_next; /* images to free after the cut */
};

struct simfs {
	pthread_mutex_t mu; /* recursive: a hook may cut */
	pid_t pid;
	char root[PATH_MAX];
	size_t root_len;
	node *top;
	uint64_t events, adopted, anomalies;
	simfs_hook_fn hook;
	void *hook_ctx;
	uint64_t gen; /* cuts made */
	uint64_t rng; /* the current cut's generator */
	node *cut_list;
	simfs_cut_stats st;
};

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p) {
		fprintf(stderr, "simfs: out of memory\n");
		abort();
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "simfs: out of memory\n");
		abort();
	}
	return q;
}

/* ---- Nodes ----------------------------------------------------------------- */

static node *node_new(int is_dir)
{
	node *n = xcalloc(1, sizeof *n);
	n->is_dir = is_dir;
	return n;
}

static void changes_clear(node *n)
{
	for (uint32_t i = 0; i < n->nch; i++)
		free(n->ch[i].data);
	n->nch = 0;
}

static void unref(node *n);

static void node_free(node *n)
{
	changes_clear(n);
	free(n->ch);
	free(n->dat);
	for (uint32_t i = 0; i < n->nents; i++) {
		if (n->ents[i].cur)
			unref(n->ents[i].cur);
		if (n->ents[i].dur)
			unref(n->ents[i].dur);
		free(n->ents[i].name);
	}
	free(n->ents);
	free(n);
}

static void unref(node *n)
{
	assert(n->refs > 0);
	if (--n->refs == 0)
		node_free(n);
}

/* Makes dat hold at least `size` bytes, zero beyond dsize. */
static void dat_reserve(node *f, uint64_t size)
{
	if (size <= f->dcap)
		return;
	uint64_t cap = f->dcap ? f->dcap : 4096;
	while (cap < size)
		cap *= 2;
	f->dat = xrealloc(f->dat, cap);
	memset(f->dat + f->dcap, 0, cap - f->dcap);
	f->dcap = cap;
}

/* The file's size after change c, from size `size` before it. */
static uint64_t size_after(const change *c, uint64_t size)
{
	switch (c->kind) {
	case CH_WRITE:
		return c->off + c->len > size ? c->off + c->len : size;
	case CH_GROW:
		return c->len > size ? c->len : size;
	case CH_TRUNC:
		return c->len;
	default:
		return size;
	}
}

static void change_push(node *f, int kind, uint64_t off, uint64_t len, const void *data)
{
	if (f->nch == f->capch) {
		f->capch = f->capch ? 2 * f->capch : 8;
		f->ch = xrealloc(f->ch, f->capch * sizeof *f->ch);
	}
	change *c = &f->ch[f->nch++];
	*c = (change){.kind = kind, .off = off, .len = len};
	if (kind == CH_WRITE) {
		c->data = xrealloc(NULL, len);
		memcpy(c->data, data, len);
	}
	f->csize = size_after(c, f->csize);
}

/* Applies change c to the image img (of capacity >= every extent) whose
 * size is *size, restricted to bytes [lo, hi). */
static void change_apply(const change *c, uint8_t *img, uint64_t lo, uint64_t hi)
{
	uint64_t a, b;
	switch (c->kind) {
	case CH_WRITE:
		a = c->off > lo ? c->off : lo;
		b = c->off + c->len < hi ? c->off + c->len : hi;
		if (a < b)
			memcpy(img + a, c->data + (a - c->off), b - a);
		break;
	case CH_ZERO:
		a = c->off > lo ? c->off : lo;
		b = c->off + c->len < hi ? c->off + c->len : hi;
		if (a < b)
			memset(img + a, 0, b - a);
		break;
	case CH_TRUNC: /* bytes past the new end read as zero if it grows again */
		a = c->len > lo ? c->len : lo;
		if (a < hi)
			memset(img + a, 0, hi - a);
		break;
	default:
		break;
	}
}

/* A sync of the file: every change so far is durable. */
static void file_sync(node *f)
{
	uint64_t ext = f->dsize;
	for (uint32_t i = 0; i < f->nch; i++) {
		const change *c = &f->ch[i];
		uint64_t e = c->kind == CH_WRITE || c->kind == CH_ZERO ? c->off + c->len : c->len;
		if (e > ext)
			ext = e;
	}
	dat_reserve(f, ext);
	for (uint32_t i = 0; i < f->nch; i++)
		change_apply(&f->ch[i], f->dat, 0, f->dcap);
	changes_clear(f);
	f->dsize = f->csize;
	/* Keep the invariant: zero beyond dsize. */
	if (f->dcap > f->dsize)
		memset(f->dat + f->dsize, 0, f->dcap - f->dsize);
}

/* A sync of the directory: every binding so far is durable. */
static void dir_sync(node *d)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < d->nents; i++) {
		dent *e = &d->ents[i];
		if (e->dur != e->cur) {
			if (e->cur)
				e->cur->refs++;
			if (e->dur)
				unref(e->dur);
			e->dur = e->cur;
		}
		if (e->cur == NULL) {
			free(e->name);
			continue;
		}
		d->ents[k++] = *e;
	}
	d->nents = k;
}

static dent *dent_find(node *d, const char *name)
{
	for (uint32_t i = 0; i < d->nents; i++)
		if (strcmp(d->ents[i].name, name) == 0)
			return &d->ents[i];
	return NULL;
}

static dent *dent_get(node *d, const char *name)
{
	dent *e = dent_find(d, name);
	if (e)
		return e;
	if (d->nents == d->capents) {
		d->capents = d->capents ? 2 * d->capents : 8;
		d->ents = xrealloc(d->ents, d->capents * sizeof *d->ents);
	}
	e = &d->ents[d->nents++];
	*e = (dent){.name = strdup(name)};
	if (!e->name) {
		fprintf(stderr, "simfs: out of memory\n");
		abort();
	}
	return e;
}

/* Binds e's current name to n (NULL: unbinds). */
static void bind_cur(dent *e, node *n)
{
	if (n)
		n->refs++;
	if (e->cur)
		unref(e->cur);
	e->cur = n;
}

/* ---- Reading the disk (start and adoption) --------------------------------- */

/* A file node holding the bytes of the real file at path, all durable
 * (empty when it cannot be read). */
static node *file_from_disk(const char *path)
{
	node *f = node_new(0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		return f;
	}
	uint64_t size = (uint64_t)st.st_size;
	dat_reserve(f, size);
	uint64_t got = 0;
	while (got < size) {
		ssize_t r = pread(fd, f->dat + got, size - got, (off_t)got);
		if (r <= 0)
			break;
		got += (uint64_t)r;
	}
	close(fd);
	f->dsize = f->csize = got;
	return f;
}

/* Fills directory node d from the real directory at path, every entry
 * durable. Returns 0 or -errno. */
static int dir_from_disk(node *d, const char *path)
{
	DIR *dh = opendir(path);
	if (!dh)
		return -errno;
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(dh)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof sub, "%s/%s", path, de->d_name) >= (int)sizeof sub) {
			rc = -ENAMETOOLONG;
			break;
		}
		struct stat st;
		if (lstat(sub, &st) != 0)
			continue; /* gone meanwhile */
		node *n;
		if (S_ISDIR(st.st_mode)) {
			n = node_new(1);
			rc = dir_from_disk(n, sub);
		} else if (S_ISREG(st.st_mode)) {
			n = file_from_disk(sub);
		} else {
			continue; /* nothing boxoffice writes */
		}
		dent *e = dent_get(d, de->d_name);
		bind_cur(e, n);
		e->dur = n;
		n->refs++;
	}
	closedir(dh);
	return rc;
}

/* ---- Paths ----------------------------------------------------------------- */

/* Copies path into out with "//" and "/./" collapsed and no trailing '/'.
 * Returns 0, or -1 when it does not fit. */
static int path_norm(const char *path, char *out, size_t cap)
{
	size_t k = 0;
	for (const char *p = path; *p;) {
		if (*p == '/' && (p[1] == '/' || (p[1] == '.' && (p[2] == '/' || p[2] == '\0')))) {
			p += p[1] == '/' ? 1 : 2;
			continue;
		}
		if (k + 1 >= cap)
			return -1;
		out[k++] = *p++;
	}
	while (k > 1 && out[k - 1] == '/')
		k--;
	out[k] = '\0';
	return 0;
}

/* The path relative to the root ("" for the root itself), or NULL when it
 * is not under the root. Points into buf. */
static const char *rel_path(const simfs *sim, const char *path, char *buf, size_t cap)
{
	if (!path || path_norm(path, buf, cap) != 0)
		return NULL;
	if (strncmp(buf, sim->root, sim->root_len) != 0)
		return NULL;
	const char *r = buf + sim->root_len;
	if (*r == '\0')
		return r;
	return *r == '/' ? r + 1 : NULL;
}

/* Walks rel's directories through current bindings and returns the
 * directory that holds its last component (stored in *name, pointing into
 * rel's buffer, which is modified), creating missing directories as adopted
 * ones. NULL for the root itself or a path through a file. */
static node *walk_parent(simfs *sim, char *rel, const char **name)
{
	if (*rel == '\0')
		return NULL;
	node *d = sim->top;
	char *p = rel;
	for (char *slash; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		dent *e = dent_get(d, p);
		if (!e->cur) {
			bind_cur(e, node_new(1));
			sim->adopted++;
		}
		if (!e->cur->is_dir)
			return NULL;
		d = e->cur;
	}
	*name = p;
	return d;
}

/* The node a path names now, or NULL. */
static node *lookup(simfs *sim, const char *path)
{
	char buf[PATH_MAX];
	const char *rel = rel_path(sim, path, buf, sizeof buf);
	if (!rel)
		return NULL;
	if (*rel == '\0')
		return sim->top;
	const char *name;
	node *d = walk_parent(sim, (char *)rel, &name);
	dent *e = d ? dent_find(d, name) : NULL;
	return e ? e->cur : NULL;
}

/* The file at path, adopting it from the disk when the model does not
 * know it (its name not durable). NULL when the path is outside the root
 * or names a directory. */
static node *file_at(simfs *sim, const char *path)
{
	char buf[PATH_MAX];
	const char *rel = rel_path(sim, path, buf, sizeof buf);
	if (!rel)
		return NULL;
	const char *name;
	node *d = walk_parent(sim, (char *)rel, &name);
	if (!d)
		return NULL;
	dent *e = dent_get(d, name);
	if (!e->cur) {
		bind_cur(e, file_from_disk(path));
		sim->adopted++;
	}
	return e->cur->is_dir ? NULL : e->cur;
}

/* ---- Events ---------------------------------------------------------------- */

static int in_root(const simfs *sim, const char *path)
{
	char buf[PATH_MAX];
	return rel_path(sim, path, buf, sizeof buf) != NULL;
}

static void ev_create(simfs *sim, const bo_fs_event *ev)
{
	char buf[PATH_MAX];
	const char *rel = rel_path(sim, ev->path, buf, sizeof buf);
	const char *name;
	node *d = walk_parent(sim, (char *)rel, &name);
	if (!d) {
		sim->anomalies++;
		return;
	}
	dent *e = dent_get(d, name);
	if (!e->cur)
		bind_cur(e, node_new(0));
	else if (e->cur->is_dir)
		sim->anomalies++;
	else if (ev->len == 1 && e->cur->csize > 0)
		change_push(e->cur, CH_TRUNC, 0, 0, NULL);
}

static void ev_mkdir(simfs *sim, const bo_fs_event *ev)
{
	char buf[PATH_MAX];
	const char *rel = rel_path(sim, ev->path, buf, sizeof buf);
	const char *name;
	node *d = walk_parent(sim, (char *)rel, &name);
	if (!d) {
		sim->anomalies++;
		return;
	}
	dent *e = dent_get(d, name);
	if (!e->cur)
		bind_cur(e, node_new(1));
	else if (!e->cur->is_dir)
		sim->anomalies++;
}

static void ev_rename(simfs *sim, const bo_fs_event *ev)
{
	char b1[PATH_MAX], b2[PATH_MAX];
	const char *r1 = rel_path(sim, ev->path, b1, sizeof b1);
	const char *r2 = rel_path(sim, ev->path2, b2, sizeof b2);
	node *n = NULL;
	const char *name;
	if (r1) {
		node *d = walk_parent(sim, (char *)r1, &name);
		dent *e = d ? dent_find(d, name) : NULL;
		if (!d) {
			sim->anomalies++;
			return;
		}
		if (e && e->cur) {
			n = e->cur;
			n->refs++; /* held across the unbind */
			bind_cur(e, NULL);
		}
	}
	if (!r2) { /* moved out of the tree: an unlink here */
		if (n)
			unref(n);
		return;
	}
	if (!n) { /* unknown (or from outside): the bytes are at the new name now */
		n = file_from_disk(ev->path2);
		n->refs++;
		sim->adopted++;
	}
	node *d2 = walk_parent(sim, (char *)r2, &name);
	if (!d2) {
		sim->anomalies++;
		unref(n);
		return;
	}
	bind_cur(dent_get(d2, name), n);
	unref(n);
}

static void ev_unlink(simfs *sim, const bo_fs_event *ev)
{
	char buf[PATH_MAX];
	const char *rel = rel_path(sim, ev->path, buf, sizeof buf);
	const char *name;
	node *d = walk_parent(sim, (char *)rel, &name);
	dent *e = d ? dent_find(d, name) : NULL;
	if (e && e->cur)
		bind_cur(e, NULL);
}

static void ev_sync(simfs *sim, const bo_fs_event *ev)
{
	node *n = lookup(sim, ev->path);
	if (!n)
		n = file_at(sim, ev->path); /* adopted: durable already */
	if (!n)
		sim->anomalies++;
	else if (n->is_dir)
		dir_sync(n);
	else
		file_sync(n);
}

static void apply_event(simfs *sim, const bo_fs_event *ev)
{
	node *f;
	switch (ev->op) {
	case BO_FS_CREATE:
		ev_create(sim, ev);
		return;
	case BO_FS_MKDIR:
		ev_mkdir(sim, ev);
		return;
	case BO_FS_RENAME:
		ev_rename(sim, ev);
		return;
	case BO_FS_UNLINK:
		ev_unlink(sim, ev);
		return;
	case BO_FS_SYNC:
		ev_sync(sim, ev);
		return;
	default:
		break;
	}
	f = file_at(sim, ev->path);
	if (!f) {
		sim->anomalies++;
		return;
	}
	if (ev->op == BO_FS_WRITE)
		change_push(f, CH_WRITE, ev->off, ev->len, ev->buf);
	else if (ev->op == BO_FS_ZERO)
		change_push(f, CH_ZERO, ev->off, ev->len, NULL);
	else if (ev->op == BO_FS_SIZE)
		change_push(f, CH_GROW, 0, ev->len, NULL);
	else if (ev->op == BO_FS_TRUNCATE)
		change_push(f, CH_TRUNC, 0, ev->len, NULL);
	else
		sim->anomalies++;
}

void simfs_observe(void *ctx, const bo_fs_event *ev)
{
	simfs *sim = ctx;
	/* A forked child's copy: its lock may be held by a thread that does
	 * not exist there, and its model is not the one the test reads. */
	if (getpid() != sim->pid)
		return;
	if (!in_root(sim, ev->path) && !(ev->op == BO_FS_RENAME && in_root(sim, ev->path2)))
		return;
	pthread_mutex_lock(&sim->mu);
	apply_event(sim, ev);
	uint64_t index = ++sim->events;
	if (sim->hook)
		sim->hook(sim->hook_ctx, sim, ev, index);
	pthread_mutex_unlock(&sim->mu);
}

/* ---- The cut --------------------------------------------------------------- */

static uint64_t rnd(simfs *sim, uint64_t n)
{
	return n ? trng_xorshift(&sim->rng) % n : 0;
}

/* The file's image at this cut: see simfs.h for the rule. */
static void file_image(simfs *sim, node *f)
{
	if (f->cut_gen == sim->gen)
		return;
	f->cut_gen = sim->gen;
	f->cut_next = sim->cut_list;
	sim->cut_list = f;
	/* The size: durable, then a random prefix of the size changes. */
	uint32_t nsz = 0;
	uint64_t ext = f->dsize, size = f->dsize;
	for (uint32_t i = 0; i < f->nch; i++) {
		const change *c = &f->ch[i];
		uint64_t e = c->kind == CH_WRITE || c->kind == CH_ZERO ? c->off + c->len : c->len;
		if (e > ext)
			ext = e;
		nsz += c->kind != CH_ZERO;
	}
	uint32_t keep = (uint32_t)rnd(sim, (uint64_t)nsz + 1);
	for (uint32_t i = 0, k = 0; i < f->nch && k < keep; i++)
		if (f->ch[i].kind != CH_ZERO) {
			size = size_after(&f->ch[i], size);
			k++;
		}
	if (size != f->csize)
		sim->st.sizes_reverted++;
	/* The bytes: per sector, durable then a random prefix of the changes
	 * that touch it. */
	uint64_t nsec = (ext + SIMFS_SECTOR_BYTES - 1) / SIMFS_SECTOR_BYTES;
	uint64_t cap = nsec * SIMFS_SECTOR_BYTES;
	uint8_t *img = xcalloc(1, cap);
	if (f->dsize > 0)
		memcpy(img, f->dat, f->dsize);
	uint32_t *touch = xcalloc(nsec ? nsec : 1, sizeof *touch);
	uint32_t *limit = xcalloc(nsec ? nsec : 1, sizeof *limit);
	for (int pass = 0; pass < 2; pass++) {
		uint64_t sz = f->dsize;
		for (uint32_t i = 0; i < f->nch; i++) {
			const change *c = &f->ch[i];
			uint64_t lo = c->kind == CH_TRUNC ? c->len : c->off;
			uint64_t hi =
			        c->kind == CH_TRUNC ? (sz > c->len ? sz : c->len) : c->off + c->len;
			sz = size_after(c, sz);
			if (c->kind == CH_GROW || hi <= lo)
				continue;
			for (uint64_t s = lo / SIMFS_SECTOR_BYTES; s * SIMFS_SECTOR_BYTES < hi;
			     s++) {
				if (pass == 0) {
					touch[s]++;
				} else if (limit[s] > 0) {
					limit[s]--;
					change_apply(c, img, s * SIMFS_SECTOR_BYTES,
					             (s + 1) * SIMFS_SECTOR_BYTES);
				}
			}
		}
		if (pass == 0)
			for (uint64_t s = 0; s < nsec; s++) {
				if (!touch[s])
					continue;
				limit[s] = (uint32_t)rnd(sim, (uint64_t)touch[s] + 1);
				sim->st.sectors_pending++;
				sim->st.sectors_old += limit[s] < touch[s];
			}
	}
	free(touch);
	free(limit);
	f->cut_img = img;
	f->cut_size = size;
}

static int write_file(const char *path, const uint8_t *p, uint64_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	int rc = 0;
	for (uint64_t o = 0; o < n && rc == 0;) {
		ssize_t w = write(fd, p + o, n - o);
		if (w <= 0)
			rc = w < 0 ? -errno : -EIO;
		else
			o += (uint64_t)w;
	}
	if (rc == 0 && ftruncate(fd, (off_t)n) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int cut_dir(simfs *sim, node *d, const char *out, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < d->nents; i++) {
		const dent *e = &d->ents[i];
		node *n = e->cur;
		if (e->cur != e->dur) {
			sim->st.entries_pending++;
			if (rnd(sim, 2)) {
				n = e->dur;
				sim->st.entries_old++;
			}
		}
		if (!n)
			continue;
		char path[PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s", out, e->name) >= (int)sizeof path) {
			snprintf(err, errlen, "simfs: path too long under %s", out);
			return -ENAMETOOLONG;
		}
		int rc;
		if (n->is_dir) {
			rc = mkdir(path, 0755) == 0 ? cut_dir(sim, n, path, err, errlen) : -errno;
			sim->st.dirs++;
		} else {
			file_image(sim, n);
			rc = write_file(path, n->cut_img, n->cut_size);
			sim->st.files++;
			sim->st.bytes += n->cut_size;
		}
		if (rc != 0) {
			if (!err[0])
				snprintf(err, errlen, "simfs: writing %s: %s", path, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int simfs_cut(simfs *sim, uint64_t seed, const char *out_dir, simfs_cut_stats *st, char *err,
              size_t errlen)
{
	assert(sim && out_dir && err && errlen > 0);
	err[0] = '\0';
	if (in_root(sim, out_dir)) {
		snprintf(err, errlen, "simfs: the cut %s is under the root %s", out_dir, sim->root);
		return -EINVAL;
	}
	pthread_mutex_lock(&sim->mu);
	sim->gen++;
	sim->rng = trng_mix64(seed) | 1u;
	memset(&sim->st, 0, sizeof sim->st);
	sim->cut_list = NULL;
	int rc = mkdir(out_dir, 0755) == 0 ? 0 : -errno;
	if (rc != 0)
		snprintf(err, errlen, "simfs: mkdir %s: %s", out_dir, strerror(-rc));
	else
		rc = cut_dir(sim, sim->top, out_dir, err, errlen);
	for (node *f = sim->cut_list; f; f = f->cut_next) {
		free(f->cut_img);
		f->cut_img = NULL;
	}
	sim->cut_list = NULL;
	if (st)
		*st = sim->st;
	pthread_mutex_unlock(&sim->mu);
	return rc;
}

/* ---- Life ------------------------------------------------------------------ */

int simfs_new(const char *root, simfs **out, char *err, size_t errlen)
{
	assert(root && out && err && errlen > 0);
	*out = NULL;
	simfs *sim = xcalloc(1, sizeof *sim);
	if (path_norm(root, sim->root, sizeof sim->root) != 0) {
		free(sim);
		snprintf(err, errlen, "simfs: root path too long");
		return -ENAMETOOLONG;
	}
	sim->root_len = strlen(sim->root);
	sim->pid = getpid();
	sim->top = node_new(1);
	sim->top->refs = 1;
	int rc = dir_from_disk(sim->top, sim->root);
	if (rc != 0) {
		snprintf(err, errlen, "simfs: reading %s: %s", sim->root, strerror(-rc));
		unref(sim->top);
		free(sim);
		return rc;
	}
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&sim->mu, &a);
	pthread_mutexattr_destroy(&a);
	*out = sim;
	return 0;
}

void simfs_free(simfs *sim)
{
	if (!sim)
		return;
	unref(sim->top);
	pthread_mutex_destroy(&sim->mu);
	free(sim);
}

void simfs_install(simfs *sim)
{
	if (sim)
		bo_fs_observe(simfs_observe, sim);
	else
		bo_fs_observe(NULL, NULL);
}

void simfs_set_hook(simfs *sim, simfs_hook_fn fn, void *ctx)
{
	pthread_mutex_lock(&sim->mu);
	sim->hook = fn;
	sim->hook_ctx = ctx;
	pthread_mutex_unlock(&sim->mu);
}

static uint64_t locked_get(simfs *sim, const uint64_t *p)
{
	pthread_mutex_lock(&sim->mu);
	uint64_t v = *p;
	pthread_mutex_unlock(&sim->mu);
	return v;
}

uint64_t simfs_events(simfs *sim)
{
	return locked_get(sim, &sim->events);
}
uint64_t simfs_adopted(simfs *sim)
{
	return locked_get(sim, &sim->adopted);
}
uint64_t simfs_anomalies(simfs *sim)
{
	return locked_get(sim, &sim->anomalies);
}
