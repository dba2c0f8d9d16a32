// SPDX-License-Identifier: GPL-2.0
/* In-kernel traffic generator for the fast path's veth tests and benchmark. Run through
 * BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: every repetition sends the frame out of
 * gen_config.ifindex (veth: into the peer's XDP). With nsrc > 1 the IPv4 source address cycles
 * through base_saddr .. base_saddr + nsrc - 1, so the receiver sees many sources. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct gen_config {
	__u32 ifindex;
	__u32 nsrc;
	__u32 base_saddr; /* host order */
	__u32 pad;
};

/* Written by the test or benchmark before a run. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct gen_config);
	__uint(max_entries, 1);
} gen_config SEC(".maps");

/* Frames generated, per CPU; also picks the next source address. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} gen_sent SEC(".maps");

static __always_inline __u16 ipv4_csum(__u16 *words)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += words[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int fastpath_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_config *cfg = bpf_map_lookup_elem(&gen_config, &zero);
	__u64 *sent = bpf_map_lookup_elem(&gen_sent, &zero);
	struct ethhdr *eth = data;
	__u8 *ip = data + sizeof(*eth);

	if (!cfg || !sent)
		return XDP_ABORTED;
	(*sent)++;
	if (cfg->nsrc > 1 && (void *)(ip + 20) <= end && eth->h_proto == bpf_htons(ETH_P_IP)) {
		__be32 saddr = bpf_htonl(cfg->base_saddr + (__u32)(*sent % cfg->nsrc));

		__builtin_memcpy(ip + 12, &saddr, 4);
		ip[10] = 0;
		ip[11] = 0;
		*(__u16 *)(ip + 10) = ipv4_csum((__u16 *)ip);
	}
	return bpf_redirect(cfg->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
