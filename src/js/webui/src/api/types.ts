// Names for the API's schemas, all taken from the generated schema.gen.ts (from openapi.json).
import type { components } from "./schema.gen";

type S = components["schemas"];
export type User = S["UserOut"];
export type Me = S["MeOut"];
export type TokenResponse = S["TokenOut"];
export type UserCreate = S["UserCreate"];
/** PATCH sends only the fields that change. */
export type UserPatch = Partial<S["UserPatch"]>;
export type Rule = S["RuleOut"];
export type RuleInput = S["RuleCreate"];
export type AuditEvent = S["AuditOut"];
export type SessionInfo = S["SessionOut"];
export type FastpathStatus = S["FastpathStatus"];
export type FastpathStats = S["FastpathStats"];
/** The API documents these as free-form objects (they mirror the agent's gRPC messages). */
export interface Counter {
  packets: number;
  bytes: number;
  pps: number;
}
export interface RuleCounter extends Counter {
  rule_id: number;
}
export type ApiErrorBody = S["ErrorResponse"];

export interface Page<T> {
  items: T[];
  total: number;
  page: number;
  per_page: number;
}

export interface ListQuery {
  page?: number;
  per_page?: number;
  q?: string;
  sort?: string;
}
