import { useState } from "react";
import { useDebounced, useResource } from "../api/useResource";
import { useSession } from "../auth/session";
import { TextField } from "../components/Field";
import { formatTime } from "../components/LoadError";
import { PagedTable } from "../components/PagedTable";
import { SortHeader } from "../components/Pager";

export default function AuditPage() {
  const { api } = useSession();
  const [q, setQ] = useState("");
  const [sort, setSort] = useState("-created_at");
  const [page, setPage] = useState(1);
  const query = useDebounced(q);
  const audit = useResource(() => api.listAudit({ q: query, sort, page, per_page: 50 }), [api, query, sort, page]);
  return (
    <section>
      <h1>Audit log</h1>
      <TextField
        label="Search events"
        type="search"
        placeholder="Action, email or object"
        value={q}
        onChange={(v) => {
          setQ(v);
          setPage(1);
        }}
      />
      <PagedTable
        resource={audit}
        loadingLabel="Loading events…"
        empty="No events match."
        onPage={setPage}
        head={
          <>
            <SortHeader field="created_at" label="When" sort={sort} onSort={setSort} />
            <SortHeader field="actor_email" label="Who" sort={sort} onSort={setSort} />
            <SortHeader field="action" label="Action" sort={sort} onSort={setSort} />
            <th>Object</th>
            <th>From</th>
            <th>Request</th>
          </>
        }
        row={(e) => (
          <>
            <td>{formatTime(e.created_at)}</td>
            <td>{e.actor_email ?? "—"}</td>
            <td>
              <code>{e.action}</code>
            </td>
            <td>{e.object_type ? `${e.object_type} ${e.object_id ?? ""}` : "—"}</td>
            <td>{e.ip ?? "—"}</td>
            <td>
              <code className="muted">{e.request_id ?? ""}</code>
            </td>
          </>
        )}
      />
    </section>
  );
}
