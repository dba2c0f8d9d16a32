import { useState } from "react";
import { ApiError } from "../api/client";
import type { Rule, RuleInput } from "../api/types";
import { useSession } from "../auth/session";
import { Alert, CheckboxField, SelectField, TextField } from "../components/Field";
import { useForm } from "../forms/useForm";
import { cidr, intInRange, required } from "../forms/validation";

const PROTOCOLS = ["any", "tcp", "udp", "icmp", "icmpv6"].map((p) => ({ value: p, label: p }));
const ACTIONS = [
  { value: "drop", label: "drop" },
  { value: "pass", label: "pass" },
  { value: "rate_limit", label: "rate limit" },
  { value: "redirect", label: "redirect (sample to user space)" },
];

export type RuleValues = {
  name: string;
  source_cidr: string;
  protocol: string;
  dst_port_min: string;
  dst_port_max: string;
  action: string;
  rate_limit_pps: string;
  sample_rate: string;
  priority: string;
  enabled: boolean;
};

const hasPorts = (p: string) => p === "tcp" || p === "udp";
const port = intInRange("Port", 1, 65535);

export const RULE_RULES = {
  name: required("Name"),
  source_cidr: cidr,
  dst_port_min: (v: string, all: RuleValues) => (hasPorts(all.protocol) ? port(v) : null),
  dst_port_max: (v: string, all: RuleValues) => {
    if (!hasPorts(all.protocol)) return null;
    const err = port(v);
    if (err) return err;
    if (v !== "" && all.dst_port_min !== "" && Number(v) < Number(all.dst_port_min)) {
      return "The last port must not be below the first";
    }
    return null;
  },
  rate_limit_pps: (v: string, all: RuleValues) =>
    all.action === "rate_limit" ? intInRange("Rate limit", 1, 1_000_000_000, false)(v) : null,
  sample_rate: (v: string, all: RuleValues) =>
    all.action === "redirect" ? intInRange("Sample rate", 1, 1_000_000, true)(v) : null,
  priority: intInRange("Priority", 0, 1_000_000, false),
};

export function ruleToValues(rule?: Rule): RuleValues {
  const s = (n: number | null | undefined) => (n == null ? "" : String(n));
  return {
    name: rule?.name ?? "",
    source_cidr: rule?.source_cidr ?? "",
    protocol: rule?.protocol ?? "any",
    dst_port_min: s(rule?.dst_port_min),
    dst_port_max: s(rule?.dst_port_max),
    action: rule?.action ?? "drop",
    rate_limit_pps: s(rule?.rate_limit_pps),
    sample_rate: s(rule?.sample_rate),
    priority: rule ? String(rule.priority) : "100",
    enabled: rule?.enabled ?? true,
  };
}

/** `override` accepts a source network inside a protected prefix (admins only, after the API's 422). */
export function valuesToInput(v: RuleValues, override = false): RuleInput {
  const n = (s: string) => (s.trim() === "" ? null : Number(s));
  const ports = hasPorts(v.protocol);
  return {
    name: v.name.trim(),
    source_cidr: v.source_cidr.trim(),
    protocol: v.protocol as RuleInput["protocol"],
    dst_port_min: ports ? n(v.dst_port_min) : null,
    dst_port_max: ports ? n(v.dst_port_max) ?? n(v.dst_port_min) : null,
    action: v.action as RuleInput["action"],
    rate_limit_pps: v.action === "rate_limit" ? n(v.rate_limit_pps) : null,
    sample_rate: v.action === "redirect" ? n(v.sample_rate) : null,
    priority: Number(v.priority),
    enabled: v.enabled,
    override,
  };
}

/**
 * Create or edit a rule. An edit sends the revision it started from; when someone else saved in
 * between, the API answers 409 revision_conflict with their version, which is shown next to the
 * user's own (kept as typed) with the choice to take theirs or to save over it knowingly.
 * A source network overlapping a protected prefix (FASTPATH_PROTECTED_PREFIXES) gets the API's
 * 422 beside the field; an admin is then offered to save anyway with `override`, which the API
 * records in the audit log. Changing the network withdraws the offer.
 */
