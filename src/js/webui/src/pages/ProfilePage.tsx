import { useState } from "react";
import { ApiError } from "../api/client";
import { useResource } from "../api/useResource";
import { Alert, TextField } from "../components/Field";
import { formatTime, LoadError } from "../components/LoadError";
import { Tabs } from "../components/Tabs";
import { useSession, useUser } from "../auth/session";
import { useForm } from "../forms/useForm";
import { password, required } from "../forms/validation";

const RULES = {
  current: required("Current password"),
  next: password,
  confirm: (v: string, all: { next: string }) => (v !== all.next ? "The two new passwords differ" : null),
};

export default function ProfilePage() {
  const { user } = useUser();
  return (
    <section>
      <h1>Profile</h1>
      <dl className="facts">
        <dt>Name</dt>
        <dd>{user.full_name || "—"}</dd>
        <dt>Email</dt>
        <dd>{user.email}</dd>
        <dt>Role</dt>
        <dd>{user.role}</dd>
      </dl>
      <Tabs
        label="Profile views"
        tabs={[
          { id: "password", label: "Password", render: () => <PasswordTab /> },
          { id: "sessions", label: "Sessions", render: () => <SessionsTab /> },
        ]}
      />
    </section>
  );
}

function PasswordTab() {
  const { changePassword } = useSession();
  const [done, setDone] = useState(false);
  const form = useForm({ current: "", next: "", confirm: "" }, RULES);

  return (
    <form
      className="card form"
      noValidate
      onSubmit={form.handleSubmit(async (v) => {
        setDone(false);
        try {
          await changePassword(v.current, v.next);
        } catch (err) {
          // The API names its fields current_password/new_password; ours are shorter.
          if (err && typeof err === "object" && "details" in err) {
            const fields = ((err as { details: { fields?: Record<string, string> } }).details.fields ??= {});
            if (fields.current_password) fields.current = fields.current_password;
            if (fields.new_password) fields.next = fields.new_password;
            if ((err as { code?: string }).code === "invalid_credentials" && !fields.current) {
              fields.current = "This is not your current password";
            }
          }
          throw err;
        }
        form.setValues({ current: "", next: "", confirm: "" });
        setDone(true);
      })}
    >
      <h2>Change password</h2>
      {done && <Alert kind="success">Password changed. Your other sessions have been signed out.</Alert>}
      {form.formError && <Alert>{form.formError}</Alert>}
      <TextField
        label="Current password"
        type="password"
        autoComplete="current-password"
        value={form.values.current}
        error={form.errors.current}
        onChange={(v) => form.set("current", v)}
      />
      <TextField
        label="New password"
        type="password"
        autoComplete="new-password"
        hint="12 to 128 characters; not a common password or one like the e-mail address."
        value={form.values.next}
        error={form.errors.next}
        onChange={(v) => form.set("next", v)}
      />
      <TextField
        label="Repeat new password"
        type="password"
        autoComplete="new-password"
        value={form.values.confirm}
        error={form.errors.confirm}
        onChange={(v) => form.set("confirm", v)}
      />
      <button type="submit" className="btn btn--primary" disabled={form.submitting}>
        {form.submitting ? "Changing…" : "Change password"}
      </button>
    </form>
  );
}

/** Where the user is signed in, and a way to end those sessions (with their password). */
function SessionsTab() {
  const { api } = useSession();
  const sessions = useResource(() => api.listSessions(), [api]);
  const [current, setCurrent] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (action: () => Promise<string>) => {
    setNotice(null);
    if (!current) {
      setProblem("Enter your current password to end sessions.");
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      setNotice(await action());
      setCurrent("");
      sessions.reload();
    } catch (err) {
      setProblem(err instanceof ApiError ? (err.fields.current_password ?? err.message) : String(err));
    } finally {
      setBusy(false);
    }
  };

  const others = (sessions.data ?? []).filter((s) => !s.current);
  return (
    <div className="card">
      <h2>Sessions</h2>
      <p className="muted">Each sign-in is a session. It ends when you sign out, or at the time shown under Ends.</p>
      {sessions.error && <LoadError error={sessions.error} onRetry={sessions.reload} />}
      {notice && <Alert kind="success">{notice}</Alert>}
      {sessions.data && (
        <table className="table">
          <thead>
            <tr>
              <th>Signed in</th>
              <th>Last active</th>
              <th>Ends</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {sessions.data.map((s) => (
              <tr key={s.id}>
                <td>{formatTime(s.started_at)}</td>
                <td>{formatTime(s.last_active_at)}</td>
                <td>{formatTime(s.expires_at)}</td>
                <td>
                  {s.current ? (
                    <span className="badge badge--synced">This session</span>
                  ) : (
                    <button
                      type="button"
                      className="btn btn--small btn--danger"
                      disabled={busy}
                      onClick={() => run(async () => (await api.endSession(s.id, current), "The session has ended."))}
                    >
                      End
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {others.length > 0 && (
        <div className="form">
          <TextField
            label="Your password, to end sessions"
            type="password"
            autoComplete="current-password"
            value={current}
            error={problem ?? undefined}
            onChange={setCurrent}
          />
          <button
            type="button"
            className="btn btn--danger"
            disabled={busy}
            onClick={() =>
              run(async () => {
                const ended = await api.endOtherSessions(current);
                return ended === 1 ? "1 other session has ended." : `${ended} other sessions have ended.`;
              })
            }
          >
            End all other sessions
          </button>
        </div>
      )}
      {sessions.data && others.length === 0 && <p className="empty">No other session: you are signed in here only.</p>}
    </div>
  );
}
