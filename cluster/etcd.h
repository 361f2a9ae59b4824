/*
 * etcd.h — a small blocking client of etcd 3.4's HTTP/JSON gateway (the
 * grpc-gateway in front of the v3 API), on libcurl and jansson. It is what
 * the control plane (cluster/role.c, the node's control thread, the CLI)
 * uses to read and change the shard map and the node registry.
 *
 * Threading: one `etcd` handle per thread. A handle is not thread-safe;
 * distinct handles are independent and may be used at the same time. No
 * call ever runs on a shard writer (they block on the network).
 *
 * Time: every call returns within about the handle's timeout_ms (the watch:
 * its own timeout_ms), whatever etcd does: a member that hangs, a cluster
 * without quorum (which answers slowly or not at all) or a dead address all
 * end as an error within that bound, never as a hang of the caller.
 *
 * Endpoints: the handle keeps the endpoint that last worked and sends every
 * request there. When the connection cannot be made (refused, unreachable,
 * connect timeout) the call tries the next endpoint, in turn, within the
 * same time budget. When a request was sent but its answer did not come in
 * time, the call returns -ETIMEDOUT and the next call starts with the next
 * endpoint; it is not resent, because a write may have been applied.
 *
 * Errors: every function returns a negative errno on failure and writes a
 * one-line message (what was asked, from which endpoint, what went wrong)
 * into err[0..errlen) (always NUL-terminated when errlen > 0; err may be
 * NULL when errlen is 0). The codes:
 *   -ETIMEDOUT   no answer within the time budget (a write's outcome is then
 *                UNKNOWN: re-read before deciding anything);
 *   -ECONNREFUSED no endpoint could be connected to;
 *   -EAGAIN      etcd answered that it cannot serve now (gRPC Unavailable,
 *                e.g. "no leader", "request timed out", "too many requests":
 *                a write's outcome is likewise unknown);
 *   -ENOENT      etcd answered NotFound (e.g. a put under an expired or
 *                unknown lease: "requested lease not found");
 *   -EPROTO      the answer is not what the gateway sends (not JSON,
 *                missing or ill-typed fields, bad base64, an HTTP status
 *                without etcd's error body): it is outside input, it is
 *                refused with a message, never trusted;
 *   -EIO         any other error etcd reported (its message is in err), or
 *                the connection broke before the whole answer came (a
 *                write's outcome is then unknown, as after -ETIMEDOUT);
 *   -EINVAL      an argument etcd refuses (e.g. an empty key);
 *   -ENOMEM      out of memory.
 * Out-parameters are written only on success unless said otherwise.
 *
 * Keys are NUL-terminated strings (no embedded NUL); values are bytes of a
 * given length. Revisions, leases and TTLs are int64 as in etcd.
 */
#ifndef BO_CLUSTER_ETCD_H
#define BO_CLUSTER_ETCD_H

#include <stddef.h>
#include <stdint.h>

/* Endpoints per handle (a 3- or 5-member cluster fits; more is a typo). */
#define ETCD_ENDPOINTS_MAX 8

/* Length bound of one endpoint URL ("http://127.0.0.11:23790" is 23). */
#define ETCD_ENDPOINT_LEN_MAX 128

typedef struct etcd etcd;

/* One key-value pair as etcd stores it. */
typedef struct etcd_kv {
	char *key;               /* NUL-terminated (heap, etcd_kvs_free) */
	char *value;             /* value bytes plus a NUL after them (heap) */
	size_t value_len;        /* bytes in value, without the NUL */
	int64_t create_revision; /* revision of the key's creation */
	int64_t mod_revision;    /* revision of its last change: what etcd_cas compares */
	int64_t version;         /* changes since creation (1 after the create) */
	int64_t lease;           /* lease the key is attached to; 0: none */
} etcd_kv;

/* Opens a handle on endpoints, a comma-separated list of "http://host:port"
 * (1..ETCD_ENDPOINTS_MAX of them, each shorter than ETCD_ENDPOINT_LEN_MAX,
 * spaces around commas allowed). timeout_ms (> 0) bounds every later call.
 * Nothing is sent yet: an etcd that is down is seen by the first call.
 * Returns 0 and the handle in *out (the caller owns it: etcd_close);
 * -EINVAL when the list is empty, too long, or an entry is not http://host:port;
 * -ENOMEM. Handles may be opened from several threads at once:
 * curl_global_init runs once per process (pthread_once) at the first open. */
int etcd_open(const char *endpoints, int timeout_ms, etcd **out, char *err, size_t errlen);

/* Frees the handle (NULL is fine). Leases it granted are NOT revoked. */
void etcd_close(etcd *e);

/* The endpoint requests go to now ("http://host:port"), for log lines.
 * Owned by the handle, valid until the next call on it. */
const char *etcd_endpoint(const etcd *e);

