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
