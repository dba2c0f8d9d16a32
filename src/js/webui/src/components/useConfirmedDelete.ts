import { useCallback, useState } from "react";

export type Notice = { kind: "success" | "error"; text: string };

/**
 * Delete after a confirmation: `ask(item)` opens the question, `confirm()` runs `remove(item)`,
 * reports the outcome through `onNotice` (the API's message on failure) and calls `onDeleted`
 * on success; the question closes either way. `busy` disables the dialog meanwhile.
 */
export function useConfirmedDelete<T>({
  remove,
  deletedText,
  onNotice,
  onDeleted,
}: {
  remove(item: T): Promise<unknown>;
  deletedText(item: T): string;
  onNotice(notice: Notice): void;
  onDeleted(): void;
}) {
  const [pending, setPending] = useState<T | null>(null);
  const [busy, setBusy] = useState(false);
  // Stable: the dialog re-binds its Escape key and focus whenever onCancel changes.
  const cancel = useCallback(() => setPending(null), []);
  const confirm = async (): Promise<void> => {
    if (pending === null) return;
    setBusy(true);
    try {
      await remove(pending);
      onNotice({ kind: "success", text: deletedText(pending) });
      onDeleted();
    } catch (err) {
      onNotice({ kind: "error", text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
      setPending(null);
    }
  };
  return { pending, busy, ask: setPending, cancel, confirm };
}
