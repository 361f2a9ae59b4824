/*
 * entry.c — journal record payloads; the layout is in entry.h.
 */
#include "entry.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "base/le.h"
#include "engine/codec.h"

/* The command as it is journaled: without an invalid map. */
static const bo_cmd *journaled_cmd(const bo_cmd *cmd, bo_cmd *tmp)
{
	if (cmd->op != BO_OP_CREATE_EVENT || bo_seatmap_check(cmd->map) == BO_D_NONE)
		return cmd;
	*tmp = *cmd;
	tmp->map = NULL;
	return tmp;
}

int32_t entry_command_size(const bo_cmd *cmd, const bo_result *res)
{
	bo_cmd tmp;
	int32_t c = codec_cmd_size(journaled_cmd(cmd, &tmp));
	int32_t r = codec_result_size(res);
	assert(c > 0 && r > 0);
	return (int32_t)ENTRY_COMMAND_HEADER_BYTES + c + r;
}

int32_t entry_encode_command(const bo_cmd *cmd, const bo_result *res, uint8_t *buf, size_t cap)
{
	assert(cmd && res && buf);
	assert(entry_journals(cmd));
	bo_cmd tmp;
	const bo_cmd *jc = journaled_cmd(cmd, &tmp);
	const size_t h = ENTRY_COMMAND_HEADER_BYTES;
	if (cap < h)
		return -ENOSPC;
	int32_t c = codec_cmd_encode(jc, buf + h, cap - h);
	if (c < 0)
		return c == -ENOSPC ? -ENOSPC : (assert(0 && "every command the engine applied encodes"), c);
	int32_t r = codec_result_encode(res, buf + h + c, cap - h - (size_t)c);
	if (r < 0)
		return r;
	buf[0] = ENTRY_COMMAND;
	bo_le_store32(buf + 1, (uint32_t)c);
	return (int32_t)h + c + r;
}

int32_t entry_encode_tick(uint8_t *buf, size_t cap)
{
	if (cap < 1)
		return -ENOSPC;
	buf[0] = ENTRY_TICK;
	return 1;
}

int32_t entry_encode_epoch(uint64_t epoch, uint8_t *buf, size_t cap)
{
	assert(epoch >= 1);
	if (cap < ENTRY_EPOCH_BYTES)
		return -ENOSPC;
	buf[0] = ENTRY_EPOCH;
	bo_le_store64(buf + 1, epoch);
	return (int32_t)ENTRY_EPOCH_BYTES;
}

/* A payload that does not decode: *out is all zeroes, as on entry. */
static int decode_failed(entry *out, int rc)
{
	memset(out, 0, sizeof(*out));
	return rc;
}

int entry_decode(const uint8_t *buf, size_t len, entry *out, bo_seatmap **map_out)
{
	assert(buf || len == 0);
	assert(out && map_out);
	*map_out = NULL;
	if (len < 1)
		return decode_failed(out, -EINVAL);
	if (buf[0] == ENTRY_TICK) {
		memset(out, 0, sizeof(*out));
		if (len != 1)
			return -EINVAL;
		out->kind = ENTRY_TICK;
		return 0;
	}
	if (buf[0] == ENTRY_EPOCH) {
		memset(out, 0, sizeof(*out));
		uint64_t epoch = len == ENTRY_EPOCH_BYTES ? bo_le_load64(buf + 1) : 0;
		if (epoch == 0)
			return -EINVAL;
		out->kind = ENTRY_EPOCH;
		out->epoch = epoch;
		return 0;
	}
	/* No memset of the whole entry up front: both decoders clear what
	 * they fill (cmd, res) first, and a replay decodes every record (the
	 * two ~300-byte clears were a twentieth of verify's instructions). */
	const size_t h = ENTRY_COMMAND_HEADER_BYTES;
	if (buf[0] != ENTRY_COMMAND || len < h)
		return decode_failed(out, -EINVAL);
	uint32_t c = bo_le_load32(buf + 1);
	if (c > len - h)
		return decode_failed(out, -EINVAL);
	bo_seatmap *map = NULL;
	int32_t used = codec_cmd_decode(buf + h, c, &out->cmd, &map);
	if (used < 0)
		return decode_failed(out, used);
	if ((uint32_t)used != c || !entry_journals(&out->cmd)) {
		bo_seatmap_free(map);
		return decode_failed(out, -EINVAL);
	}
	int32_t r = codec_result_decode(buf + h + c, len - h - c, &out->res);
	if (r < 0 || (size_t)r != len - h - c || out->res.op != out->cmd.op) {
		bo_seatmap_free(map);
		return decode_failed(out, r < 0 ? r : -EINVAL);
	}
	out->kind = ENTRY_COMMAND;
	out->epoch = 0;
	*map_out = map;
	return 0;
}
