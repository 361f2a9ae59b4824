-- boxoffice schema, version 1: the system of record that the committer keeps
-- equal to the journal (schemas/database.md describes every table).
--
-- Applied by boxoffice-server (and boxoffice-replay to-postgres) at start,
-- inside one transaction, after the runner has created the schema
-- `boxoffice` and its table `schema_version`. Do not edit a released
-- migration: add the next file (0002_....sql) instead.
--
-- Ids are unsigned 64-bit in boxoffice and stored here as bigint with the
-- same 64 bits: an id >= 2^63 reads as a negative number
-- (boxoffice.u64(id) gives it back as numeric). Times are the journal
-- record's timestamp (the shard's batch clock), in UTC.
--
-- Only the committer writes these tables; there are no foreign keys on the
-- hot ones (seats, seat_changes, holds, bookings) on purpose: every row is
-- derived from the journal, which is checked record by record.

CREATE FUNCTION boxoffice.u64(v bigint) RETURNS numeric
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	AS $$ SELECT CASE WHEN v < 0 THEN v::numeric + 18446744073709551616 ELSE v::numeric END $$;

-- One row per event (create_event).
CREATE TABLE boxoffice.events (
	event_id	bigint PRIMARY KEY,
	shard		integer NOT NULL,
	seat_count	integer NOT NULL,
	row_count	integer NOT NULL,
	category_count	smallint NOT NULL,
	pool_count	smallint NOT NULL,
	client_id	bigint NOT NULL,
	request_id	bigint NOT NULL,
	journal_seq	bigint NOT NULL,
	created_at	timestamptz NOT NULL
);

-- The seat map's rows, best first (row_no 0 is the best row).
CREATE TABLE boxoffice.event_rows (
	event_id	bigint NOT NULL,
	row_no		integer NOT NULL,
	section		integer NOT NULL,
	first_seat	integer NOT NULL,
	seats		integer NOT NULL,
	PRIMARY KEY (event_id, row_no)
);

-- Every seat with its current state. claim_id is the hold (state held) or
-- booking (state booked) that has it, NULL when free or blocked.
CREATE TABLE boxoffice.seats (
	event_id	bigint NOT NULL,
	seat		integer NOT NULL,
	row_no		integer NOT NULL,
	category	smallint NOT NULL,
	state		text NOT NULL CHECK (state IN ('free', 'held', 'booked', 'blocked')),
	claim_id	bigint,
	journal_seq	bigint NOT NULL, -- the record of the last change
	PRIMARY KEY (event_id, seat)
) WITH (fillfactor = 70); -- room on each page: a seat's update stays on its page (HOT), no index write

-- General-admission pools: capacity and the quantities held and booked.
CREATE TABLE boxoffice.pools (
	event_id	bigint NOT NULL,
	pool		smallint NOT NULL,
	capacity	integer NOT NULL,
	held		integer NOT NULL,
	booked		integer NOT NULL,
	journal_seq	bigint NOT NULL,
	PRIMARY KEY (event_id, pool)
) WITH (fillfactor = 50);

-- Every hold ever made. A seat hold has seats (in the order the engine
-- gave them) and a NULL pool; a pool hold has a pool and seats NULL.
-- state: held (active), released, expired, confirmed (it became the
-- booking with the same claim id; a hold confirmed after its expiry goes
-- expired -> confirmed).
CREATE TABLE boxoffice.holds (
	event_id	bigint NOT NULL,
	claim_id	bigint NOT NULL,
	shard		integer NOT NULL,
	client_id	bigint NOT NULL,
	request_id	bigint NOT NULL,
	seats		integer[],
	pool		smallint,
	quantity	integer NOT NULL,
	state		text NOT NULL CHECK (state IN ('held', 'released', 'expired', 'confirmed')),
	expires_at	timestamptz NOT NULL,
	created_seq	bigint NOT NULL,
	created_at	timestamptz NOT NULL,
	ended_seq	bigint,
	ended_at	timestamptz,
	PRIMARY KEY (event_id, claim_id)
) WITH (fillfactor = 80);
-- The committer finds a shard's active holds at start among the holds made
-- in the last hour before its checkpoint (a hold lives at most 60 minutes
-- from its creation). Only columns that never change are indexed, so a
-- hold's state change is a HOT update (an index on state would make every
-- release, expiry and confirm write index entries).
CREATE INDEX holds_recent ON boxoffice.holds (shard, created_at);

