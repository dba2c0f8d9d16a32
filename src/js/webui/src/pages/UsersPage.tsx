import { useCallback, useState } from "react";
import { ApiError } from "../api/client";
import type { User } from "../api/types";
import { useDebounced, useResource } from "../api/useResource";
import { canAccess, type Role } from "../auth/access";
import { useSession, useUser } from "../auth/session";
import { ConfirmDialog } from "../components/ConfirmDialog";
import { type Notice, useConfirmedDelete } from "../components/useConfirmedDelete";
import { Alert, CheckboxField, SelectField, TextField } from "../components/Field";
import { formatTime } from "../components/LoadError";
import { PagedTable, RowActions } from "../components/PagedTable";
import { SortHeader } from "../components/Pager";
import { useForm } from "../forms/useForm";
import { email, password, required } from "../forms/validation";

const ROLE_OPTIONS = [
  { value: "viewer", label: "Viewer (read only)" },
  { value: "maintainer", label: "Maintainer (rules)" },
  { value: "admin", label: "Admin (everything)" },
] as const;

const CREATE_RULES = { email, full_name: required("Full name"), password };
const EDIT_RULES = { full_name: required("Full name") };

/** A 409 `duplicate` is about the email: show it next to that field. */
function onEmailField(err: unknown): unknown {
  if (err instanceof ApiError && err.code === "duplicate" && !err.fields.email) {
    return new ApiError(err.status, err.code, err.message, { ...err.details, fields: { ...err.fields, email: err.message } });
  }
  return err;
}

function CreateUserForm({ onDone, onCancel }: { onDone(user: User): void; onCancel(): void }) {
  const { api } = useSession();
  const form = useForm<{ email: string; full_name: string; password: string; role: string; active: boolean }>(
    { email: "", full_name: "", password: "", role: "viewer", active: true },
    CREATE_RULES,
  );
  return (
    <form
      className="card form"
      aria-label="New user"
      noValidate
      onSubmit={form.handleSubmit(async (v) => {
        try {
          const user = await api.createUser({
            email: v.email.trim(),
            full_name: v.full_name.trim(),
            password: v.password,
            role: v.role as Role,
            active: v.active,
          });
          onDone(user);
        } catch (err) {
          throw onEmailField(err);
        }
      })}
    >
      <h2>New user</h2>
      {form.formError && <Alert>{form.formError}</Alert>}
      <TextField label="Email" type="email" value={form.values.email} error={form.errors.email} onChange={(v) => form.set("email", v)} />
      <TextField
        label="Full name"
        value={form.values.full_name}
        error={form.errors.full_name}
        onChange={(v) => form.set("full_name", v)}
      />
      <TextField
        label="Password"
        type="password"
        autoComplete="new-password"
        hint="12 to 128 characters; not a common password or one like the e-mail address."
        value={form.values.password}
        error={form.errors.password}
        onChange={(v) => form.set("password", v)}
      />
      <SelectField label="Role" value={form.values.role} options={ROLE_OPTIONS} error={form.errors.role} onChange={(v) => form.set("role", v)} />
      <CheckboxField label="Active" checked={form.values.active} onChange={(v) => form.set("active", v)} />
      <div className="form__actions">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn--primary" disabled={form.submitting}>
          {form.submitting ? "Creating…" : "Create user"}
        </button>
      </div>
    </form>
  );
}

function EditUserForm({ user, onDone, onCancel }: { user: User; onDone(user: User): void; onCancel(): void }) {
  const { api } = useSession();
  const { user: me } = useUser();
  const form = useForm<{ full_name: string; role: string; active: boolean }>(
    { full_name: user.full_name, role: user.role, active: user.active },
    EDIT_RULES,
  );
  return (
    <form
      className="card form"
      aria-label={`Edit ${user.email}`}
      noValidate
      onSubmit={form.handleSubmit(async (v) => {
        onDone(await api.updateUser(user.id, { full_name: v.full_name.trim(), role: v.role as Role, active: v.active }));
      })}
    >
      <h2>Edit {user.email}</h2>
      {form.formError && <Alert>{form.formError}</Alert>}
      <TextField
        label="Full name"
        value={form.values.full_name}
        error={form.errors.full_name}
        onChange={(v) => form.set("full_name", v)}
      />
      <SelectField label="Role" value={form.values.role} options={ROLE_OPTIONS} error={form.errors.role} onChange={(v) => form.set("role", v)} />
      <CheckboxField label="Active" checked={form.values.active} onChange={(v) => form.set("active", v)} />
      {user.id !== me.id && <UserSessions user={user} />}
      <div className="form__actions">
        <button type="button" className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="btn btn--primary" disabled={form.submitting}>
          {form.submitting ? "Saving…" : "Save"}
        </button>
      </div>
    </form>
  );
}

