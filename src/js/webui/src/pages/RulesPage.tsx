import { useState } from "react";
import type { FastpathStats, Rule, RuleCounter } from "../api/types";
import { useDebounced, useInterval, useResource } from "../api/useResource";
import { canAccess } from "../auth/access";
import { useSession, useUser } from "../auth/session";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { type Notice, useConfirmedDelete } from "../components/useConfirmedDelete";
import { Alert, Spinner, TextField } from "../components/Field";
import { formatTime, LoadError } from "../components/LoadError";
import { PagedTable, RowActions } from "../components/PagedTable";
import { SortHeader } from "../components/Pager";
import { Tabs } from "../components/Tabs";
import { RuleForm } from "./RuleForm";

function ports(r: Rule): string {
  if (r.dst_port_min == null) return "any";
  return r.dst_port_max != null && r.dst_port_max !== r.dst_port_min ? `${r.dst_port_min}–${r.dst_port_max}` : String(r.dst_port_min);
}

function actionText(r: Rule): string {
  if (r.action === "rate_limit") return `rate limit ${r.rate_limit_pps} pps`;
  if (r.action === "redirect") return r.sample_rate ? `redirect 1/${r.sample_rate}` : "redirect";
  return r.action;
}

function RulesTab() {
  const { api } = useSession();
  const { scopes } = useUser();
  const [q, setQ] = useState("");
  const [sort, setSort] = useState("priority");
  const [page, setPage] = useState(1);
  const [editing, setEditing] = useState<Rule | "new" | null>(null);
  const [notice, setNotice] = useState<Notice | null>(null);
  const query = useDebounced(q);
  const rules = useResource(() => api.listRules({ q: query, sort, page, per_page: 20 }), [api, query, sort, page]);
  const deletion = useConfirmedDelete<Rule>({
    remove: (rule) => api.deleteRule(rule.id),
    deletedText: (rule) => `Rule “${rule.name}” deleted.`,
    onNotice: setNotice,
    onDeleted: rules.reload,
  });
  const canCreate = canAccess(scopes, "rules", "create");
  const canEdit = canAccess(scopes, "rules", "update");
  const canDelete = canAccess(scopes, "rules", "delete");

  return (
    <>
      <div className="page-head">
        <TextField
          label="Search rules"
          type="search"
          placeholder="Name or network"
          value={q}
          onChange={(v) => {
            setQ(v);
            setPage(1);
          }}
        />
        {canCreate && editing !== "new" && (
          <button type="button" className="btn btn--primary" onClick={() => setEditing("new")}>
            New rule
          </button>
        )}
      </div>
      {notice && <Alert kind={notice.kind}>{notice.text}</Alert>}
      {editing && (
        <RuleForm
          key={editing === "new" ? "new" : editing.id}
          rule={editing === "new" ? undefined : editing}
          onCancel={() => setEditing(null)}
          onDone={(r) => {
            setNotice({ kind: "success", text: `Rule “${r.name}” saved (revision ${r.revision}).` });
            setEditing(null);
            rules.reload();
          }}
        />
      )}
      <PagedTable
        resource={rules}
        loadingLabel="Loading rules…"
        empty={
          q
            ? `No rule matches “${q}”.`
            : canCreate
              ? "No rules yet: traffic passes untouched. Add one with “New rule”."
              : "No rules yet: traffic passes untouched."
        }
        onPage={setPage}
        head={
          <>
            <SortHeader field="priority" label="Priority" sort={sort} onSort={setSort} />
            <SortHeader field="name" label="Name" sort={sort} onSort={setSort} />
            <SortHeader field="source_cidr" label="Source" sort={sort} onSort={setSort} />
            <th>Protocol / ports</th>
            <th>Action</th>
            <th>State</th>
            {(canEdit || canDelete) && <th>Actions</th>}
          </>
        }
        row={(r) => (
          <>
            <td>{r.priority}</td>
            <td>{r.name}</td>
            <td>
              <code>{r.source_cidr}</code>
            </td>
            <td>
              {r.protocol} / {ports(r)}
            </td>
            <td>{actionText(r)}</td>
            <td>
              <span className={`badge badge--${r.sync_state}`} title={r.sync_error ?? undefined}>
                {r.enabled ? r.sync_state : "disabled"}
              </span>
            </td>
            {(canEdit || canDelete) && (
              <RowActions
                label={r.name}
                onEdit={canEdit ? () => setEditing(r) : undefined}
                onDelete={canDelete ? () => deletion.ask(r) : undefined}
              />
            )}
          </>
        )}
      />
      {deletion.pending && (
        <ConfirmDialog
          title={`Delete rule “${deletion.pending.name}”?`}
          confirmLabel="Delete rule"
          busy={deletion.busy}
          onCancel={deletion.cancel}
          onConfirm={deletion.confirm}
        >
          <p>
            Traffic from <code>{deletion.pending.source_cidr}</code> will no longer be matched by this rule.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

export function rate(n: number | undefined): string {
  if (n === undefined) return "—";
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

export function FastpathNotConnected({ stats }: { stats: Pick<FastpathStats, "configured" | "connected"> }) {
  return (
    <Alert kind="info">
      {stats.configured
        ? "The fast path is configured but not connected: rules are stored and will be pushed when the agent is back."
        : "No fast path is configured (FASTPATH_ADDR is unset): rules are stored but no packets are filtered yet."}
    </Alert>
  );
}

function LiveStatsTab() {
  const { api } = useSession();
  const stats = useResource(() => api.fastpathStats(), [api]);
  const rules = useResource(() => api.listRules({ per_page: 100, sort: "priority" }), [api]);
  useInterval(stats.reload, 2000);
  if (stats.error) return <LoadError error={stats.error} onRetry={stats.reload} />;
  if (!stats.data) return <Spinner label="Loading live stats…" />;
  if (!stats.data.connected) return <FastpathNotConnected stats={stats.data} />;
  const names = new Map((rules.data?.items ?? []).map((r) => [r.id, r.name]));
  const perRule = (stats.data.rules ?? []) as unknown as RuleCounter[];
  return (
    <>
      <p className="muted">Updated {formatTime(stats.data.timestamp)}, every 2 s.</p>
      {perRule.length === 0 ? (
        <p className="empty">No rule has matched a packet yet.</p>
      ) : (
        <table className="table">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Packets/s</th>
              <th>Packets</th>
              <th>Bytes</th>
            </tr>
          </thead>
          <tbody>
            {perRule.map((r) => (
              <tr key={r.rule_id}>
                <td>{names.get(r.rule_id) ?? `#${r.rule_id}`}</td>
                <td>{rate(r.pps)}</td>
                <td>{r.packets}</td>
                <td>{r.bytes}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

function HistoryTab() {
  const { api } = useSession();
  const { scopes } = useUser();
  const withAudit = canAccess(scopes, "audit", "read");
  const audit = useResource(
    () => (withAudit ? api.listAudit({ q: "rule.", sort: "-created_at", per_page: 50 }) : Promise.resolve(undefined)),
    [api, withAudit],
  );
  const recent = useResource(() => api.listRules({ sort: "-updated_at", per_page: 20 }), [api]);
  return (
    <>
      {withAudit && (
        <>
          <h2>Rule changes (audit log)</h2>
          {audit.error && <LoadError error={audit.error} onRetry={audit.reload} />}
          {audit.data && audit.data.items.length === 0 && <p className="empty">No rule has been changed yet.</p>}
          {audit.data && audit.data.items.length > 0 && (
            <table className="table">
              <thead>
                <tr>
                  <th>When</th>
                  <th>Who</th>
                  <th>What</th>
                  <th>Rule</th>
                </tr>
              </thead>
              <tbody>
                {audit.data.items.map((e) => (
                  <tr key={e.id}>
                    <td>{formatTime(e.created_at)}</td>
                    <td>{e.actor_email ?? "—"}</td>
                    <td>{e.action}</td>
                    <td>{e.object_id ?? "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
      <h2>Recently changed rules</h2>
      {recent.error && <LoadError error={recent.error} onRetry={recent.reload} />}
      {recent.data && recent.data.items.length === 0 && <p className="empty">No rules yet.</p>}
      {recent.data && recent.data.items.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th>Rule</th>
              <th>Revision</th>
              <th>Changed by</th>
              <th>When</th>
            </tr>
          </thead>
          <tbody>
            {recent.data.items.map((r) => (
              <tr key={r.id}>
                <td>{r.name}</td>
                <td>{r.revision}</td>
                <td>{r.updated_by}</td>
                <td>{formatTime(r.updated_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export default function RulesPage() {
  return (
    <section>
      <h1>Rules</h1>
      <Tabs
        label="Rules views"
        tabs={[
          { id: "rules", label: "Rules", render: () => <RulesTab /> },
          { id: "live", label: "Live stats", render: () => <LiveStatsTab /> },
          { id: "history", label: "History", render: () => <HistoryTab /> },
        ]}
      />
    </section>
  );
}
