/*
 * ring.c — pre-allocated multi-producer / single-consumer ring (see ring.h).
 *
 * LAYOUT
 *
 *   One allocation of `slots` slots, each starting on its own 64-byte line:
 *
 *     offset 0       8                     8 + slot_size     stride
 *            +-------+---------------------+-------------------+
 *            | seq   | payload (slot_size) | pad to 64 bytes   |
 *            +-------+---------------------+-------------------+
 *
 *   `seq` is the sequence number last published into the slot (UINT64_MAX:
 *   never published). stride = round_up(8 + slot_size, 64), so a producer
 *   publishing one slot never invalidates the line holding another slot's
 *   header, and the consumer finds a header and the start of its payload in
 *   one line. The price is up to 63 bytes of padding per slot: a slot_size of
 *   56 + 64k wastes nothing.
 *
 * CURSORS (each on its own cache line, see struct ring)
 *
 *   claim     next sequence to hand to a producer. Producers only.
 *   released  first sequence the consumer has not released. Written by the
 *             consumer, read by producers to decide whether a claim fits.
 *   next      next sequence the consumer will poll. Consumer only.
 *
 *   Always released <= next <= claim, and claim - released <= slots.
 *
 * CLAIM RULE
 *
 *   A producer may take [c, c + n) iff c + n - released <= slots, i.e. the
 *   slot of sequence c + n - 1 was last used by a sequence the consumer has
 *   released. `released` only grows, so a value read before the CAS on
 *   `claim` is a lower bound of its value at the CAS: if the check passes on
 *   the value read, it holds at the moment the claim becomes visible. The CAS
 *   fails (and the check is redone) if another producer moved `claim` in
 *   between. `released` is read (acquire) before `claim`, so released <=
 *   claim holds for the pair read and the subtraction cannot underflow.
 *   -EBUSY is answered only if `released` is unchanged when read again after
 *   `claim`: then it held that value when `claim` was read, so the ring was
 *   really too full at that instant (no spurious busy from a stale read).
 *
 * VALIDITY RULE
 *
 *   Sequence s is published iff slot(s).seq == s. The consumer reads the
 *   headers of next, next + 1, ... with load-acquire and stops at the first
 *   mismatch: a slot claimed but not yet published still holds s - slots (or
 *   UINT64_MAX), never s, so publish order between producers does not matter.
 *
 * SLEEP / WAKE (Dekker)
 *
 *   Consumer (ring_wait):  sleeping = 1; fence; re-check slot(next).seq;
 *                          futex_wait(&sleeping, 1)
 *   Producer (publish):    slot.seq = s; fence; if sleeping: exchange to 0
 *                          and futex_wake
 *   The two seq_cst fences guarantee that either the consumer's re-check sees
 *   the publish or the producer's load sees sleeping == 1. The kernel compares
 *   the futex word with 1 atomically with queueing the waiter, so a wake (which
 *   first sets the word to 0) that comes before the consumer blocks makes
 *   futex_wait return at once. Producers make the syscall only when the flag
 *   is set, and only the one whose exchange saw 1.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mimalloc.h>

#include "base/clock.h"

/* Cache line size of the x86-64 targets we run on; hot fields written by
 * different threads are kept this far apart so they do not false-share. */
#define RING_LINE_BYTES 64u

/* Size of the published-sequence header in front of each payload. */
#define RING_HEADER_BYTES 8u

/* A header that no sequence will ever match (2^64 - 1 claims never happen). */
#define RING_SEQ_NONE UINT64_MAX

/* Pause-spins before ring_wait() sleeps. About 10 µs on current x86: long
 * enough to catch a producer that is mid-batch, short enough not to steal a
 * core from producers on a small machine. */
#define RING_WAIT_SPINS 256u

/* Failed claims ring_claim_wait() retries with a pause before it starts to
 * yield the CPU: the consumer usually frees room within microseconds. */
#define RING_CLAIM_SPINS 128u

struct ring {
	/* ---- Read-only after ring_new(): shared freely by every thread. ---- */
	uint8_t *base;      /* slot array, RING_LINE_BYTES-aligned */
	uint64_t mask;      /* slots - 1: slot index of a sequence */
	uint32_t slots;     /* number of slots, a power of two >= 2 */
	uint32_t slot_size; /* payload bytes per slot, a multiple of 8 */
	uint32_t stride;    /* bytes from one slot to the next, multiple of 64 */

