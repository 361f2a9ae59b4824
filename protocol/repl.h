/*
 * repl.h — the replication messages between a shard's primary and its
 * standbys (issue 13; schemas/replication.md is the description a peer in
 * another language is written from).
 *
 * Every message is one msgpack map in one nng message, carried on one nng
 * PAIR socket per pair of nodes (many shards multiplexed on it: every
 * message names its shard). The map's first key is "type", a string:
 *
 *   append  primary -> standby  {type, shard, epoch, first_seq, prev,
 *                                records: [[timestamp_ms, payload bin], ...]}
 *                                record i has sequence first_seq + i; prev is
 *                                the checksum of record first_seq - 1 (0 when
 *                                first_seq is 1, or the chain seed)
 *   ack     standby -> primary  {type, shard, epoch, durable_seq, last_seq}
 *                                durable_seq is cumulative: every record up to
 *                                it is on the standby's disk
 *   refuse  standby -> primary  {type, shard, epoch, reason, last_seq,
 *                                last_checksum, message}
 *                                epoch is the standby's own; reason one of
 *                                repl_reason; last_seq/last_checksum its last
 *                                record, where the primary resumes
 *   probe   primary -> standby  {type, shard, epoch, node} at (re)connect
 *   state   standby -> primary  {type, shard, epoch, last_seq, last_checksum,
 *                                durable_seq, node}: the answer to a probe
 *
 * Decoding treats its input as hostile (it comes from the network): it
 * never allocates, never reads outside [buf, buf + len), refuses a
 * message over REPL_MSG_MAX, a payload over REPL_PAYLOAD_BYTES_MAX, more
 * records than the caller's array, a missing, repeated or mistyped key,
 * an unknown type or reason, trailing bytes, and says why in err. Unknown
 * keys are skipped (a newer peer may add some). Payloads are NOT copied:
 * repl_record.payload points into the decoded buffer, valid as long as it.
 *
 * Encoding appends to a msgpack_sbuffer; on failure the buffer is
 * restored to the size it had on entry. Thread-safe: no shared state.
 * A NULL pointer where an object is required is a programmer error.
 */
#ifndef BO_PROTOCOL_REPL_H
#define BO_PROTOCOL_REPL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

/* Version of these messages (schemas/replication.md). */
#define REPL_VERSION 1u

/* Bytes of one record's payload. MUST equal JOURNAL_PAYLOAD_BYTES_MAX
 * (journal/journal.h; protocol/ may not include journal/, so the node
 * layer, which sees both, asserts the two equal). */
#define REPL_PAYLOAD_BYTES_MAX (2u << 20)

/* Records in one append message. A sender with a longer run sends several
 * messages (repl_encode_append takes the longest prefix that fits). */
#define REPL_RECORDS_MAX 4096u

/* Bytes in one replication message (the PAIR socket's NNG_OPT_RECVMAXSZ).
 * Four maximum payloads fit with room for the envelope, so one record of
 * any legal size always fits a message. */
#define REPL_MSG_MAX (9u << 20)

/* Bytes of a refuse message's text, NUL included (longer: truncated). */
#define REPL_MESSAGE_LEN_MAX 256u

_Static_assert(REPL_MSG_MAX > REPL_PAYLOAD_BYTES_MAX + 1024u, "one record of any size fits");

typedef enum repl_type {
	REPL_NONE = 0,
	REPL_APPEND = 1, /* "append" */
	REPL_ACK = 2,    /* "ack" */
	REPL_REFUSE = 3, /* "refuse" */
	REPL_PROBE = 4,  /* "probe" */
	REPL_STATE = 5,  /* "state" */
	REPL_TYPE_COUNT
} repl_type;

/* Why a standby refused an append (or a probe). What the primary does:
 *   STALE        the standby's epoch is newer than the message's: the
 *                sender is an old primary; it must stop (fence) — never resend;
 *   GAP          first_seq != standby's last_seq + 1: resend from
 *                last_seq + 1 (a record the primary still has, or rebuild);
 *   DIVERGED     prev does not match the standby's last record: the
 *                histories differ after some point; the standby must cut
 *                its tail (its operator/role machine decides) before more;
 *   FAILED       the standby's shard failed or stops; nothing appended;
 *   NOT_STANDBY  the node does not hold the shard as a standby (a primary,
 *                or no such shard there). */
typedef enum repl_reason {
	REPL_R_NONE = 0,
	REPL_R_STALE = 1,       /* "stale" */
	REPL_R_GAP = 2,         /* "gap" */
	REPL_R_DIVERGED = 3,    /* "diverged" */
	REPL_R_FAILED = 4,      /* "failed" */
	REPL_R_NOT_STANDBY = 5, /* "not_standby" */
	REPL_REASON_COUNT
} repl_reason;

/* One record of an append, as decoded: payload points into the message
 * buffer (not copied). The node layer converts it to a journal_record
 * (seq, timestamp_ms, payload, payload_len) for shard_replicate. */
