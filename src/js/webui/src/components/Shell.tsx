import { type ReactNode, useEffect, useState } from "react";
import { NavLink } from "react-router";
import { canAccess } from "../auth/access";
import { useSession, useUser } from "../auth/session";
import { GROUPS, PAGES } from "../routes";
import { Icon } from "./icons";

// Only UI state goes to localStorage; tokens never do.
export const SIDEBAR_KEY = "myapp.sidebar.collapsed";

function readCollapsed(): boolean {
  try {
    return localStorage.getItem(SIDEBAR_KEY) === "1";
  } catch {
    return false;
  }
}

export function Shell({ children }: { children: ReactNode }) {
  const { logout } = useSession();
  const { user, scopes } = useUser();
  const [collapsed, setCollapsed] = useState(readCollapsed);
  const [signingOut, setSigningOut] = useState(false);

  useEffect(() => {
    try {
      localStorage.setItem(SIDEBAR_KEY, collapsed ? "1" : "0");
    } catch {
      // Storage can be disabled; the sidebar then just forgets.
    }
  }, [collapsed]);

  return (
    <div className={`shell${collapsed ? " shell--collapsed" : ""}`}>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <div className="sidebar__brand">
          <Icon name="shield" />
          <span className="sidebar__label">myapp</span>
        </div>
        <nav aria-label="Main">
          {GROUPS.map((group) => {
            const pages = PAGES.filter((p) => p.group === group && canAccess(scopes, p.resource, "read"));
            if (pages.length === 0) return null;
            return (
              <div className="sidebar__group" key={group}>
                <h2 className="sidebar__heading">{group}</h2>
                <ul>
                  {pages.map((p) => (
                    <li key={p.path}>
                      <NavLink
                        to={p.path}
                        end={p.path === "/"}
                        className="sidebar__link"
                        title={collapsed ? p.label : undefined}
                      >
                        <Icon name={p.icon} />
                        <span className="sidebar__label">{p.label}</span>
                      </NavLink>
                    </li>
                  ))}
                </ul>
              </div>
            );
          })}
        </nav>
        <button
          type="button"
          className="sidebar__toggle"
          aria-expanded={!collapsed}
          aria-label={collapsed ? "Expand sidebar" : "Collapse sidebar"}
          onClick={() => setCollapsed((c) => !c)}
        >
          <Icon name={collapsed ? "expand" : "collapse"} />
        </button>
      </aside>
      <div className="shell__body">
        <header className="topbar">
          <span className="topbar__user" data-testid="current-user">
            {user.full_name || user.email} <span className="badge">{user.role}</span>
          </span>
          <button
            type="button"
            className="btn btn--ghost"
            disabled={signingOut}
            onClick={() => {
              setSigningOut(true);
              void logout();
            }}
          >
            <Icon name="logout" /> Sign out
          </button>
        </header>
        <main id="main" className="content">
          {children}
        </main>
      </div>
    </div>
  );
}
