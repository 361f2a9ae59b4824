/*
 * names.h — the one table of names for the vocabulary of base/types.h:
 * what replies, logs, tools and the wire protocol print. Every function
 * takes an int (a value read from outside may be anything) and never
 * returns NULL except bo_detail_name(), whose NULL tells a codec that the
 * value has no wire name.
 */
#ifndef BO_BASE_NAMES_H
#define BO_BASE_NAMES_H

const char *bo_status_str(int status); /* "ok", "taken", ...; "unknown" when out of range */
const char *bo_detail_str(int detail); /* human-readable reason; "unknown" when out of range */
/* The stable machine name of a detail ("seat_unavailable", ...; "none" for
 * BO_D_NONE) used on the wire and in tools; NULL when out of range. */
const char *bo_detail_name(int detail);
const char *bo_op_str(int op);		/* "hold_seats", ...; "unknown" when out of range */
const char *bo_seat_state_str(int state); /* "free", ...; "unknown" when out of range */
/* A bo_cause (base/change.h): "create", "hold", "release", "expiry",
 * "confirm", "cancel", "block", "unblock"; "unknown" when out of range. */
const char *bo_cause_str(int cause);

#endif /* BO_BASE_NAMES_H */
