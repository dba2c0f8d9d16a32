import { useEffect } from "react";
import { Alert, TextField } from "../components/Field";
import { Icon } from "../components/icons";
import { useSession } from "../auth/session";
import { useForm } from "../forms/useForm";
import { email, required } from "../forms/validation";

const RULES = { email, password: required("Password") };

export function LoginPage({ message }: { message?: string }) {
  const { login } = useSession();
  const form = useForm({ email: "", password: "" }, RULES);
  // Fetch the dashboard's code while the user types, so signing in waits only for data.
  useEffect(() => {
    void import("./DashboardPage");
  }, []);
  return (
    <main className="login-page">
      <form className="card login-card" onSubmit={form.handleSubmit((v) => login(v.email.trim(), v.password))} noValidate>
        <h1>
          <Icon name="shield" /> myapp
        </h1>
        <p className="muted">Sign in to manage packet-filter rules.</p>
        {message && !form.formError && <Alert kind="info">{message}</Alert>}
        {form.formError && <Alert>{form.formError}</Alert>}
        <TextField
          label="Email"
          type="email"
          autoComplete="username"
          autoFocus
          value={form.values.email}
          error={form.errors.email}
          onChange={(v) => form.set("email", v)}
        />
        <TextField
          label="Password"
          type="password"
          autoComplete="current-password"
          value={form.values.password}
          error={form.errors.password}
          onChange={(v) => form.set("password", v)}
        />
        <button type="submit" className="btn btn--primary" disabled={form.submitting}>
          {form.submitting ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
