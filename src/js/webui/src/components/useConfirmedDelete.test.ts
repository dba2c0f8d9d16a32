import { act, renderHook } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { useConfirmedDelete } from "./useConfirmedDelete";

type Item = { id: number; name: string };

function setUp(remove: (item: Item) => Promise<unknown>) {
  const onNotice = vi.fn();
  const onDeleted = vi.fn();
  const hook = renderHook(() =>
    useConfirmedDelete<Item>({ remove, deletedText: (item) => `${item.name} deleted.`, onNotice, onDeleted }),
  );
  return { hook, onNotice, onDeleted };
}

describe("useConfirmedDelete", () => {
  it("deletes the item asked about, reports it and reloads", async () => {
    const remove = vi.fn(async () => undefined);
    const { hook, onNotice, onDeleted } = setUp(remove);
    act(() => hook.result.current.ask({ id: 7, name: "rule seven" }));
    expect(hook.result.current.pending).toEqual({ id: 7, name: "rule seven" });
    await act(() => hook.result.current.confirm());
    expect(remove).toHaveBeenCalledWith({ id: 7, name: "rule seven" });
    expect(onNotice).toHaveBeenCalledWith({ kind: "success", text: "rule seven deleted." });
    expect(onDeleted).toHaveBeenCalledOnce();
    expect(hook.result.current.pending).toBeNull();
    expect(hook.result.current.busy).toBe(false);
  });

  it("shows the API's message when the delete fails, and does not reload", async () => {
    const { hook, onNotice, onDeleted } = setUp(async () => {
      throw new Error("The last active admin cannot be deleted");
    });
    act(() => hook.result.current.ask({ id: 1, name: "admin" }));
    await act(() => hook.result.current.confirm());
    expect(onNotice).toHaveBeenCalledWith({ kind: "error", text: "The last active admin cannot be deleted" });
    expect(onDeleted).not.toHaveBeenCalled();
    expect(hook.result.current.pending).toBeNull();
  });

  it("does nothing when cancelled or confirmed without a question", async () => {
    const remove = vi.fn(async () => undefined);
    const { hook, onNotice } = setUp(remove);
    await act(() => hook.result.current.confirm());
    act(() => hook.result.current.ask({ id: 2, name: "x" }));
    const cancel = hook.result.current.cancel;
    act(() => cancel());
    expect(hook.result.current.pending).toBeNull();
    expect(hook.result.current.cancel).toBe(cancel); // stable across renders
    expect(remove).not.toHaveBeenCalled();
    expect(onNotice).not.toHaveBeenCalled();
  });
});
