export function Pager({
  page,
  perPage,
  total,
  onPage,
}: {
  page: number;
  perPage: number;
  total: number;
  onPage(page: number): void;
}) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  return (
    <nav className="pager" aria-label="Pagination">
      <button type="button" className="btn btn--small" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        Previous
      </button>
      <span>
        Page {page} of {pages} ({total} in all)
      </span>
      <button type="button" className="btn btn--small" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        Next
      </button>
    </nav>
  );
}

/** A sortable column header: click toggles ascending/descending (`sort=field` / `sort=-field`). */
export function SortHeader({
  field,
  label,
  sort,
  onSort,
}: {
  field: string;
  label: string;
  sort: string;
  onSort(sort: string): void;
}) {
  const active = sort === field || sort === `-${field}`;
  const desc = sort === `-${field}`;
  return (
    <th aria-sort={active ? (desc ? "descending" : "ascending") : "none"}>
      <button type="button" className="th-button" onClick={() => onSort(active && !desc ? `-${field}` : field)}>
        {label} <span aria-hidden="true">{active ? (desc ? "▼" : "▲") : "↕"}</span>
      </button>
    </th>
  );
}
