/* Everything user space mirrors: structs, constants and map names shared by the XDP program
 * and the Python agent (src/python/myapp/fastpath). Keep the Python mirror in step; a test
 * compares sizes and offsets. */
#ifndef FASTPATH_SHARED_H
#define FASTPATH_SHARED_H

#include <linux/types.h>

/* Indexes into the global per-CPU counter array `fp_counters`. */
enum fp_counter {
	FP_CNT_PASS = 0,
	FP_CNT_DROP = 1,
	FP_CNT_MAX,
};

/* Value of one counter slot, per CPU. */
struct fp_counter_value {
	__u64 packets;
	__u64 bytes;
};

#endif /* FASTPATH_SHARED_H */
