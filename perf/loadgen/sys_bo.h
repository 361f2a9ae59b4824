/*
 * sys_bo.h — what the two boxoffice systems of boxoffice-bench share
 * (sys_boxoffice.c over nng, sys_frame.c over the framed TCP front).
 */
#ifndef BO_PERF_SYS_BO_H
#define BO_PERF_SYS_BO_H

#include "base/types.h"
#include "lg.h"

/* The boxoffice command for q: event e is event id e + 1; a confirm
 * carries the payment reference "boxoffice-bench" (the engine wants one). */
void lg_bo_cmd(const lg_req *q, bo_cmd *cmd /* OUT */);

/* Fills q's outcome (and, when OK, its claim and seats or free seats)
 * from a boxoffice answer: err < 0 is no answer (res unused); TAKEN is
 * taken, EXPIRED and a confirm's or release's NOT_FOUND are expired,
 * BUSY and THROTTLED are themselves, every other status is an error. */
void lg_bo_fill(lg_req *q, int err, const bo_result *res);

#endif
