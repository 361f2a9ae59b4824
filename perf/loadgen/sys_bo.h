/*
 * sys_bo.h — what the two boxoffice systems of boxoffice-bench share
 * (sys_boxoffice.c over nng, sys_frame.c over the framed TCP front).
 */
#ifndef BO_PERF_SYS_BO_H
#define BO_PERF_SYS_BO_H

#include "base/types.h"
#include "lg.h"

/* Fills q's outcome (and, when OK, its claim and seats or free seats)
 * from a boxoffice answer: err < 0 is no answer (res unused); TAKEN is
 * taken, EXPIRED and a confirm's or release's NOT_FOUND are expired,
 * BUSY and THROTTLED are themselves, every other status is an error. */
void lg_bo_fill(lg_req *q, int err, const bo_result *res);

#endif
