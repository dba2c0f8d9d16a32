// SPDX-License-Identifier: GPL-2.0
/* XDP fast path: source-prefix rules (LPM tries, optionally AND-ed with protocol and
 * destination port range) deciding pass / drop / rate-limit / redirect to AF_XDP, with per-rule
 * and per-action counters. Malformed packets are counted per kind and passed (or dropped when
 * loaded with fp_settings.drop_malformed). Sources in a protected prefix are passed before any
 * rule and the default policy, so no rule set cuts the control plane off. Every map is pinned by
 * the agent (FASTPATH_BPFFS). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fastpath_shared.h"

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define IP_OFFSET_MASK 0x1FFF
#define IP6_OFFSET_MASK 0xFFF8

const volatile struct fp_settings fp_settings = {};

/* Source-prefix tries -> candidate rule slots; written by the agent only. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v4_key);
	__type(value, struct fp_prefix_value);
	__uint(max_entries, FP_LPM_V4_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fp_lpm_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v6_key);
	__type(value, struct fp_prefix_value);
	__uint(max_entries, FP_LPM_V6_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fp_lpm_v6 SEC(".maps");

/* Protected source prefixes (value 1); replaced by the agent at start from its configuration.
 * Looked up only when fp_settings.protected_prefixes is set: none configured costs nothing. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v4_key);
	__type(value, __u32);
	__uint(max_entries, FP_PROTECTED_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fp_protected_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fp_lpm_v6_key);
	__type(value, __u32);
	__uint(max_entries, FP_PROTECTED_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} fp_protected_v6 SEC(".maps");

/* Rules by slot; written by the agent, read here. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_rule);
	__uint(max_entries, FP_MAX_RULES);
} fp_rules SEC(".maps");

/* Rule bookkeeping by rule id, so a restarted agent finds its rules; agent only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct fp_rule_meta);
	__uint(max_entries, FP_MAX_RULES);
} fp_rule_meta SEC(".maps");

/* Hits and bytes per rule slot, per CPU (no atomics on the hot path); written here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter_value);
	__uint(max_entries, FP_MAX_RULES);
} fp_rule_counters SEC(".maps");

/* Verdicts by reason (enum fp_counter), per CPU; written here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter_value);
	__uint(max_entries, FP_CNT_MAX);
} fp_counters SEC(".maps");

/* Malformed packets by kind (enum fp_parse_error), per CPU; written here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_counter_value);
	__uint(max_entries, FP_ERR_MAX);
} fp_parse_errors SEC(".maps");

/* Default policy, layout version and rule generation; written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fp_config);
	__uint(max_entries, 1);
} fp_config SEC(".maps");

/* Token buckets per (rule, source); LRU so a flood of sources evicts the idle ones. Shared by
 * all CPUs: a race between two CPUs on one bucket can let one extra packet through, which is
 * cheaper than a lock on every packet. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fp_rate_key);
	__type(value, struct fp_rate_state);
	__uint(max_entries, FP_RATE_ENTRIES);
} fp_rate SEC(".maps");

/* AF_XDP sockets by RX queue; the agent inserts one per queue it consumes. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, FP_XSK_QUEUES);
} fp_xsks SEC(".maps");

struct vlan_hdr_ {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct ipv6_ext_hdr_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* What the rules look at; filled by parse_packet. */
struct packet {
	__u8 family; /* 0 = not IP */
	__u8 proto;
	__u8 has_ports;
	__u8 pad;
	__u16 dport;
	__u16 pad2;
	struct fp_lpm_v6_key key6;
	struct fp_lpm_v4_key key4;
};