-- Every booking (a confirmed hold, same claim id). payref is the payment
-- reference as text: printable ASCII as sent, any other byte and the
-- backslash as \xHH; payref_bytes is exactly what the client sent.
CREATE TABLE boxoffice.bookings (
	event_id	bigint NOT NULL,
	claim_id	bigint NOT NULL,
	shard		integer NOT NULL,
	client_id	bigint NOT NULL,
	request_id	bigint NOT NULL,
	payref		text NOT NULL,
	payref_bytes	bytea NOT NULL,
	seats		integer[],
	pool		smallint,
	quantity	integer NOT NULL,
	state		text NOT NULL CHECK (state IN ('confirmed', 'cancelled')),
	confirmed_seq	bigint NOT NULL,
	confirmed_at	timestamptz NOT NULL,
	cancelled_seq	bigint,
	cancelled_at	timestamptz,
	cancel_client_id  bigint,
	cancel_request_id bigint,
	PRIMARY KEY (event_id, claim_id)
) WITH (fillfactor = 80);

-- The audit trail: one row per status change of a seat (seat set, pool
-- NULL) or of a pool quantity (seat NULL, pool and quantity set), with its
-- cause and the command that caused it. An expiry has no command: client_id
-- and request_id are then those of the hold that expired. (shard,
-- journal_seq) is the journal record; ordinal orders the changes of one
-- record (expiries first, in the engine's order). batch_at is when the
-- committer's transaction ran.
CREATE TABLE boxoffice.seat_changes (
	shard		integer NOT NULL,
	journal_seq	bigint NOT NULL,
	ordinal		integer NOT NULL,
	event_id	bigint NOT NULL,
	seat		integer,
	pool		smallint,
	quantity	integer NOT NULL,
	from_state	text NOT NULL,
	to_state	text NOT NULL,
	cause		text NOT NULL CHECK (cause IN ('hold', 'release', 'expiry', 'confirm', 'cancel', 'block', 'unblock')),
	claim_id	bigint,
	client_id	bigint NOT NULL,
	request_id	bigint NOT NULL,
	journal_at	timestamptz NOT NULL,
	batch_at	timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (shard, journal_seq, ordinal)
);

-- The transactional outbox for the rest of the platform (payments,
-- notifications): one row per domain event, position gap-free per shard
-- (1, 2, 3, ...), written in the same transaction as the changes, with a
-- NOTIFY boxoffice_inventory '<shard>:<last position>' on commit.
CREATE TABLE boxoffice.inventory_events (
	shard		integer NOT NULL,
	position	bigint NOT NULL,
	event_type	text NOT NULL CHECK (event_type IN ('hold_created', 'hold_expired', 'hold_released',
							      'booking_confirmed', 'booking_cancelled')),
	event_id	bigint NOT NULL,
	claim_id	bigint NOT NULL,
	client_id	bigint NOT NULL,
	request_id	bigint NOT NULL,
	seats		integer[],
	pool		smallint,
	quantity	integer NOT NULL,
	payref		text,
	expires_at	timestamptz,
	journal_seq	bigint NOT NULL,
	occurred_at	timestamptz NOT NULL,
	PRIMARY KEY (shard, position)
);

-- Where each shard's journal stands in this database: the last record
-- applied and the last outbox position used. Moved only by the committer,
-- with a compare-and-set on journal_seq, in the transaction of the batch.
CREATE TABLE boxoffice.checkpoints (
	shard		integer PRIMARY KEY,
	journal_seq	bigint NOT NULL,
	outbox_position	bigint NOT NULL,
	journal_at	timestamptz,
	updated_at	timestamptz NOT NULL DEFAULT now()
);

-- Availability per event and category: what reporting reads.
CREATE VIEW boxoffice.availability AS
SELECT event_id, category,
       count(*) FILTER (WHERE state = 'free')::integer AS free,
       count(*) FILTER (WHERE state = 'held')::integer AS held,
       count(*) FILTER (WHERE state = 'booked')::integer AS booked,
       count(*) FILTER (WHERE state = 'blocked')::integer AS blocked,
       count(*)::integer AS total
  FROM boxoffice.seats
 GROUP BY event_id, category;

-- Availability of the general-admission pools.
CREATE VIEW boxoffice.pool_availability AS
SELECT event_id, pool, capacity, capacity - held - booked AS free, held, booked
  FROM boxoffice.pools;
