import type { ReactNode } from "react";
import type { Page } from "../api/types";
import type { Resource } from "../api/useResource";
import { Spinner } from "./Field";
import { LoadError } from "./LoadError";
import { Pager } from "./Pager";

/**
 * One page of a list endpoint as a table with its pager, and the states around it: the load
 * error with a retry, the first load's spinner, and the empty message. While a later page loads
 * the current rows stay, marked busy.
 */
export function PagedTable<T extends { id: number }>({
  resource,
  loadingLabel,
  empty,
  head,
  row,
  onPage,
}: {
  resource: Resource<Page<T>>;
  loadingLabel: string;
  empty: ReactNode;
  /** The header cells (`<th>` / `SortHeader`s). */
  head: ReactNode;
  /** The cells of one item's row. */
  row(item: T): ReactNode;
  onPage(page: number): void;
}) {
  const { data, error, loading, reload } = resource;
  return (
    <>
      {error && <LoadError error={error} onRetry={reload} />}
      {!data && loading && <Spinner label={loadingLabel} />}
      {data && data.items.length === 0 && <p className="empty">{empty}</p>}
      {data && data.items.length > 0 && (
        <>
          <table className="table" aria-busy={loading}>
            <thead>
              <tr>{head}</tr>
            </thead>
            <tbody>
              {data.items.map((item) => (
                <tr key={item.id}>{row(item)}</tr>
              ))}
            </tbody>
          </table>
          <Pager page={data.page} perPage={data.per_page} total={data.total} onPage={onPage} />
        </>
      )}
    </>
  );
}

/**
 * The last cell of a row: its Edit and Delete buttons, each only when its handler is given.
 * `label` names the item for screen readers ("Edit rule-a").
 */
export function RowActions({ label, onEdit, onDelete }: { label: string; onEdit?: () => void; onDelete?: () => void }) {
  return (
    <td className="actions">
      {onEdit && (
        <button type="button" className="btn btn--small" aria-label={`Edit ${label}`} onClick={onEdit}>
          Edit
        </button>
      )}
      {onDelete && (
        <button type="button" className="btn btn--small btn--danger" aria-label={`Delete ${label}`} onClick={onDelete}>
          Delete
        </button>
      )}
    </td>
  );
}