	/* ---- Producers: every claim CASes this line. ---------------------- */
	alignas(RING_LINE_BYTES) _Atomic uint64_t claim; /* next sequence to claim */

	/* ---- Consumer writes on release, producers read on claim. --------- */
	alignas(RING_LINE_BYTES) _Atomic uint64_t released; /* first unreleased seq */

	/* ---- Consumer only: kept off the lines producers read. ------------ */
	alignas(RING_LINE_BYTES) uint64_t next; /* next sequence to poll */

	/* ---- Futex word: producers read it on every publish, the consumer
	 * writes it only when it goes to sleep, so it gets its own line. ---- */
	alignas(RING_LINE_BYTES) _Atomic uint32_t sleeping; /* 1: consumer is going to sleep */
	/* ring_kick(): wakes that are not slots (rare: same line). */
	_Atomic uint32_t kicks;
};

/* Pads the struct's tail so nothing allocated after it shares the last line. */
_Static_assert(sizeof(struct ring) % RING_LINE_BYTES == 0, "ring fills whole lines");

static inline _Atomic uint64_t *slot_header(const ring *r, uint64_t seq)
{
	return (_Atomic uint64_t *)(void *)(r->base + (size_t)(seq & r->mask) * r->stride);
}

static inline void cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* ---- Life cycle ---------------------------------------------------------- */

int ring_new(uint32_t slot_size, uint32_t slots, ring **out /* OUT */)
{
	assert(out != NULL);
	if (slots < 2 || (slots & (slots - 1)) != 0)
		return -EINVAL;
	if (slot_size < 8 || slot_size % 8 != 0)
		return -EINVAL;

	/* In 64 bits: slot_size + 8 + 63 cannot overflow, and slots * stride
	 * is at most 2^31 * 2^32. */
	uint64_t stride = ((uint64_t)slot_size + RING_HEADER_BYTES + RING_LINE_BYTES - 1) &
	                  ~(uint64_t)(RING_LINE_BYTES - 1);
	if (stride > UINT32_MAX)
		return -EINVAL;
	uint64_t bytes = stride * slots;
	if (bytes > SIZE_MAX)
		return -ENOMEM;

	ring *r = mi_malloc_aligned(sizeof(*r), RING_LINE_BYTES);
	if (r == NULL)
		return -ENOMEM;
	uint8_t *base = mi_malloc_aligned((size_t)bytes, RING_LINE_BYTES);
	if (base == NULL) {
		mi_free(r);
		return -ENOMEM;
	}

	r->base = base;
	r->mask = (uint64_t)slots - 1;
	r->slots = slots;
	r->slot_size = slot_size;
	r->stride = (uint32_t)stride;
	/* Relaxed stores: the ring is not shared yet; whoever hands it to other
	 * threads (pthread_create, a release store) publishes these too. */
	atomic_init(&r->claim, 0);
	atomic_init(&r->released, 0);
	r->next = 0;
	atomic_init(&r->sleeping, 0);
	/* Touch every slot now so no page fault lands on the hot path, and mark
	 * every header "never published" so no sequence matches it. */
	for (uint64_t i = 0; i < slots; i++)
		atomic_init(slot_header(r, i), RING_SEQ_NONE);

	assert(((uintptr_t)r->base & (RING_LINE_BYTES - 1)) == 0);
	*out = r;
	return 0;
}

void ring_free(ring *r)
{
	if (r == NULL)
		return;
	mi_free(r->base);
	mi_free(r);
}

uint32_t ring_slots(const ring *r)
{
	assert(r != NULL);
	return r->slots;
}

uint32_t ring_slot_size(const ring *r)
{
	assert(r != NULL);
	return r->slot_size;
}

void *ring_slot(ring *r, uint64_t seq)
{
	assert(r != NULL);
	return r->base + (size_t)(seq & r->mask) * r->stride + RING_HEADER_BYTES;
}

/* ---- Producer side ------------------------------------------------------- */