static __always_inline void count(void *map, __u32 idx, __u64 bytes)
{
	struct fp_counter_value *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Ports only from TCP and UDP, only in a first fragment. */
static __always_inline int parse_l4(void *l4, void *end, struct packet *pkt, int first_fragment)
{
	if (!first_fragment)
		return FP_ERR_NONE;
	switch (pkt->proto) {
	case IPPROTO_TCP:
		if (l4 + 20 > end)
			return FP_ERR_L4_TRUNCATED;
		break;
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (l4 + 8 > end)
			return FP_ERR_L4_TRUNCATED;
		break;
	default:
		return FP_ERR_NONE;
	}
	if (pkt->proto == IPPROTO_TCP || pkt->proto == IPPROTO_UDP) {
		pkt->dport = bpf_ntohs(*(__be16 *)(l4 + 2));
		pkt->has_ports = 1;
	}
	return FP_ERR_NONE;
}

static __always_inline int parse_ipv4(void *l3, void *end, struct packet *pkt)
{
	__u8 *ip = l3;
	__u32 ihl;
	__u16 frag;

	if (l3 + 20 > end)
		return FP_ERR_IPV4_TRUNCATED;
	if ((ip[0] >> 4) != 4 || (ip[0] & 0xF) < 5)
		return FP_ERR_IPV4_BAD_HEADER;
	ihl = (ip[0] & 0xF) * 4;
	/* Options: the header length is variable; the verifier accepts the bounded offset. */
	if (l3 + ihl > end)
		return FP_ERR_IPV4_TRUNCATED;
	pkt->family = 4;
	pkt->proto = ip[9];
	pkt->key4.prefixlen = 32;
	__builtin_memcpy(pkt->key4.addr, ip + 12, 4);
	frag = bpf_ntohs(*(__be16 *)(ip + 6));
	return parse_l4(l3 + ihl, end, pkt, (frag & IP_OFFSET_MASK) == 0);
}

static __always_inline int is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_FRAGMENT || nexthdr == IPPROTO_DSTOPTS;
}

static __always_inline int parse_ipv6(void *l3, void *end, struct packet *pkt)
{
	__u8 *ip6 = l3;
	void *cur = l3 + 40;
	__u8 nexthdr;
	int first_fragment = 1;

	if (l3 + 40 > end)
		return FP_ERR_IPV6_TRUNCATED;
	if ((ip6[0] >> 4) != 6)
		return FP_ERR_IPV6_BAD_HEADER;
	pkt->family = 6;
	pkt->key6.prefixlen = 128;
	__builtin_memcpy(pkt->key6.addr, ip6 + 8, 16);
	nexthdr = ip6[6];

	/* Constant bound: the verifier must see the loop end. */
#pragma unroll
	for (int i = 0; i < FP_MAX_IPV6_EXT; i++) {
		struct ipv6_ext_hdr_ *ext = cur;

		if (!is_ipv6_ext(nexthdr))
			break;
		if (cur + 8 > end)
			return FP_ERR_IPV6_EXT_TRUNCATED;
		if (nexthdr == IPPROTO_FRAGMENT) {
			__u16 off = bpf_ntohs(*(__be16 *)(cur + 2));

			if (off & IP6_OFFSET_MASK)
				first_fragment = 0;
			nexthdr = ext->nexthdr;
			cur += 8;
		} else {
			__u32 len = ((__u32)ext->hdrlen + 1) * 8;

			nexthdr = ext->nexthdr;
			if (cur + len > end)
				return FP_ERR_IPV6_EXT_TRUNCATED;
			cur += len;
		}
	}
	if (is_ipv6_ext(nexthdr))
		return FP_ERR_IPV6_EXT_TOO_DEEP;
	pkt->proto = nexthdr;
	return parse_l4(cur, end, pkt, first_fragment);
}

static __always_inline int parse_packet(struct xdp_md *ctx, struct packet *pkt)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u16 proto;

	if (l3 > end)
		return FP_ERR_ETH_TRUNCATED;
	proto = eth->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr_ *vh = l3;

		if (proto != bpf_htons(ETH_P_8021Q_) && proto != bpf_htons(ETH_P_8021AD_))
			break;
		if ((void *)(vh + 1) > end)
			return FP_ERR_VLAN_TRUNCATED;
		proto = vh->encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_))
		return FP_ERR_VLAN_TOO_DEEP;
	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(l3, end, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(l3, end, pkt);
	return FP_ERR_NONE;
}

static __always_inline int is_protected(const struct packet *pkt)
{
	if (pkt->family == 4)
		return bpf_map_lookup_elem(&fp_protected_v4, &pkt->key4) != NULL;
	return bpf_map_lookup_elem(&fp_protected_v6, &pkt->key6) != NULL;
}

static __always_inline int rule_matches(const struct fp_rule *r, const struct packet *pkt)
{
	if (r->protocol && r->protocol != pkt->proto)
		return 0;
	if (r->flags & FP_RULE_PORTS) {
		if (!pkt->has_ports)
			return 0;
		if (pkt->dport < r->dport_min || pkt->dport > r->dport_max)
			return 0;
	}
	return 1;
}

/* GCRA: conforming when the source's theoretical arrival time is at most `burst` packet
 * intervals ahead of now. */
