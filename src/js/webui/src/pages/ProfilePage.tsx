import { useState } from "react";
import { Alert, TextField } from "../components/Field";
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
  const { changePassword } = useSession();
  const [done, setDone] = useState(false);
  const form = useForm({ current: "", next: "", confirm: "" }, RULES);

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
    </section>
  );
}