/* Reads one key (linearizable read). Returns 1 when it exists: *value (when
 * value is not NULL) is a heap copy of its bytes plus a NUL (the caller
 * frees it with free()), *len its length without the NUL, *mod_revision its
 * mod_revision (each out-parameter may be NULL); 0 when the key does not
 * exist (*value is then set to NULL when value is not NULL); < 0 an error. */
int etcd_get(etcd *e, const char *key, char **value, size_t *len, int64_t *mod_revision, char *err,
             size_t errlen);

/* Reads every key that starts with prefix ("" means every key), sorted by
 * key, in one linearizable read. Returns 0 with *kvs (heap, NULL when *n is
 * 0; free with etcd_kvs_free) and *n, and *revision = the store revision the
 * read saw (when revision is not NULL): a watch from that revision misses
 * nothing. < 0 an error. At most ETCD_PREFIX_KEYS_MAX keys are read: more is
 * -EOVERFLOW (the map and the registry stay far below it). */
#define ETCD_PREFIX_KEYS_MAX 65536
int etcd_get_prefix(etcd *e, const char *prefix, etcd_kv **kvs, size_t *n, int64_t *revision,
                    char *err, size_t errlen);

/* Frees what etcd_get_prefix returned (kvs may be NULL when n is 0). */
void etcd_kvs_free(etcd_kv *kvs, size_t n);

/* Writes key = value[0..len) unconditionally, attached to lease (0: none).
 * Returns 0, or < 0 (-ENOENT: the lease does not exist or expired). */
int etcd_put(etcd *e, const char *key, const void *value, size_t len, int64_t lease, char *err,
             size_t errlen);

/* Deletes key. Returns 1 when it existed, 0 when it did not, < 0 an error. */
int etcd_delete(etcd *e, const char *key, char *err, size_t errlen);

/* Compare-and-swap in one /v3/kv/txn: writes key = value[0..len) under
 * lease (0: none) if and only if the key's mod_revision is still
 * expect_mod_revision (> 0), or, when expect_mod_revision is 0, the key
 * does not exist (its version is 0: a create). Returns 1 when it swapped
 * (*new_mod_revision, when not NULL: the key's new mod_revision, which is
 * the txn's revision); 0 when the comparison failed (someone else changed,
 * created or deleted the key: re-read it); < 0 an error (-ENOENT: unknown
 * lease). After -ETIMEDOUT or -EAGAIN the swap may or may not have happened:
 * re-read the key and compare with what was written. */
int etcd_cas(etcd *e, const char *key, int64_t expect_mod_revision, const void *value, size_t len,
             int64_t lease, int64_t *new_mod_revision, char *err, size_t errlen);

/* Grants a lease of ttl_ms rounded up to whole seconds (at least 1 s; etcd
 * may raise a TTL below its own minimum). Returns 0 with *id (> 0) and, when
 * ttl_s is not NULL, *ttl_s = the TTL etcd granted in seconds; < 0 an error. */
int etcd_lease_grant(etcd *e, int64_t ttl_ms, int64_t *id, int64_t *ttl_s, char *err,
                     size_t errlen);

/* Renews lease id once (one request on /v3/lease/keepalive). Returns 1 when
 * the lease lives and was renewed (*ttl_left_s, when not NULL: its TTL
 * again, in seconds); 0 when etcd no longer knows it (expired or revoked:
 * the keys under it are gone; grant a new one); < 0 an error (the lease's
 * fate is unknown: try again before its TTL runs out). */
int etcd_lease_keepalive(etcd *e, int64_t id, int64_t *ttl_left_s, char *err, size_t errlen);

/* Revokes lease id: the keys under it are deleted at once. Returns 1 when
 * it was revoked, 0 when etcd did not know it (already expired or revoked),
 * < 0 an error. */
int etcd_lease_revoke(etcd *e, int64_t id, char *err, size_t errlen);

/* Waits up to timeout_ms (> 0; independent of the handle's timeout) for a
 * change (put or delete) of a key starting with prefix at a revision after
 * after_revision (>= 0; typically the revision etcd_get_prefix returned).
 * One streaming POST /v3/watch; it returns at the first event and closes
 * the stream. Returns 1 when something changed: *revision_out (when not
 * NULL) = the revision of that change; the caller re-reads with
 * etcd_get_prefix (the watch does not say what changed, so a missed detail
 * cannot make the caller's picture wrong). Also 1 when etcd compacted the
 * history past after_revision (the caller re-reads likewise;
 * *revision_out is then the compaction revision). 0 when nothing changed
 * within timeout_ms (*revision_out = after_revision). < 0 an error (no
 * endpoint, the stream broke, a malformed answer). */
int etcd_watch_prefix(etcd *e, const char *prefix, int64_t after_revision, int timeout_ms,
                      int64_t *revision_out, char *err, size_t errlen);

#endif /* BO_CLUSTER_ETCD_H */
