import { Alert } from "./Field";

/** What a page shows when its data cannot be loaded: what happened and a way to try again. */
export function LoadError({ error, onRetry }: { error: Error; onRetry?: () => void }) {
  return (
    <Alert>
      <strong>Could not load this page.</strong> {error.message}
      {onRetry && (
        <>
          {" "}
          <button type="button" className="btn btn--small" onClick={onRetry}>
            Try again
          </button>
        </>
      )}
    </Alert>
  );
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
