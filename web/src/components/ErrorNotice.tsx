"use client";
import type { ApiProblem } from "@/lib/errors.ts";
import { isUnexpected } from "@/lib/errors.ts";

/** A failed request, said plainly; an unexpected one carries the id to quote to support. */
export function ErrorNotice({ problem }: { problem: ApiProblem | null }) {
  if (!problem) return null;
  const unexpected = isUnexpected(problem);
  return (
    <div role="alert" className="notice error" data-testid="error-notice">
      <p>{problem.message}</p>
      {unexpected && problem.traceId ? (
        <p>
          Something went wrong on our side. Quote this id to support:{" "}
          <code data-testid="trace-id">{problem.traceId}</code>
        </p>
      ) : null}
    </div>
  );
}

export function FieldError({ id, message }: { id: string; message: string | undefined }) {
  if (!message) return null;
  return (
    <p id={id} className="field-error">
      {message}
    </p>
  );
}
