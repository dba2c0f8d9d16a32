// Every page of the app, in one place: the sidebar and the router are both built from this list,
// and both ask canAccess, so a page a role cannot read is neither linked nor reachable.
import { lazy, type LazyExoticComponent, type ComponentType } from "react";
import type { Resource } from "./auth/access";

export interface PageDef {
  path: string;
  label: string;
  icon: string;
  group: "Overview" | "Filtering" | "Administration" | "Account";
  resource: Resource;
  component: LazyExoticComponent<ComponentType>;
}

export const PAGES: readonly PageDef[] = [
  {
    path: "/",
    label: "Dashboard",
    icon: "dashboard",
    group: "Overview",
    resource: "dashboard",
    component: lazy(() => import("./pages/DashboardPage")),
  },
  {
    path: "/rules",
    label: "Rules",
    icon: "rules",
    group: "Filtering",
    resource: "rules",
    component: lazy(() => import("./pages/RulesPage")),
  },
  {
    path: "/users",
    label: "Users",
    icon: "users",
    group: "Administration",
    resource: "users",
    component: lazy(() => import("./pages/UsersPage")),
  },
  {
    path: "/audit",
    label: "Audit log",
    icon: "audit",
    group: "Administration",
    resource: "audit",
    component: lazy(() => import("./pages/AuditPage")),
  },
  {
    path: "/profile",
    label: "Profile",
    icon: "profile",
    group: "Account",
    resource: "profile",
    component: lazy(() => import("./pages/ProfilePage")),
  },
];

export const GROUPS = ["Overview", "Filtering", "Administration", "Account"] as const;
