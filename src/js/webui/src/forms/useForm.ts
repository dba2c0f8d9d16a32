/**
 * Form state: values, the client-side check of every field as it changes, and the API's own
 * per-field messages. Nothing here clears what the user typed: a failed submit keeps it all.
 */
import { type FormEvent, useCallback, useMemo, useState } from "react";
import { ApiError } from "../api/client";

export type Values = Record<string, string | boolean>;
export type Rules<V extends Values> = Partial<{ [K in keyof V]: (value: V[K], all: V) => string | null }>;

export interface Form<V extends Values> {
  values: V;
  /** The message shown under each field: the API's (until the field changes) or the local check's. */
  errors: Partial<Record<keyof V, string>>;
  formError: string | null;
  submitting: boolean;
  set<K extends keyof V>(name: K, value: V[K]): void;
  setValues(values: V): void;
  handleSubmit(action: (values: V) => Promise<void>): (e?: FormEvent) => Promise<void>;
  setServerError(err: unknown): void;
}

export function useForm<V extends Values>(initial: V, rules: Rules<V> = {}): Form<V> {
  const [values, setAll] = useState<V>(initial);
  const [touched, setTouched] = useState<Partial<Record<keyof V, boolean>>>({});
  const [serverErrors, setServerErrors] = useState<Partial<Record<keyof V, string>>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [submitting, setSubmitting] = useState(false);

  const localErrors = useMemo(() => {
    const out: Partial<Record<keyof V, string>> = {};
    for (const name of Object.keys(rules) as (keyof V)[]) {
      const message = rules[name]?.(values[name], values);
      if (message) out[name] = message;
    }
    return out;
  }, [values, rules]);

  const errors = useMemo(() => {
    const out: Partial<Record<keyof V, string>> = {};
    for (const name of Object.keys(values) as (keyof V)[]) {
      const message = serverErrors[name] ?? (touched[name] ? localErrors[name] : undefined);
      if (message) out[name] = message;
    }
    return out;
  }, [values, serverErrors, touched, localErrors]);

  const set = useCallback(<K extends keyof V>(name: K, value: V[K]) => {
    setAll((prev) => ({ ...prev, [name]: value }));
    setTouched((prev) => ({ ...prev, [name]: true }));
    setServerErrors((prev) => {
      if (!(name in prev)) return prev;
      const next = { ...prev };
      delete next[name];
      return next;
    });
  }, []);

  const setServerError = useCallback(
    (err: unknown) => {
      if (err instanceof ApiError) {
        const fields: Partial<Record<keyof V, string>> = {};
        let matched = false;
        for (const [name, message] of Object.entries(err.fields)) {
          if (name in values) {
            fields[name as keyof V] = message;
            matched = true;
          }
        }
        setServerErrors(fields);
        setFormError(matched && err.status === 422 ? "Please correct the marked fields." : err.message);
      } else {
        setFormError(err instanceof Error ? err.message : String(err));
      }
    },
    [values],
  );

  const handleSubmit = useCallback(
    (action: (values: V) => Promise<void>) => async (e?: FormEvent) => {
      e?.preventDefault();
      const all: Partial<Record<keyof V, boolean>> = {};
      for (const name of Object.keys(values) as (keyof V)[]) all[name] = true;
      setTouched(all);
      if (Object.keys(localErrors).length > 0) {
        setFormError("Please correct the marked fields.");
        return;
      }
      setFormError(null);
      setServerErrors({});
      setSubmitting(true);
      try {
        await action(values);
      } catch (err) {
        setServerError(err);
      } finally {
        setSubmitting(false);
      }
    },
    [values, localErrors, setServerError],
  );

  return { values, errors, formError, submitting, set, setValues: setAll, handleSubmit, setServerError };
}
