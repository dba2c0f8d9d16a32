import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { Page } from "../api/types";
import type { Resource } from "../api/useResource";
import { PagedTable } from "./PagedTable";

type Item = { id: number; name: string };

function resource(partial: Partial<Resource<Page<Item>>>): Resource<Page<Item>> {
  return { data: undefined, error: undefined, loading: false, reload: vi.fn(), ...partial };
}

function table(res: Resource<Page<Item>>, onPage = vi.fn()) {
  render(
    <PagedTable
      resource={res}
      loadingLabel="Loading items…"
      empty="Nothing here."
      onPage={onPage}
      head={<th>Name</th>}
      row={(item) => <td>{item.name}</td>}
    />,
  );
  return onPage;
}

const page = (items: Item[], number = 1, total = items.length): Page<Item> => ({ items, total, page: number, per_page: 2 });

describe("PagedTable", () => {
  it("shows a spinner on the first load, and nothing else", () => {
    table(resource({ loading: true }));
    expect(screen.getByText("Loading items…")).toBeInTheDocument();
    expect(screen.queryByRole("table")).toBeNull();
  });

  it("says what went wrong and retries on request", async () => {
    const res = resource({ error: new Error("HTTP 503: database down") });
    table(res);
    expect(screen.getByText(/database down/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(res.reload).toHaveBeenCalledOnce();
  });

  it("shows the empty message for an empty page, without a table", () => {
    table(resource({ data: page([]) }));
    expect(screen.getByText("Nothing here.")).toBeInTheDocument();
    expect(screen.queryByRole("table")).toBeNull();
  });

  it("renders one row per item and pages through the total", async () => {
    const onPage = table(resource({ data: page([{ id: 3, name: "three" }, { id: 4, name: "four" }], 2, 5) }));
    const rows = within(screen.getByRole("table")).getAllByRole("row");
    expect(rows.map((r) => r.textContent)).toEqual(["Name", "three", "four"]);
    expect(screen.getByText("Page 2 of 3 (5 in all)")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Next" }));
    expect(onPage).toHaveBeenCalledWith(3);
  });

  it("keeps the rows, marked busy, while the next page loads", () => {
    table(resource({ data: page([{ id: 1, name: "one" }]), loading: true }));
    expect(screen.getByRole("table")).toHaveAttribute("aria-busy", "true");
    expect(screen.queryByText("Loading items…")).toBeNull();
  });
});
