/** Field rules shared by the forms; the API checks the same rules and has the last word. */

export type Validator<V> = (value: V) => string | null;

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 128;

export function required(label: string): Validator<string> {
  return (v) => (v.trim() === "" ? `${label} is required` : null);
}

export const email: Validator<string> = (v) => {
  if (v.trim() === "") return "Email is required";
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v.trim()) ? null : "Enter an email address like name@example.com";
};

export const password: Validator<string> = (v) => {
  if (v.length === 0) return "Password is required";
  if (v.length < PASSWORD_MIN) return `Use at least ${PASSWORD_MIN} characters (${v.length} so far)`;
  if (v.length > PASSWORD_MAX) return `Use at most ${PASSWORD_MAX} characters`;
  return null;
};

function ipv4(addr: string): boolean {
  const parts = addr.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function ipv6(addr: string): boolean {
  if (!/^[0-9a-fA-F:.]+$/.test(addr) || addr.split("::").length > 2) return false;
  const groups = addr.split(":").filter((g) => g !== "");
  return groups.length <= 8 && groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g));
}

/** An IPv4 or IPv6 network in CIDR notation (the API also checks that host bits are zero). */
export const cidr: Validator<string> = (v) => {
  const value = v.trim();
  if (value === "") return "Source network is required";
  const [addr, prefix, extra] = value.split("/");
  if (extra !== undefined || prefix === undefined || !/^\d{1,3}$/.test(prefix)) {
    return "Use CIDR notation, e.g. 203.0.113.0/24 or 2001:db8::/32";
  }
  const bits = Number(prefix);
  if (addr !== undefined && ipv4(addr)) return bits <= 32 ? null : "An IPv4 prefix is 0..32";
  if (addr !== undefined && ipv6(addr)) return bits <= 128 ? null : "An IPv6 prefix is 0..128";
  return "Not an IPv4 or IPv6 address";
};

export function intInRange(label: string, min: number, max: number, optional = true): Validator<string> {
  return (v) => {
    if (v.trim() === "") return optional ? null : `${label} is required`;
    if (!/^\d+$/.test(v.trim())) return `${label} must be a whole number`;
    const n = Number(v);
    return n < min || n > max ? `${label} must be between ${min} and ${max}` : null;
  };
}
