import { Link } from "react-router";
import type { Counter } from "../api/types";
import { useInterval, useResource } from "../api/useResource";
import { canAccess } from "../auth/access";
import { useSession, useUser } from "../auth/session";
import { Spinner } from "../components/Field";
import { formatTime, LoadError } from "../components/LoadError";
import { FastpathNotConnected, rate } from "./RulesPage";

export default function DashboardPage() {
  const { api } = useSession();
  const { user, scopes } = useUser();
  const seesUsers = canAccess(scopes, "users", "read");
  const seesAudit = canAccess(scopes, "audit", "read");

  const counts = useResource(async () => {
    const [rules, users] = await Promise.all([
      api.listRules({ per_page: 1 }),
      seesUsers ? api.listUsers({ per_page: 1 }) : Promise.resolve(null),
    ]);
    return { rules: rules.total, users: users?.total };
  }, [api, seesUsers]);
  const audit = useResource(
    () => (seesAudit ? api.listAudit({ sort: "-created_at", per_page: 8 }) : Promise.resolve(null)),
    [api, seesAudit],
  );
  const status = useResource(() => api.fastpathStatus(), [api]);
  const stats = useResource(() => api.fastpathStats(), [api]);
  useInterval(stats.reload, 2000);

  const actions = (stats.data?.actions ?? {}) as unknown as Record<string, Counter | undefined>;
  return (
    <section>
      <h1>Dashboard</h1>
      <p className="muted">Signed in as {user.email}.</p>
      {counts.error && <LoadError error={counts.error} onRetry={counts.reload} />}
      <div className="cards" aria-busy={counts.loading}>
        <Link to="/rules" className="stat-card">
          <span className="stat-card__value" data-testid="rules-count">
            {counts.data?.rules ?? "…"}
          </span>
          <span className="stat-card__label">Rules</span>
        </Link>
        {seesUsers && (
          <Link to="/users" className="stat-card">
            <span className="stat-card__value" data-testid="users-count">
              {counts.data?.users ?? "…"}
            </span>
            <span className="stat-card__label">Users</span>
          </Link>
        )}
        <div className="stat-card">
          <span className="stat-card__value">{stats.data?.connected ? rate(actions.pass?.pps) : "—"}</span>
          <span className="stat-card__label">Passed packets/s</span>
        </div>
        <div className="stat-card">
          <span className="stat-card__value">{stats.data?.connected ? rate(actions.drop?.pps) : "—"}</span>
          <span className="stat-card__label">Dropped packets/s</span>
        </div>
      </div>

      <h2>Fast path</h2>
      {status.error && <LoadError error={status.error} onRetry={status.reload} />}
      {!status.data && status.loading && <Spinner label="Asking the fast path…" />}
      {status.data &&
        (status.data.connected ? (
          <dl className="facts">
            <dt>Agents</dt>
            <dd>
              <span className="badge badge--synced">connected</span> {status.data.agents.length} at{" "}
              {status.data.address}
            </dd>
            <dt>Last sync</dt>
            <dd>{formatTime(status.data.last_sync_at)}</dd>
          </dl>
        ) : (
          <FastpathNotConnected stats={status.data} />
        ))}

      {seesAudit && (
        <>
          <h2>Recent activity</h2>
          {audit.error && <LoadError error={audit.error} onRetry={audit.reload} />}
          {audit.data && audit.data.items.length === 0 && <p className="empty">Nothing has happened yet.</p>}
          {audit.data && audit.data.items.length > 0 && (
            <ul className="activity">
              {audit.data.items.map((e) => (
                <li key={e.id}>
                  <span className="muted">{formatTime(e.created_at)}</span> {e.actor_email ?? "system"}{" "}
                  <code>{e.action}</code> {e.object_type ? `${e.object_type} ${e.object_id ?? ""}` : ""}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
