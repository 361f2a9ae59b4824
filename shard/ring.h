/*
 * ring.h — pre-allocated multi-producer / single-consumer ring, Disruptor
 * style.
 *
 * Producers (any thread) claim a run of sequence numbers, fill the slots and
 * publish them; the one consumer drains everything published as one batch
 * and then releases it. Nothing blocks a producer: a ring without room for
 * the claim answers -EBUSY at once (the gateway turns that into `busy`), so
 * there is never an unbounded queue behind the ring.
 *
 * Sequence numbers are 64-bit and never wrap in practice (2^64 claims at
 * 10^9/s is 584 years); slot i of sequence s is s & (slots - 1).
 *
 * Threading: ring_new()/ring_free() while no other thread uses the ring;
 * the producer functions from any number of threads at once; the consumer
 * functions from one thread at a time. ring_slots(), ring_slot_size(),
 * ring_slot() and ring_used() from anyone. Nothing allocates after
 * ring_new(); only ring_publish() (to wake a sleeping consumer) and
 * ring_wait() / ring_claim_wait() (to sleep or yield) make system calls.
 * Programmer errors (n out of range, releasing more than was polled,
 * publishing a sequence twice) trip assert().
 */
#ifndef BO_RING_H
#define BO_RING_H

#include <stdint.h>

typedef struct ring ring;

/* Allocates a ring of `slots` slots (a power of two, >= 2) of `slot_size`
 * bytes each (a multiple of 8, >= 8), all memory up front and touched.
 * Each slot also takes an 8-byte header and is padded to whole 64-byte
 * lines, so slots x round_up(slot_size + 8, 64) bytes are used: a
 * slot_size of 56 + 64k wastes nothing.
 * Returns 0 and sets *out, -EINVAL for bad sizes (*out untouched), -ENOMEM.
 * Caller frees with ring_free() (which accepts NULL). */
int ring_new(uint32_t slot_size, uint32_t slots, ring **out /* OUT */);
void ring_free(ring *r);

uint32_t ring_slots(const ring *r);
uint32_t ring_slot_size(const ring *r);

/* ---- Producer side (any number of threads) ------------------------------ */

/* Claims `n` consecutive slots (1 <= n <= slots, asserted). Returns 0 and
 * sets *first, or -EBUSY when fewer than n slots are free (nothing is
 * claimed then and *first is untouched). Never waits. A slot is free once
 * the consumer has released it, not merely polled it.
 * The caller must publish every claimed sequence, soon: the consumer stops
 * at the first claimed-but-unpublished slot. */
int ring_claim(ring *r, uint32_t n, uint64_t *first /* OUT */);

/* Like ring_claim() but waits (spin, then yield) while the ring is full.
 * For a producer that must not drop, e.g. a shard writing to its output
 * ring, where the consumer is known to make progress. */
void ring_claim_wait(ring *r, uint32_t n, uint64_t *first /* OUT */);

/* The payload (slot_size bytes, 8-byte aligned) of a claimed (producer,
 * until published) or polled (consumer, until released) sequence. */
void *ring_slot(ring *r, uint64_t seq);

/* Makes slots [first, first + n) visible to the consumer, in any order
 * relative to other producers, and wakes the consumer if it sleeps.
 * The range must be claimed and not yet published (a claim may be
 * published in several parts); each sequence is published exactly once. */
void ring_publish(ring *r, uint64_t first, uint32_t n);

/* ---- Consumer side (exactly one thread) --------------------------------- */

/* Returns how many slots, up to `max`, are published consecutively
 * from the consumer's position, and sets *first to that position, which
 * then moves past them (a second poll before a release continues after the
 * first). 0: none yet (or max == 0). The slots stay valid until
 * ring_release(). */
uint32_t ring_poll(ring *r, uint32_t max, uint64_t *first /* OUT */);

/* Hands the `n` oldest polled-but-unreleased slots back to the producers
 * (n <= their number, asserted; 0 does nothing). */
void ring_release(ring *r, uint32_t n);

/* Waits until a slot is published at the consumer's position or timeout_ns
 * passes (spin briefly, then sleep on a futex). Returns 1 when something
 * is ready, 0 on timeout. timeout_ns <= 0 only checks, without waiting. */
int ring_wait(ring *r, int64_t timeout_ns);

/* Wakes that are not slots (the shard's replication mailbox, its sync
 * floor): the consumer reads ring_kicks() BEFORE it checks its other
 * sources of work, and passes the value to ring_wait_kicked(), which then
 * returns (0 unless a slot is ready) as soon as anyone calls ring_kick()
 * after that read. ring_kick() is callable from any thread; it makes a
 * system call only while the consumer sleeps. */
uint32_t ring_kicks(const ring *r);
void ring_kick(ring *r);
int ring_wait_kicked(ring *r, int64_t timeout_ns, uint32_t kicks_seen);

/* Slots claimed but not yet released (a gauge; racy by nature). */
uint32_t ring_used(const ring *r);

#endif /* BO_RING_H */
