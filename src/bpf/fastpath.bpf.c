// SPDX-License-Identifier: GPL-2.0
/* XDP fast path: counts every packet and passes it. The packet filter grows from here. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "fastpath_shared.h"

/* Global counters per action, per CPU (no atomics on the hot path); read and summed by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_CNT_MAX);
	__type(key, __u32);
	__type(value, struct fp_counter_value);
} fp_counters SEC(".maps");

SEC("xdp")
int fastpath_xdp(struct xdp_md *ctx)
{
	__u32 key = FP_CNT_PASS;
	struct fp_counter_value *cnt = bpf_map_lookup_elem(&fp_counters, &key);

	if (cnt) {
		cnt->packets++;
		cnt->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
