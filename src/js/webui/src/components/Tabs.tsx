import { type KeyboardEvent, type ReactNode, useId } from "react";
import { useSearchParams } from "react-router";

export interface TabDef {
  id: string;
  label: string;
  render(): ReactNode;
}

/** Tabs inside a page; the chosen tab is in the URL (?tab=) so reload and back keep it. */
export function Tabs({ tabs, label }: { tabs: TabDef[]; label: string }) {
  const [params, setParams] = useSearchParams();
  const baseId = useId();
  const current = tabs.find((t) => t.id === params.get("tab")) ?? tabs[0];
  if (!current) return null;

  const select = (id: string) => {
    const next = new URLSearchParams(params);
    next.set("tab", id);
    setParams(next, { replace: true });
  };

  const onKey = (e: KeyboardEvent) => {
    const i = tabs.indexOf(current);
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    if (next) {
      select(next.id);
      document.getElementById(`${baseId}-${next.id}-tab`)?.focus();
    }
  };

  return (
    <div className="tabs">
      <div role="tablist" aria-label={label} className="tabs__list" onKeyDown={onKey}>
        {tabs.map((t) => (
          <button
            key={t.id}
            id={`${baseId}-${t.id}-tab`}
            role="tab"
            type="button"
            aria-selected={t.id === current.id}
            aria-controls={`${baseId}-${t.id}-panel`}
            tabIndex={t.id === current.id ? 0 : -1}
            className="tabs__tab"
            onClick={() => select(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      <div
        role="tabpanel"
        id={`${baseId}-${current.id}-panel`}
        aria-labelledby={`${baseId}-${current.id}-tab`}
        className="tabs__panel"
      >
        {current.render()}
      </div>
    </div>
  );
}