int ring_claim(ring *r, uint32_t n, uint64_t *first /* OUT */)
{
	assert(r != NULL && first != NULL);
	assert(n >= 1 && n <= r->slots);

	for (;;) {
		/* Acquire: pairs with the consumer's release in ring_release(), so
		 * its reads of every slot it released happen before our writes to
		 * those slots once we claim them (no write-after-read race). Read
		 * before `claim` so that released <= claim for the values used. */
		uint64_t rel = atomic_load_explicit(&r->released, memory_order_acquire);
		/* Relaxed: only the CAS below decides ownership; this is a guess. */
		uint64_t c = atomic_load_explicit(&r->claim, memory_order_relaxed);
		assert(rel <= c);
		if (c + n - rel > r->slots) {
			/* Acquire as above. `rel` may be older than `c`: if the
			 * consumer released meanwhile, the ring may never have
			 * been full, so look again. If `released` is unchanged,
			 * it had this value when `c` was read, so the ring
			 * really was too full at that instant. */
			if (atomic_load_explicit(&r->released, memory_order_acquire) != rel)
				continue;
			return -EBUSY;
		}
		/* Relaxed CAS: the atomicity of the read-modify-write alone makes
		 * the claimed ranges disjoint; the data written into the slots is
		 * ordered by the acquire above and by the release in publish. A
		 * failure means another producer claimed first: re-read both
		 * cursors, since `released` may have moved too. */
		if (atomic_compare_exchange_weak_explicit(
		            &r->claim, &c, c + n, memory_order_relaxed, memory_order_relaxed)) {
			*first = c;
			return 0;
		}
	}
}

void ring_claim_wait(ring *r, uint32_t n, uint64_t *first /* OUT */)
{
	assert(r != NULL && first != NULL);
	assert(n >= 1 && n <= r->slots); /* else it would wait forever */

	for (uint32_t tries = 0;; tries++) {
		if (ring_claim(r, n, first) == 0)
			return;
		/* Spin first (room usually appears within one consumer batch),
		 * then yield so that on an oversubscribed machine the consumer
		 * gets the CPU it needs to make room. */
		if (tries < RING_CLAIM_SPINS)
			cpu_pause();
		else
			sched_yield();
	}
}

