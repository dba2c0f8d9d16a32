import { Suspense } from "react";
import { BrowserRouter, Navigate, Route, Routes, useLocation } from "react-router";
import { api as defaultApi, type ApiClient } from "./api/client";
import { canAccess } from "./auth/access";
import { SessionProvider, useSession } from "./auth/session";
import { Spinner } from "./components/Field";
import { Shell } from "./components/Shell";
import { LoginPage } from "./pages/LoginPage";
import { PAGES } from "./routes";

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>There is no page at this address, or your role does not include it.</p>
    </section>
  );
}

function AppRoutes() {
  const { state } = useSession();
  const location = useLocation();
  if (state.status === "loading") return <Spinner label="Loading your session…" />;
  if (state.status === "anonymous") {
    if (location.pathname !== "/login") {
      return <Navigate to="/login" replace state={{ from: location.pathname + location.search }} />;
    }
    return <LoginPage message={state.message} />;
  }
  return (
    <Shell>
      <Suspense fallback={<Spinner />}>
        <Routes>
          <Route path="/login" element={<Navigate to={(location.state as { from?: string } | null)?.from ?? "/"} replace />} />
          {PAGES.filter((p) => canAccess(state.scopes, p.resource, "read")).map((p) => (
            <Route key={p.path} path={p.path} element={<p.component />} />
          ))}
          <Route path="*" element={<NotFound />} />
        </Routes>
      </Suspense>
    </Shell>
  );
}

export function App({ api = defaultApi }: { api?: ApiClient }) {
  return (
    <BrowserRouter>
      <SessionProvider api={api}>
        <AppRoutes />
      </SessionProvider>
    </BrowserRouter>
  );
}