export function RuleForm({ rule, onDone, onCancel }: { rule?: Rule; onDone(rule: Rule): void; onCancel(): void }) {
  const { api, state } = useSession();
  const isAdmin = state.status === "authenticated" && state.user.role === "admin";
  const form = useForm<RuleValues>(ruleToValues(rule), RULE_RULES);
  const [base, setBase] = useState<Rule | undefined>(rule);
  const [conflict, setConflict] = useState<Rule | null>(null);
  // The protected prefix the API named for the network as typed, and the admin's choice to override.
  const [protectedPrefix, setProtectedPrefix] = useState<string | null>(null);
  const [override, setOverride] = useState(false);
  const v = form.values;

  const save = form.handleSubmit(async (values) => {
    try {
      const saved = base
        ? await api.updateRule(base.id, { ...valuesToInput(values, override), revision: base.revision })
        : await api.createRule(valuesToInput(values, override));
      onDone(saved);
    } catch (err) {
      if (err instanceof ApiError && err.code === "revision_conflict" && err.details.current) {
        setConflict(err.details.current as Rule);
        throw new ApiError(409, err.code, "Someone else changed this rule while you were editing it.");
      }
      if (err instanceof ApiError && err.status === 422 && typeof err.details.protected_prefix === "string") {
        setProtectedPrefix(err.details.protected_prefix);
      }
      throw err;
    }
  });

  return (
    <form className="card form" aria-label={rule ? `Edit rule ${rule.name}` : "New rule"} noValidate onSubmit={save}>
      <h2>{rule ? `Edit rule “${rule.name}”` : "New rule"}</h2>
      {form.formError && <Alert>{form.formError}</Alert>}
      {conflict && (
        <div className="conflict" role="region" aria-label="Conflict">
          <p>
            Revision {conflict.revision} by {conflict.updated_by} at {new Date(conflict.updated_at).toLocaleString()}{" "}
            replaced revision {base?.revision} that you started from. Your changes are still in the form.
          </p>
          <table className="table table--compact">
            <thead>
              <tr>
                <th>Field</th>
                <th>Theirs (saved)</th>
                <th>Yours</th>
              </tr>
            </thead>
            <tbody>
              {(Object.keys(ruleToValues(conflict)) as (keyof RuleValues)[]).map((k) => {
                const theirs = String(ruleToValues(conflict)[k]);
                const yours = String(v[k]);
                return (
                  <tr key={k} className={theirs !== yours ? "diff" : undefined}>
                    <td>{k}</td>
                    <td>{theirs || "—"}</td>
                    <td>{yours || "—"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <div className="form__actions">
            <button
              type="button"
              className="btn"
              onClick={() => {
                form.setValues(ruleToValues(conflict));
                setBase(conflict);
                setConflict(null);
              }}
            >
              Discard mine, load theirs
            </button>
            <button
              type="button"
              className="btn btn--danger"
              onClick={() => {
                setBase(conflict);
                setConflict(null);
              }}
            >
              Keep mine (save again to overwrite)
            </button>
          </div>
        </div>
      )}
      <TextField label="Name" value={v.name} error={form.errors.name} onChange={(x) => form.set("name", x)} />
      <TextField
        label="Source network"
        placeholder="203.0.113.0/24"
        value={v.source_cidr}
        error={form.errors.source_cidr}
        onChange={(x) => {
          form.set("source_cidr", x);
          setProtectedPrefix(null);
          setOverride(false);
        }}
      />
      {isAdmin && protectedPrefix && (
        <CheckboxField
          label={`Save anyway: override the protected prefix ${protectedPrefix}`}
          checked={override}
          onChange={setOverride}
        />
      )}
      <div className="form__row">
        <SelectField label="Protocol" value={v.protocol} options={PROTOCOLS} error={form.errors.protocol} onChange={(x) => form.set("protocol", x)} />
        {hasPorts(v.protocol) && (
          <>
            <TextField label="First port" value={v.dst_port_min} error={form.errors.dst_port_min} onChange={(x) => form.set("dst_port_min", x)} />
            <TextField label="Last port" value={v.dst_port_max} error={form.errors.dst_port_max} onChange={(x) => form.set("dst_port_max", x)} />
          </>
        )}
      </div>
      <div className="form__row">
        <SelectField label="Action" value={v.action} options={ACTIONS} error={form.errors.action} onChange={(x) => form.set("action", x)} />
        {v.action === "rate_limit" && (
          <TextField
            label="Packets per second"
            value={v.rate_limit_pps}
            error={form.errors.rate_limit_pps}
            onChange={(x) => form.set("rate_limit_pps", x)}
          />
        )}
        {v.action === "redirect" && (
          <TextField
            label="Sample rate (1 in N)"
            value={v.sample_rate}
            error={form.errors.sample_rate}
            onChange={(x) => form.set("sample_rate", x)}
          />
        )}
        <TextField label="Priority" value={v.priority} error={form.errors.priority} onChange={(x) => form.set("priority", x)} />
      </div>
      <CheckboxField label="Enabled" checked={v.enabled} onChange={(x) => form.set("enabled", x)} />
      <div className="form__actions">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn--primary" disabled={form.submitting}>
          {form.submitting ? "Saving…" : rule ? "Save rule" : "Create rule"}
        </button>
      </div>
    </form>
  );
}
