/*
 * names.c — the one table of names of the vocabulary (see names.h).
 */
#include "base/names.h"

#include "base/change.h"
#include "base/types.h"

const char *bo_status_str(int status)
{
	static const char *const names[BO_STATUS_COUNT] = {
		"ok", "taken", "expired", "not_found", "invalid", "limit", "conflict", "busy", "throttled", "not_primary",
	};
	return status >= 0 && status < BO_STATUS_COUNT ? names[status] : "unknown";
}

const char *bo_detail_str(int detail)
{
	static const char *const text[BO_D_COUNT] = {
		[BO_D_NONE] = "",
		[BO_D_BAD_OP] = "unknown command",
		[BO_D_NO_CLIENT] = "client id must be non-zero",
		[BO_D_NO_EVENT] = "no such event",
		[BO_D_EVENT_EXISTS] = "event id already exists",
		[BO_D_EVENT_ID_ZERO] = "event id must be non-zero",
		[BO_D_MAP_INVALID] = "seat map is invalid",
		[BO_D_EVENTS_FULL] = "shard holds its maximum number of events",
		[BO_D_SEATS_FULL] = "shard has no room for this many seats",
		[BO_D_SEAT_RANGE] = "seat number out of range",
		[BO_D_SEAT_DUPLICATE] = "seat listed twice",
		[BO_D_SEAT_COUNT] = "seat count out of range",
		[BO_D_SEAT_UNAVAILABLE] = "seat not available",
		[BO_D_CATEGORY_RANGE] = "no such category",
		[BO_D_SOLD_OUT] = "not enough free seats in this category",
		[BO_D_POOL_RANGE] = "no such pool",
		[BO_D_QUANTITY] = "quantity out of range",
		[BO_D_POOL_UNAVAILABLE] = "not enough left in the pool",
		[BO_D_TTL_RANGE] = "ttl out of range",
		[BO_D_LIFETIME] = "hold would outlive its maximum lifetime",
		[BO_D_CLIENT_HOLDS] = "client has too many active holds",
		[BO_D_CLAIMS_FULL] = "shard has no room for another hold",
		[BO_D_NO_HOLD] = "no such hold",
		[BO_D_NO_BOOKING] = "no such booking",
		[BO_D_HOLD_EXPIRED] = "hold expired",
		[BO_D_ALREADY_CONFIRMED] = "hold already confirmed",
		[BO_D_NOT_A_BOOKING] = "claim is a hold, not a booking",
		[BO_D_PAYREF] = "payment reference missing or too long",
		[BO_D_NOT_BLOCKED] = "seat is not blocked",
		[BO_D_IDEM_CONFLICT] = "request id reused with different content",
		[BO_D_UNAUTHORIZED] = "missing or wrong auth token",
	};
	return detail >= 0 && detail < BO_D_COUNT && text[detail] ? text[detail] : "unknown";
}

static const char *const detail_names[] = {
        [BO_D_NONE] = "none",
        [BO_D_BAD_OP] = "bad_op",
        [BO_D_NO_CLIENT] = "no_client",
        [BO_D_NO_EVENT] = "no_event",
        [BO_D_EVENT_EXISTS] = "event_exists",
        [BO_D_EVENT_ID_ZERO] = "event_id_zero",
        [BO_D_MAP_INVALID] = "map_invalid",
        [BO_D_EVENTS_FULL] = "events_full",
        [BO_D_SEATS_FULL] = "seats_full",
        [BO_D_SEAT_RANGE] = "seat_range",
        [BO_D_SEAT_DUPLICATE] = "seat_duplicate",
        [BO_D_SEAT_COUNT] = "seat_count",
        [BO_D_SEAT_UNAVAILABLE] = "seat_unavailable",
        [BO_D_CATEGORY_RANGE] = "category_range",
        [BO_D_SOLD_OUT] = "sold_out",
        [BO_D_POOL_RANGE] = "pool_range",
        [BO_D_QUANTITY] = "quantity",
        [BO_D_POOL_UNAVAILABLE] = "pool_unavailable",
        [BO_D_TTL_RANGE] = "ttl_range",
        [BO_D_LIFETIME] = "lifetime",
        [BO_D_CLIENT_HOLDS] = "client_holds",
        [BO_D_CLAIMS_FULL] = "claims_full",
        [BO_D_NO_HOLD] = "no_hold",
        [BO_D_NO_BOOKING] = "no_booking",
        [BO_D_HOLD_EXPIRED] = "hold_expired",
        [BO_D_ALREADY_CONFIRMED] = "already_confirmed",
        [BO_D_NOT_A_BOOKING] = "not_a_booking",
        [BO_D_PAYREF] = "payref",
        [BO_D_NOT_BLOCKED] = "not_blocked",
        [BO_D_IDEM_CONFLICT] = "idem_conflict",
        [BO_D_UNAUTHORIZED] = "unauthorized",
};
_Static_assert(sizeof(detail_names) / sizeof(detail_names[0]) == BO_D_COUNT,
	       "a wire name for every detail code (base/types.h grew one: name it here)");

const char *bo_detail_name(int detail)
{
	return detail >= 0 && detail < BO_D_COUNT ? detail_names[detail] : NULL;
}

const char *bo_op_str(int op)
{
	static const char *const names[BO_OP_COUNT] = {
		"none",	   "create_event", "hold_seats", "hold_best", "hold_pool",   "extend",	    "release",
		"confirm", "cancel",	   "block",	 "unblock",   "query_avail", "query_seats",
	};
	return op >= 0 && op < BO_OP_COUNT ? names[op] : "unknown";
}

const char *bo_seat_state_str(int state)
{
	static const char *const names[BO_SEAT_STATE_COUNT] = {"free", "held", "booked", "blocked"};
	return state >= 0 && state < BO_SEAT_STATE_COUNT ? names[state] : "unknown";
}

const char *bo_cause_str(int cause)
{
	static const char *const names[BO_CAUSE_COUNT] = {"none",   "create", "hold",  "release", "expiry",
							  "confirm", "cancel", "block", "unblock"};
	return cause > BO_CAUSE_NONE && cause < BO_CAUSE_COUNT ? names[cause] : "unknown";
}