/** How many sessions a user has, and "sign out everywhere" (a lost laptop, a leaked password). */
function UserSessions({ user }: { user: User }) {
  const { api } = useSession();
  const sessions = useResource(() => api.listUserSessions(user.id), [api, user.id]);
  const [ended, setEnded] = useState<number | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const count = sessions.data?.length;
  const signOut = async () => {
    setBusy(true);
    setProblem(null);
    try {
      setEnded(await api.endUserSessions(user.id));
      sessions.reload();
    } catch (err) {
      setProblem(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="field">
      <p>
        {count === undefined ? "Sessions: …" : count === 1 ? "Signed in: 1 session." : `Signed in: ${count} sessions.`}{" "}
        <button type="button" className="btn btn--small btn--danger" disabled={busy || !count} onClick={signOut}>
          Sign out everywhere
        </button>
      </p>
      {ended !== null && <Alert kind="success">{ended === 1 ? "1 session ended." : `${ended} sessions ended.`}</Alert>}
      {problem && <Alert>{problem}</Alert>}
      {sessions.error && <Alert>{sessions.error.message}</Alert>}
    </div>
  );
}

export default function UsersPage() {
  const { api } = useSession();
  const { user: me, scopes } = useUser();
  const [q, setQ] = useState("");
  const [sort, setSort] = useState("email");
  const [page, setPage] = useState(1);
  const [perPage, setPerPage] = useState(20);
  const [mode, setMode] = useState<{ kind: "none" } | { kind: "create" } | { kind: "edit"; user: User }>({ kind: "none" });
  const [notice, setNotice] = useState<Notice | null>(null);

  const query = useDebounced(q);
  const users = useResource(() => api.listUsers({ q: query, sort, page, per_page: perPage }), [api, query, sort, page, perPage]);
  const deletion = useConfirmedDelete<User>({
    remove: (user) => api.deleteUser(user.id),
    deletedText: (user) => `User ${user.email} deleted.`,
    onNotice: setNotice,
    onDeleted: users.reload,
  });
  const canCreate = canAccess(scopes, "users", "create");
  const canEdit = canAccess(scopes, "users", "update");
  const canDelete = canAccess(scopes, "users", "delete");
  const closeForm = useCallback(() => setMode({ kind: "none" }), []);

  return (
    <section>
      <div className="page-head">
        <h1>Users</h1>
        {canCreate && mode.kind !== "create" && (
          <button type="button" className="btn btn--primary" onClick={() => setMode({ kind: "create" })}>
            New user
          </button>
        )}
      </div>
      {notice && <Alert kind={notice.kind}>{notice.text}</Alert>}
      {mode.kind === "create" && (
        <CreateUserForm
          onCancel={closeForm}
          onDone={(u) => {
            setNotice({ kind: "success", text: `User ${u.email} created.` });
            closeForm();
            users.reload();
          }}
        />
      )}
      {mode.kind === "edit" && (
        <EditUserForm
          key={mode.user.id}
          user={mode.user}
          onCancel={closeForm}
          onDone={(u) => {
            setNotice({ kind: "success", text: `User ${u.email} saved.` });
            closeForm();
            users.reload();
          }}
        />
      )}
      <div className="toolbar">
        <TextField
          label="Search users"
          type="search"
          placeholder="Email or name"
          value={q}
          onChange={(v) => {
            setQ(v);
            setPage(1);
          }}
        />
        <SelectField
          label="Per page"
          value={String(perPage)}
          options={[10, 20, 50, 100].map((n) => ({ value: String(n), label: String(n) }))}
          onChange={(v) => {
            setPerPage(Number(v));
            setPage(1);
          }}
        />
      </div>
      <PagedTable
        resource={users}
        loadingLabel="Loading users…"
        empty={q ? `No user matches “${q}”.` : "No users yet. Create the first one with “New user”."}
        onPage={setPage}
        head={
          <>
            <SortHeader field="email" label="Email" sort={sort} onSort={setSort} />
            <SortHeader field="full_name" label="Name" sort={sort} onSort={setSort} />
            <SortHeader field="role" label="Role" sort={sort} onSort={setSort} />
            <th>Active</th>
            <SortHeader field="created_at" label="Created" sort={sort} onSort={setSort} />
            {(canEdit || canDelete) && <th>Actions</th>}
          </>
        }
        row={(u) => (
          <>
            <td>{u.email}</td>
            <td>{u.full_name}</td>
            <td>
              <span className="badge">{u.role}</span>
            </td>
            <td>{u.active ? "yes" : "no"}</td>
            <td>{formatTime(u.created_at)}</td>
            {(canEdit || canDelete) && (
              <RowActions
                label={u.email}
                onEdit={canEdit ? () => setMode({ kind: "edit", user: u }) : undefined}
                onDelete={canDelete && u.id !== me.id ? () => deletion.ask(u) : undefined}
              />
            )}
          </>
        )}
      />
      {deletion.pending && (
        <ConfirmDialog
          title={`Delete ${deletion.pending.email}?`}
          confirmLabel="Delete user"
          busy={deletion.busy}
          onCancel={deletion.cancel}
          onConfirm={deletion.confirm}
        >
          <p>
            {deletion.pending.full_name || deletion.pending.email} will no longer be able to sign in. Their audit history stays. This
            cannot be undone.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
