/*
 * json.h — the HTTP/JSON form of the wire protocol (schemas/http.md is the
 * client-facing description, schemas/openapi.yaml the OpenAPI 3 document).
 *
 * A JSON command is the msgpack command of schemas/protocol.md §3 written
 * as a JSON object: the same keys, the same rules, the same error texts and
 * details — by construction: json.c turns the body into the msgpack message
 * it stands for and decodes that with wire_decode_request, so the key
 * table of request.c is the only one (json.c's top comment has the rule).
 * Integers are JSON integers (no fraction, no exponent); ids are exact
 * unsigned 64-bit values but, JSON parsers being what they are, only
 * 0..2^63-1 are accepted over HTTP (larger: invalid/malformed). A reply is
 * the msgpack reply of §4 as a JSON object, same keys.
 *
 * Parsing uses jansson (Debian's libjansson), never a hand-written parser;
 * the input is hostile: its size is bounded by the caller
 * (BO_HTTP_BODY_MAX), its nesting by JSON_DEPTH_MAX (checked before
 * jansson builds anything: jansson itself recurses without a bound).
 *
 * Buffers are msgpack_sbuffer (data/size/alloc): appended to; on failure
 * restored to the size they had on entry.
 */
#ifndef BO_PROTOCOL_JSON_H
#define BO_PROTOCOL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack/sbuffer.h>

#include "base/change.h"
#include "protocol/wire.h"

/* Nesting of a JSON request: batch array > command > map > rows > row >
 * categories is 6, as for msgpack. */
#define JSON_DEPTH_MAX WIRE_DEPTH_MAX

/* Shapes a decoder accepts. */
enum {
	JSON_ONE = 1,   /* exactly one command object (POST /v1/command) */
	JSON_BATCH = 2, /* an array of 1..cap command objects (POST /v1/batch) */
};

/* Decodes body[0..len) (not NUL-terminated) as `shape` into cmds[0..cap)
 * and errs[0..cap), exactly as wire_decode_request() does for msgpack
 * (same return values, same meaning of errs[], out->count, out->invalid,
 * out->is_array, out->error; create_event maps allocated here, freed with
 * wire_free_maps()). Message-level failures (-EINVAL) include: not JSON,
 * nesting deeper than JSON_DEPTH_MAX, the wrong shape for `shape`, an
 * empty batch, more than cap commands, trailing bytes. */
int json_decode_request(const char *body, size_t len, int shape, bo_cmd *cmds /* OUT */,
                        wire_cmd_error *errs /* OUT */, uint32_t cap, wire_msg *out /* OUT */);

/* Appends the JSON reply: one object per command (res[i], or errs[i] when
 * errs && errs[i].status != BO_OK, as wire_encode_replies), inside an
 * array when is_array. A THROTTLED or BUSY result with retry_after_ms > 0
 * carries "retry_after_ms". Returns 0, -EINVAL (a result with no
 * encoding), -ENOMEM. */
int json_encode_replies(const bo_result *res, const wire_cmd_error *errs, uint32_t count,
                        int is_array, msgpack_sbuffer *out);

/* As json_encode_replies, and a not_primary reply i carries "epoch" and
 * "primary" from primary[i] (primary may be NULL), as
 * wire_encode_replies_primary. */
int json_encode_replies_primary(const bo_result *res, const wire_cmd_error *errs,
                                const wire_primary *primary, uint32_t count, int is_array,
                                msgpack_sbuffer *out);

/* Appends {"status": ..., "detail": ..., "error": text} (a message-level
 * error: detail "malformed" for BO_INVALID, "none" otherwise). */
int json_encode_error(int status, const char *text, msgpack_sbuffer *out);

/* The HTTP status for a reply of status `status` (bo_status):
 * ok 200, taken 409, conflict 409, expired 410, not_found 404, invalid 400,
 * limit 422, busy 503, throttled 429, not_primary 421 (Misdirected
 * Request). A batch is answered 200 whatever its
 * commands' statuses (each reply has its own). */
int json_http_status(int status);

/* Appends the event image as JSON (GET /v1/events/{id}/state):
 * {"status": "ok", "event", "seq", "categories", "rows": [{"section",
 *  "seats"}], "seats": [state names], "seat_categories", "pools":
 *  [{"capacity", "free"}]} (schemas/http.md §5). Returns 0, -EINVAL (im
 * breaks wire_event_image_valid: the msgpack image's rules) or -ENOMEM;
 * on failure `out` is unchanged. */
int json_encode_event_image(const bo_event_image *im, msgpack_sbuffer *out);

#endif /* BO_PROTOCOL_JSON_H */
