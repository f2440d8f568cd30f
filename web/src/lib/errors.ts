// The API's one error envelope, {"error": {code, message, details?, trace_id}}, turned into
// what a page shows: messages beside the fields they concern, the rest with its trace_id.
import { zErrorEnvelope } from "../client/zod.gen.ts";

export interface ApiProblem {
  status: number;
  code: string;
  message: string;
  traceId: string | null;
  fields: Record<string, string>;
}

/** Expected answers a page explains itself; anything else is "unexpected" and shows the
 * trace_id to quote to support. */
const EXPECTED_STATUSES = new Set([400, 401, 403, 404, 409, 422, 429]);

export function problemFrom(status: number, body: unknown, requestId: string | null): ApiProblem {
  const parsed = zErrorEnvelope.safeParse(body);
  if (!parsed.success) {
    return {
      status,
      code: "unexpected_response",
      message: `The server answered ${status} without an explanation.`,
      traceId: requestId,
      fields: {},
    };
  }
  const { code, message, details, trace_id } = parsed.data.error;
  return { status, code, message, traceId: trace_id ?? requestId, fields: fieldProblems(details) };
}

/** Validation details [{field, problem}] keyed by field ("answers.obs.metrics"). */
export function fieldProblems(details: unknown): Record<string, string> {
  const found: Record<string, string> = {};
  if (!Array.isArray(details)) return found;
  for (const item of details) {
    if (item && typeof item === "object" && "field" in item && "problem" in item) {
      const field = String((item as { field: unknown }).field);
      const problem = String((item as { problem: unknown }).problem);
      found[field] = found[field] ? `${found[field]}; ${problem}` : problem;
    }
  }
  return found;
}

export function isUnexpected(problem: ApiProblem): boolean {
  return !EXPECTED_STATUSES.has(problem.status) || problem.code === "unexpected_response";
}

/** Zod issues keyed by their dotted path, the same keys as the API's details. */
export function zodProblems(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): Record<string, string> {
  const found: Record<string, string> = {};
  for (const issue of issues) {
    const key = issue.path.map(String).join(".") || "body";
    found[key] ??= issue.message;
  }
  return found;
}
