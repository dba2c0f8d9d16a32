/* Everything user space mirrors: structs, constants and map names shared by the XDP program
 * and the Python agent (src/python/myapp/fastpath/shared.py). Keep the Python mirror in step;
 * shared_test.py compiles this header with the system cc and compares sizes and offsets. */
#ifndef FASTPATH_SHARED_H
#define FASTPATH_SHARED_H

#include <linux/types.h>

/* Bumped whenever a pinned map's layout or meaning changes: an agent refuses pinned maps
 * written under another layout instead of misreading them. */
#define FP_LAYOUT_VERSION 1

/* Capacities; override with -D at build time. Sized for 100,000+ prefixes in each family;
 * fp_rule_counters costs 16 bytes x possible CPUs per rule slot. */
#ifndef FP_MAX_RULES
#define FP_MAX_RULES 262144
#endif
#ifndef FP_LPM_V4_ENTRIES
#define FP_LPM_V4_ENTRIES 262144
#endif
#ifndef FP_LPM_V6_ENTRIES
#define FP_LPM_V6_ENTRIES 262144
#endif
#ifndef FP_RATE_ENTRIES
#define FP_RATE_ENTRIES 65536
#endif
#ifndef FP_XSK_QUEUES
#define FP_XSK_QUEUES 64
#endif
/* Protected prefixes per family (FASTPATH_PROTECTED_PREFIXES: the control plane's ranges). */
#ifndef FP_PROTECTED_ENTRIES
#define FP_PROTECTED_ENTRIES 1024
#endif

/* Candidate rules per prefix (own rules plus those inherited from covering prefixes). */
#define FP_SLOTS_PER_PREFIX 8
/* IPv6 extension headers walked before giving up (verifier needs a constant bound). */
#define FP_MAX_IPV6_EXT 6
#define FP_RULE_NAME_LEN 64

/* Rule actions; the numbers are those of fastpath.v1.Action. */
enum fp_action {
	FP_ACT_PASS = 1,
	FP_ACT_DROP = 2,
	FP_ACT_RATE_LIMIT = 3,
	FP_ACT_REDIRECT = 4,
};

/* Default policies; the numbers are those of fastpath.v1.Policy. */
enum fp_policy {
	FP_POLICY_ALLOW = 1,
	FP_POLICY_DENY = 2,
};

/* Indexes into the per-CPU array `fp_counters`: why the program returned what it returned. */
enum fp_counter {
	FP_CNT_PASS = 0,           /* pass rule */
	FP_CNT_DROP = 1,           /* drop rule */
	FP_CNT_RATE_PASS = 2,      /* rate-limit rule, within the source's budget */
	FP_CNT_RATE_DROP = 3,      /* rate-limit rule, over budget */
	FP_CNT_REDIRECT = 4,       /* handed to an AF_XDP socket */
	FP_CNT_REDIRECT_SKIP = 5,  /* redirect rule, not in the 1-in-N sample: passed */
	FP_CNT_REDIRECT_NOSOCK = 6, /* redirect rule, no AF_XDP socket on the queue: passed */
	FP_CNT_DEFAULT_PASS = 7,   /* no rule matched, policy allow */
	FP_CNT_DEFAULT_DROP = 8,   /* no rule matched, policy deny */
	FP_CNT_NON_IP = 9,         /* neither IPv4 nor IPv6 (ARP, LLDP...): always passed */
	FP_CNT_MALFORMED_PASS = 10,
	FP_CNT_MALFORMED_DROP = 11,
	FP_CNT_PROTECTED_PASS = 12, /* source in a protected prefix: passed before any rule */
	FP_CNT_MAX,
};

/* Indexes into the per-CPU array `fp_parse_errors` (0 is never counted). */
enum fp_parse_error {
	FP_ERR_NONE = 0,
	FP_ERR_ETH_TRUNCATED = 1,
	FP_ERR_VLAN_TRUNCATED = 2,
	FP_ERR_VLAN_TOO_DEEP = 3,
	FP_ERR_IPV4_TRUNCATED = 4,
	FP_ERR_IPV4_BAD_HEADER = 5,
	FP_ERR_IPV6_TRUNCATED = 6,
	FP_ERR_IPV6_BAD_HEADER = 7,
	FP_ERR_IPV6_EXT_TRUNCATED = 8,
	FP_ERR_IPV6_EXT_TOO_DEEP = 9,
	FP_ERR_L4_TRUNCATED = 10,
	FP_ERR_MAX,
};

/* fp_rule.flags */
#define FP_RULE_PORTS (1u << 0) /* dst_port_min..dst_port_max must hold (TCP/UDP only) */

/* Keys of the LPM tries `fp_lpm_v4` / `fp_lpm_v6` (and `fp_protected_v4` / `fp_protected_v6`,
 * whose value is a __u32 1); addr in network order. */
struct fp_lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct fp_lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of both tries: rule slots to try in order, first match wins. User space orders them:
 * the prefix's own rules by (priority, id), then those of each covering prefix from the
 * longest to the shortest, so a more specific prefix shadows a covering one only where its
 * rules actually match. */
struct fp_prefix_value {
	__u32 count;
	__u32 slots[FP_SLOTS_PER_PREFIX];
};

/* One rule, `fp_rules[slot]`. */
struct fp_rule {
	__u32 rule_id;
	__u8 action;     /* enum fp_action */
	__u8 protocol;   /* IP protocol, 0 = any */
	__u16 flags;     /* FP_RULE_* */
	__u16 dport_min; /* host order, inclusive */
	__u16 dport_max;
	__u32 rate_pps;  /* FP_ACT_RATE_LIMIT: packets per second per source */
	__u32 burst;     /* FP_ACT_RATE_LIMIT: packets a source may send back to back */
	__u32 sample_rate; /* FP_ACT_REDIRECT: 1 in N (1 = all) */
};

/* What the agent needs to rebuild its rule set from the pinned maps after a restart;
 * `fp_rule_meta[rule_id]`. The XDP program never reads it. */
struct fp_rule_meta {
	__u64 revision;
	__u32 slot;
	__s32 priority;
	__u8 family; /* 4 or 6 */
	__u8 prefixlen;
	__u8 enabled;
	__u8 pad;
	__u8 addr[16];
	char name[FP_RULE_NAME_LEN];
};

/* Run-time settings, `fp_config[0]`, written by the agent. */
struct fp_config {
	__u32 layout_version; /* FP_LAYOUT_VERSION once the agent initialised the maps */
	__u32 default_policy; /* enum fp_policy; 0 (fresh map) behaves as allow */
	__u64 generation;     /* bumped by the agent on every rule change */
};

/* Key of the token buckets `fp_rate`: one bucket per (rule slot, source address). */
struct fp_rate_key {
	__u32 slot;
	__u32 family;
	__u8 addr[16];
};

/* Token bucket as GCRA: the theoretical arrival time of the next conforming packet. */
struct fp_rate_state {
	__u64 tat_ns;
};

/* Value of one counter slot, per CPU. */
struct fp_counter_value {
	__u64 packets;
	__u64 bytes;
};

/* Load-time settings (`const volatile`, frozen into the program's .rodata at load). */
struct fp_settings {
	__u32 drop_malformed; /* 1: drop malformed/truncated packets instead of passing them */
	__u32 protected_prefixes; /* 1: look sources up in fp_protected_v4/v6 (0: none configured) */
};

#endif /* FASTPATH_SHARED_H */
