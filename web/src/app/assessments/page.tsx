"use client";
import Link from "next/link";
import { useEffect, useState } from "react";
import { listAssessmentsApiV1AssessmentsGet } from "@/client/sdk.gen.ts";
import type { AssessmentOut } from "@/client/types.gen.ts";
import { ErrorNotice } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";

export default function AssessmentsPage() {
  const session = useRequiredSession();
  const [items, setItems] = useState<AssessmentOut[] | null>(null);
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  useEffect(() => {
    if (!session) return;
    call(listAssessmentsApiV1AssessmentsGet())
      .then((page) => setItems(page.items))
      .catch((error: unknown) => {
        if (error instanceof ApiFailure) setProblem(error.problem);
      });
  }, [session]);
  if (!session) return null;
  return (
    <>
      <h1>Assessments</h1>
      <p><Link href="/questionnaire">Start a new assessment</Link></p>
      <ErrorNotice problem={problem} />
      {items === null && !problem ? <p role="status">Loading…</p> : null}
      {items !== null && items.length === 0 ? <p data-testid="no-assessments">No assessments yet.</p> : null}
      {items !== null && items.length > 0 ? (
        <table>
          <caption className="hint">Newest first</caption>
          <thead>
            <tr><th scope="col">Submitted</th><th scope="col">Status</th><th scope="col">Score</th></tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.id}>
                <td><Link href={`/assessments/${a.id}`}>{new Date(a.created_at).toLocaleString("en")}</Link></td>
                <td>{a.status}{a.degraded ? " (degraded)" : ""}</td>
                <td>{a.overall_score ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}