static __always_inline int rate_conforms(const struct fp_rule *r, __u32 slot,
					 const struct packet *pkt)
{
	struct fp_rate_key key = { .slot = slot, .family = pkt->family };
	struct fp_rate_state *st, fresh;
	__u64 now = bpf_ktime_get_ns();
	__u64 cost, tat;

	if (!r->rate_pps)
		return 0;
	cost = 1000000000ULL / r->rate_pps;
	if (pkt->family == 4)
		__builtin_memcpy(key.addr, pkt->key4.addr, 4);
	else
		__builtin_memcpy(key.addr, pkt->key6.addr, 16);
	st = bpf_map_lookup_elem(&fp_rate, &key);
	if (!st) {
		fresh.tat_ns = now + cost;
		bpf_map_update_elem(&fp_rate, &key, &fresh, BPF_ANY);
		return 1;
	}
	tat = st->tat_ns > now ? st->tat_ns : now;
	if (tat + cost - now > cost * (__u64)(r->burst ? r->burst : 1))
		return 0;
	st->tat_ns = tat + cost;
	return 1;
}

static __always_inline int apply_rule(struct xdp_md *ctx, const struct fp_rule *r, __u32 slot,
				      const struct packet *pkt, __u64 len)
{
	struct fp_counter_value *hits = bpf_map_lookup_elem(&fp_rule_counters, &slot);
	__u64 nth = 0;
	int act;

	if (hits) {
		hits->packets++;
		hits->bytes += len;
		nth = hits->packets;
	}
	switch (r->action) {
	case FP_ACT_DROP:
		count(&fp_counters, FP_CNT_DROP, len);
		return XDP_DROP;
	case FP_ACT_RATE_LIMIT:
		if (rate_conforms(r, slot, pkt)) {
			count(&fp_counters, FP_CNT_RATE_PASS, len);
			return XDP_PASS;
		}
		count(&fp_counters, FP_CNT_RATE_DROP, len);
		return XDP_DROP;
	case FP_ACT_REDIRECT:
		/* 1 in N by the rule's own per-CPU hit count: exact and free of randomness. */
		if (r->sample_rate > 1 && nth % r->sample_rate) {
			count(&fp_counters, FP_CNT_REDIRECT_SKIP, len);
			return XDP_PASS;
		}
		act = bpf_redirect_map(&fp_xsks, ctx->rx_queue_index, XDP_PASS);
		count(&fp_counters, act == XDP_REDIRECT ? FP_CNT_REDIRECT : FP_CNT_REDIRECT_NOSOCK,
		      len);
		return act;
	default:
		count(&fp_counters, FP_CNT_PASS, len);
		return XDP_PASS;
	}
}

SEC("xdp")
int fastpath_xdp(struct xdp_md *ctx)
{
	__u64 len = ctx->data_end - ctx->data;
	struct packet pkt = {};
	struct fp_prefix_value *cand;
	struct fp_config *cfg;
	__u32 zero = 0;
	int err;

	err = parse_packet(ctx, &pkt);
	if (err) {
		count(&fp_parse_errors, err, len);
		if (fp_settings.drop_malformed) {
			count(&fp_counters, FP_CNT_MALFORMED_DROP, len);
			return XDP_DROP;
		}
		count(&fp_counters, FP_CNT_MALFORMED_PASS, len);
		return XDP_PASS;
	}
	if (!pkt.family) {
		count(&fp_counters, FP_CNT_NON_IP, len);
		return XDP_PASS;
	}
	/* A frozen .rodata constant: with none configured the verifier drops the lookup. */
	if (fp_settings.protected_prefixes && is_protected(&pkt)) {
		count(&fp_counters, FP_CNT_PROTECTED_PASS, len);
		return XDP_PASS;
	}
	if (pkt.family == 4)
		cand = bpf_map_lookup_elem(&fp_lpm_v4, &pkt.key4);
	else
		cand = bpf_map_lookup_elem(&fp_lpm_v6, &pkt.key6);
	if (cand) {
#pragma unroll
		for (int i = 0; i < FP_SLOTS_PER_PREFIX; i++) {
			__u32 slot;
			struct fp_rule *r;

			if (i >= cand->count)
				break;
			slot = cand->slots[i];
			r = bpf_map_lookup_elem(&fp_rules, &slot);
			if (r && rule_matches(r, &pkt))
				return apply_rule(ctx, r, slot, &pkt, len);
		}
	}
	cfg = bpf_map_lookup_elem(&fp_config, &zero);
	if (cfg && cfg->default_policy == FP_POLICY_DENY) {
		count(&fp_counters, FP_CNT_DEFAULT_DROP, len);
		return XDP_DROP;
	}
	count(&fp_counters, FP_CNT_DEFAULT_PASS, len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