static void ring_wake(ring *r)
{
	/* Relaxed load: ordered after the header stores by the caller's
	 * seq_cst fence; the common case (consumer awake) costs one read of a
	 * line the consumer rarely writes. */
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed) == 0)
		return;
	/* Relaxed exchange: only decides which producer makes the syscall;
	 * the kernel's futex compare orders it with the consumer's wait. */
	if (atomic_exchange_explicit(&r->sleeping, 0, memory_order_relaxed) == 0)
		return;
	syscall(SYS_futex, (uint32_t *)&r->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void ring_publish(ring *r, uint64_t first, uint32_t n)
{
	assert(r != NULL);
	assert(n >= 1 && n <= r->slots);
	/* Relaxed: a sanity check that the range was claimed at all. */
	assert(first + n <= atomic_load_explicit(&r->claim, memory_order_relaxed));

	for (uint32_t i = 0; i < n; i++) {
		_Atomic uint64_t *h = slot_header(r, first + i);
		/* Relaxed: only compares with our own earlier state of the slot;
		 * publishing a sequence twice is a programmer error. */
		assert(atomic_load_explicit(h, memory_order_relaxed) != first + i);
		/* Release: the payload writes to this slot happen before the
		 * consumer's load-acquire of the header that sees first + i. */
		atomic_store_explicit(h, first + i, memory_order_release);
	}
	/* Seq_cst fence (Dekker, producer half): orders the header stores above
	 * before the load of `sleeping` in ring_wake(). Pairs with the fence in
	 * ring_wait(): either the consumer's re-check sees our header or we see
	 * its sleeping flag. A release store alone would let the flag load pass
	 * the header store (store->load reordering). */
	atomic_thread_fence(memory_order_seq_cst);
	ring_wake(r);
}

/* ---- Consumer side ------------------------------------------------------- */

static inline bool ring_ready(const ring *r)
{
	/* Acquire: pairs with the release in ring_publish(), so a caller that
	 * sees the header also sees the payload. */
	return atomic_load_explicit(slot_header(r, r->next), memory_order_acquire) == r->next;
}

uint32_t ring_kicks(const ring *r)
{
	assert(r != NULL);
	/* Seq_cst: ordered before whatever the consumer checks next (its own
	 * mailbox), so a kick after that check changes the count it keeps. */
	return atomic_load_explicit(&((ring *)r)->kicks, memory_order_seq_cst);
}

void ring_kick(ring *r)
{
	assert(r != NULL);
	/* Seq_cst RMW then the Dekker fence, as in ring_publish(): either the
	 * consumer's re-check sees the new count or we see its flag. */
	atomic_fetch_add_explicit(&r->kicks, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	ring_wake(r);
}

/* Ready, or kicked since the consumer read `seen`. */
static inline bool ring_ready_or_kicked(const ring *r, uint32_t seen)
{
	return ring_ready(r) || atomic_load_explicit(&((ring *)r)->kicks, memory_order_seq_cst) != seen;
}

uint32_t ring_poll(ring *r, uint32_t max, uint64_t *first /* OUT */)
{
	assert(r != NULL && first != NULL);

	uint64_t pos = r->next;
	/* Never hand out more than the ring holds: a wrapped-around header
	 * cannot match anyway, but the bound keeps the loop obviously finite. */
	uint32_t limit = max < r->slots ? max : r->slots;
	uint32_t k = 0;
	while (k < limit) {
		/* Acquire: pairs with the release in ring_publish(); the payload
		 * of every slot counted is visible to the caller. */
		uint64_t seq = atomic_load_explicit(slot_header(r, pos + k), memory_order_acquire);
		if (seq != pos + k)
			break;
		k++;
	}
	*first = pos;
	r->next = pos + k;
	return k;
}

void ring_release(ring *r, uint32_t n)
{
	assert(r != NULL);
	/* Relaxed: the consumer is the only writer of `released`. */
	uint64_t rel = atomic_load_explicit(&r->released, memory_order_relaxed);
	assert(n <= r->next - rel); /* cannot release what was not polled */
	/* Release: the consumer's reads of the released slots happen before a
	 * producer's writes into them (pairs with the acquire in ring_claim()). */
	atomic_store_explicit(&r->released, rel + n, memory_order_release);
}

int ring_wait(ring *r, int64_t timeout_ns)
{
	assert(r != NULL);
	return ring_wait_kicked(r, timeout_ns, ring_kicks(r));
}

int ring_wait_kicked(ring *r, int64_t timeout_ns, uint32_t kicks_seen)
{
	assert(r != NULL);

	if (ring_ready_or_kicked(r, kicks_seen))
		return ring_ready(r) ? 1 : 0;
	if (timeout_ns <= 0) /* a plain check: the caller does not want to wait */
		return 0;
	for (uint32_t i = 0; i < RING_WAIT_SPINS; i++) {
		cpu_pause();
		if (ring_ready_or_kicked(r, kicks_seen))
			return ring_ready(r) ? 1 : 0;
	}

	int64_t deadline_ns = bo_clock_ns() + timeout_ns;
	for (;;) {
		/* Relaxed store: ordered before the re-check by the fence below. */
		atomic_store_explicit(&r->sleeping, 1, memory_order_relaxed);
		/* Seq_cst fence (Dekker, consumer half): orders the flag store
		 * above before the header load in ring_ready(). Pairs with the
		 * fence in ring_publish(): a producer whose publish we miss here
		 * sees the flag and wakes us. */
		atomic_thread_fence(memory_order_seq_cst);
		if (ring_ready_or_kicked(r, kicks_seen))
			break;
		int64_t left_ns = deadline_ns - bo_clock_ns();
		if (left_ns <= 0)
			break;
		struct timespec ts = {
		        .tv_sec = (time_t)(left_ns / 1000000000),
		        .tv_nsec = (long)(left_ns % 1000000000),
		};
		/* Sleeps only while the word is still 1: a producer's wake that
		 * came first has set it to 0 and this returns EAGAIN at once.
		 * EINTR, ETIMEDOUT and spurious wakes all just re-check. */
		syscall(SYS_futex, (uint32_t *)&r->sleeping, FUTEX_WAIT_PRIVATE, 1, &ts, NULL, 0);
	}
	/* Relaxed: we are awake; a producer racing to clear it does no harm
	 * (at worst one needless wake syscall). */
	atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
	return ring_ready(r) ? 1 : 0;
}

uint32_t ring_used(const ring *r)
{
	assert(r != NULL);
	/* Acquire, and before `claim`: the claims the consumer released
	 * happen before this, so the `claim` read below is >= `rel` and the
	 * difference never goes negative. Otherwise a gauge: racy by nature. */
	uint64_t rel = atomic_load_explicit(&r->released, memory_order_acquire);
	uint64_t c = atomic_load_explicit(&r->claim, memory_order_relaxed);
	assert(rel <= c);
	uint64_t used = c - rel;
	return used > r->slots ? r->slots : (uint32_t)used;
}