typedef struct repl_record {
	uint64_t seq;
	int64_t timestamp_ms;
	const uint8_t *payload; /* borrowed from the decoded buffer */
	uint32_t len;           /* <= REPL_PAYLOAD_BYTES_MAX */
} repl_record;

typedef struct repl_append {
	uint32_t shard;
	uint64_t epoch;     /* the sender's term */
	uint64_t first_seq; /* >= 1: sequence of records[0] */
	uint64_t prev;      /* checksum of record first_seq - 1 */
	uint32_t count;     /* records decoded into the caller's array (>= 1) */
} repl_append;

typedef struct repl_ack {
	uint32_t shard;
	uint64_t epoch;       /* the epoch of the append acknowledged (the standby's) */
	uint64_t durable_seq; /* cumulative: every record <= it is durable */
	uint64_t last_seq;    /* last record appended (>= durable_seq) */
} repl_ack;

typedef struct repl_refuse {
	uint32_t shard;
	uint64_t epoch;                     /* the standby's epoch */
	uint8_t reason;                     /* repl_reason, never NONE */
	uint64_t last_seq;                  /* the standby's last record */
	uint64_t last_checksum;             /* its checksum */
	char message[REPL_MESSAGE_LEN_MAX]; /* human-readable, NUL-terminated */
} repl_refuse;

typedef struct repl_probe {
	uint32_t shard;
	uint64_t epoch; /* the primary's term */
	uint32_t node;  /* the primary's node id */
} repl_probe;

typedef struct repl_state {
	uint32_t shard;
	uint64_t epoch;         /* the standby's epoch */
	uint64_t last_seq;      /* its last record */
	uint64_t last_checksum; /* that record's checksum (0, 0: empty journal) */
	uint64_t durable_seq;   /* its durable sequence */
	uint32_t node;          /* the standby's node id */
} repl_state;

/* A decoded message: type says which member is valid. */
typedef struct repl_msg {
	uint8_t type; /* repl_type */
	union {
		repl_append append;
		repl_ack ack;
		repl_refuse refuse;
		repl_probe probe;
		repl_state state;
	} u;
} repl_msg;

/* "append", "ack", ...; NULL out of range (and for REPL_NONE). */
const char *repl_type_name(int type);
/* "stale", "gap", "diverged", "failed", "not_standby"; NULL out of range. */
const char *repl_reason_name(int reason);

/* ---- Encoding ------------------------------------------------------------ */

/* Appends an append message for the longest prefix of recs[0..n) (n >= 1)
 * that fits REPL_RECORDS_MAX records and REPL_MSG_MAX bytes: recs[i].seq
 * must be first_seq + i (asserted: the caller's bug), *taken is how many
 * were encoded (>= 1); the caller sends the rest in further messages with
 * first_seq + *taken and prev = the checksum of the last one sent.
 * Returns 0, -EINVAL (first_seq 0, a payload over REPL_PAYLOAD_BYTES_MAX or
 * NULL with len > 0) or -ENOMEM; on failure `out` is unchanged, *taken 0. */
int repl_encode_append(uint32_t shard, uint64_t epoch, uint64_t first_seq, uint64_t prev,
                       const repl_record *recs, uint32_t n, uint32_t *taken /* OUT */,
                       msgpack_sbuffer *out);

/* Appends an ack. 0 or -ENOMEM (`out` unchanged). */
int repl_encode_ack(const repl_ack *a, msgpack_sbuffer *out);

/* Appends a refuse. 0, -EINVAL (reason out of range or NONE, message
 * without its NUL within REPL_MESSAGE_LEN_MAX) or -ENOMEM. */
int repl_encode_refuse(const repl_refuse *r, msgpack_sbuffer *out);

/* Appends a probe / a state. 0 or -ENOMEM. */
int repl_encode_probe(const repl_probe *p, msgpack_sbuffer *out);
int repl_encode_state(const repl_state *s, msgpack_sbuffer *out);

/* ---- Decoding ------------------------------------------------------------ */

/* Decodes the message buf[0..len). recs[0..cap) receives an append's
 * records (recs may be NULL when cap is 0: an append then fails).
 * Returns 0 with out->type and its member filled (an append's records in
 * recs[0..out->u.append.count), payloads pointing into buf); or -EINVAL
 * with a NUL-terminated reason in err[0..errlen) (errlen >= 1): empty,
 * over REPL_MSG_MAX, not msgpack, truncated, trailing bytes, not a map,
 * "type" missing, not first or unknown, a required key missing, repeated
 * or mistyped, a number out of its range (shard or node over UINT32_MAX,
 * first_seq 0, first_seq + count overflowing), no records, more records
 * than cap or REPL_RECORDS_MAX, a record not a [int, bin] pair, a payload
 * over REPL_PAYLOAD_BYTES_MAX, an unknown reason. out is zeroed then. */
int repl_decode(const uint8_t *buf, size_t len, repl_msg *out /* OUT */,
                repl_record *recs /* OUT */, uint32_t cap, char *err /* OUT */, size_t errlen);

#endif /* BO_PROTOCOL_REPL_H */
